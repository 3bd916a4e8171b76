"""The callback names the configuration accepts (LiteLLM's names), and the class of each.

Classes are imported when a configuration names them, so a process without callbacks loads none.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from gateway.callbacks.base import Sink

# name -> "module:Class"; LiteLLM's spellings where it has several.
SINKS: dict[str, str] = {
    "langfuse": "gateway.callbacks.langfuse:LangfuseSink",
    "langsmith": "gateway.callbacks.langsmith:LangSmithSink",
    "generic_api": "gateway.callbacks.webhook:WebhookSink",
    "generic": "gateway.callbacks.webhook:WebhookSink",
    "webhook": "gateway.callbacks.webhook:WebhookSink",
    "s3": "gateway.callbacks.s3:S3Sink",
    # docs/callbacks-vendors.md
    "datadog": "gateway.callbacks.datadog_logs:DatadogLogsSink",
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


def sink_environment(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(names, prefixes) of the environment variables a sink's settings come from: its class's
    `environment` and `environment_prefixes` when it declares them, else every variable that
    starts with its name in capitals (`langfuse` -> `LANGFUSE_`)."""
    cls = sink_class(name)
    names = tuple(getattr(cls, "environment", ()))
    prefixes = tuple(getattr(cls, "environment_prefixes", ()))
    if not names and not prefixes:
        prefixes = (f"{name.upper()}_",)
    return names, prefixes


def sink_settings_from_environ(name: str, environ: Mapping[str, str]) -> dict[str, str]:
    """A sink's settings from `environ`, keyed by the lowercase variable names (LiteLLM's
    callback_vars spell them so: `LANGFUSE_PUBLIC_KEY` -> `langfuse_public_key`)."""
    names, prefixes = sink_environment(name)
    return {
        key.lower(): value
        for key, value in environ.items()
        if value and (key in names or key.startswith(prefixes))
    }
