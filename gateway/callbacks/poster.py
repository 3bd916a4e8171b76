"""A sink's POSTs of ready bodies to one URL (the webhook's), in the delivery process: aiohttp
over a kept-alive connection, the proxy and TLS context settled once. httpx's per-request
machinery (its models, h11's state machine, anyio) cost some 2.7 M instructions a post against
aiohttp's 0.8 M (docs/benchmark.md, 7 December 2026).

It behaves as the delivery process's httpx client did: the certificate checked with httpx's
context (certifi, or SSL_CERT_FILE / SSL_CERT_DIR), a proxy from HTTP(S)_PROXY / ALL_PROXY unless
NO_PROXY names the host, no redirect followed (a 3xx is the sink's refusal), 5 s to connect and
10 s for each read; a transport failure is `SinkRetryable`, retried by the delivery process.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp
import httpx

from gateway.callbacks.base import SinkRetryable
from providers.addresses import AddressPolicy, AddressRefusedError, GuardedResolver

# No write timeout in aiohttp: `total` bounds a post whose receiver stops reading.
TIMEOUT = aiohttp.ClientTimeout(total=30.0, sock_connect=5.0, sock_read=10.0)


def env_proxy(url: str) -> str | None:
    """The proxy the environment gives `url` (as httpx's trust_env reads it), or None."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not proxies or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxies.get(parts.scheme) or proxies.get("all")


class Poster:
    def __init__(self, url: str) -> None:
        self.url = url
        self.host = urlsplit(url).hostname or ""
        self.proxy = env_proxy(url)
        # A team's URL (deliver.py sets it before the first post): each connection's addresses
        # checked by it. Through a proxy, the proxy resolves and is the operator's egress control.
        self.policy: AddressPolicy | None = None
        self._session: aiohttp.ClientSession | None = None

    async def post(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """The answer's status and body. AddressRefusedError when the policy refuses the host."""
        session = self._session
        if session is None or session.closed:
            session = self._session = self._open()
        try:
            async with session.post(
                self.url, data=body, headers=headers, allow_redirects=False, proxy=self.proxy
            ) as response:
                return response.status, await response.read()
        except AddressRefusedError:
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SinkRetryable(f"{self.host}: {type(exc).__name__}") from exc

    def _open(self) -> aiohttp.ClientSession:
        # Created in the delivery process's running loop, at the first post.
        policy = self.policy if self.proxy is None else None
        resolver = None
        if policy is not None:
            policy.check_literal(self.host)  # an address in the URL: no resolver sees it
            resolver = GuardedResolver(policy=policy)
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                ssl=httpx.create_ssl_context(), limit=4, resolver=resolver
            ),
            timeout=TIMEOUT,
            cookie_jar=aiohttp.DummyCookieJar(),  # a receiver's cookies are not sent back
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
