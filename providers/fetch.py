"""Downloads of client-given URLs (images, documents) behind an SSRF guard.

A client may name any URL in a request; Ogem fetches it from inside the operator's network, so
the destination is checked before every connection: the host is resolved and the request is
refused when any of its addresses is private, loopback, link-local, multicast, reserved or
unspecified. `allow_private=True` (a deployment's `params.allow_private_urls`) lifts the refusal
of private and loopback addresses only: link-local (cloud metadata at 169.254.169.254), multicast,
reserved and unspecified addresses stay refused. The checked addresses are the ones connected to
(a resolver that filters them), so a DNS answer cannot change between check and connect.
Redirects are followed by hand, each hop checked the same way. Bodies are bounded in size and
content type. Every refusal is the client's error: 400 with the reason.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from gateway.errors import InvalidRequestError

MAX_REDIRECTS = 3
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=5, sock_read=15)
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


@dataclass(frozen=True, slots=True)
class Fetched:
    content_type: str
    content: bytes


class FetchRefusedError(InvalidRequestError):
    pass


def address_forbidden(address: str, *, allow_private: bool = False) -> bool:
    """Whether Ogem must not connect to this IP address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified:
        return True
    if ip.is_loopback:
        return not allow_private
    if ip.is_reserved:  # checked before is_private, which also covers 240.0.0.0/4
        return True
    if ip.is_private:
        return not allow_private
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"):
        return not allow_private  # carrier-grade NAT: shared, not public
    return not ip.is_global


class _GuardedResolver(AbstractResolver):
    """Resolves like the system resolver, then refuses the host if any address is forbidden."""

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if address_forbidden(result["host"], allow_private=self._allow_private):
                raise FetchRefusedError(_refusal(host))
        return results

    async def close(self) -> None:
        await self._inner.close()


def _refusal(host: str) -> str:
    return f"The URL's host {host!r} resolves to an address Ogem may not fetch from."


def _host_check(url: str, *, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchRefusedError("Only http(s) URLs can be fetched.")
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return  # a name: the resolver checks its addresses
    if address_forbidden(str(literal), allow_private=allow_private):
        raise FetchRefusedError(_refusal(parts.hostname))


async def fetch_guarded(
    url: str,
    *,
    allow_private: bool = False,
    max_bytes: int,
    allowed_types: frozenset[str] | set[str],
    limits: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
) -> Fetched:
    """GET `url` through the SSRF guard; the body when its type and size are allowed."""
    connector = aiohttp.TCPConnector(
        resolver=_GuardedResolver(allow_private=allow_private), use_dns_cache=False
    )
    async with aiohttp.ClientSession(
        connector=connector, timeout=limits, trust_env=False
    ) as session:
        for _ in range(MAX_REDIRECTS + 1):
            _host_check(url, allow_private=allow_private)
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
