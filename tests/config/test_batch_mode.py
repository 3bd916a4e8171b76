"""A model group's batch mode (`batch_mode` in a deployment's params, docs/batches.md), in both
formats: "ogem" (the default) or "passthrough"; another value is an error, and pass-through on a
provider without a batch API a warning."""

from __future__ import annotations

import pytest

from gateway.config import config_check

pytestmark = pytest.mark.django_db


def test_batch_mode_in_both_formats(write_config) -> None:  # type: ignore[no-untyped-def]
    litellm = write_config(
        """
        model_list:
          - model_name: claude
            litellm_params: {model: anthropic/claude-3-5-haiku-20241022, batch_mode: passthrough}
          - model_name: gpt
            litellm_params: {model: openai/gpt-4o-mini}
        """
    )
    config, problems = config_check(litellm)
    assert config is not None and not problems
    modes = {d.model_name: d.params.get("batch_mode") for d in config.deployments}
    assert modes == {"claude": "passthrough", "gpt": None}
    native = write_config(
        """
        version: 1
        models:
          - name: flash
            provider: gemini
            model: gemini-2.0-flash
            params: {batch_mode: passthrough}
        """
    )
    config, problems = config_check(native)
    assert config is not None and not problems
    assert config.deployments[0].params["batch_mode"] == "passthrough"


def test_a_bad_batch_mode_is_reported(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        """
        model_list:
          - model_name: a
            litellm_params: {model: openai/gpt-4o-mini, batch_mode: passthru}
          - model_name: b
            litellm_params: {model: mistral/mistral-small-latest, batch_mode: passthrough}
        """
    )
    _, problems = config_check(path)
    assert [str(p) for p in problems] == [
        f"{path}:2:5: error: model_list[0]: "
        'batch_mode "passthru" is not one of ogem, passthrough; deployment skipped',
        f"{path}:4:5: warning: model_list[1]: "
        'provider "mistral" has no batch API Ogem passes batches to '
        "(openai, azure, anthropic, gemini); its batches are run by Ogem",
    ]
