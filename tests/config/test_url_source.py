"""Configurations fetched from a URL with OGEM_CONFIG_TOKEN as bearer token."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gateway.config import ConfigError, config_check, config_load

pytestmark = pytest.mark.django_db

BODY = b"""
models:
  - name: remote-chat
    provider: mock
    model: remote-chat
"""


class _ConfigServer(ThreadingHTTPServer):
    seen_auth: list[str | None]


class _Handler(BaseHTTPRequestHandler):
    server: _ConfigServer

    def do_GET(self) -> None:
        self.server.seen_auth.append(self.headers.get("Authorization"))
        if self.headers.get("Authorization") != "Bearer cfg-token":
            self.send_response(401)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/yaml")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def config_server() -> Iterator[_ConfigServer]:
    server = _ConfigServer(("127.0.0.1", 0), _Handler)
    server.seen_auth = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_fetch_with_bearer_token(config_server) -> None:
    url = f"http://127.0.0.1:{config_server.server_port}/ogem.yaml"
    config = config_load(url, token="cfg-token", allow_http_loopback=True)
    assert config.source == url
    assert [(d.id, d.model_name) for d in config.deployments] == [
        ("config:remote-chat#0", "remote-chat")
    ]
    assert config_server.seen_auth == ["Bearer cfg-token"]


def test_fetch_refused_by_the_server(config_server) -> None:
    url = f"http://127.0.0.1:{config_server.server_port}/ogem.yaml"
    config, problems = config_check(url, token="wrong", allow_http_loopback=True)
    assert config is None
    assert [str(p) for p in problems] == [f"{url}: error: cannot fetch configuration: HTTP 401"]


def test_plain_http_is_refused_without_the_test_allowance(config_server) -> None:
    url = f"http://127.0.0.1:{config_server.server_port}/ogem.yaml"
    with pytest.raises(ConfigError) as caught:
        config_load(url, token="cfg-token")
    assert [str(p) for p in caught.value.problems] == [
        f"{url}: error: configuration URLs must use https://"
    ]
    assert config_server.seen_auth == []  # the token never left over plain http


def test_plain_http_to_a_remote_host_is_refused_even_with_the_allowance() -> None:
    _, problems = config_check("http://example.com/ogem.yaml", allow_http_loopback=True)
    assert [str(p) for p in problems] == [
        "http://example.com/ogem.yaml: error: configuration URLs must use https://"
    ]


def test_unreachable_url() -> None:
    _, problems = config_check("https://127.0.0.1:9/ogem.yaml")
    assert [str(p) for p in problems] == [
        "https://127.0.0.1:9/ogem.yaml: error: cannot fetch configuration: ConnectError"
    ]
