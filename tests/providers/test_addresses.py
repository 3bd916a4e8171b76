"""The address policy on httpx connections (`guarded_transport`) and on the callbacks' own
aiohttp poster, against a real local server: refused before anything is sent, allowed when the
policy allows."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gateway.callbacks.poster import Poster
from providers.addresses import AddressPolicy, AddressRefusedError, guarded_transport
from tests.providers.gemini.media_server import MediaServer


@pytest.fixture
def server() -> Iterator[MediaServer]:
    started = MediaServer().start()
    yield started
    started.stop()


def _urls(server: MediaServer) -> list[str]:
    """The same local server by IPv4 literal and by name."""
    return [f"{server.url}/pixel.png", f"http://localhost:{server.port}/pixel.png"]


async def test_a_guarded_httpx_client_connects_only_where_the_policy_allows(
    server: MediaServer,
) -> None:
    async with httpx.AsyncClient(transport=guarded_transport(policy=AddressPolicy())) as client:
        for url in _urls(server):
            with pytest.raises(AddressRefusedError, match="may not connect to"):
                await client.get(url)
    assert server.paths == []  # nothing reached it
    private = AddressPolicy(allow_private=True)
    async with httpx.AsyncClient(transport=guarded_transport(policy=private)) as client:
        answers = [await client.get(url) for url in _urls(server)]
    assert [answer.status_code for answer in answers] == [200, 200]
    assert server.paths == ["/pixel.png", "/pixel.png"]


async def test_each_connection_is_checked_not_only_the_first() -> None:
    """A refused host stays refused on every request of a client (no check cached by the
    pool), and an address that does not answer is a transport error httpx's callers handle."""
    async with httpx.AsyncClient(transport=guarded_transport(policy=AddressPolicy())) as client:
        for _ in range(2):
            with pytest.raises(AddressRefusedError):
                await client.post("http://[::1]:9/", content=b"x")
    link_local = AddressPolicy(allow_private=True)  # link-local stays refused
    async with httpx.AsyncClient(transport=guarded_transport(policy=link_local)) as client:
        with pytest.raises(AddressRefusedError):
            await client.get("http://169.254.169.254/latest/meta-data/")
    async with httpx.AsyncClient(
        transport=guarded_transport(policy=AddressPolicy(allow_private=True)), timeout=5
    ) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:9/")  # the discard port: nothing listens


async def test_a_team_webhooks_poster_is_refused_before_sending(server: MediaServer) -> None:
    for url in _urls(server):
        poster = Poster(url)
        poster.policy = AddressPolicy()
        try:
            with pytest.raises(AddressRefusedError):
                await poster.post(b"[]", {"Content-Type": "application/json"})
        finally:
            await poster.close()
    assert server.paths == []
    poster = Poster(_urls(server)[1])
    poster.policy = AddressPolicy(allow_private=True)
    try:
        status, _ = await poster.post(b"[]", {"Content-Type": "application/json"})
    finally:
        await poster.close()
    assert status == 405  # it reached the server, which serves GETs only
