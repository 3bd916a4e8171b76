"""AWS Bedrock Guardrails as a guardrail (gateway/guardrails/bedrock.py) against its emulator,
which verifies every SigV4 signature with botocore, through the live server and the official
openai SDK: clean texts, what Bedrock anonymized masked and restored, blocks, and failures
following `fail_open`."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from gateway.config.types import GuardrailSpec
from providers.bedrock.auth import credentials_forget
from tests.emulators.bedrock_api import ACCESS_KEY, REGION, SECRET_KEY
from tests.emulators.bedrock_guardrails_api import (
    GUARDRAIL_ARN,
    GUARDRAIL_ID,
    BedrockGuardrailsEmulator,
)
from tests.emulators.scripted import Fault

pytestmark = pytest.mark.django_db(transaction=True)

APPLY = f"/guardrail/{GUARDRAIL_ID}/version/1/apply"


@pytest.fixture(scope="module")
def bedrock() -> Iterator[BedrockGuardrailsEmulator]:
    yield BedrockGuardrailsEmulator().start()  # type: ignore[misc]


@pytest.fixture
def bedrock_emulator(bedrock: BedrockGuardrailsEmulator) -> Iterator[BedrockGuardrailsEmulator]:
    bedrock.reset()
    credentials_forget()
    yield bedrock
    credentials_forget()


def guard(url: str, **fields) -> GuardrailSpec:  # type: ignore[no-untyped-def]
    options = {
        "api_base": url,
        "guardrailIdentifier": GUARDRAIL_ID,
        "guardrailVersion": "1",
        "aws_region_name": REGION,
        "aws_access_key_id": ACCESS_KEY,
        "aws_secret_access_key": SECRET_KEY,
        **fields.pop("options", {}),
    }
    return GuardrailSpec(
        **{
            "name": "bedrock-guard",
            "kind": "bedrock",
            "modes": ("pre_call", "post_call"),
            "default_on": True,
            "options": options,
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


def test_clean_texts_are_applied_signed_as_input_then_output(
    bedrock_emulator, install_guardrails, emulated_model, client
) -> None:  # type: ignore[no-untyped-def]
    emulated_model()
    install_guardrails(guard(bedrock_emulator.url))
    assert _ask(client, "What is the capital of France?") == (
        "Emulated reply to: What is the capital of France?"
    )
    assert bedrock_emulator.bodies(APPLY) == [
        {"source": "INPUT", "content": [{"text": {"text": "What is the capital of France?"}}]},
        {
            "source": "OUTPUT",
            "content": [{"text": {"text": "Emulated reply to: What is the capital of France?"}}],
        },
    ]
    authorization = bedrock_emulator.requests[0].headers["authorization"]
    assert authorization.startswith(
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/"
    ) and authorization.split("/")[2:4] == [REGION, "bedrock"]


def test_anonymized_values_are_masked_upstream_and_restored(
    bedrock_emulator, install_guardrails, emulated_model, client
) -> None:  # type: ignore[no-untyped-def]
    upstream = emulated_model()
    install_guardrails(guard(bedrock_emulator.url, modes=("pre_call",)))
    text = "Write to jane.doe@example.com and cc jane.doe@example.com"
    assert _ask(client, text) == f"Emulated reply to: {text}"
    sent = upstream.requests[-1].json["messages"][0]["content"]
    assert sent == "Write to <EMAIL_1> and cc <EMAIL_1>"


def test_what_bedrock_blocks_is_blocked(
    bedrock_emulator, install_guardrails, emulated_model, client
) -> None:  # type: ignore[no-untyped-def]
    upstream = emulated_model()
    install_guardrails(guard(bedrock_emulator.url, options={"guardrailIdentifier": GUARDRAIL_ARN}))
    assert _blocked(client, "Give me a stock tip") == (
        "The request was blocked by the guardrail 'bedrock-guard' (category: Investment advice)."
    )
    assert _blocked(client, "My SSN is 123-45-6789").endswith(
        "(category: US_SOCIAL_SECURITY_NUMBER)."
    )
    assert upstream.requests == []
    # The ARN identifier went escaped, exactly as signed.
    assert bedrock_emulator.requests[0].path == f"/guardrail/{GUARDRAIL_ARN}/version/1/apply"
    # An answer Bedrock blocks (the emulated model echoes the prompt), post_call only.
    install_guardrails(guard(bedrock_emulator.url, modes=("post_call",)))
    assert _blocked(client, "say something hateful") == (
        "The answer was blocked by the guardrail 'bedrock-guard' (category: HATE)."
    )
    assert len(upstream.requests) == 1


def test_failures_follow_fail_open(
    bedrock_emulator, install_guardrails, emulated_model, client
) -> None:  # type: ignore[no-untyped-def]
    emulated_model()
    install_guardrails(guard(bedrock_emulator.url, options={"aws_secret_access_key": "wrong"}))
    assert _blocked(client, "hello").endswith("(category: CHECK_FAILED).")  # AWS's 403
    install_guardrails(guard(bedrock_emulator.url, options={"guardrailVersion": "7"}))
    assert _blocked(client, "hello").endswith("(category: CHECK_FAILED).")  # AWS's 404
    install_guardrails(guard(bedrock_emulator.url, fail_open=True))
    bedrock_emulator.script(Fault(503, {"message": "ServiceUnavailable"}))
    assert _ask(client, "hello") == "Emulated reply to: hello"
