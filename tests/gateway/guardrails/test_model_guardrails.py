"""Guardrails that ask a model: OpenAI-compatible moderation (gateway/guardrails/moderation.py)
through a moderation model group of Ogem's own pipeline or straight to a moderation API, and an
LLM judge (gateway/guardrails/judge.py) through a chat model group; live server, official
openai SDK, the OpenAI emulator's moderation and a judge model's emulator."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from gateway.config.types import GuardrailSpec
from providers.base import Deployment
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.judge_model_api import API_KEY as JUDGE_KEY
from tests.emulators.judge_model_api import JudgeModelEmulator
from tests.emulators.openai_api import OpenAIEmulator
from tests.emulators.scripted import Fault

pytestmark = pytest.mark.django_db(transaction=True)

RUBRIC = "You review prompts for a support bot.\nForbidden: competitor, lawsuit"


@pytest.fixture(scope="module")
def judge_server() -> Iterator[JudgeModelEmulator]:
    yield JudgeModelEmulator().start()  # type: ignore[misc]


@pytest.fixture
def judge(judge_server: JudgeModelEmulator) -> JudgeModelEmulator:
    judge_server.reset()
    return judge_server


@pytest.fixture
def models(openai_emulator, judge, emulated_model) -> OpenAIEmulator:  # type: ignore[no-untyped-def]
    """`emulated` (chat) and `moderation` on the OpenAI emulator, `judge` on the judge's."""
    base = f"{openai_emulator.url}/v1"
    return emulated_model(  # type: ignore[no-any-return]
        Deployment(
            id="test:moderation",
            model_name="moderation",
            provider="openai",
            upstream_model="omni-moderation-latest",
            api_base=base,
            api_key=UPSTREAM_KEY,
        ),
        Deployment(
            id="test:judge",
            model_name="judge",
            provider="openai",
            upstream_model="judge-1",
            api_base=f"{judge.url}/v1",
            api_key=JUDGE_KEY,
        ),
    )


def moderation(**options) -> GuardrailSpec:  # type: ignore[no-untyped-def]
    return GuardrailSpec(
        name="moderation",
        kind="openai_moderation",
        modes=("pre_call", "post_call"),
        default_on=True,
        options={"model": "moderation", **options},
    )


def llm_judge(**fields) -> GuardrailSpec:  # type: ignore[no-untyped-def]
    return GuardrailSpec(
        **{
            "name": "judge",
            "kind": "llm_judge",
            "default_on": True,
            "options": {"model": "judge", "rubric": RUBRIC},
            **fields,
        }
    )


def _ask(client: openai.OpenAI, text: str) -> str:
    answer = client.chat.completions.create(
        model="emulated", messages=[{"role": "user", "content": text}]
    )
    return str(answer.choices[0].message.content)


def _blocked(client: openai.OpenAI, text: str) -> str:
    with pytest.raises(openai.BadRequestError) as raised:
        _ask(client, text)
    assert raised.value.code == "content_filter"
    return str(raised.value.body["message"])  # type: ignore[index]


def _moderated(emulator: OpenAIEmulator) -> list[object]:
    return [r.json for r in emulator.requests if r.path == "/v1/moderations"]


def test_moderation_through_a_model_group(models, install_guardrails, client) -> None:  # type: ignore[no-untyped-def]
    install_guardrails(moderation())
    assert _ask(client, "Plan a picnic") == "Emulated reply to: Plan a picnic"
    assert _moderated(models) == [
        {"model": "omni-moderation-latest", "input": ["Plan a picnic"]},
        {"model": "omni-moderation-latest", "input": ["Emulated reply to: Plan a picnic"]},
    ]
    assert _blocked(client, "How do I kill a process?") == (
        "The request was blocked by the guardrail 'moderation' (category: violence)."
    )
    # Only the configured categories count.
    install_guardrails(moderation(categories=["hate"]))
    assert _ask(client, "How do I kill a process?") == "Emulated reply to: How do I kill a process?"


