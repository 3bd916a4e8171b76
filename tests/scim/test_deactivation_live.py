"""A SCIM deactivation makes the user's keys fail on /v1 within one second (live server, SDK)."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from keys.services import key_create
from tenants.models import User
from tenants.scim.services import scim_token_create
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.live

BODY = {"model": "mock-chat", "messages": [{"role": "user", "content": "Hi"}]}


def test_deactivated_users_keys_fail_on_v1_within_one_second(live_ogem) -> None:  # type: ignore[no-untyped-def]
    organization = OrganizationFactory()
    _, scim_secret = scim_token_create(organization=organization, name="okta")
    scim = httpx.Client(
        base_url=f"{live_ogem.url}/scim/v2",
        headers={"Authorization": f"Bearer {scim_secret}", "Content-Type": "application/scim+json"},
    )
    created = scim.post("/Users", json={"userName": "dana@acme.io"})
    assert created.status_code == 201
    user = User.objects.get(pk=created.json()["id"])
    secret = key_create(name="laptop", organization=organization, user=user).secret
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)
    for _ in range(3):  # warm every cache the resolver has
        assert client.chat.completions.create(**BODY).choices[0].message.role == "assistant"

    deactivated = scim.patch(
        f"/Users/{user.pk}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": False}],
        },
    )
    assert deactivated.status_code == 200
    assert deactivated.json()["active"] is False
    deadline = time.monotonic() + 1.0

    refusal: openai.AuthenticationError | None = None
    while refusal is None and time.monotonic() < deadline:
        try:
            client.chat.completions.create(**BODY)
            time.sleep(0.05)
        except openai.AuthenticationError as exc:
            refusal = exc
    assert refusal is not None, "the key still worked one second after the deactivation"
    assert refusal.status_code == 401
    assert refusal.body["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):  # and it stays refused
        client.chat.completions.create(**BODY)
