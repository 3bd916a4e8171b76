"""At connect time, through the live server: an organization's deployment whose host resolves
inside the operator's network (a row saved before the check existed, or a DNS answer that changed
since it was saved) is refused before any connection, on both upstream clients; a network the
operator allows that organization is reached; the operator's own deployments are not checked."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from decimal import Decimal

import openai
import orjson
import pytest

from gateway.config.database import database_deployments
from gateway.config.problems import Problems
from keys.services import key_create
from tests.factories import ModelDeploymentFactory, OrganizationFactory, TeamFactory
from tests.live import LiveServer

pytestmark = pytest.mark.live

MESSAGES = [{"role": "user", "content": "hi"}]
INTERNAL_BODY = "INTERNAL-SERVICE-ANSWER"


class CountingServer:
    """A one-thread HTTP server on 127.0.0.1 that counts the connections it accepts and answers
    each request with a chat completion whose text only an internal service would know."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(5)
                received = b""
                while b"\r\n\r\n" not in received:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    received += chunk
                body = orjson.dumps(
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "m",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": INTERNAL_BODY},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                )
                head = (
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                )
                conn.sendall(head.encode() + body)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def internal() -> Iterator[CountingServer]:
    server = CountingServer()
    yield server
    server.close()


@pytest.fixture(params=["lean", "aiohttp"])
def upstream_client(request, settings) -> str:  # type: ignore[no-untyped-def]
    settings.OGEM_UPSTREAM_CLIENT = request.param
    return request.param


def _row_served(install_deployments, *, name: str, api_base: str, organization) -> None:  # type: ignore[no-untyped-def]
    """Write a deployment row, load the rows as a (re)load does, and serve them."""
    ModelDeploymentFactory(
        model_name=name,
        provider="openai_compatible",
        upstream_model="m",
        api_base=api_base,
        organization=organization,
    )
    problems = Problems()
    install_deployments(*database_deployments(problems=problems))
    assert problems.items == []


def _tenant_client(live: LiveServer, organization) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    team = TeamFactory(organization=organization)
    secret = key_create(name="tenant", team=team, max_budget=Decimal("10")).secret
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=secret, max_retries=0)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_a_tenant_row_resolving_to_loopback_is_refused_before_connecting(
    live_ogem: LiveServer,
    install_deployments,  # type: ignore[no-untyped-def]
    internal: CountingServer,
    upstream_client: str,
    host: str,
) -> None:
    # Written as a row saved before the save-time check (or whose name resolved publicly then):
    # "localhost" stands for a name whose DNS answer now points inside.
    organization = OrganizationFactory()
    _row_served(
        install_deployments,
        name="rebound",
        api_base=f"http://{host}:{internal.port}/v1",
        organization=organization,
    )
    client = _tenant_client(live_ogem, organization)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="rebound", messages=MESSAGES)
    response = refused.value.response
    assert response.status_code == 502
    assert response.json() == {
        "error": {
            "message": "Ogem refused to connect to the upstream of provider openai_compatible: "
            f"the host {host!r} resolves to an address Ogem may not connect to.",
            "type": "upstream_error",
            "param": None,
            "code": "upstream_address_refused",
        }
    }
    assert INTERNAL_BODY not in response.text
    assert internal.connections == 0


def test_a_network_the_operator_allows_is_reached(
    live_ogem: LiveServer,
    install_deployments,  # type: ignore[no-untyped-def]
    internal: CountingServer,
    upstream_client: str,
) -> None:
    organization = OrganizationFactory(upstream_networks=["127.0.0.1/32", "::1/128"])
    _row_served(
        install_deployments,
        name="allowed",
        api_base=f"http://localhost:{internal.port}/v1",
        organization=organization,
    )
    reply = _tenant_client(live_ogem, organization).chat.completions.create(
        model="allowed", messages=MESSAGES
    )
    assert reply.choices[0].message.content == INTERNAL_BODY
    assert internal.connections == 1


def test_the_operators_shared_deployment_is_not_checked(
    live_ogem: LiveServer,
    install_deployments,  # type: ignore[no-untyped-def]
    internal: CountingServer,
    upstream_client: str,
) -> None:
    _row_served(
        install_deployments,
        name="shared",
        api_base=f"http://127.0.0.1:{internal.port}/v1",
        organization=None,
    )
    reply = _tenant_client(live_ogem, OrganizationFactory()).chat.completions.create(
        model="shared", messages=MESSAGES
    )
    assert reply.choices[0].message.content == INTERNAL_BODY
    assert internal.connections == 1
