"""Prices below zero in a configuration (Ogem's `params`, LiteLLM's `litellm_params` and
`model_info`) and in database rows are reported with their location and never applied."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from gateway.config.database import database_deployments
from gateway.config.problems import Problems
from tests.factories import ModelDeploymentFactory, OrganizationFactory

pytestmark = pytest.mark.django_db


def _check(path: str) -> tuple[int, list[str]]:
    out = StringIO()
    try:
        call_command("check_config", path, stdout=out, no_color=True)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue().splitlines()
    return 0, out.getvalue().splitlines()


def test_native_format_prices_below_zero_are_errors(write_config) -> None:
    path = write_config(
        """
        models:
          - name: a
            provider: mock
            model: mock-chat
            params:
              input_cost_per_token: -1
              output_cost_per_token: 0.000002
              cache_read_input_token_cost: free
        """
    )
    code, lines = _check(path)
    assert code == 1
    assert lines == [
        f"{path}:6:29: error: models[0].params.input_cost_per_token: input_cost_per_token "
        "must be a price of 0 or more, got -1",
        f"{path}:8:36: error: models[0].params.cache_read_input_token_cost: "
        "cache_read_input_token_cost must be a number, got 'free'",
        f"{path}: invalid (2 errors, 0 warnings)",
    ]


def test_litellm_format_prices_below_zero_are_errors(write_config) -> None:
    path = write_config(
        """
        model_list:
          - model_name: a
            litellm_params:
              model: mock/mock-chat
              output_cost_per_token: -0.5
            model_info:
              input_cost_per_token: -0.000001
              output_cost_per_token: 0.000002
        """
    )
    code, lines = _check(path)
    assert code == 1
    assert lines == [
        f"{path}:5:30: error: model_list[0].litellm_params.output_cost_per_token: "
        "output_cost_per_token must be a price of 0 or more, got -0.5",
        f"{path}:7:29: error: model_list[0].model_info.input_cost_per_token: "
        "input_cost_per_token must be a price of 0 or more, got -1e-06",
        f"{path}: invalid (2 errors, 0 warnings)",
    ]


def test_prices_of_zero_and_more_load(write_config) -> None:
    path = write_config(
        """
        model_list:
          - model_name: a
            litellm_params: {model: mock/mock-chat, input_cost_per_token: 0}
            model_info: {output_cost_per_token: "0.000002"}
        """
    )
    code, lines = _check(path)
    assert code == 0
    assert lines == [
        f"{path}: OK, litellm format, 1 deployment in 1 model group (0 errors, 0 warnings)"
    ]


def test_a_database_row_priced_below_zero_is_skipped(db) -> None:  # type: ignore[no-untyped-def]
    # Written before the API refused it.
    row = ModelDeploymentFactory(
        model_name="neg",
        organization=OrganizationFactory(),
        params={"input_cost_per_token": -1, "model_info": {"output_cost_per_token": "-2"}},
    )
    kept = ModelDeploymentFactory(model_name="ok", params={"input_cost_per_token": 0})
    problems = Problems()
    deployments = database_deployments(problems=problems)
    assert [d.id for d in deployments] == [f"db:{kept.pk}"]
    assert [str(p) for p in problems.items] == [
        f"database:ModelDeployment#{row.pk}: error: input_cost_per_token must be a price of 0 "
        "or more, got -1; model_info.output_cost_per_token must be a price of 0 or more, "
        "got '-2'; skipped"
    ]


def test_litellm_base_model_prices_a_deployment_named_otherwise() -> None:
    """LiteLLM's `model_info.base_model`: an Azure deployment's own name hides the model it
    serves, and is charged that model's table price (the deployment's own prices still win)."""
    from billing.pricing import deployment_price, shipped_price
    from providers.base import Deployment

    table = shipped_price(model="gpt-4o", provider="azure")
    assert table is not None

    def deployment(info: dict[str, object]) -> Deployment:
        return Deployment(
            id="test:azure-mine:0",
            model_name="mine",
            provider="azure",
            upstream_model="my-gpt4o-deployment",
            params={"model_info": info},
        )

    named = deployment_price(deployment=deployment({"base_model": "azure/gpt-4o"}))
    assert named is not None and (named.input, named.output) == (table.input, table.output)
    bare = deployment_price(deployment=deployment({"base_model": "gpt-4o"}))
    assert bare is not None and bare.input > 0
    own = deployment_price(
        deployment=deployment({"base_model": "azure/gpt-4o", "input_cost_per_token": 0.5})
    )
    assert own is not None and (own.input, own.output) == (Decimal("0.5"), table.output)
    assert deployment_price(deployment=deployment({})) is None
