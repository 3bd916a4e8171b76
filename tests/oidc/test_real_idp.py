"""A real OpenID Connect provider's access tokens on a live Ogem: oidc-provider on Node
(tests/idp/server.mjs) issues them; on /api/v1 mozilla-django-oidc's class validates them
(tenants/authentication.py), on /v1 gateway/jwt_auth.py does.

- a service account's JWT access token (client credentials for the resource Ogem is, RFC 8707;
  `typ: at+jwt`, RFC 9068), found by discovery and verified locally against the IdP's JWKS;
- a person's opaque access token (authorization code flow through the IdP's login form), which
  only the IdP's userinfo endpoint can vouch for: it works on /api/v1 with
  OGEM_OIDC_OPAQUE_TOKENS, and stops working the moment the IdP revokes it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import jwt
import pytest

from gateway.jwt_auth import jwt_cache_clear
from keys.models import VirtualKey
from tenants.authentication import userinfo_cache_clear
from tenants.oidc import oidc_cache_clear
from tests.api.conftest import World, ids, world  # noqa: F401  (world: a fixture)
from tests.live import LiveServer
from tests.node_idp import node_idp_running

pytestmark = pytest.mark.live

RESOURCE = "urn:ogem:api"
CLAIMS = {"ogem_org": "org-a", "ogem_teams": ["team-a"], "ogem_role": "org_admin"}
REDIRECT_URI = "http://127.0.0.1:9/callback"  # never followed: the code is read off the redirect


@dataclass
class NodeIdP:
    issuer: str
    client_id: str
    client_secret: str
    service_id: str
    service_secret: str


@pytest.fixture(scope="module")
def node_idp() -> Iterator[NodeIdP]:
    idp = NodeIdP(
        "", "ogem-cli", secrets.token_urlsafe(24), "billing-svc", secrets.token_urlsafe(24)
    )
    env = {
        "IDP_CLIENT_ID": idp.client_id,
        "IDP_CLIENT_SECRET": idp.client_secret,
        "IDP_REDIRECT_URIS": REDIRECT_URI,
        "IDP_SERVICE_CLIENT_ID": idp.service_id,
        "IDP_SERVICE_CLIENT_SECRET": idp.service_secret,
        "IDP_RESOURCE": RESOURCE,
        "IDP_TOKEN_CLAIMS": json.dumps(CLAIMS),
    }
    with node_idp_running(env) as issuer:
        idp.issuer = issuer
        yield idp


@pytest.fixture
def configured(node_idp: NodeIdP, settings) -> Iterator[NodeIdP]:  # type: ignore[no-untyped-def]
    """Ogem pointed at the IdP by its issuer and audience only: every endpoint is discovered."""
    settings.OGEM_OIDC_ISSUER = node_idp.issuer
    settings.OGEM_OIDC_AUDIENCE = RESOURCE
    settings.OGEM_OIDC_JWKS_URL = ""
    settings.OGEM_OIDC_ROLE_MAP = ""
    for clear in (oidc_cache_clear, userinfo_cache_clear, jwt_cache_clear):
        clear()
    yield node_idp
    for clear in (oidc_cache_clear, userinfo_cache_clear, jwt_cache_clear):
        clear()


def _service_token(idp: NodeIdP) -> str:
    response = httpx.post(
        f"{idp.issuer}/token",
        data={
            "grant_type": "client_credentials",
            "client_id": idp.service_id,
            "client_secret": idp.service_secret,
            "resource": RESOURCE,
            "scope": "ogem",
        },
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def _user_token(idp: NodeIdP) -> str:
    """Alice signs in at the IdP (its development login form) and the client redeems the code."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    with httpx.Client(base_url=idp.issuer) as browser:
        step = browser.get(
            "/auth",
            params={
                "client_id": idp.client_id,
                "response_type": "code",
                "redirect_uri": REDIRECT_URI,
                "scope": "openid ogem",
                "state": "state-1",
                "code_challenge": challenge.rstrip(b"=").decode(),
                "code_challenge_method": "S256",
            },
        )
        form = browser.get(step.headers["location"])
        action = re.search(r'<form[^>]* action="([^"]+)"', form.text)
        assert action is not None, form.text
        step = browser.post(action[1], data={"prompt": "login", "login": "alice", "password": "x"})
        while not step.headers["location"].startswith(REDIRECT_URI):
            step = browser.get(step.headers["location"])
        code = httpx.URL(step.headers["location"]).params["code"]
        redeemed = browser.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "client_id": idp.client_id,
                "client_secret": idp.client_secret,
                "code_verifier": verifier,
            },
        )
    assert redeemed.status_code == 200, redeemed.text
    return redeemed.json()["access_token"]


def _get(server: LiveServer, path: str, token: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"})


def test_service_jwt_works_on_both_apis(
    live_ogem: LiveServer,
    world: World,  # noqa: F811
    configured: NodeIdP,
) -> None:
    token = _service_token(configured)
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"

    keys = _get(live_ogem, "/api/v1/keys?limit=1000", token)
    assert keys.status_code == 200, keys.text
    organization_a = world.a.organization
    assert ids(keys) == set(
        VirtualKey.objects.filter(organization=organization_a).values_list("pk", flat=True)
    )
    models = _get(live_ogem, "/v1/models", token)
    assert models.status_code == 200, models.text
    assert "mock-chat" in {model["id"] for model in models.json()["data"]}

    # The same token with its role raised: its signature no longer verifies, on either API.
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raised = base64.urlsafe_b64encode(json.dumps({**claims, "ogem_role": "proxy_admin"}).encode())
    forged = f"{header}.{raised.rstrip(b'=').decode()}.{signature}"
    refused = _get(live_ogem, "/api/v1/keys", forged)
    assert refused.status_code == 401
    assert refused.json() == {"detail": "the token's signature does not verify"}
    assert _get(live_ogem, "/v1/models", forged).status_code == 401


def test_user_opaque_token_is_vouched_for_by_userinfo_until_revoked(
    live_ogem: LiveServer,
    world: World,  # noqa: F811
    configured: NodeIdP,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    settings.OGEM_OIDC_OPAQUE_TOKENS = True
    token = _user_token(configured)
    assert token.count(".") == 0  # opaque: nothing Ogem could verify by itself

    keys = _get(live_ogem, "/api/v1/keys?limit=1000", token)
    assert keys.status_code == 200, keys.text
    assert ids(keys) == set(
        VirtualKey.objects.filter(organization=world.a.organization).values_list("pk", flat=True)
    )
    me = _get(live_ogem, "/api/v1/keys", token)
    assert me.status_code == 200
    # /v1 keeps to JWTs it verifies itself: an opaque token is no key there.
    assert _get(live_ogem, "/v1/models", token).status_code == 401

    revoked = httpx.post(
        f"{configured.issuer}/token/revocation",
        data={
            "token": token,
            "client_id": configured.client_id,
            "client_secret": configured.client_secret,
        },
    )
    assert revoked.status_code == 200
    refused = _get(live_ogem, "/api/v1/keys", token)
    assert refused.status_code == 401
    assert refused.json() == {"detail": "invalid token provided"}
