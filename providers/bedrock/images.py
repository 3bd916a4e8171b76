"""Image URLs in a chat request, downloaded for Bedrock (which takes image bytes only).

Downloads go through `providers.fetch.fetch_guarded` (the SSRF guard): private and loopback
hosts are refused unless the deployment sets `params.allow_private_urls`; link-local, multicast
and reserved addresses always are. Bodies are bounded by Bedrock's per-image limit and must be
one of the image types Converse accepts. Each distinct URL is fetched once per request.
"""

from __future__ import annotations

import base64
from typing import Any

from providers.base import Deployment
from providers.fetch import IMAGE_TYPES, fetch_guarded

MAX_IMAGE_BYTES = 3_750_000  # Converse's limit for one image


def _remote_url(part: Any) -> str | None:
    if not isinstance(part, dict) or part.get("type") != "image_url":
        return None
    image = part.get("image_url")
    url = image.get("url", "") if isinstance(image, dict) else str(image or "")
    return url if url.startswith(("http://", "https://")) else None


async def images_inline(*, body: dict[str, Any], deployment: Deployment) -> dict[str, Any]:
    """The request with every http(s) image URL replaced by a base64 data URL of its bytes."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body
    allow_private = bool(deployment.params.get("allow_private_urls"))
    inlined: dict[str, str] = {}
    converted: list[Any] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list) or not any(_remote_url(p) for p in content):
            converted.append(message)
            continue
        parts = []
        for part in content:
            url = _remote_url(part)
            if url is not None:
                if url not in inlined:
                    fetched = await fetch_guarded(
                        url,
                        allow_private=allow_private,
                        max_bytes=MAX_IMAGE_BYTES,
                        allowed_types=IMAGE_TYPES,
                    )
                    data = base64.b64encode(fetched.content).decode()
                    inlined[url] = f"data:{fetched.content_type};base64,{data}"
                part = {**part, "image_url": {"url": inlined[url]}}
            parts.append(part)
        converted.append({**message, "content": parts})
    return {**body, "messages": converted} if inlined else body
