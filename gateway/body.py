"""Reading and checking /v1 request bodies: only the fields Ogem needs, everything else untouched.

Bodies are bounded by `settings.OGEM_MAX_REQUEST_BYTES` (413 `request_too_large`). JSON is parsed
with orjson and nests at most `MAX_JSON_DEPTH` levels; multipart forms (images/edits,
images/variations, audio/*) keep their files' bytes and hold at most Django's
`DATA_UPLOAD_MAX_NUMBER_FIELDS` fields and `DATA_UPLOAD_MAX_NUMBER_FILES` files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParserError

from gateway.errors import InvalidRequestError, RequestTooLargeError
from gateway.params import form_fields_parse, params_check
from ogem_site.hot_settings import hot_settings
from providers.adapter import UploadFile
from providers.base import Endpoint
from providers.events import EVENT_STREAM_ENDPOINTS

# Fields a request names its input by, per endpoint: one of them is required.
REQUIRED_INPUT: dict[Endpoint, tuple[str, ...]] = {
    Endpoint.CHAT: ("messages",),
    Endpoint.COMPLETIONS: ("prompt",),
    Endpoint.EMBEDDINGS: ("input",),
    Endpoint.IMAGES_GENERATIONS: ("prompt",),
    Endpoint.IMAGES_EDITS: ("prompt",),
    Endpoint.AUDIO_SPEECH: ("input",),
    Endpoint.MODERATIONS: ("input",),
    Endpoint.RERANK: ("query",),
}
REQUIRED_FILE: dict[Endpoint, str] = {
    Endpoint.IMAGES_EDITS: "image",
    Endpoint.IMAGES_VARIATIONS: "image",
    Endpoint.AUDIO_TRANSCRIPTIONS: "file",
    Endpoint.AUDIO_TRANSLATIONS: "file",
}
STREAMING_ENDPOINTS = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})
# orjson serializes at most 255 levels: a body forwarded upstream (and wrapped a few levels deeper
# by a provider's translation) must stay well below, and no real request nests this deep.
MAX_JSON_DEPTH = 128


@dataclass(slots=True)
class Inbound:
    body: dict[str, Any]
    files: list[UploadFile] = field(default_factory=list)
    size: int = 0
    form: bool = False  # multipart: its numbers arrive as strings


def _check_size(request: HttpRequest) -> None:
    limit = hot_settings().OGEM_MAX_REQUEST_BYTES
    length = request.META.get("CONTENT_LENGTH")
    if length and length.isdigit() and int(length) > limit:
        raise RequestTooLargeError(f"The request body is larger than {limit} bytes.")


def body_read_json(request: HttpRequest) -> Inbound:
    _check_size(request)
    try:
        raw = request.body
    except RequestDataTooBig as exc:
        raise RequestTooLargeError(
            f"The request body is larger than {settings.OGEM_MAX_REQUEST_BYTES} bytes."
        ) from exc
    if len(raw) > hot_settings().OGEM_MAX_REQUEST_BYTES:
        raise RequestTooLargeError(
            f"The request body is larger than {settings.OGEM_MAX_REQUEST_BYTES} bytes."
        )
    if not raw:
        raise InvalidRequestError("The request body is empty; send a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(
            "We could not parse the JSON body of your request.", code="invalid_json"
        ) from exc
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
    # A body with fewer brackets than the limit cannot nest deeper: the walk is for the rare rest.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _json_too_deep(body):
        raise InvalidRequestError(
            f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.", code="invalid_json"
        )
    return Inbound(body=body, size=len(raw))


def _json_too_deep(body: dict[str, Any]) -> bool:
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                if depth >= MAX_JSON_DEPTH:
                    return True
                stack.append((child, depth + 1))
    return False


def multipart_parse(request: HttpRequest) -> tuple[Any, Any]:
    """The request's multipart fields and files, Django's parser's failures as 400s (413 when
    the body is too large), never a 500."""
    try:
        return request.POST, request.FILES
    except RequestDataTooBig as exc:
        raise RequestTooLargeError(
            f"The request body is larger than {settings.OGEM_MAX_REQUEST_BYTES} bytes."
        ) from exc
    except MultiPartParserError as exc:
        raise InvalidRequestError("The multipart body is malformed.") from exc
    except (TooManyFieldsSent, TooManyFilesSent) as exc:
        raise InvalidRequestError(
            "The multipart body has too many fields or files.", code="too_many_fields"
        ) from exc


def body_read_multipart(request: HttpRequest) -> Inbound:
    _check_size(request)
    if not request.content_type.startswith("multipart/form-data"):
        raise InvalidRequestError(
            "This endpoint expects multipart/form-data.", code="invalid_content_type"
        )
    form, uploads = multipart_parse(request)
    body: dict[str, Any] = {}
    for name, values in form.lists():
        body[name] = values[0] if len(values) == 1 else values
    files: list[UploadFile] = []
    size = 0
    for name, items in uploads.lists():
        for item in items:
            content = item.read()
            size += len(content)
            files.append(
                UploadFile(
                    field=name,
                    filename=item.name or name,
                    content=content,
                    content_type=item.content_type or "application/octet-stream",
                )
            )
    if size > settings.OGEM_MAX_REQUEST_BYTES:
        raise RequestTooLargeError(
            f"The request body is larger than {settings.OGEM_MAX_REQUEST_BYTES} bytes."
        )
    return Inbound(body=body, files=files, size=size, form=True)


@dataclass(slots=True)
class Checked:
    """The fields Ogem itself reads from a request (the body is forwarded as it came)."""

    model: str
    stream: bool
    include_usage: bool
    end_customer: str | None
    tags: list[str]
    max_tokens: int | None
    store: bool = False  # chat only: Ogem keeps the completion (gateway/stored.py)


def body_check(
    *, endpoint: Endpoint, inbound: Inbound, default_model: str | None = None
) -> Checked:
    body = inbound.body
    if inbound.form:
        form_fields_parse(endpoint=endpoint, body=body)
    model = body.get("model", default_model)
    if model is None:
        raise InvalidRequestError("You must provide a model parameter.", param="model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("`model` must be a non-empty string.", param="model")
    for name in REQUIRED_INPUT.get(endpoint, ()):
        if body.get(name) is None:
            raise InvalidRequestError(f"Missing required parameter: `{name}`.", param=name)
    if endpoint == Endpoint.CHAT:
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            raise InvalidRequestError("`messages` must be a non-empty array.", param="messages")
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise InvalidRequestError(
                    f"`messages[{index}]` must be an object with a `role`.",
                    param=f"messages[{index}]",
                )
    if endpoint == Endpoint.RERANK and not isinstance(body.get("documents"), list):
        raise InvalidRequestError("`documents` must be an array.", param="documents")
    body_check_structure(endpoint=endpoint, body=body)
    if endpoint in REQUIRED_FILE:
        wanted = REQUIRED_FILE[endpoint]
        if not any(f.field in (wanted, f"{wanted}[]") for f in inbound.files):
            raise InvalidRequestError(f"Missing required file: `{wanted}`.", param=wanted)
    params_check(endpoint=endpoint, body=body)
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidRequestError("`stream` must be a boolean.", param="stream")
    if stream and endpoint not in STREAMING_ENDPOINTS and endpoint not in EVENT_STREAM_ENDPOINTS:
        raise InvalidRequestError(
            f"Streaming is not supported on /v1/{endpoint.value}.", param="stream"
        )
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidRequestError("`stream_options` must be an object.", param="stream_options")
    include_usage = bool(options and options.get("include_usage"))
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise InvalidRequestError("`user` must be a string.", param="user")
    if endpoint == Endpoint.RESPONSES:
        max_tokens = body.get("max_output_tokens")
    else:
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)):
        raise InvalidRequestError("`max_tokens` must be an integer.", param="max_tokens")
    tags: list[str] = []
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise InvalidRequestError("`metadata` must be an object.", param="metadata")
        raw_tags = metadata.get("tags")
        if raw_tags is not None:
            if not isinstance(raw_tags, list) or not all(isinstance(t, str) for t in raw_tags):
                raise InvalidRequestError(
                    "`metadata.tags` must be an array of strings.", param="metadata.tags"
                )
            tags = list(raw_tags)
    store = body.get("store")
    if store is not None and endpoint == Endpoint.CHAT:
        if not isinstance(store, bool):
            raise InvalidRequestError("`store` must be a boolean.", param="store")
        if store:
            stored_metadata_check(metadata_stored(body.get("metadata")))
    return Checked(
        model=model,
        stream=stream,
        include_usage=include_usage,
        end_customer=user,
        tags=tags,
        max_tokens=max_tokens,
        store=store is True and endpoint == Endpoint.CHAT,
    )


# OpenAI's bounds on an object's metadata.
METADATA_MAX_PAIRS = 16
METADATA_MAX_KEY = 64
METADATA_MAX_VALUE = 512


def metadata_stored(metadata: Any) -> Any:
    """What a stored completion keeps of the request's metadata: all but `tags`, which is
    Ogem's (spend and routing tags, never forwarded upstream)."""
    if isinstance(metadata, dict) and "tags" in metadata:
        return {k: v for k, v in metadata.items() if k != "tags"}
    return metadata


