"""Callbacks in both configuration formats (gateway/config/callbacks.py, docs/callbacks.md)."""

from __future__ import annotations

import pytest

from gateway.config.loader import config_parse
from gateway.config.problems import Problems
from gateway.config.types import GatewayConfig, TracingSettings


def _parse(text: str) -> tuple[GatewayConfig | None, list[str]]:
    problems = Problems()
    config = config_parse(text, source="c.yaml", problems=problems)
    return config, [p.message for p in problems.items]


def test_litellm_names_lists_and_vendor_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-1")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-1")
    monkeypatch.setenv("LANGCHAIN_API_KEY", "ls-1")
    monkeypatch.setenv("HOOK_TOKEN", "Bearer t")
    config, problems = _parse(
        """
model_list: []
litellm_settings:
  success_callback: [langfuse, s3]
  failure_callback: [langsmith, prometheus]
  callbacks: [audit, otel, my_module.handler]
  turn_off_message_logging: true
  s3_callback_params:
    s3_bucket_name: logs
    s3_aws_access_key_id: os.environ/HOOK_TOKEN
callback_settings:
  audit:
    callback_type: generic_api
    endpoint: https://logs.example.com/in
    headers: {Authorization: os.environ/HOOK_TOKEN}
"""
    )
    assert config is not None and config.callbacks is not None
    callbacks = config.callbacks
    assert callbacks.success == ("audit", "langfuse", "s3")
    assert callbacks.failure == ("audit", "langsmith")
    assert callbacks.tracing == ("otel", "prometheus")
    assert callbacks.message_logging is False
    assert callbacks.sinks["langfuse"].settings == {
        "langfuse_public_key": "pk-1",
        "langfuse_secret_key": "sk-1",
    }
    assert callbacks.sinks["langsmith"].settings["langchain_api_key"] == "ls-1"
    assert callbacks.sinks["s3"].settings == {
        "s3_bucket_name": "logs",
        "s3_aws_access_key_id": "Bearer t",
    }
    audit = callbacks.sinks["audit"]
    assert audit.kind == "generic_api"
    assert audit.settings == {
        "generic_logger_endpoint": "https://logs.example.com/in",
        "generic_logger_headers": '{"Authorization":"Bearer t"}',
    }
    assert any('no callback "my_module.handler"' in p for p in problems)


def test_otel_alone_turns_tracing_on_and_no_callbacks() -> None:
    """`callbacks: ["otel"]` is LiteLLM's way to trace: tracing on from the OTEL_* variables, and
    no callback stage on the /v1 path since no sink is named."""
    config, _ = _parse("model_list: []\nlitellm_settings:\n  callbacks: [otel]\n")
    assert config is not None
    assert (config.callbacks, config.tracing) == (None, TracingSettings())
    config, _ = _parse("model_list: []\nlitellm_settings:\n  callbacks: [prometheus]\n")
    assert config is not None and (config.callbacks, config.tracing) == (None, None)
    config, _ = _parse("models: []\ntracing: {enabled: false}\ncallbacks: {success: [otel]}\n")
    assert config is not None and config.tracing == TracingSettings(enabled=False)


def test_ogems_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    config, problems = _parse(
        """
models: []
callbacks:
  success: [langsmith, audit]
  failure: audit
  message_logging: false
  queue_size: 500
  flush_interval: 0.5
  max_retries: 5
  sinks:
    langsmith: {langsmith_api_key: k, langsmith_project: p}
    audit:
      type: webhook
      generic_logger_endpoint: https://hooks.example.com/ogem
      generic_logger_secret: os.environ/HOOK_SECRET
"""
    )
    assert config is not None and config.callbacks is not None, problems
    callbacks = config.callbacks
    assert (callbacks.success, callbacks.failure) == (("langsmith", "audit"), ("audit",))
    assert (callbacks.queue_size, callbacks.flush_interval, callbacks.max_retries) == (500, 0.5, 5)
    assert callbacks.message_logging is False
    assert callbacks.sinks["audit"].kind == "webhook"
    assert callbacks.sinks["audit"].settings["generic_logger_secret"] == "s3cret"


def test_an_unknown_type_is_an_error_and_a_missing_key_a_warning() -> None:
    config, problems = _parse(
        """
models: []
callbacks:
  success: [x, langsmith]
  sinks:
    x: {type: carrier-pigeon}
"""
    )
    assert config is None
    assert any('no callback type "carrier-pigeon"' in p for p in problems)
    config, problems = _parse("models: []\ncallbacks:\n  success: [langsmith]\n")
    assert config is not None and config.callbacks is None  # nothing left to deliver to
    assert any("langsmith needs LANGSMITH_API_KEY" in p for p in problems)
