"""The callback names the configuration accepts (LiteLLM's names), and the class of each.

Classes are imported when a configuration names them, so a process without callbacks loads none.
"""

from __future__ import annotations

import importlib

from gateway.callbacks.base import Sink

# name -> "module:Class"; LiteLLM's spellings where it has several.
SINKS: dict[str, str] = {
    # docs/callbacks-vendors.md
    "datadog_llm_observability": "gateway.callbacks.datadog_llm_obs:DatadogLLMObsSink",
    "newrelic": "gateway.callbacks.newrelic:NewRelicSink",
    "arize": "gateway.callbacks.arize:ArizeSink",
    "arize_phoenix": "gateway.callbacks.phoenix:PhoenixSink",
    "weave": "gateway.callbacks.weave:WeaveSink",
    "weave_otel": "gateway.callbacks.weave:WeaveSink",
    "mlflow": "gateway.callbacks.mlflow:MlflowSink",
    "helicone": "gateway.callbacks.helicone:HeliconeSink",
}


def sink_class(name: str) -> type[Sink] | None:
    target = SINKS.get(name)
    if target is None:
        return None
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)  # type: ignore[no-any-return]
