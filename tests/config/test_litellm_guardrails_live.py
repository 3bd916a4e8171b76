"""A LiteLLM config.yaml's `guardrails:` section is wired into /v1, not only parsed: through the
live server with the official SDK, a default-on PII guardrail written as LiteLLM users write it
masks an email before the upstream sees it and blocks a card number."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest

from gateway.config import config_check
from gateway.config import watch as config_watch
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.openai_api import OpenAIEmulator

pytestmark = pytest.mark.live


@pytest.fixture
def guarded(
    openai_emulator: OpenAIEmulator,
    write_config: Callable[[str], str],
    install_deployments: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:
    monkeypatch.setenv("WIRING_UPSTREAM_KEY", UPSTREAM_KEY)
    path = write_config(
        f"""
        model_list:
          - model_name: guarded
            litellm_params:
              model: openai/gpt-4o-mini
              api_base: {openai_emulator.url}/v1
              api_key: os.environ/WIRING_UPSTREAM_KEY
        guardrails:
          - guardrail_name: pii
            litellm_params:
              guardrail: presidio
              mode: pre_call
              default_on: true
              pii_entities_config:
                CREDIT_CARD: BLOCK
                EMAIL_ADDRESS: MASK
        """
    )
    config, problems = config_check(path)
    assert [str(p) for p in problems] == []
    assert config is not None
    previous = config_watch._current
    config_watch._current = config
    install_deployments(*config.deployments)
    yield
    config_watch._current = previous


def test_litellm_guardrail_masks_and_blocks_on_v1(
    guarded: None, sdk: openai.OpenAI, openai_emulator: OpenAIEmulator
) -> None:
    reply = sdk.chat.completions.create(
        model="guarded",
        messages=[{"role": "user", "content": "Write to jane.doe@example.com please"}],
    )
    assert reply.choices[0].message.content
    sent = openai_emulator.last.json["messages"][0]["content"]
    assert "jane.doe@example.com" not in sent
    assert "EMAIL_ADDRESS" in sent

    openai_emulator.reset()
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(
            model="guarded",
            messages=[{"role": "user", "content": "My card is 4111 1111 1111 1111"}],
        )
    assert refused.value.body["code"] == "content_filter"  # type: ignore[index]
    assert openai_emulator.requests == []
