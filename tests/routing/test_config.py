"""Routing settings read from Ogem's configuration format."""

from __future__ import annotations

from gateway.config.loader import config_parse
from gateway.config.problems import Problems

CONFIG = """
models:
  - {name: stable, model: openai/gpt-4o-mini}
router:
  num_retries: 2
  queue_timeout: 3.5
  queue_depth: 7
  groups:
    stable:
      strategy: tests.routing.strategies_custom.LastListed
      split: {canary: 10}
      shadow: {model: candidate, percent: 5, max_budget: 20}
    other: {strategy: tag-based}
"""


def test_router_groups_split_shadow_and_queue_are_read() -> None:
    problems = Problems()
    config = config_parse(CONFIG, source="routing.yaml", problems=problems)
    assert [str(p) for p in problems.items] == []
    assert config is not None
    router = config.router
    assert router.num_retries == 2
    assert (router.queue_timeout, router.queue_depth) == (3.5, 7)
    assert router.group_strategy == {
        "stable": "tests.routing.strategies_custom.LastListed",
        "other": "tag-based",
    }
    assert router.traffic_split == {"stable": (("canary", 10.0),)}
    assert router.shadow == {"stable": ("candidate", 5.0, 20.0)}
