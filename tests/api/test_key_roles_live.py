"""End to end (issue 14, finding 5): a member signed in cannot lift the limits their team admin
set on their key, so the key still cannot reach a model it was not given on /v1."""

from __future__ import annotations

import httpx
import openai
import pytest
from django.test import Client

from tenants.models import Role
from tests.factories import MembershipFactory, UserFactory
from tests.live import LiveServer

pytestmark = pytest.mark.live

_CSRF = "c" * 32  # any well-formed token: the cookie and the header must agree


def _session(live: LiveServer, username: str) -> httpx.Client:
    """An /api/v1 client signed in with username and password, as a browser would be."""
    signed_in = Client()
    assert signed_in.login(username=username, password="correct horse battery")
    return httpx.Client(
        base_url=f"{live.url}/api/v1",
        cookies={"sessionid": signed_in.cookies["sessionid"].value, "csrftoken": _CSRF},
        headers={"X-CSRFToken": _CSRF},
    )


def test_member_cannot_lift_limits_then_use_a_forbidden_model(
    live_ogem: LiveServer, master_key: str
) -> None:
    master = httpx.Client(
        base_url=f"{live_ogem.url}/api/v1", headers={"Authorization": f"Bearer {master_key}"}
    )
    organization = master.post("/organizations", json={"name": "Acme", "slug": "acme"}).json()
    team = master.post("/teams", json={"organization": organization["id"], "name": "Apps"}).json()
    admin, member = UserFactory(username="lead"), UserFactory(username="dev")
    for user, role in ((admin, Role.TEAM_ADMIN), (member, Role.MEMBER)):
        user.save(update_fields=["password"])
        MembershipFactory(
            user=user, organization_id=organization["id"], team_id=team["id"], role=role
        )
    issued = _session(live_ogem, "lead").post(
        "/keys",
        json={
            "name": "dev's key",
            "team": team["id"],
            "user": member.pk,
            "models": ["mock-chat"],
            "max_budget": 1,
            "rpm_limit": 100,
        },
    )
    assert issued.status_code == 201, issued.text
    key_id, secret = issued.json()["id"], issued.json()["key"]

    dev = _session(live_ogem, "dev")
    lifted = dev.patch(
        f"/keys/{key_id}", json={"models": [], "max_budget": None, "rpm_limit": None}
    )
    assert lifted.status_code == 403
    assert lifted.json() == {
        "detail": "Only the key's team admins change allowed_models, max_budget, rpm_limit."
    }
    renamed = dev.patch(f"/keys/{key_id}", json={"name": "mine"})  # the session writes
    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["models"]) == ("mine", ["mock-chat"])
    assert (renamed.json()["max_budget"], renamed.json()["rpm_limit"]) == ("1.00000000", 100)

    client = openai.OpenAI(api_key=secret, base_url=f"{live_ogem.url}/v1", max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.embeddings.create(model="mock-embed", input="x")
    assert refused.value.status_code == 403
    assert refused.value.body["code"] == "model_not_allowed"
    reply = client.chat.completions.create(
        model="mock-chat", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "Mock reply to: hi"
