"""The SSRF guard of URLs Ogem downloads (`providers/fetch.py`), against a real local server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from providers.addresses import address_forbidden
from providers.fetch import IMAGE_TYPES, FetchRefusedError, fetch_guarded
from tests.providers.gemini.media_server import PNG_BYTES, MediaServer


@pytest.fixture
def media_server() -> Iterator[MediaServer]:
    server = MediaServer().start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("address", "forbidden", "forbidden_even_when_private_allowed"),
    [
        ("8.8.8.8", False, False),
        ("2606:4700:4700::1111", False, False),
        ("10.1.2.3", True, False),
        ("172.16.0.1", True, False),
        ("192.168.1.1", True, False),
        ("100.64.0.1", True, False),
        ("127.0.0.1", True, False),
        ("::1", True, False),
        ("::ffff:127.0.0.1", True, False),
        ("fd00::1", True, False),
        ("169.254.169.254", True, True),
        ("fe80::1", True, True),
        ("224.0.0.1", True, True),
        ("0.0.0.0", True, True),
        ("240.0.0.1", True, True),
    ],
)
def test_address_policy(
    address: str, forbidden: bool, forbidden_even_when_private_allowed: bool
) -> None:
    assert address_forbidden(address) is forbidden
    assert address_forbidden(address, allow_private=True) is forbidden_even_when_private_allowed


async def test_loopback_by_ip_or_by_name_is_refused_without_connecting(
    media_server: MediaServer,
) -> None:
    for url in (f"{media_server.url}/pixel.png", f"http://localhost:{media_server.port}/pixel.png"):
        with pytest.raises(FetchRefusedError, match="address Ogem may not fetch from"):
            await fetch_guarded(url, max_bytes=1000, allowed_types=IMAGE_TYPES)
    assert media_server.paths == []


async def test_an_allowed_fetch_and_its_limits(media_server: MediaServer) -> None:
    fetched = await fetch_guarded(
        f"{media_server.url}/pixel.png",
        allow_private=True,
        max_bytes=1000,
        allowed_types=IMAGE_TYPES,
    )
    assert (fetched.content_type, fetched.content) == ("image/png", PNG_BYTES)
    with pytest.raises(FetchRefusedError, match="larger than 1000 bytes"):
        await fetch_guarded(
            f"{media_server.url}/big.png",
            allow_private=True,
            max_bytes=1000,
            allowed_types=IMAGE_TYPES,
        )
    with pytest.raises(FetchRefusedError, match="content type 'text/html' is not allowed"):
        await fetch_guarded(
            f"{media_server.url}/page.html",
            allow_private=True,
            max_bytes=1000,
            allowed_types=IMAGE_TYPES,
        )
    with pytest.raises(FetchRefusedError, match="failed with HTTP 404"):
        await fetch_guarded(
            f"{media_server.url}/missing",
            allow_private=True,
            max_bytes=1000,
            allowed_types=IMAGE_TYPES,
        )


async def test_redirects_are_checked_hop_by_hop(media_server: MediaServer) -> None:
    fetched = await fetch_guarded(
        f"{media_server.url}/to-pixel",
        allow_private=True,
        max_bytes=1000,
        allowed_types=IMAGE_TYPES,
    )
    assert fetched.content == PNG_BYTES
    with pytest.raises(FetchRefusedError, match=r"'169\.254\.169\.254'"):
        await fetch_guarded(
            f"{media_server.url}/to-metadata",
            allow_private=True,
            max_bytes=1000,
            allowed_types=IMAGE_TYPES,
        )
    with pytest.raises(FetchRefusedError, match="redirected more than 3 times"):
        await fetch_guarded(
            f"{media_server.url}/loop",
            allow_private=True,
            max_bytes=1000,
            allowed_types=IMAGE_TYPES,
        )
    assert media_server.paths == ["/to-pixel", "/pixel.png", "/to-metadata"] + ["/loop"] * 4


async def test_only_http_urls() -> None:
    for url in ("file:///etc/passwd", "ftp://example.com/a.png", "gs://bucket/a.png"):
        with pytest.raises(FetchRefusedError, match="Only http"):
            await fetch_guarded(url, max_bytes=10, allowed_types=IMAGE_TYPES)
