"""End to end: each Google credential source google-auth gives Vertex AI deployments, through
the official `openai` SDK, a live Ogem and the emulators (Vertex AI with its OAuth token
endpoint; the metadata server and STS of tests/emulators/google_identity_api.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import openai
import orjson
import pytest

from providers.addresses import AddressPolicy
from providers.base import Deployment
from tests.emulators.google_identity_api import GoogleIdentityEmulator, metadata_server_at
from tests.emulators.vertex_api import CLIENT_EMAIL, PROJECT, VertexEmulator
from tests.live import LiveServer

pytestmark = pytest.mark.live

HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def client(live_ogem: LiveServer, master_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)


@pytest.fixture
def identity(vertex_emulator: VertexEmulator) -> Iterator[GoogleIdentityEmulator]:
    emulator = GoogleIdentityEmulator(issue=vertex_emulator.issue_token, project=PROJECT).start()
    yield emulator  # type: ignore[misc]
    emulator.stop()


@pytest.fixture
def without_credentials(vertex_gemini: Deployment) -> Deployment:
    """The Gemini deployment with a project and no credentials of its own."""
    return replace(vertex_gemini, params={"vertex_project": PROJECT})


def _authorizations(emulator: VertexEmulator) -> list[str]:
    return [r.headers["authorization"] for r in emulator.model_requests]


def test_application_default_credentials_from_a_key_file(
    client: openai.OpenAI,
    vertex_gemini: Deployment,
    service_account: dict[str, Any],
    install_deployments: Callable[..., None],
    vertex_emulator: VertexEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key_file = tmp_path / "service-account.json"
    key_file.write_bytes(orjson.dumps(service_account))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    install_deployments(replace(vertex_gemini, params={}))  # the project is the key file's
    completion = client.chat.completions.create(model="vertex-gemini", messages=HI)
    assert completion.choices[0].message.content == "Echo: Hi"
    assert [claims["iss"] for claims in vertex_emulator.assertions] == [CLIENT_EMAIL]
    assert _authorizations(vertex_emulator) == ["Bearer ya29.emulator-1"]
    assert f"/projects/{PROJECT}/" in vertex_emulator.model_requests[0].path


def test_the_metadata_server(
    client: openai.OpenAI,
    without_credentials: Deployment,
    install_deployments: Callable[..., None],
    vertex_emulator: VertexEmulator,
    identity: GoogleIdentityEmulator,
) -> None:
    install_deployments(without_credentials)
    with metadata_server_at(identity):
        for _ in range(2):
            client.chat.completions.create(model="vertex-gemini", messages=HI)
    token_calls = [r for r in identity.requests if r.path.endswith("/default/token")]
    assert len(token_calls) == 1  # cached for the second request
    assert token_calls[0].headers["Metadata-Flavor"] == "Google"
    assert token_calls[0].query["scopes"] == "https://www.googleapis.com/auth/cloud-platform"
    assert _authorizations(vertex_emulator) == ["Bearer ya29.issued-1"] * 2
    assert vertex_emulator.assertions == []  # no service account was involved


@pytest.fixture
def federate(
    without_credentials: Deployment,
    install_deployments: Callable[..., None],
    identity: GoogleIdentityEmulator,
    tmp_path: Path,
) -> Callable[[str], None]:
    """Install the deployment with an external_account configuration whose credential source
    is a file holding `subject` (the workload's OIDC token)."""

    def install(subject: str) -> None:
        token_file = tmp_path / "oidc-token"
        token_file.write_text(subject)
        external = identity.external_account(str(token_file))
        params = {**without_credentials.params, "vertex_credentials": external}
        install_deployments(replace(without_credentials, params=params))

    return install


def test_workload_identity_federation(
    client: openai.OpenAI,
    federate: Callable[[str], None],
    vertex_emulator: VertexEmulator,
    identity: GoogleIdentityEmulator,
) -> None:
    federate(identity.subject_token)
    completion = client.chat.completions.create(model="vertex-gemini", messages=HI)
    assert completion.choices[0].message.content == "Echo: Hi"
    (exchange,) = identity.requests
    form = parse_qs(exchange.body.decode())
    assert (exchange.path, form["subject_token"]) == ("/v1/token", [identity.subject_token])
    assert _authorizations(vertex_emulator) == ["Bearer ya29.issued-1"]


def test_a_subject_token_sts_refuses_is_an_upstream_credentials_error(
    client: openai.OpenAI, federate: Callable[[str], None], vertex_emulator: VertexEmulator
) -> None:
    federate("a token STS does not know")
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="vertex-gemini", messages=HI)
    assert caught.value.status_code == 502
    assert caught.value.body == {  # type: ignore[comparison-overlap]
        "message": "vertex_ai: the token endpoint refused the external_account credentials: "
        "400 Unknown subject.",
        "type": "upstream_error",
        "param": None,
        "code": "upstream_rejected_credentials",
    }
    assert vertex_emulator.model_requests == []


def test_concurrent_requests_share_one_refresh_and_the_loop_keeps_serving(
    client: openai.OpenAI,
    vertex_gemini: Deployment,
    install_deployments: Callable[..., None],
    vertex_emulator: VertexEmulator,
) -> None:
    install_deployments(vertex_gemini)
    vertex_emulator.token_delay = 2.0
    with ThreadPoolExecutor(5) as pool:
        waiting = [
            pool.submit(client.chat.completions.create, model="vertex-gemini", messages=HI)
            for _ in range(5)
        ]
        time.sleep(0.3)
        # google-auth's refresh blocks; it runs in a thread, so the server answers meanwhile.
        mock = client.chat.completions.create(model="mock-chat", messages=HI)
        assert mock.choices[0].message.content
        assert vertex_emulator.model_requests == []  # the token endpoint is still answering
        answers = [future.result() for future in waiting]
    assert [a.choices[0].message.content for a in answers] == ["Echo: Hi"] * 5
    assert len(vertex_emulator.assertions) == 1
    assert _authorizations(vertex_emulator) == ["Bearer ya29.emulator-1"] * 5


def test_an_organizations_token_uri_is_held_to_its_address_policy(
    client: openai.OpenAI,
    vertex_gemini: Deployment,
    install_deployments: Callable[..., None],
    vertex_emulator: VertexEmulator,
) -> None:
    # The key's token_uri is the organization's choice: google-auth's call to it goes through
    # the same guard as the deployment's own calls (here: a loopback address, refused).
    install_deployments(replace(vertex_gemini, address_policy=AddressPolicy()))
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="vertex-gemini", messages=HI)
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_address_refused"  # type: ignore[index]
    assert vertex_emulator.requests == []
