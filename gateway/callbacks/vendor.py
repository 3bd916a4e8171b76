"""What the vendor sinks share: the POST that turns transport failures into `SinkRetryable`,
ids for events that arrived without a trace context, and the event's fields as vendors want them
(cost as a number, content as text or chat messages).

A sink reads its settings from the `Mapping` it is given, by the names each vendor's SDK gives
its environment variables, as written (`DD_API_KEY`) or in lower case (`dd_api_key`, LiteLLM's
callback_vars spelling); `setting` and `required` read one, stripped, with a default or an error;
`http_url` one that must be an http(s) URL. Each sink lists the variables it reads in its
`environment` class attribute, for the configuration to collect from the process environment.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from gateway.callbacks.base import CallbackEvent, SinkRetryable, response_check

# Bounds on what one event may carry to a vendor, so that a batch stays within the vendors'
# request sizes: content beyond them is cut, never refused. TEXT_LIMIT bounds one side (the
# input, or the output) of one event, in characters.
TEXT_LIMIT = 32_000


def setting(settings: Mapping[str, str], name: str, default: str = "") -> str:
    value = settings.get(name) or settings.get(name.lower()) or ""
    return value.strip() or default


def http_url(settings: Mapping[str, str], name: str, default: str) -> str:
    """A URL setting without its trailing `/`; anything but http(s) is refused."""
    url = setting(settings, name, default).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{name} must be an http(s) URL")
    return url


def required(settings: Mapping[str, str], name: str, sink: str) -> str:
    value = setting(settings, name)
    if not value:
        raise ValueError(f"the {sink} callback needs {name}")
    return value


def basic_auth(username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Basic {token}"


async def post(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: Mapping[str, str],
    content: bytes,
) -> httpx.Response:
    """POST `content`; a timeout or a refused connection is retryable, a non-2xx answer is
    judged by `response_check`."""
    try:
        response = await client.post(url, content=content, headers=dict(headers))
    except httpx.TransportError as exc:
        raise SinkRetryable(f"{httpx.URL(url).host}: {type(exc).__name__}") from exc
    response_check(response)
    return response


def event_ids(event: CallbackEvent) -> tuple[str, str]:
    """The event's W3C trace and span ids (32 and 16 hex characters); when the request had none,
    ids derived from its request id, so a retried batch sends the same span again."""
    trace_id, span_id = event["trace_id"], event["span_id"]
    if len(trace_id) == 32 and len(span_id) == 16:
        return trace_id, span_id
    digest = hashlib.sha256(event["request_id"].encode()).hexdigest()
    return (trace_id if len(trace_id) == 32 else digest[:32]), (
        span_id if len(span_id) == 16 else digest[32:48]
    )


def nanos(seconds: float) -> int:
    """Unix seconds as nanoseconds, to the microsecond (a float holds no more)."""
    return round(seconds * 1_000_000) * 1000


def span_name(event: CallbackEvent) -> str:
    """What a trace view titles the span: `ogem.chat/completions`."""
    return f"ogem.{event['endpoint']}"


def json_text(value: Any, limit: int = TEXT_LIMIT) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text[:limit]


def content_text(content: Any) -> str:
    """A message's content as text: parts of a multimodal message joined, others as JSON."""
    if isinstance(content, str):
        return content[:TEXT_LIMIT]
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("text")]
        if texts and len(texts) == len(content):
            return "\n".join(texts)[:TEXT_LIMIT]
    if content is None:
        return ""
    return json_text(content)


def bounded(value: Any) -> Any:
    """`value` as it is when its JSON fits TEXT_LIMIT, else that JSON cut, as a string."""
    text = orjson.dumps(value, default=str).decode()
    return value if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT]


def _within_budget(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The messages' contents cut to TEXT_LIMIT in all, the latest kept whole first."""
    left = TEXT_LIMIT
    for message in reversed(messages):
        message["content"] = message["content"][:left]
        left -= len(message["content"])
    return messages


def input_messages(event: CallbackEvent) -> list[dict[str, str]] | None:
    """The request's chat messages as `{"role", "content"}` text pairs, or None when the input
    is no chat (a prompt, an embedding input) or absent."""
    value = event.get("input")
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(m, dict) and "role" in m for m in value):
        return None
    messages = [{"role": str(m["role"]), "content": content_text(m.get("content"))} for m in value]
    return _within_budget(messages)


def output_messages(event: CallbackEvent) -> list[dict[str, str]] | None:
    """The answer's messages (a chat completion's choices), or None when it has none."""
    value = event.get("output")
    if isinstance(value, dict) and isinstance(value.get("choices"), list):
        value = value["choices"]
    if not isinstance(value, list) or not value:
        return None
    messages = []
    for choice in value:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            return None
        messages.append(
            {
                "role": str(message.get("role") or "assistant"),
                "content": content_text(message.get("content")),
            }
        )
    return _within_budget(messages)


def size_chunks(items: Sequence[Any], *, limit: int, max_items: int) -> list[list[Any]]:
    """`items` in runs of at most `max_items` whose JSON stays under `limit` bytes (an item
    alone over it still goes, alone), for vendors that cap a request's size."""
    chunks: list[list[Any]] = []
    current: list[Any] = []
    size = 0
    for item in items:
        item_size = len(orjson.dumps(item, default=str)) + 1
        if current and (size + item_size > limit or len(current) >= max_items):
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += item_size
    if current:
        chunks.append(current)
    return chunks


def error_text(event: CallbackEvent) -> str:
    error = event["error"]
    if error is None:
        return ""
    return f"{error['type']}: {error['message']}"
