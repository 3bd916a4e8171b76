"""The contract's scripts, end to end: a key made on /api/v1 works on /v1, its spend shows on
/api/v1/spend, and it is refused once revoked."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest
from django.conf import settings

from billing.services import usage_buffer_flush, usage_drain
from tests.live import LiveServer

pytestmark = pytest.mark.live


def _spend_once_recorded(api: httpx.Client, *, key_id: int) -> dict[str, Any]:
    """Usage is accounted after the response: write it now, as the worker would, then read."""
    deadline = time.monotonic() + 5
    while True:
        if settings.REDIS_URL:
            usage_drain()
        else:
            usage_buffer_flush()
        body = api.get("/spend", params={"group_by": "key", "key": key_id}).json()
        if body["results"] or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_key_lifecycle_over_the_live_server(live_ogem: LiveServer, master_key: str) -> None:
    api = httpx.Client(
        base_url=f"{live_ogem.url}/api/v1", headers={"Authorization": f"Bearer {master_key}"}
    )
    org = api.post("/organizations", json={"name": "Live", "slug": "live"})
    assert org.status_code == 201
    team = api.post("/teams", json={"organization": org.json()["id"], "name": "Apps"})
    assert team.status_code == 201
    created = api.post(
        "/keys",
        json={"name": "app", "team": team.json()["id"], "models": ["mock-chat"], "rpm_limit": 100},
    )
    assert created.status_code == 201
    secret = created.json()["key"]

    client = openai.OpenAI(api_key=secret, base_url=f"{live_ogem.url}/v1", max_retries=0)
    reply = client.chat.completions.create(
        model="mock-chat", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "Mock reply to: hi"
    key_id = created.json()["id"]
    spend = _spend_once_recorded(api, key_id=key_id)
    assert spend["total"]["requests"] == 1
    assert spend["results"][0]["key"] == key_id
    assert spend["results"][0]["total_tokens"] == reply.usage.total_tokens

    revoked = api.post(f"/keys/{created.json()['id']}/revoke")
    assert revoked.status_code == 200
    deadline = time.monotonic() + 1.0
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(
            model="mock-chat", messages=[{"role": "user", "content": "hi"}]
        )
    assert time.monotonic() < deadline
