"""Media named by http(s) URL in a chat request, downloaded by Ogem through the SSRF guard.

Gemini (and Claude on Vertex) take media inline, so an `image_url` or `file` part with an
http(s) URL is fetched with `providers.fetch.fetch_guarded` and rewritten as a base64 data URL
before translation. URLs the upstream fetches itself (`gs://`, Gemini Files API URIs) are left
alone. Deployment params: `allow_private_urls` (fetch from private and loopback addresses) and
`max_media_bytes` (default 20 MB, Gemini's inline request limit).
"""

from __future__ import annotations

import base64
from typing import Any

from providers.base import Deployment
from providers.fetch import IMAGE_TYPES, fetch_guarded

DEFAULT_MAX_MEDIA_BYTES = 20 * 1024 * 1024
MEDIA_TYPES = IMAGE_TYPES | {"image/heic", "image/heif", "application/pdf"}


def _remote_url(part: Any, kept_prefixes: tuple[str, ...]) -> str | None:
    if not isinstance(part, dict):
        return None
    url = ""
    if part.get("type") == "image_url":
        image = part.get("image_url")
        url = image.get("url", "") if isinstance(image, dict) else str(image or "")
    elif part.get("type") == "file":
        url = str((part.get("file") or {}).get("file_id") or "")
    if url.startswith(("http://", "https://")) and not url.startswith(kept_prefixes):
        return url
    return None


def _inlined(part: dict[str, Any], data_url: str) -> dict[str, Any]:
    if part["type"] == "image_url":
        image = part.get("image_url")
        detail = image if isinstance(image, dict) else {}
        return {**part, "image_url": {**detail, "url": data_url}}
    file = {k: v for k, v in (part.get("file") or {}).items() if k != "file_id"}
    return {**part, "file": {**file, "file_data": data_url}}


async def media_inline(
    body: dict[str, Any], *, deployment: Deployment, kept_prefixes: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The body with every remote media URL replaced by its downloaded data URL."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not any(
        _remote_url(part, kept_prefixes)
        for message in messages
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for part in message["content"]
    ):
        return body
    allow_private = bool(deployment.params.get("allow_private_urls"))
    max_bytes = int(deployment.params.get("max_media_bytes") or DEFAULT_MAX_MEDIA_BYTES)
    rewritten: list[Any] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            rewritten.append(message)
            continue
        parts = []
        for part in content:
            url = _remote_url(part, kept_prefixes)
            if url is None:
                parts.append(part)
                continue
            fetched = await fetch_guarded(
                url, allow_private=allow_private, max_bytes=max_bytes, allowed_types=MEDIA_TYPES
            )
            encoded = base64.b64encode(fetched.content).decode()
            parts.append(_inlined(part, f"data:{fetched.content_type};base64,{encoded}"))
        rewritten.append({**message, "content": parts})
    return {**body, "messages": rewritten}
