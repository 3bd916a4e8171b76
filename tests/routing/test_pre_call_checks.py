"""LiteLLM's `enable_pre_call_checks`: a prompt longer than a deployment's `max_input_tokens` is
not sent to it; a group none of whose deployments fits fails as a context-length error, so
`context_window_fallbacks` serve it. Through the live server, against the OpenAI emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import config_check
from tests.routing.conftest import served_by

LONG = [{"role": "user", "content": "word " * 200}]  # 1,000 characters: about 250 tokens
SHORT = [{"role": "user", "content": "Hello there"}]


def _limited(limit: int) -> dict[str, object]:
    return {"model_info": {"max_input_tokens": limit}}


@pytest.fixture
def groups(openai_emulator, install_deployments, deployment):
    install_deployments(
        deployment("small", model="small", params=_limited(100)),
        deployment("large", model="large", params=_limited(100_000)),
        deployment("tight", model="mixed", params=_limited(100)),
        deployment("roomy", model="mixed"),
    )
    return openai_emulator


def test_a_long_prompt_goes_to_the_larger_window_without_calling_the_small_one(
    groups, router_settings, chat
) -> None:
    router_settings(pre_call_checks=True, context_window_fallbacks={"small": ("large",)})
    response = chat("small", messages=LONG)
    assert response.status_code == 200, response.text
    assert served_by(groups) == ["large"]
    assert response.headers["x-ogem-model-group"] == "large"
    groups.reset()
    assert chat("small", messages=SHORT).status_code == 200
    assert served_by(groups) == ["small"]


def test_within_a_group_only_deployments_that_fit_are_tried(groups, router_settings, chat) -> None:
    router_settings(pre_call_checks=True)
    for _ in range(4):
        assert chat("mixed", messages=LONG).status_code == 200
    assert served_by(groups) == ["roomy"] * 4


def test_without_a_fallback_the_context_length_error_is_returned(
    groups, router_settings, chat
) -> None:
    router_settings(pre_call_checks=True)
    response = chat("small", messages=LONG)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["type"], error["param"]) == (
        "context_length_exceeded",
        "invalid_request_error",
        "messages",
    )
    assert "maximum context length is 100 tokens" in error["message"]
    assert served_by(groups) == []


def test_off_by_default_the_upstream_decides(groups, router_settings, chat) -> None:
    router_settings(context_window_fallbacks={"small": ("large",)})
    assert chat("small", messages=LONG).status_code == 200
    assert served_by(groups) == ["small"]


def test_litellm_router_settings_turn_it_on(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        """model_list:
  - model_name: small
    litellm_params: {model: openai/gpt-4o-mini}
    model_info: {max_input_tokens: 100}
router_settings:
  enable_pre_call_checks: true
"""
    )
    config, problems = config_check(str(path))
    assert [str(p) for p in problems] == []
    assert config is not None and config.router.pre_call_checks is True
