"""The guard stage through the live server and the official SDKs (docs/guardrails.md): masking
seen by the upstream emulator and restored for the caller (JSON and streams whose placeholders
are split across chunks), blocks, warnings, during-call cancellation, tenant policy, and the
audit of every decision."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import httpx
import openai
import pytest

from gateway.config import watch as config_watch
from gateway.config.types import GuardrailSettings, GuardrailSpec
from gateway.registry import registry_get
from tests.emulators.openai_api import OpenAIEmulator
from tests.live import LiveServer

pytestmark = pytest.mark.django_db(transaction=True)

PROMPT = "Email jane.doe@example.com or call +1 415-555-2671 about card 4111 1111 1111 1111."
PII_MASK = GuardrailSpec(name="pii", kind="pii", action="mask", default_on=True)


@pytest.fixture
def guardrails() -> Iterator[Callable[..., GuardrailSettings]]:
    """Install guardrails in the live configuration for one test."""
    registry_get()  # the first load installs its configuration: before this test's
    previous = config_watch._current

    def install(
        *specs: GuardrailSpec, model_groups: dict[str, tuple[str, ...]] | None = None
    ) -> GuardrailSettings:
        settings = GuardrailSettings(
            guardrails={spec.name: spec for spec in specs},
            default_on=tuple(spec.name for spec in specs if spec.default_on),
            model_groups=model_groups or {},
        )
        config_watch._current = replace(previous, guardrails=settings)
        return settings

    yield install
    config_watch._current = previous


@pytest.fixture
def emulated(emulated_model) -> OpenAIEmulator:  # type: ignore[no-untyped-def]
    return emulated_model()


def _upstream_text(emulator: OpenAIEmulator) -> str:
    body = emulator.last.json
    return " ".join(str(m["content"]) for m in body["messages"])


def test_mask_upstream_sees_placeholders_caller_sees_originals(
    guardrails, emulated, client: openai.OpenAI
) -> None:  # type: ignore[no-untyped-def]
    guardrails(PII_MASK)
    answer = client.chat.completions.create(
        model="emulated", messages=[{"role": "user", "content": PROMPT}]
    )
    sent = _upstream_text(emulated)
    assert sent == ("Email <EMAIL_ADDRESS_1> or call <PHONE_NUMBER_1> about card <CREDIT_CARD_1>.")
    assert answer.choices[0].message.content == f"Emulated reply to: {PROMPT}"


def test_mask_without_restore_leaves_placeholders(guardrails, emulated, client) -> None:  # type: ignore[no-untyped-def]
    guardrails(replace(PII_MASK, restore=False))
    answer = client.chat.completions.create(
        model="emulated", messages=[{"role": "user", "content": "mail jane@example.com"}]
    )
    assert answer.choices[0].message.content == "Emulated reply to: mail <EMAIL_ADDRESS_1>"


@pytest.mark.parametrize("piece", [3, 5, 8])
def test_mask_stream_restores_placeholders_split_across_chunks(
    guardrails, emulated, client, piece: int
) -> None:  # type: ignore[no-untyped-def]
    guardrails(PII_MASK)
    emulated.stream_piece_chars = piece
    stream = client.chat.completions.create(
        model="emulated", messages=[{"role": "user", "content": PROMPT}], stream=True
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert "".join(pieces) == f"Emulated reply to: {PROMPT}"
    # The emulator really cut placeholders: some upstream piece ended inside one.
    masked_reply = "Emulated reply to: " + _upstream_text(emulated)
    cuts = range(piece, len(masked_reply), piece)
    spans = [m.span() for m in re.finditer(r"<[A-Z_0-9]+>", masked_reply)]
    assert any(start < cut < end for cut in cuts for start, end in spans)
    assert "jane.doe@example.com" not in _upstream_text(emulated)


def test_mask_applies_to_completions_embeddings_and_messages(
    guardrails, emulated, client, live_ogem: LiveServer, master_key: str
) -> None:  # type: ignore[no-untyped-def]
    guardrails(PII_MASK)
    text = client.completions.create(model="emulated", prompt="mail jane@example.com")
    assert emulated.last.json["prompt"] == "mail <EMAIL_ADDRESS_1>"
    assert text.choices[0].text == "Emulated reply to: mail jane@example.com"
    client.embeddings.create(model="emulated", input=["mail jane@example.com", "plain"])
    assert emulated.last.json["input"] == ["mail <EMAIL_ADDRESS_1>", "plain"]
    answer = httpx.post(
        f"{live_ogem.url}/v1/messages",
        headers={"x-api-key": master_key, "anthropic-version": "2023-06-01"},
        json={
            "model": "emulated",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "mail jane@example.com"}],
        },
    )
    assert answer.status_code == 200, answer.text
    assert _upstream_text(emulated).endswith("mail <EMAIL_ADDRESS_1>")
    assert answer.json()["content"][0]["text"] == "Emulated reply to: mail jane@example.com"
    # /v1/responses, passed through to OpenAI (the emulator), and served over chat (mock).
    response = client.responses.create(model="emulated", input="mail jane@example.com")
    assert emulated.last.json["input"] == "mail <EMAIL_ADDRESS_1>"
    assert response.output_text == "Emulated reply to: mail jane@example.com"


def test_block_is_a_content_filter_error_naming_guardrail_and_category(
    guardrails, emulated, client
) -> None:  # type: ignore[no-untyped-def]
    guardrails(GuardrailSpec(name="no-secrets", kind="secrets", default_on=True))
    secret = "sk-proj-AbCdEf0123456789AbCdEf0123456789"
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="emulated", messages=[{"role": "user", "content": f"my key is {secret}"}]
        )
    error = raised.value
    assert error.status_code == 400
    assert error.code == "content_filter"
    assert error.body["type"] == "invalid_request_error"  # type: ignore[index]
    assert error.body["message"] == (  # type: ignore[index]
        "The request was blocked by the guardrail 'no-secrets' (category: OPENAI_API_KEY)."
    )
    assert secret not in str(error.response.text)
    assert emulated.requests == []  # never sent


def test_block_in_a_stream_ends_with_an_error_the_sdk_raises(guardrails, emulated, client) -> None:  # type: ignore[no-untyped-def]
    guardrails(
        GuardrailSpec(
            name="no-pirates",
            kind="words",
            modes=("post_call",),
            default_on=True,
            options={"words": ["arr"]},
        )
    )
    stream = client.chat.completions.create(
        model="emulated", messages=[{"role": "user", "content": "say arr matey"}], stream=True
    )
    with pytest.raises(openai.APIError) as raised:
        for _ in stream:
            pass
    assert "blocked by the guardrail 'no-pirates' (category: BLOCKED_WORD)" in str(raised.value)
    # The same answer as JSON is refused whole.
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="emulated", messages=[{"role": "user", "content": "say arr matey"}]
        )
    assert refused.value.code == "content_filter"
    assert "The answer was blocked" in refused.value.body["message"]  # type: ignore[index]


def test_warn_lets_the_request_through_and_records_the_decision(
    guardrails, emulated, make_key, live_ogem: LiveServer, master_key: str
) -> None:  # type: ignore[no-untyped-def]
    from billing.models import GuardrailDecision
    from billing.services import usage_drain

    guardrails(
        GuardrailSpec(
            name="topics",
            kind="topics",
            action="warn",
            default_on=True,
            options={"topics": {"medical_advice": ["dosage"]}},
        )
    )
    key = make_key()
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="emulated", messages=[{"role": "user", "content": "What dosage? My dosage."}]
    )
    assert raw.parse().choices[0].message.content == "Emulated reply to: What dosage? My dosage."
    request_id = raw.headers["x-request-id"]
    usage_drain()
    decision = GuardrailDecision.objects.get(request_id=request_id)
    assert (decision.guardrail, decision.phase, decision.action, decision.category) == (
        "topics",
        "pre_call",
        "warn",
        "medical_advice",
    )
    assert decision.count == 2
    listed = httpx.get(
        f"{live_ogem.url}/api/v1/guardrails/decisions",
        params={"request_id": request_id},
        headers={"Authorization": f"Bearer {master_key}"},
    )
    assert listed.status_code == 200, listed.text
    rows = listed.json()["results"]
    assert [(r["guardrail"], r["action"], r["category"], r["count"]) for r in rows] == [
        ("topics", "warn", "medical_advice", 2)
    ]
    assert "dosage" not in listed.text.replace("medical_advice", "")
    # Another organization's admin sees none of it (tenant-scoped like spend).
    from tenants.models import Membership, Role
    from tests.factories import OrganizationFactory, UserFactory

    stranger = UserFactory()
    Membership.objects.create(
        user=stranger, organization=OrganizationFactory(), role=Role.ORG_ADMIN
    )
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(user=stranger)
    theirs = api.get("/api/v1/guardrails/decisions", {"request_id": request_id})
    assert theirs.status_code == 200
    assert theirs.json()["results"] == []


def test_during_call_block_cancels_the_upstream_call(guardrails, emulated_model, client) -> None:  # type: ignore[no-untyped-def]
    emulator = emulated_model()
    emulator.model_delays["gpt-4o-mini"] = 15.0
    guardrails(
        GuardrailSpec(
            name="vendor",
            kind="custom",
            modes=("during_call",),
            default_on=True,
            options={
                "path": "tests.gateway.guardrails.custom.SlowWordFlag",
                "options": {"word": "forbidden", "delay": 0.2},
            },
        )
    )
    started = time.monotonic()
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="emulated", messages=[{"role": "user", "content": "a forbidden question"}]
        )
    assert time.monotonic() - started < 7.0  # not the upstream's 15 s
    assert raised.value.code == "content_filter"
    assert "'vendor' (category: FORBIDDEN_WORD)" in raised.value.body["message"]  # type: ignore[index]
    assert len(emulator.requests) == 1  # the call had started beside the check
    emulator.model_delays.clear()
    answer = client.chat.completions.create(
        model="emulated", messages=[{"role": "user", "content": "a fine question"}]
    )
    assert answer.choices[0].message.content == "Emulated reply to: a fine question"
    # A stream is never answered before its during_call checks passed: the block is a status.
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="emulated",
            messages=[{"role": "user", "content": "forbidden stream"}],
            stream=True,
        )


def test_a_failing_vendor_follows_fail_open(guardrails, emulated, client) -> None:  # type: ignore[no-untyped-def]
    broken = GuardrailSpec(
        name="broken",
        kind="custom",
        default_on=True,
        options={"path": "tests.gateway.guardrails.custom.Broken"},
    )
    guardrails(broken)
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="emulated", messages=[{"role": "user", "content": "hi"}]
        )
    assert "(category: CHECK_FAILED)" in raised.value.body["message"]  # type: ignore[index]
    guardrails(replace(broken, fail_open=True))
    answer = client.chat.completions.create(
        model="emulated", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content == "Emulated reply to: hi"


def test_a_key_cannot_switch_off_what_its_team_enforces(
    guardrails, emulated, make_key, live_ogem: LiveServer
) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import TeamFactory

    guardrails(
        GuardrailSpec(name="pii-block", kind="pii"),
        GuardrailSpec(name="global", kind="words", default_on=True, options={"words": ["zap"]}),
    )

    def sdk(key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=key, max_retries=0)

    strict = TeamFactory(metadata={"guardrails": ["pii-block"]})
    rebel = sdk(make_key(team=strict, metadata={"guardrails_off": ["pii-block", "global"]}))
    with pytest.raises(openai.BadRequestError) as raised:
        rebel.chat.completions.create(
            model="emulated", messages=[{"role": "user", "content": "mail jane@example.com"}]
        )
    assert "'pii-block' (category: EMAIL_ADDRESS)" in raised.value.body["message"]  # type: ignore[index]
    # What it may switch off (a default_on guardrail that is not enforced), it does.
    answer = rebel.chat.completions.create(
        model="emulated", messages=[{"role": "user", "content": "zap"}]
    )
    assert answer.choices[0].message.content == "Emulated reply to: zap"
    # A key of another team is not under the strict team's guardrail.
    other = sdk(make_key())
    answer = other.chat.completions.create(
        model="emulated", messages=[{"role": "user", "content": "mail jane@example.com"}]
    )
    assert answer.choices[0].message.content == "Emulated reply to: mail jane@example.com"
    with pytest.raises(openai.BadRequestError):
        other.chat.completions.create(
            model="emulated", messages=[{"role": "user", "content": "zap"}]
        )


def test_optional_guardrails_requested_by_name_where_policy_allows(
    guardrails, emulated, make_key, live_ogem: LiveServer
) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import TeamFactory

    guardrails(
        GuardrailSpec(name="pii-block", kind="pii"),
        GuardrailSpec(name="vendor-pii", kind="pii", requestable=False),
    )
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=make_key(), max_retries=0)
    message = [{"role": "user", "content": "mail jane@example.com"}]
    assert client.chat.completions.create(model="emulated", messages=message).choices
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="emulated", messages=message, extra_body={"guardrails": ["pii-block"]}
        )
    assert raised.value.code == "content_filter"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="emulated",
            messages=message,
            metadata={"guardrails": "x"},  # type: ignore[dict-item]
        )
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(
            model="emulated", messages=message, extra_body={"guardrails": ["vendor-pii"]}
        )
    with pytest.raises(openai.BadRequestError) as unknown:
        client.chat.completions.create(
            model="emulated", messages=message, extra_body={"guardrails": ["nope"]}
        )
    assert unknown.value.body["message"] == "No guardrail named 'nope'."  # type: ignore[index]
    allowed = TeamFactory(metadata={"guardrails_optional": ["vendor-pii"]})
    member = openai.OpenAI(
        base_url=f"{live_ogem.url}/v1", api_key=make_key(team=allowed), max_retries=0
    )
    with pytest.raises(openai.BadRequestError) as blocked:
        member.chat.completions.create(
            model="emulated", messages=message, extra_body={"guardrails": ["vendor-pii"]}
        )
    assert "'vendor-pii'" in blocked.value.body["message"]  # type: ignore[index]
    # Ogem's field never reaches the upstream.
    assert "guardrails" not in emulated.last.json


def test_model_group_guardrails(guardrails, emulated, client) -> None:  # type: ignore[no-untyped-def]
    guardrails(
        GuardrailSpec(name="pii-block", kind="pii"), model_groups={"emulated": ("pii-block",)}
    )
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="emulated", messages=[{"role": "user", "content": "mail jane@example.com"}]
        )
    answer = client.chat.completions.create(
        model="mock-chat", messages=[{"role": "user", "content": "mail jane@example.com"}]
    )
    assert answer.choices


def test_a_block_is_final_no_content_policy_fallback(  # type: ignore[no-untyped-def]
    guardrails, openai_emulator, install_deployments, client
) -> None:
    from providers.base import Deployment
    from tests.emulators.fixtures import UPSTREAM_KEY

    install_deployments(
        *(
            Deployment(
                id=f"test:{name}",
                model_name=name,
                provider="openai",
                upstream_model="gpt-4o-mini",
                api_base=f"{openai_emulator.url}/v1",
                api_key=UPSTREAM_KEY,
            )
            for name in ("emulated", "emulated-2")
        )
    )
    guardrails(
        GuardrailSpec(
            name="no-pirates",
            kind="words",
            modes=("post_call",),
            default_on=True,
            options={"words": ["arr"]},
        )
    )
    current = config_watch._current
    config_watch._current = replace(
        current,
        router=replace(current.router, content_policy_fallbacks={"emulated": ("emulated-2",)}),
    )
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(
            model="emulated", messages=[{"role": "user", "content": "say arr"}]
        )
    assert raised.value.code == "content_filter"
    assert len(openai_emulator.requests) == 1  # no fallback to emulated-2


def test_a_debug_capture_keeps_masked_values_masked(
    guardrails, emulated, live_ogem, master_key
) -> None:  # type: ignore[no-untyped-def]
    from tests.gateway.test_debugging import _captured, _sdk

    guardrails(PII_MASK)
    raw = _sdk(live_ogem, master_key).chat.completions.with_raw_response.create(
        model="emulated",
        messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"x-ogem-debug": "true", "x-request-id": "debug-masked-1"},
    )
    assert raw.parse().choices[0].message.content == f"Emulated reply to: {PROMPT}"
    capture = _captured("debug-masked-1")
    masked = "Email <EMAIL_ADDRESS_1> or call <PHONE_NUMBER_1> about card <CREDIT_CARD_1>."
    assert masked in capture.request_body
    assert f"Emulated reply to: {masked}" in capture.response_body
    assert "jane.doe@example.com" not in capture.request_body + capture.response_body
