"""IdP JWTs on /v1: keys generated here, JWKS served by a local HTTP server, the official SDK."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.jwt_auth import jwt_cache_clear
from tests.factories import OrganizationFactory, TeamFactory

# Fixtures shared with the key resolver's and the OIDC module's tests.
from tests.gateway.test_auth import queries_by_server as queries_by_server
from tests.live import LiveServer
from tests.oidc.conftest import LocalIdP
from tests.oidc.conftest import idp as idp

BODY = {"model": "mock-chat", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture
def jwt_idp(idp: LocalIdP, live_ogem: LiveServer) -> Iterator[LocalIdP]:
    jwt_cache_clear()
    organization = OrganizationFactory(slug="acme")
    TeamFactory(organization=organization, slug="ml")
    yield idp
    jwt_cache_clear()


def _chat(live_ogem: LiveServer, token: str) -> httpx.Response:
    return httpx.post(
        f"{live_ogem.url}/v1/chat/completions",
        json=BODY,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_valid_token_calls_mock_chat_and_is_cached(
    jwt_idp: LocalIdP, live_ogem: LiveServer
) -> None:
    token = jwt_idp.token(ogem_org="acme", ogem_teams=["ml"], ogem_role="gw-users")
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=token, max_retries=0)
    first = client.chat.completions.create(
        model="mock-chat", messages=[{"role": "user", "content": "Hi"}]
    )
    assert first.choices[0].message.content
    second = _chat(live_ogem, token)
    assert second.status_code == 200
    # The JWKS was fetched once; the second request reused the validated token.
    assert jwt_idp.requests == ["/jwks.json"]


def _assert_401(response: httpx.Response, message_part: str) -> None:
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == "authentication_error"
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert message_part in body["error"]["message"]


def test_expired_token(jwt_idp: LocalIdP, live_ogem: LiveServer) -> None:
    now = int(time.time())
    token = jwt_idp.token(ogem_org="acme", exp=now - 120, iat=now - 600, nbf=now - 600)
    _assert_401(_chat(live_ogem, token), "the token has expired")


def test_wrong_audience(jwt_idp: LocalIdP, live_ogem: LiveServer) -> None:
    _assert_401(_chat(live_ogem, jwt_idp.token(ogem_org="acme", aud="someone-else")), "audience")


def test_wrong_issuer(jwt_idp: LocalIdP, live_ogem: LiveServer) -> None:
    token = jwt_idp.token(ogem_org="acme", iss="https://evil.example.com")
    _assert_401(_chat(live_ogem, token), "issuer")


def test_bad_signature(jwt_idp: LocalIdP, live_ogem: LiveServer) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt_idp.token("k1", signing_key=forger, ogem_org="acme")
    _assert_401(_chat(live_ogem, token), "signature")


def test_unknown_organization(jwt_idp: LocalIdP, live_ogem: LiveServer) -> None:
    _assert_401(_chat(live_ogem, jwt_idp.token(ogem_org="nobody")), "organization is unknown")


def test_jwt_without_issuer_configured_is_just_a_wrong_key(
    jwt_idp: LocalIdP,
    live_ogem: LiveServer,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    token = jwt_idp.token(ogem_org="acme")
    settings.OGEM_OIDC_ISSUER = ""
    response = _chat(live_ogem, token)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert jwt_idp.requests == []


def test_steady_state_makes_no_database_query(
    jwt_idp: LocalIdP,
    live_ogem: LiveServer,
    queries_by_server: list[str],
) -> None:
    token = jwt_idp.token(ogem_org="acme", ogem_teams=["ml"])
    assert _chat(live_ogem, token).status_code == 200
    assert len(queries_by_server) >= 1  # the organization and team were resolved once
    queries_by_server.clear()
    for _ in range(10):
        assert _chat(live_ogem, token).status_code == 200
    # A new token for the same organization and team verifies, but needs no lookup either.
    assert (
        _chat(live_ogem, jwt_idp.token(ogem_org="acme", ogem_teams=["ml"], sub="b")).status_code
        == 200
    )
    assert queries_by_server == []


def test_team_routing_settings_reach_jwt_callers(
    jwt_idp: LocalIdP, live_ogem: LiveServer, install_deployments
) -> None:
    from providers.base import Deployment
    from tenants.models import Team

    Team.objects.filter(slug="ml").update(metadata={"regions": ["eu"]})
    install_deployments(
        *(
            Deployment(
                id=f"jwt:{region}",
                model_name="pinned",
                provider="mock",
                upstream_model="m",
                region=region,
            )
            for region in ("us", "eu")
        )
    )
    token = jwt_idp.token(ogem_org="acme", ogem_teams=["ml"], ogem_role="gw-users")
    served = set()
    for _ in range(8):
        response = httpx.post(
            f"{live_ogem.url}/v1/chat/completions",
            json={**BODY, "model": "pinned"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        served.add(response.headers["x-ogem-deployment"])
    assert served == {"jwt:eu"}


def test_a_team_models_change_reaches_jwt_callers_at_once(
    jwt_idp: LocalIdP, live_ogem: LiveServer
) -> None:
    from tenants.models import Team
    from tenants.services import team_update

    token = jwt_idp.token(ogem_org="acme", ogem_teams=["ml"], ogem_role="gw-users")
    assert _chat(live_ogem, token).status_code == 200
    team_update(team=Team.objects.get(slug="ml"), allowed_models=["mock-embed"])
    deadline = time.monotonic() + 1.0
    while (response := _chat(live_ogem, token)).status_code != 403:
        assert time.monotonic() < deadline, "the team's new models not applied after one second"
        time.sleep(0.02)
    assert response.json()["error"]["message"] == (
        "This key's team is not allowed to use the model `mock-chat`."
    )
