"""Downloads of client-given URLs (images, documents) behind an SSRF guard.

A client may name any URL in a request; Ogem fetches it from inside the operator's network, so
the destination is checked before every connection by the address policy of providers/addresses.py
(private, loopback, link-local, multicast, reserved and unspecified addresses refused).
`allow_private=True` (a deployment's `params.allow_private_urls`, operator-only) lifts the refusal
of private and loopback addresses only. The checked addresses are the ones connected to (a
resolver that filters them), so a DNS answer cannot change between check and connect.
Redirects are followed by hand, each hop checked the same way. Bodies are bounded in size and
content type. Every refusal is the client's error: 400 with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from providers.addresses import AddressPolicy, AddressRefusedError, GuardedResolver
from providers.errors import InvalidRequestError

MAX_REDIRECTS = 3
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=5, sock_read=15)
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


@dataclass(frozen=True, slots=True)
class Fetched:
    content_type: str
    content: bytes


class FetchRefusedError(InvalidRequestError):
    pass


def _refusal(host: str) -> str:
    return f"The URL's host {host!r} resolves to an address Ogem may not fetch from."


def _host_check(url: str, *, policy: AddressPolicy) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchRefusedError("Only http(s) URLs can be fetched.")
    try:
        policy.check_literal(parts.hostname)  # a name: the resolver checks its addresses
    except AddressRefusedError as exc:
        raise FetchRefusedError(_refusal(parts.hostname)) from exc


async def fetch_guarded(
    url: str,
    *,
    allow_private: bool = False,
    max_bytes: int,
    allowed_types: frozenset[str] | set[str],
    limits: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
) -> Fetched:
    """GET `url` through the SSRF guard; the body when its type and size are allowed."""
    policy = AddressPolicy(allow_private=allow_private)
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(policy=policy), use_dns_cache=False)
    async with aiohttp.ClientSession(
        connector=connector, timeout=limits, trust_env=False
    ) as session:
        for _ in range(MAX_REDIRECTS + 1):
            _host_check(url, policy=policy)
            try:
                async with session.get(url, allow_redirects=False) as response:
                    if response.status in (301, 302, 303, 307, 308):
                        location = response.headers.get("Location")
                        if not location:
                            raise FetchRefusedError("The URL redirected without a Location.")
                        url = urljoin(url, location)
                        continue
                    return await _body_read(
                        response, max_bytes=max_bytes, allowed_types=allowed_types
                    )
            except FetchRefusedError:
                raise
            except AddressRefusedError as exc:
                raise FetchRefusedError(_refusal(exc.host)) from exc
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise FetchRefusedError(
                    f"Ogem could not download the URL ({type(exc).__name__})."
                ) from exc
    raise FetchRefusedError(f"The URL redirected more than {MAX_REDIRECTS} times.")


async def _body_read(
    response: aiohttp.ClientResponse, *, max_bytes: int, allowed_types: Any
) -> Fetched:
    if response.status != 200:
        raise FetchRefusedError(f"Downloading the URL failed with HTTP {response.status}.")
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type not in allowed_types:
        raise FetchRefusedError(
            f"The URL's content type {content_type or 'unknown'!r} is not allowed here."
        )
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise FetchRefusedError(f"The URL's content is larger than {max_bytes} bytes.")
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > max_bytes:
            raise FetchRefusedError(f"The URL's content is larger than {max_bytes} bytes.")
    return Fetched(content_type=content_type, content=bytes(body))
