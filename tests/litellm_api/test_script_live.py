"""The acceptance script: written as a LiteLLM user writes it from LiteLLM's management API docs
(httpx against the proxy root, the master key, then the openai SDK with the issued key), run
unchanged against a live Ogem."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import pytest

from tests.live import LiveServer, usage_record_now

pytestmark = pytest.mark.live


def _spend_logs(proxy: httpx.Client, token: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        usage_record_now()
        logs = proxy.get("/spend/logs", params={"api_key": token}).json()
        if logs or time.monotonic() > deadline:
            return logs
        time.sleep(0.05)


def test_a_litellm_management_script_runs_unchanged(live_ogem: LiveServer, master_key: str) -> None:
    proxy = httpx.Client(
        base_url=live_ogem.url, headers={"Authorization": f"Bearer {master_key}"}, timeout=30
    )

    org = proxy.post("/organization/new", json={"organization_alias": "acme", "max_budget": 100})
    assert org.status_code == 200, org.text
    organization_id = org.json()["organization_id"]
    team = proxy.post(
        "/team/new",
        json={
            "team_alias": "search",
            "organization_id": organization_id,
            "models": ["mock-chat"],
            "max_budget": 50,
        },
    )
    assert team.status_code == 200, team.text
    team_id = team.json()["team_id"]
    user = proxy.post(
        "/user/new",
        json={
            "user_id": "krrish",
            "user_email": "krrish@example.com",
            "user_role": "internal_user",
            "organization_id": organization_id,
        },
    )
    assert user.status_code == 200, user.text
    added = proxy.post(
        "/team/member_add",
        json={"team_id": team_id, "member": {"role": "user", "user_id": "krrish"}},
    )
    assert added.status_code == 200, added.text

    generated = proxy.post(
        "/key/generate",
        json={
            "models": ["mock-chat"],
            "max_budget": 10,
            "budget_duration": "30d",
            "team_id": team_id,
            "user_id": "krrish",
            "key_alias": "search-backend",
            "metadata": {"app": "search"},
        },
    )
    assert generated.status_code == 200, generated.text
    key = generated.json()["key"]
    token = generated.json()["token"]

    client = openai.OpenAI(api_key=key, base_url=f"{live_ogem.url}/v1", max_retries=0)
    reply = client.chat.completions.create(
        model="mock-chat", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "Mock reply to: hi"

    logs = _spend_logs(proxy, token)
    assert len(logs) == 1
    log = logs[0]
    assert (log["api_key"], log["model"], log["user"], log["team_id"]) == (
        token,
        "mock-chat",
        "krrish",
        team_id,
    )
    assert log["total_tokens"] == reply.usage.total_tokens
    assert log["spend"] > 0
    info = proxy.get("/key/info", params={"key": key})
    assert info.status_code == 200
    assert info.json()["info"]["spend"] == pytest.approx(log["spend"])
    assert info.json()["info"]["max_budget"] == 10.0
    # The key reads its own info too, as LiteLLM lets it.
    own = httpx.get(f"{live_ogem.url}/key/info", headers={"Authorization": f"Bearer {key}"})
    assert own.status_code == 200, own.text
    assert own.json()["info"]["token"] == token

    deleted = proxy.post("/key/delete", json={"keys": [key]})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"deleted_keys": [key]}
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(
            model="mock-chat", messages=[{"role": "user", "content": "again"}]
        )
    assert proxy.get("/key/info", params={"key": key}).status_code == 404


def test_a_key_over_its_budget_answers_litellms_words(
    live_ogem: LiveServer, master_key: str
) -> None:
    proxy = httpx.Client(
        base_url=live_ogem.url, headers={"Authorization": f"Bearer {master_key}"}, timeout=30
    )
    org = proxy.post("/organization/new", json={"organization_alias": "tiny"}).json()
    key = proxy.post(
        "/key/generate",
        json={"organization_id": org["organization_id"], "max_budget": 0.000001},
    ).json()["key"]
    client = openai.OpenAI(api_key=key, base_url=f"{live_ogem.url}/v1", max_retries=0)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(
            model="mock-chat", messages=[{"role": "user", "content": "hi"}]
        )
    error = refused.value.body
    assert error["code"] == "budget_exceeded"
    assert error["message"].startswith("Budget has been exceeded!")


def test_mock_response_only_for_keys_that_allow_it(
    live_ogem: LiveServer, master_key: str, emulated_model: Any
) -> None:
    openai_emulator = emulated_model()
    proxy = httpx.Client(
        base_url=live_ogem.url, headers={"Authorization": f"Bearer {master_key}"}, timeout=30
    )
    org = proxy.post("/organization/new", json={"organization_alias": "mocks"}).json()
    allowed = proxy.post(
        "/key/generate",
        json={"organization_id": org["organization_id"], "metadata": {"allow_mock_response": True}},
    ).json()["key"]
    plain = proxy.post("/key/generate", json={"organization_id": org["organization_id"]}).json()
    body = {
        "model": "emulated",
        "messages": [{"role": "user", "content": "hi"}],
        "mock_response": "canned answer",
    }

    def ask(key: str) -> httpx.Response:
        return httpx.post(
            f"{live_ogem.url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )

    mocked = ask(allowed)
    assert mocked.status_code == 200, mocked.text
    assert mocked.json()["choices"][0]["message"]["content"] == "canned answer"
    assert openai_emulator.requests == []  # the upstream was never called
    # Off by default: the upstream answers and never sees the field.
    answered = ask(plain["key"])
    assert answered.status_code == 200, answered.text
    assert answered.json()["choices"][0]["message"]["content"] != "canned answer"
    assert len(openai_emulator.requests) == 1
    assert "mock_response" not in openai_emulator.requests[0].json
