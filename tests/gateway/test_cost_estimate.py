from __future__ import annotations

import httpx
import pytest


def test_estimate_for_a_priced_model(live_ogem, master_key: str) -> None:
    response = httpx.post(
        f"{live_ogem.url}/v1/cost/estimate",
        headers={"Authorization": f"Bearer {master_key}"},
        json={
            "model": "mock-chat",
            "messages": [{"role": "user", "content": "Hello, world!"}],
            "max_tokens": 100,
        },
    )
    assert response.status_code == 200
    body = response.json()
    # mock-chat is priced at $1 / 1M input and $2 / 1M output tokens (billing/prices/prices.yaml)
    assert body["prompt_tokens"] == 4
    assert body["max_completion_tokens"] == 100
    assert body["priced"] is True
    assert body["input_cost_usd"] == pytest.approx(4 / 1_000_000)
    assert body["max_total_cost_usd"] == pytest.approx((4 + 200) / 1_000_000)


def test_estimate_refuses_unknown_models(live_ogem, master_key: str) -> None:
    response = httpx.post(
        f"{live_ogem.url}/v1/cost/estimate",
        headers={"Authorization": f"Bearer {master_key}"},
        json={"model": "nope", "prompt": "x"},
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
