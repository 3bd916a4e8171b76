"""The JSON Schema of Ogem's own configuration format, built from the key sets the loader
declares (native.py, cache.py), so a key added there without a type here fails `config_schema`.

It serves editors and `ogem config schema`; the loader stays the judge (`check_config` reports
what a schema cannot: unknown model groups, prices, providers, secret references).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gateway.config import alerting, cache, callbacks, guardrails, native, overlays
from gateway.config.types import (
    ALERT_CHANNELS,
    ALERT_TYPES,
    CACHE_SCOPES,
    GUARDRAIL_KINDS,
    ROUTING_STRATEGIES,
)

SCHEMA_ID = "https://ogem.dev/schemas/config.schema.json"

_STRING: dict[str, Any] = {"type": "string"}
_BOOLEAN: dict[str, Any] = {"type": "boolean"}
_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
_POSITIVE_COUNT: dict[str, Any] = {"type": "integer", "minimum": 1}
_SEVERITY: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": 7}
_SECONDS: dict[str, Any] = {"type": "number", "exclusiveMinimum": 0}
_SECONDS_OR_ZERO: dict[str, Any] = {"type": "number", "minimum": 0}
# A single string is read as a list of one.
_STRINGS: dict[str, Any] = {"anyOf": [_STRING, {"type": "array", "items": _STRING}]}
_FALLBACK_MAP: dict[str, Any] = {"type": "object", "additionalProperties": _STRINGS}
_FALLBACKS: dict[str, Any] = {"anyOf": [_FALLBACK_MAP, {"type": "array", "items": _FALLBACK_MAP}]}


def _object(
    keys: Iterable[str], types: Mapping[str, dict[str, Any]], *, description: str
) -> dict[str, Any]:
    """Every declared key typed (a KeyError names a key the loader reads but this file does not
    describe); unknown keys are flagged, as the loader warns about and ignores them."""
    return {
        "type": "object",
        "description": description,
        "properties": {key: types[key] for key in sorted(keys)},
        "additionalProperties": False,
    }


def config_schema() -> dict[str, Any]:
    timeouts = _object(
        native._TIMEOUT_KEYS,
        dict.fromkeys(native._TIMEOUT_KEYS, _SECONDS),
        description="Seconds: connect, first byte, whole request.",
    )
    model = _object(
        native._MODEL_KEYS,
        {
            "id": _STRING,
            "name": {**_STRING, "description": "The public model name (its model group)."},
            "provider": _STRING,
            "model": {
                **_STRING,
                "description": 'The upstream model; without "provider", "provider/model".',
            },
            "api_base": _STRING,
            "api_key": {**_STRING, "description": "os.environ/NAME or file:///path, not a key."},
            "api_version": _STRING,
            "weight": _POSITIVE_COUNT,
            "priority": {"type": "integer"},
            "region": _STRING,
            "tags": _STRINGS,
            "rpm": _COUNT,
            "tpm": _COUNT,
            "timeouts": timeouts,
            "proxy": _STRING,
            "params": {"type": "object", "description": "Provider parameters and prices."},
            "access_groups": _STRINGS,
            "organization": {**_STRING, "description": "An organization's slug."},
            "max_parallel_requests": _POSITIVE_COUNT,
            "drop_params": _BOOLEAN,
            "modify_params": _BOOLEAN,
            "guardrails": {**_STRINGS, "description": "Guardrails every request to it runs."},
        },
        description="One deployment of a model group.",
    )
    strategy = {"enum": sorted(ROUTING_STRATEGIES)}
    group = _object(
        ("strategy", "split", "shadow"),
        {
            "strategy": strategy,
            "split": {"type": "object", "additionalProperties": {"type": "number"}},
            "shadow": _object(
                ("model", "percent", "max_budget"),
                {"model": _STRING, "percent": {"type": "number"}, "max_budget": _SECONDS},
                description="Mirror a share of the traffic to another model.",
            ),
        },
        description="Routing of one model group.",
    )
    alias = {
        "anyOf": [
            _STRING,
            _object(
                ("model", "hidden"),
                {"model": _STRING, "hidden": _BOOLEAN},
                description="An alias hidden from /v1/models.",
            ),
        ]
    }
    router = _object(
        native._ROUTER_KEYS,
        {
            "strategy": strategy,
            "num_retries": _COUNT,
            "timeout": _SECONDS,
            "stream_timeout": _SECONDS,
            "allowed_fails": _COUNT,
            "cooldown_time": _SECONDS_OR_ZERO,
            "retry_after": _SECONDS_OR_ZERO,
            "fallbacks": _FALLBACKS,
            "context_window_fallbacks": _FALLBACKS,
            "content_policy_fallbacks": _FALLBACKS,
            "default_fallbacks": _STRINGS,
            "aliases": {"type": "object", "additionalProperties": alias},
            "groups": {"type": "object", "additionalProperties": group},
            "queue_timeout": _SECONDS_OR_ZERO,
            "queue_depth": _POSITIVE_COUNT,
            "pre_call_checks": _BOOLEAN,
        },
        description="Routing, retries and fallbacks.",
    )
    settings = _object(
        native._SETTINGS_KEYS,
        {
            "drop_params": _BOOLEAN,
            "modify_params": _BOOLEAN,
            "max_parallel_requests": _POSITIVE_COUNT,
            "global_max_parallel_requests": _POSITIVE_COUNT,
        },
        description="Defaults for every deployment.",
    )
    s3 = _object(
        cache._S3_KEYS,
        {
            **dict.fromkeys(cache._S3_KEYS, _STRING),
            "min_bytes": _COUNT,
            "timeout": _SECONDS,
        },
        description="Large cached answers in S3.",
    )
    semantic = _object(
        cache._SEMANTIC_KEYS,
        {
            "enabled": _BOOLEAN,
            "model": {**_STRING, "description": "The embedding model group."},
            "similarity_threshold": {"type": "number", "minimum": 0, "maximum": 1},
            "endpoints": _STRINGS,
            "max_entries": _POSITIVE_COUNT,
            "timeout": _SECONDS,
            "max_index_bytes": _POSITIVE_COUNT,
        },
        description="The semantic cache tier.",
    )
    cache_schema = _object(
        cache.NATIVE_KEYS,
        {
            "type": {"enum": [*cache._TYPES, *cache._LATER_TYPES]},
            "ttl": _SECONDS,
            "max_ttl": _SECONDS,
            "namespace": _STRING,
            "scope": {"enum": list(CACHE_SCOPES)},
            "mode": {"enum": ["default_on", "default_off"]},
            "local_max_bytes": _COUNT,
            "charge_hits": _BOOLEAN,
            "ignore_params": _STRINGS,
            "sampled": _BOOLEAN,
            "enabled": _BOOLEAN,
            "endpoints": _STRINGS,
            "s3": s3,
            "semantic": semantic,
        },
        description="The response cache.",
    )
    guardrail = {
        "type": "object",
        "description": "One guardrail (docs/guardrails.md); each kind adds its own settings.",
        "required": ["name", "kind"],
        "properties": {
            "name": _STRING,
            "kind": {"enum": list(GUARDRAIL_KINDS)},
            "models": _STRINGS,
            "mode": {"enum": list(guardrails.MODES)},
            "action": {"enum": list(guardrails.ACTIONS)},
            "default_on": _BOOLEAN,
            "enforced": _BOOLEAN,
            "requestable": _BOOLEAN,
            "restore": _BOOLEAN,
            "fail_open": _BOOLEAN,
            "timeout": _SECONDS,
            # The vendors' settings (docs/guardrails.md); each kind reads its own.
            "api_key": _STRING,
            "api_base": _STRING,
            "api_version": _STRING,
            "project_id": _STRING,
            "categories": _STRINGS,
            "severity_threshold": _SEVERITY,
            "severity_threshold_by_category": {
                "type": "object",
                "propertyNames": {"enum": list(guardrails.HARM_CATEGORIES)},
                "additionalProperties": _SEVERITY,
            },
            "blocklistNames": _STRINGS,
            "haltOnBlocklistHit": _BOOLEAN,
            "outputType": {"enum": list(guardrails.OUTPUT_TYPES)},
            "guardrailIdentifier": _STRING,
            "guardrailVersion": {"type": ["string", "integer"]},
            **dict.fromkeys(guardrails.AWS_PARAMS, _STRING),
            "model": _STRING,
            "rubric": _STRING,
            "max_tokens": _POSITIVE_COUNT,
            "json_mode": _BOOLEAN,
        },
    }
    sink = {
        "type": "object",
        "description": "A callback's settings: `type` (a callback name, when the key is a name "
        "of one's own) and the vendor's settings as its environment variables are named, in "
        "lowercase (langfuse_public_key, langsmith_project, generic_logger_endpoint, "
        "s3_bucket_name, ...); values may be os.environ/NAME.",
        "additionalProperties": {"anyOf": [_STRING, {"type": "number"}, {"type": "object"}]},
    }
    callbacks_schema = _object(
        callbacks.NATIVE_KEYS,
        {
            "success": {**_STRINGS, "description": "Callbacks that get successful requests."},
            "failure": {**_STRINGS, "description": "Callbacks that get failed requests."},
            "sinks": {"type": "object", "additionalProperties": sink},
            "message_logging": _BOOLEAN,
            "queue_size": _POSITIVE_COUNT,
            "flush_interval": _SECONDS,
            "max_retries": _COUNT,
        },
        description="Callbacks to observability platforms (docs/callbacks.md).",
    )
    alerting_schema = _object(
        alerting.NATIVE_KEYS,
        {
            "channels": {"type": "array", "items": {"enum": list(ALERT_CHANNELS)}},
            "alert_types": {"type": "array", "items": {"enum": list(ALERT_TYPES)}},
            "window": {**_SECONDS, "description": "Seconds of request log the rules read."},
            "min_requests": _POSITIVE_COUNT,
            "error_rate_threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "latency_multiplier": _SECONDS,
            "latency_threshold_ms": _POSITIVE_COUNT,
            "latency_baseline_hours": _SECONDS,
            "spend_multiplier": _SECONDS,
            "spend_min_usd": _SECONDS_OR_ZERO,
            "slack_webhook_url": {**_STRING, "description": "os.environ/NAME: it is a secret."},
            "webhook_url": _STRING,
            "webhook_secret": {**_STRING, "description": "os.environ/NAME or file:///path."},
            "emails": _STRINGS,
            "pagerduty_routing_key": {**_STRING, "description": "os.environ/NAME."},
            "pagerduty_url": _STRING,
        },
        description="Alert rules and their channels (docs/alerts.md).",
    )
    root = _object(
        native.TOP_LEVEL_KEYS,
        {
            "version": {"const": 1},
            "models": {"type": "array", "items": model},
            "router": router,
            "settings": settings,
            "cache": cache_schema,
            "guardrails": {"type": "array", "items": guardrail},
            "callbacks": callbacks_schema,
            "alerting": alerting_schema,
            "tracing": _object(
                native.TRACING_KEYS,
                {
                    "enabled": _BOOLEAN,
                    "endpoint": _STRING,
                    "protocol": {"enum": list(native.TRACING_PROTOCOLS)},
                    "service_name": _STRING,
                    "capture_content": _BOOLEAN,
                    "sample_rate": {"type": "number", "minimum": 0, "maximum": 1},
                },
                description="OpenTelemetry traces of /v1 requests (docs/tracing.md).",
            ),
        },
        description="Ogem's configuration file (docs/configuration.md).",
    )
    overlay = {
        **root,
        "properties": dict(root["properties"]),
        "description": "Merged over the file when OGEM_ENV names it.",
    }
    root["properties"]["environments"] = {
        "type": "object",
        "description": "Per-environment overlays (docs/configuration.md, Environments).",
        "propertyNames": {"pattern": overlays.ENVIRONMENT_NAME},
        "additionalProperties": overlay,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Ogem configuration",
        **root,
    }
