"""CORS on /v1 (OGEM_CORS_ORIGINS): only listed origins get Access-Control-Allow-Origin, on
preflights, answers, errors and streams; without the setting /v1 is served as before."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gateway.cors import cors_wrap
from ogem_site.asgi import http_application
from tests.live import LiveServer, start_live_server

pytestmark = pytest.mark.live

LISTED = "https://app.example.com"
UNLISTED = "https://evil.example"
SDK_HEADERS = (
    "authorization, content-type, x-api-key, api-key, anthropic-version, "
    "anthropic-dangerous-direct-browser-access, openai-organization, x-stainless-os, "
    "x-stainless-retry-count, cookie"
)
CHAT = {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def cors_server() -> Iterator[LiveServer]:
    """The site's real HTTP stack, built as `application` is, with one listed origin."""
    server = start_live_server(http_application(cors_origins=[LISTED, "http://localhost:3000"]))
    yield server
    server.stop()


@pytest.fixture
def cors_ogem(cors_server: LiveServer, transactional_db: None) -> LiveServer:
    return cors_server


def _preflight(url: str, origin: str) -> httpx.Response:
    return httpx.options(
        f"{url}/v1/chat/completions",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": SDK_HEADERS,
        },
    )


def test_preflight_from_a_listed_origin(cors_ogem: LiveServer) -> None:
    response = _preflight(cors_ogem.url, LISTED)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == LISTED
    assert response.headers["access-control-allow-methods"] == "GET, POST, DELETE, OPTIONS"
    # Everything the SDKs send, and nothing else (no cookies: keys are never cookies).
    assert response.headers["access-control-allow-headers"] == (
        "authorization, content-type, x-api-key, api-key, anthropic-version, "
        "anthropic-dangerous-direct-browser-access, openai-organization, x-stainless-os, "
        "x-stainless-retry-count"
    )
    assert response.headers["access-control-max-age"] == "600"
    assert response.headers["vary"] == "origin"
    assert "access-control-allow-credentials" not in response.headers


def test_preflight_from_an_unlisted_origin(cors_ogem: LiveServer) -> None:
    response = _preflight(cors_ogem.url, UNLISTED)
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers
    assert response.json() == {
        "error": {
            "message": "This origin may not call the API from a browser.",
            "type": "permission_error",
            "param": None,
            "code": "cors_origin_not_allowed",
        }
    }


def test_answers_and_errors_carry_the_header_for_listed_origins(
    cors_ogem: LiveServer, master_key: str
) -> None:
    auth = {"Authorization": f"Bearer {master_key}"}
    url = f"{cors_ogem.url}/v1/chat/completions"
    listed = httpx.post(url, json=CHAT, headers={**auth, "Origin": LISTED})
    assert listed.status_code == 200
    assert listed.json()["choices"][0]["message"]["content"] == "Mock reply to: hi"
    assert listed.headers["access-control-allow-origin"] == LISTED
    assert "x-request-id" in listed.headers["access-control-expose-headers"].split(", ")
    other = httpx.post(url, json=CHAT, headers={**auth, "Origin": "http://localhost:3000"})
    assert other.headers["access-control-allow-origin"] == "http://localhost:3000"

    unlisted = httpx.post(url, json=CHAT, headers={**auth, "Origin": UNLISTED})
    assert unlisted.status_code == 200  # not a browser's call to refuse: the browser hides it
    assert "access-control-allow-origin" not in unlisted.headers
    no_origin = httpx.post(url, json=CHAT, headers=auth)
    assert "access-control-allow-origin" not in no_origin.headers

    refused = httpx.post(
        url, json=CHAT, headers={"Authorization": "Bearer sk-nope", "Origin": LISTED}
    )
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "authentication_error"
    assert refused.headers["access-control-allow-origin"] == LISTED
    # Outside /v1 nothing changes.
    admin = httpx.options(
        f"{cors_ogem.url}/api/v1/keys",
        headers={"Origin": LISTED, "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in admin.headers


def test_a_stream_carries_the_header(cors_ogem: LiveServer, master_key: str) -> None:
    headers = {"Authorization": f"Bearer {master_key}", "Origin": LISTED}
    with httpx.stream(
        "POST",
        f"{cors_ogem.url}/v1/chat/completions",
        json={**CHAT, "stream": True},
        headers=headers,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["access-control-allow-origin"] == LISTED
        body = "".join(response.iter_text())
    assert body.rstrip().endswith("data: [DONE]")


def test_without_origins_v1_is_served_as_before(live_ogem: LiveServer) -> None:
    def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not called")

    assert cors_wrap(app, origins=[]) is app  # nothing added to the /v1 path
    response = _preflight(live_ogem.url, LISTED)
    assert "access-control-allow-origin" not in response.headers
    assert response.status_code == 405


def test_origins_are_checked_at_start(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from ogem_site.env import ConfigurationError, env_origins

    monkeypatch.setenv("OGEM_CORS_ORIGINS", f"{LISTED}, http://localhost:3000,*")
    assert env_origins("OGEM_CORS_ORIGINS") == [LISTED, "http://localhost:3000", "*"]
    for bad in ("app.example.com", "https://app.example.com/", "ftp://x.example"):
        monkeypatch.setenv("OGEM_CORS_ORIGINS", bad)
        with pytest.raises(ConfigurationError) as raised:
            env_origins("OGEM_CORS_ORIGINS")
        assert str(raised.value) == (
            f"OGEM_CORS_ORIGINS: {bad!r} is not an origin (scheme://host[:port], no path, or *)"
        )
