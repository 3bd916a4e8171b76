"""Which IP addresses Ogem may connect to on someone else's behalf: one policy for URLs a client
names (media fetches, providers/fetch.py) and for the upstreams of organizations' deployments.

Refused: loopback, private ranges (RFC 1918, fc00::/7, carrier-grade NAT), link-local (cloud
metadata at 169.254.169.254), multicast, reserved and unspecified (0.0.0.0, ::) addresses, and
anything else that is not globally routable. `allow_private` lifts the refusal of loopback and
private addresses only; `allowed` networks (an operator's grant to one organization) lift every
refusal inside them. The check is made on the addresses a connection is about to use, after the
one DNS lookup that connection makes anyway, so a DNS answer cannot change between check and
connect.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpcore
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: shared, not public


def address_forbidden(address: str, *, allow_private: bool = False) -> bool:
    """Whether Ogem must not connect to this IP address."""
    ip = _address(address)
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified:
        return True
    if ip.is_loopback:
        return not allow_private
    if ip.is_reserved:  # checked before is_private, which also covers 240.0.0.0/4
        return True
    if ip.is_private:
        return not allow_private
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return not allow_private
    return not ip.is_global


def _address(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class AddressRefusedError(aiohttp.ClientConnectionError):
    """The host resolves to an address the policy refuses; nothing was sent to it."""

    def __init__(self, host: str) -> None:
        super().__init__(f"the host {host!r} resolves to an address Ogem may not connect to")
        self.host = host


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Hashable: connection pools and sessions are kept per policy."""

    allow_private: bool = False
    allowed: tuple[Network, ...] = ()

    def refuses(self, address: str) -> bool:
        if self.allowed:
            ip = _address(address)
            if any(ip.version == net.version and ip in net for net in self.allowed):
                return False
        return address_forbidden(address, allow_private=self.allow_private)

    def check(self, host: str, addresses: Iterable[str]) -> None:
        """Refuse the host when any of its addresses is refused (a host is judged whole)."""
        for address in addresses:
            if self.refuses(address):
                raise AddressRefusedError(host)

    def check_literal(self, host: str) -> None:
        """An IP-literal host (which resolvers skip); names are checked when resolved."""
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return
        self.check(host, (host,))


DEFAULT_POLICY = AddressPolicy()


@functools.lru_cache(maxsize=256)
def address_policy(networks: tuple[str, ...]) -> AddressPolicy:
    """The policy of an organization's deployments: the default, plus the networks an operator
    allowed (CIDR strings; invalid ones are ignored here, refused where they are entered)."""
    allowed = []
    for text in networks:
        try:
            allowed.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            continue
    return AddressPolicy(allowed=tuple(allowed)) if allowed else DEFAULT_POLICY


async def addresses_resolve(
    host: str, port: int, *, policy: AddressPolicy
) -> list[tuple[str, int]]:
    """(address, port) pairs to connect to, in the resolver's order, once the policy has
    checked them: the lookup a connection would make anyway, not an extra one."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [(str(info[4][0]), int(info[4][1])) for info in infos]
    policy.check(host, (address for address, _ in addresses))
    return addresses


def url_host_check(url: str, *, policy: AddressPolicy) -> None:
    """At save time: resolve the URL's host and refuse it as a connection would.
    Raises AddressRefusedError, or OSError when the host does not resolve."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise OSError(f"the URL's port is not valid ({exc})") from exc
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    policy.check(host, (str(info[4][0]) for info in infos))


class GuardedResolver(AbstractResolver):
    """Resolves like the system resolver, then refuses the host if the policy refuses any of its
    addresses (aiohttp connects only to what its resolver returned)."""

    def __init__(self, *, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        self._policy.check(host, (result["host"] for result in results))
        return results

    async def close(self) -> None:
        await self._inner.close()


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's connections (httpx's transports) under the policy: every TCP connection
    resolves its host, checks the addresses and connects to a checked one, so a DNS answer
    cannot change between check and connect (a rebinding name gets nothing). IP literals are
    checked the same way; Unix sockets are refused. TLS still names the URL's host (httpcore
    starts it with the origin's name, not the address)."""

    def __init__(
        self, *, policy: AddressPolicy, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(
                addresses_resolve(host, port, policy=self._policy), timeout
            )
        except OSError as exc:
            raise httpcore.ConnectError(f"{host}: {exc}") from exc
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"{host}: resolving timed out") from exc
        failure: Exception = httpcore.ConnectError(f"{host}: no address")
        for address, _ in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("a Unix socket is not a URL Ogem may connect to")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(*, policy: AddressPolicy) -> httpx.AsyncHTTPTransport:
    """httpx's transport with every connection under the policy (`GuardedNetworkBackend`). A
    refused host raises AddressRefusedError from the request. httpx takes no network backend
    in its constructor: its pool's is wrapped (tests/providers/test_addresses.py holds it)."""
    transport = httpx.AsyncHTTPTransport()
    pool = transport._pool
    pool._network_backend = GuardedNetworkBackend(policy=policy, inner=pool._network_backend)
    return transport