def stored_metadata_check(metadata: Any) -> dict[str, str]:
    """A stored object's metadata as OpenAI bounds it: at most 16 string pairs, keys up to 64
    characters, values up to 512; null is none."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidRequestError("`metadata` must be an object.", param="metadata")
    if len(metadata) > METADATA_MAX_PAIRS:
        raise InvalidRequestError(
            f"`metadata` may hold at most {METADATA_MAX_PAIRS} pairs; it has {len(metadata)}.",
            param="metadata",
            code="metadata_too_large",
        )
    for key, value in metadata.items():
        if "\x00" in key or (isinstance(value, str) and "\x00" in value):
            raise InvalidRequestError(
                "`metadata` cannot hold NUL characters.", param="metadata", code="invalid_value"
            )
        if len(key) > METADATA_MAX_KEY:
            raise InvalidRequestError(
                f"`metadata` keys may be at most {METADATA_MAX_KEY} characters long.",
                param="metadata",
                code="metadata_key_too_long",
            )
        if not isinstance(value, str):
            raise InvalidRequestError(
                f"`metadata.{key}` must be a string.", param=f"metadata.{key}"
            )
        if len(value) > METADATA_MAX_VALUE:
            raise InvalidRequestError(
                f"`metadata.{key}` may be at most {METADATA_MAX_VALUE} characters long.",
                param=f"metadata.{key}",
                code="metadata_value_too_long",
            )
    return metadata


def body_check_structure(*, endpoint: Endpoint, body: dict[str, Any]) -> None:
    """The shapes of the fields adapters translate (OpenAI's types), so that a translation never
    meets, say, `tools: "x"` or `stop: 5`. Only fields that are present are checked."""
    if endpoint == Endpoint.CHAT:
        for index, message in enumerate(body["messages"]):
            content = message.get("content")
            if content is not None and not isinstance(content, str):
                _objects(content, param=f"messages[{index}].content", what=_STRING_OR_OBJECTS)
            if message.get("tool_calls") is not None:
                _objects(
                    message["tool_calls"], param=f"messages[{index}].tool_calls", what=_OBJECTS
                )
        for name in ("tools", "functions"):
            if body.get(name) is not None:
                _objects(body[name], param=name, what=_OBJECTS)
        choice = body.get("tool_choice")
        if choice is not None and not isinstance(choice, str | dict):
            raise InvalidRequestError(
                "`tool_choice` must be a string or an object.", param="tool_choice"
            )
        response_format = body.get("response_format")
        if response_format is not None and not isinstance(response_format, dict):
            raise InvalidRequestError(
                "`response_format` must be an object.", param="response_format"
            )
    if endpoint in STREAMING_ENDPOINTS:
        stop = body.get("stop")
        if stop is not None and not (
            isinstance(stop, str) or (isinstance(stop, list) and _all_str(stop))
        ):
            raise InvalidRequestError(
                "`stop` must be a string or an array of strings.", param="stop"
            )
    if endpoint in (Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS):
        name = "prompt" if endpoint == Endpoint.COMPLETIONS else "input"
        value = body.get(name)
        if value is not None and not (isinstance(value, str) or _text_or_tokens(value)):
            raise InvalidRequestError(
                f"`{name}` must be a string, an array of strings, or token arrays.", param=name
            )
    if endpoint == Endpoint.MODERATIONS and not isinstance(body["input"], str | list):
        raise InvalidRequestError("`input` must be a string or an array.", param="input")
    if endpoint == Endpoint.RERANK:
        if not isinstance(body["query"], str):
            raise InvalidRequestError("`query` must be a string.", param="query")
        if not all(isinstance(document, str | dict) for document in body["documents"]):
            raise InvalidRequestError(
                "`documents` must hold strings or objects.", param="documents"
            )
    name = _TEXT_INPUT.get(endpoint)
    if name is not None and not isinstance(body[name], str):
        raise InvalidRequestError(f"`{name}` must be a string.", param=name)


_OBJECTS = "an array of objects"
_STRING_OR_OBJECTS = "a string or an array of objects"
# Inputs that are a single string on these endpoints.
_TEXT_INPUT: dict[Endpoint, str] = {
    Endpoint.IMAGES_GENERATIONS: "prompt",
    Endpoint.IMAGES_EDITS: "prompt",
    Endpoint.AUDIO_SPEECH: "input",
}


def _objects(value: Any, *, param: str, what: str) -> None:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise InvalidRequestError(f"`{param}` must be {what}.", param=param)


def _all_str(values: list[Any]) -> bool:
    return all(isinstance(value, str) for value in values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text_or_tokens(value: Any) -> bool:
    """An array of strings, a token array, or an array of token arrays (OpenAI's inputs)."""
    if not isinstance(value, list):
        return False
    return all(
        isinstance(item, str)
        or _is_int(item)
        or (isinstance(item, list) and all(_is_int(token) for token in item))
        for item in value
    )


def body_for_upstream(
    *, body: dict[str, Any], provider: str, stored: bool = False
) -> dict[str, Any]:
    """The client's body minus what only Ogem reads (tags in metadata; the response cache's
    `cache` controls; mock_response off mock; `store` and the stored completion's `metadata` when
    Ogem stores it: an upstream must not keep a tenant's completion in the operator's account)."""
    metadata = body.get("metadata")
    strip_mock = provider != "mock" and "mock_response" in body
    tagged = isinstance(metadata, dict) and "tags" in metadata
    if not strip_mock and not stored and not tagged and "cache" not in body:
        return body
    forwarded = dict(body)
    forwarded.pop("cache", None)
    if strip_mock:
        del forwarded["mock_response"]
    if stored:
        forwarded.pop("store", None)
        forwarded.pop("metadata", None)
    elif tagged:
        rest = {k: v for k, v in metadata.items() if k != "tags"}
        if rest:
            forwarded["metadata"] = rest
        else:
            del forwarded["metadata"]
    return forwarded
