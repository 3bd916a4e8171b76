"""Routing strategies per model group: which deployment serves an attempt (docs/routing.md).

A group's strategy is, in order: its own (`router.groups.<group>.strategy` in Ogem's format), a
deployment's `routing_strategy` parameter (settable in admin), then
`router_settings.routing_strategy`, default `simple-shuffle`. A name that is not built in is a
dotted path (`package.module.Class` or `package.module:Class`) to a `RoutingStrategy` subclass.
"""

from __future__ import annotations

import importlib
import logging
import threading

from gateway.config import config_current
from gateway.strategies.base import RoutingStrategy, weighted_shuffle
from gateway.strategies.builtin import BUILTIN
from providers.base import Deployment

logger = logging.getLogger("ogem.routing")

_instances: dict[str, RoutingStrategy] = {}
_lock = threading.Lock()

__all__ = ["RoutingStrategy", "strategy_for", "strategy_get", "weighted_shuffle"]


def strategy_name(*, group: str, deployments: tuple[Deployment, ...]) -> str:
    router = config_current().router
    named = router.group_strategy.get(group)
    if named:
        return named
    for deployment in deployments:
        param = deployment.params.get("routing_strategy")
        if isinstance(param, str) and param:
            return param
    return router.strategy or "simple-shuffle"


def strategy_get(name: str) -> RoutingStrategy:
    """The process-wide instance of a strategy; an unknown one logs and falls back to shuffle."""
    strategy = _instances.get(name)
    if strategy is not None:
        return strategy
    with _lock:
        strategy = _instances.get(name)
        if strategy is None:
            strategy = _instances[name] = _build(name)
    return strategy


def strategy_for(*, group: str, deployments: tuple[Deployment, ...]) -> RoutingStrategy:
    return strategy_get(strategy_name(group=group, deployments=deployments))


def _build(name: str) -> RoutingStrategy:
    builtin = BUILTIN.get(name)
    if builtin is not None:
        return builtin()
    module_name, _, attribute = name.replace(":", ".").rpartition(".")
    try:
        loaded = getattr(importlib.import_module(module_name), attribute)
        if isinstance(loaded, type) and issubclass(loaded, RoutingStrategy):
            return loaded()
        logger.error("routing strategy %s is not a RoutingStrategy subclass", name)
    except (ImportError, AttributeError, ValueError):
        logger.exception("routing strategy %s could not be loaded", name)
    return RoutingStrategy()
