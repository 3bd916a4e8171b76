"""Routing strategies: unit checks of each rule, and live traffic moving off a slowed deployment."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from decimal import Decimal

import pytest

from gateway.context import Caller, RequestContext
from gateway.strategies import strategy_get, weighted_shuffle
from gateway.strategies.builtin import LowestCost, TagBased, UsageBased
from providers.base import Deployment, Endpoint
from tests.routing.conftest import served_by


def _d(name: str, **options) -> Deployment:
    return Deployment(
        id=f"s:{name}", model_name="g", provider="openai", upstream_model=name, **options
    )


def _ctx(**options) -> RequestContext:
    caller = options.pop("caller", Caller(is_master=True))
    return RequestContext(request_id="r", endpoint=Endpoint.CHAT, caller=caller, **options)


def test_weighted_shuffle_matches_weights_within_five_percent() -> None:
    group = (_d("a", weight=1), _d("b", weight=3), _d("c", weight=6))
    picks = Counter(weighted_shuffle(group).upstream_model for _ in range(2000))
    assert sum(picks.values()) == 2000
    for name, share in (("a", 0.1), ("b", 0.3), ("c", 0.6)):
        assert abs(picks[name] / 2000 - share) <= 0.05, picks


def test_weighted_shuffle_uses_only_the_lowest_priority() -> None:
    group = (_d("first", priority=0), _d("later", priority=1, weight=100))
    assert {weighted_shuffle(group).upstream_model for _ in range(50)} == {"first"}


def test_tag_based_prefers_matching_tags_then_default() -> None:
    group = (_d("eu", tags=("gdpr",)), _d("plain", tags=("default",)), _d("other"))
    strategy = TagBased()
    tagged = asyncio.run(strategy.choose(ctx=_ctx(tags=["gdpr"]), candidates=group))
    untagged = asyncio.run(strategy.choose(ctx=_ctx(), candidates=group))
    by_key = asyncio.run(strategy.choose(ctx=_ctx(caller=Caller(tags=("gdpr",))), candidates=group))
    assert (tagged.upstream_model, untagged.upstream_model, by_key.upstream_model) == (
        "eu",
        "plain",
        "eu",
    )


def test_lowest_cost_picks_the_cheapest_priced_deployment() -> None:
    group = (_d("gpt-4o"), _d("gpt-4o-mini"), _d("unpriced-model-x"))
    chosen = asyncio.run(
        LowestCost().choose(
            ctx=_ctx(estimated_prompt_tokens=1000, max_tokens=100), candidates=group
        )
    )
    assert chosen.upstream_model == "gpt-4o-mini"


def test_usage_based_picks_the_most_headroom(settings) -> None:
    settings.REDIS_URL = ""
    strategy = UsageBased()
    small, large = _d("small", rpm=10), _d("large", rpm=12)

    async def run() -> list[str]:
        picks = []
        for _ in range(6):
            chosen = await strategy.choose(ctx=_ctx(), candidates=(small, large))
            await strategy.started(deployment=chosen)
            picks.append(chosen.upstream_model)
        return picks

    # large has 2 more headroom: it serves until both have 10 left, then they alternate by tie.
    picks = asyncio.run(run())
    assert picks[:2] == ["large", "large"]
    assert Counter(picks) == Counter({"large": 4, "small": 2})


def test_unknown_custom_strategy_falls_back_to_shuffle() -> None:
    assert type(strategy_get("tests.routing.nowhere.Missing")).__name__ == "RoutingStrategy"
    assert type(strategy_get("tests.routing.strategies_custom:LastListed")).__name__ == "LastListed"


def test_custom_strategy_from_a_dotted_path_serves_live_traffic(
    openai_emulator, install_deployments, deployment, router_settings, chat
) -> None:
    router_settings(group_strategy={"group": "tests.routing.strategies_custom.LastListed"})
    install_deployments(deployment("one"), deployment("two"), deployment("three"))
    for _ in range(4):
        assert chat().status_code == 200
    assert served_by(openai_emulator) == ["three"] * 4


def test_region_pinning_keeps_a_key_in_its_regions(
    openai_emulator, install_deployments, deployment, live_ogem, make_key
) -> None:
    import httpx

    install_deployments(deployment("us-east", region="us"), deployment("eu-west", region="eu"))
    pinned = make_key(metadata={"regions": ["eu"]})
    nowhere = make_key(metadata={"regions": ["ap"]})

    def post(key: str) -> httpx.Response:
        return httpx.post(
            f"{live_ogem.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "group", "messages": [{"role": "user", "content": "Hi"}]},
            timeout=30,
        )

    for _ in range(6):
        assert post(pinned).status_code == 200
    assert served_by(openai_emulator) == ["eu-west"] * 6
    refused = post(nowhere)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "region_not_allowed"


def test_lowest_latency_moves_traffic_off_a_slowed_deployment(
    openai_emulator, install_deployments, deployment, router_settings, chat
) -> None:
    router_settings(strategy="latency-based-routing")
    install_deployments(deployment("fast"), deployment("slow"))
    openai_emulator.model_delays["slow"] = 0.4
    for _ in range(10):
        assert chat().status_code == 200
    picks = served_by(openai_emulator)
    # Each is tried once (no sample yet); from then on only the fast one is within 10% of best.
    assert sorted(picks[:2]) == ["fast", "slow"]
    assert picks[2:] == ["fast"] * 8


def test_least_busy_moves_traffic_off_a_slowed_deployment(
    openai_emulator, install_deployments, deployment, router_settings, chat
) -> None:
    router_settings(strategy="least-busy")
    install_deployments(deployment("fast"), deployment("slow"))
    openai_emulator.model_delays["slow"] = 2.0
    statuses: list[int] = []

    def one() -> None:
        statuses.append(chat().status_code)

    threads = []
    for _ in range(10):
        thread = threading.Thread(target=one)
        thread.start()
        threads.append(thread)
        time.sleep(0.1)
    for thread in threads:
        thread.join(30)
    assert statuses == [200] * 10
    picks = Counter(served_by(openai_emulator))
    # While the slow one holds a request it is busier than the idle fast one: it gets at most
    # the requests that arrived when both were idle before its first one started.
    assert picks["slow"] <= 2
    assert picks["fast"] >= 8


@pytest.mark.parametrize("name", ["simple-shuffle", "least-busy", "latency-based-routing"])
def test_strategies_use_the_lowest_priority_first(name) -> None:
    group = (_d("primary", priority=0), _d("backup", priority=1))
    strategy = strategy_get(name)
    chosen = {
        asyncio.run(strategy.choose(ctx=_ctx(), candidates=group)).upstream_model for _ in range(5)
    }
    assert chosen == {"primary"}


def test_price_table_knows_the_models_the_cost_test_uses() -> None:
    from billing.pricing import shipped_price

    big, mini = (
        shipped_price(model="gpt-4o", provider="openai"),
        shipped_price(model="gpt-4o-mini", provider="openai"),
    )
    assert big is not None and mini is not None
    assert mini.input < big.input
    assert isinstance(mini.input, Decimal)
