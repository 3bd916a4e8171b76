"""Reading and checking /v1 request bodies: only the fields Ogem needs, everything else untouched.

Bodies are bounded by `settings.OGEM_MAX_REQUEST_BYTES` (413 `request_too_large`). JSON is parsed
with orjson; multipart forms (images/edits, images/variations, audio/*) keep their files' bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParserError

from gateway.errors import InvalidRequestError, RequestTooLargeError
from gateway.params import params_check
from providers.adapter import UploadFile
from providers.base import Endpoint

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


@dataclass(slots=True)
class Inbound:
    body: dict[str, Any]
    files: list[UploadFile] = field(default_factory=list)
    size: int = 0
    form: bool = False  # multipart: its numbers arrive as strings


def _check_size(request: HttpRequest) -> None:
    limit = settings.OGEM_MAX_REQUEST_BYTES
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
    if len(raw) > settings.OGEM_MAX_REQUEST_BYTES:
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
    return Inbound(body=body, size=len(raw))


def body_read_multipart(request: HttpRequest) -> Inbound:
    _check_size(request)
    if not request.content_type.startswith("multipart/form-data"):
        raise InvalidRequestError(
            "This endpoint expects multipart/form-data.", code="invalid_content_type"
        )
    try:
        form = request.POST
        uploads = request.FILES
    except RequestDataTooBig as exc:
        raise RequestTooLargeError(
            f"The request body is larger than {settings.OGEM_MAX_REQUEST_BYTES} bytes."
        ) from exc
    except MultiPartParserError as exc:
        raise InvalidRequestError("The multipart body is malformed.") from exc
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
    for key in ("n",):
        if isinstance(body.get(key), str) and body[key].isdigit():
            body[key] = int(body[key])
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


def body_check(
    *, endpoint: Endpoint, inbound: Inbound, default_model: str | None = None
) -> Checked:
    body = inbound.body
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
    if endpoint in REQUIRED_FILE:
        wanted = REQUIRED_FILE[endpoint]
        if not any(f.field in (wanted, f"{wanted}[]") for f in inbound.files):
            raise InvalidRequestError(f"Missing required file: `{wanted}`.", param=wanted)
    params_check(endpoint=endpoint, body=body, form=inbound.form)
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidRequestError("`stream` must be a boolean.", param="stream")
    if stream and endpoint not in STREAMING_ENDPOINTS:
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
    return Checked(
        model=model,
        stream=stream,
        include_usage=include_usage,
        end_customer=user,
        tags=tags,
        max_tokens=max_tokens,
    )


def body_for_upstream(*, body: dict[str, Any], provider: str) -> dict[str, Any]:
    """The client's body minus what only Ogem reads (tags in metadata; mock_response off mock)."""
    metadata = body.get("metadata")
    strip_mock = provider != "mock" and "mock_response" in body
    if not strip_mock and not (isinstance(metadata, dict) and "tags" in metadata):
        return body
    forwarded = dict(body)
    if strip_mock:
        del forwarded["mock_response"]
    if isinstance(metadata, dict) and "tags" in metadata:
        rest = {k: v for k, v in metadata.items() if k != "tags"}
        if rest:
            forwarded["metadata"] = rest
        else:
            del forwarded["metadata"]
    return forwarded