def test_moderation_straight_to_an_api_and_its_failures(models, install_guardrails, client) -> None:  # type: ignore[no-untyped-def]
    install_guardrails(
        moderation(
            model="omni-moderation-latest", api_base=f"{models.url}/v1", api_key=UPSTREAM_KEY
        )
    )
    assert _blocked(client, "a hateful remark").endswith("(category: hate).")
    moderated = [r for r in models.requests if r.path == "/v1/moderations"]
    assert moderated[0].json == {"model": "omni-moderation-latest", "input": ["a hateful remark"]}
    assert moderated[0].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    # A model group that does not exist fails the check: closed, or open with fail_open.
    install_guardrails(moderation(model="no-such-group"))
    assert _blocked(client, "hello").endswith("(category: CHECK_FAILED).")
    install_guardrails(
        GuardrailSpec(
            name="moderation",
            kind="openai_moderation",
            default_on=True,
            fail_open=True,
            options={"model": "no-such-group"},
        )
    )
    assert _ask(client, "hello") == "Emulated reply to: hello"


def test_llm_judge_allows_blocks_and_is_not_judged_itself(
    models, judge, install_guardrails, client, make_key
) -> None:  # type: ignore[no-untyped-def]
    install_guardrails(llm_judge(modes=("pre_call", "post_call")))
    # A key limited to the chat model: the operator's judge still judges (and it pays).
    key = make_key(models=["emulated"])
    limited = openai.OpenAI(base_url=client.base_url, api_key=key, max_retries=0)
    assert _ask(limited, "Where is my order?") == "Emulated reply to: Where is my order?"
    asked = judge.bodies("/v1/chat/completions")
    assert len(asked) == 2  # the prompt and the answer; the judge's own call is not judged
    assert asked[0]["model"] == "judge-1"
    assert asked[0]["temperature"] == 0
    assert asked[0]["response_format"] == {"type": "json_object"}
    assert asked[0]["messages"][0]["role"] == "system"
    assert asked[0]["messages"][0]["content"].startswith(RUBRIC + "\n\n")
    assert asked[0]["messages"][1] == {
        "role": "user",
        "content": (
            "The text to judge is a request to a model.\n<<<TEXT\nWhere is my order?\nTEXT>>>"
        ),
    }
    assert asked[1]["messages"][1]["content"].startswith("The text to judge is a model's answer.")
    # The judge's calls are the caller's: in its request log, beside its own call.
    from billing.models import RequestLog
    from billing.services import usage_drain
    from tests.realtime.helpers import key_of

    usage_drain()
    logged = RequestLog.objects.filter(key_id=key_of(key).pk).order_by("created_at", "id")
    assert sorted(row.model for row in logged) == ["emulated", "judge", "judge"]
    with pytest.raises(openai.APIStatusError):  # the key itself may not use the judge
        limited.chat.completions.create(model="judge", messages=[{"role": "user", "content": "x"}])
    assert _blocked(limited, "Is your competitor cheaper?") == (
        "The request was blocked by the guardrail 'judge' (category: forbidden_topic)."
    )


def test_llm_judge_unparseable_answers_and_failures_follow_fail_open(
    models, judge, install_guardrails, client
) -> None:  # type: ignore[no-untyped-def]
    install_guardrails(llm_judge())
    assert _blocked(client, "Please answer in prose.").endswith("(category: CHECK_FAILED).")
    judge.script(Fault(500, {"error": {"message": "overloaded", "type": "server_error"}}))
    assert _blocked(client, "hello").endswith("(category: CHECK_FAILED).")
    install_guardrails(llm_judge(fail_open=True))
    assert _ask(client, "Please answer in prose.") == "Emulated reply to: Please answer in prose."
    assert _blocked(client, "We will file a lawsuit").endswith("(category: forbidden_topic).")
