"""Callbacks to observability platforms, in both formats (docs/callbacks.md).

LiteLLM's: `litellm_settings.success_callback`, `failure_callback` and `callbacks` (both), with
each vendor's keys from the environment as its SDK names them, `litellm_settings.
s3_callback_params`, `litellm_settings.turn_off_message_logging` and the top-level
`callback_settings` (a `generic_api` callback of one's own name). Ogem's: a top-level `callbacks:`
mapping. Both give a `CallbackSettings`, or None when no callback is configured.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import orjson

from gateway.callbacks.registry import SINKS, sink_settings_from_environ
from gateway.callbacks.settings import CALLBACKS_ELSEWHERE, CallbackSettings, SinkSpec
from gateway.config.fields import Reader
from gateway.config.yamltree import YNode

NATIVE_KEYS = frozenset(
    {"success", "failure", "sinks", "message_logging", "queue_size", "flush_interval"}
    | {"max_retries"}
)
# LiteLLM's callback_settings entry of a generic_api callback -> the webhook sink's settings.
_GENERIC_API_KEYS = {
    "endpoint": "generic_logger_endpoint",
    "headers": "generic_logger_headers",
    "secret": "generic_logger_secret",
    "log_format": "generic_logger_log_format",
    "event_types": "generic_logger_event_types",
}
# LiteLLM's s3_callback_params Ogem reads (the S3 sink's settings keep these names).
_S3_PARAMS = (
    "s3_bucket_name",
    "s3_path",
    "s3_region_name",
    "s3_endpoint_url",
    "s3_aws_access_key_id",
    "s3_aws_secret_access_key",
    "s3_aws_session_token",
)


def _environ(reader: Reader) -> dict[str, str]:
    # A LiteLLM file's environment_variables win over the process environment (as for
    # os.environ/ references).
    return {**os.environ, **reader.environ}


def _settings_of(reader: Reader, node: YNode | None) -> dict[str, str]:
    """A mapping of settings; references (os.environ/NAME) resolved, mappings and lists kept as
    JSON text (a webhook's headers)."""
    settings: dict[str, str] = {}
    for key, child in (reader.mapping(node) or {}).items():
        if child.is_mapping or child.is_list:
            settings[key.lower()] = orjson.dumps(reader.resolved(child)).decode()
            continue
        value = reader.string(child)
        if value is not None:
            settings[key.lower()] = value
    return settings


def _names(
    reader: Reader, node: YNode | None, *, specs: dict[str, SinkSpec], tracing: list[str]
) -> tuple[str, ...]:
    """The sink names of a list; otel and prometheus recorded for tracing; an unknown name (or
    LiteLLM's custom callback class path) is a warning, and left out."""
    names: list[str] = []
    for item in reader.items(node) if node is not None and not node.is_scalar else [node]:
        if item is None:
            continue
        name = reader.string(item, secret=False)
        if not name:
            continue
        if name in CALLBACKS_ELSEWHERE:
            if name not in tracing:
                tracing.append(name)
            continue
        if name not in specs:
            if name in SINKS:
                specs[name] = SinkSpec(name=name, kind=name)
            else:
                known = ", ".join(sorted({*SINKS, *CALLBACKS_ELSEWHERE}))
                reader.warning(
                    item, f'no callback "{name}" in this build (one of: {known}); ignored'
                )
                continue
        if name not in names:
            names.append(name)
    return tuple(names)


def _specs_finish(
    reader: Reader, specs: dict[str, SinkSpec], environ: Mapping[str, str], node: YNode
) -> set[str]:
    """Each sink's settings: what its vendor's environment variables say, under what the file
    says. A sink that cannot start with them (a key missing) is a warning and left out (a
    LiteLLM file loads where its vendor keys are not set, as `check_config` on a laptop); the
    names left out are returned."""
    from gateway.callbacks.registry import sink_class

    left_out: set[str] = set()
    for name, spec in list(specs.items()):
        settings = {**sink_settings_from_environ(spec.kind, environ), **spec.settings}
        specs[name] = SinkSpec(name=name, kind=spec.kind, settings=settings)
        cls = sink_class(spec.kind)
        if cls is None:
            continue
        try:
            cls(settings)
        except ValueError as exc:
            reader.warning(node, f'callback "{name}": {exc}; left out', at_key=True)
            left_out.add(name)
            del specs[name]
    return left_out


def callbacks_read_litellm(
    reader: Reader, litellm_settings: Mapping[str, YNode], callback_settings: YNode | None
) -> CallbackSettings | None:
    specs: dict[str, SinkSpec] = {}
    for name, entry in (reader.mapping(callback_settings) or {}).items():
        fields = reader.mapping(entry) or {}
        kind = reader.string(fields.get("callback_type"), secret=False) or name
        if kind == "generic_api":
            settings: dict[str, str] = {}
            for key, value in _settings_of(reader, entry).items():
                if key in _GENERIC_API_KEYS:
                    settings[_GENERIC_API_KEYS[key]] = value
            specs[name] = SinkSpec(name=name, kind="generic_api", settings=settings)
        elif kind in SINKS:
            raw = _settings_of(reader, entry)
            raw.pop("callback_type", None)
            specs[name] = SinkSpec(name=name, kind=kind, settings=raw)
        else:
            reader.warning(entry, f'callback_type "{kind}" is not one Ogem delivers; ignored')
    s3_params = litellm_settings.get("s3_callback_params")
    if s3_params is not None:
        raw = _settings_of(reader, s3_params)
        specs.setdefault("s3", SinkSpec(name="s3", kind="s3"))
        specs["s3"] = SinkSpec(
            name="s3",
            kind="s3",
            settings={**specs["s3"].settings, **{k: v for k, v in raw.items() if k in _S3_PARAMS}},
        )
    tracing: list[str] = []
    both = _names(reader, litellm_settings.get("callbacks"), specs=specs, tracing=tracing)
    success = _names(reader, litellm_settings.get("success_callback"), specs=specs, tracing=tracing)
    failure = _names(reader, litellm_settings.get("failure_callback"), specs=specs, tracing=tracing)
    success = tuple(dict.fromkeys((*both, *success)))
    failure = tuple(dict.fromkeys((*both, *failure)))
    if not success and not failure and not tracing:
        return None
    used = {*success, *failure}
    specs = {name: spec for name, spec in specs.items() if name in used}
    first = next(
        node
        for node in (
            litellm_settings.get("callbacks"),
            litellm_settings.get("success_callback"),
            litellm_settings.get("failure_callback"),
        )
        if node is not None
    )
    left_out = _specs_finish(reader, specs, _environ(reader), first)
    off = reader.boolean(litellm_settings.get("turn_off_message_logging"))
    return CallbackSettings(
        success=tuple(name for name in success if name not in left_out),
        failure=tuple(name for name in failure if name not in left_out),
        sinks=specs,
        tracing=tuple(tracing),
        message_logging=not off,
    )


def callbacks_read_native(reader: Reader, node: YNode | None) -> CallbackSettings | None:
    mapping = reader.mapping(node)
    if mapping is None or node is None:
        return None
    reader.unknown_keys(node, NATIVE_KEYS, section="callbacks")
    specs: dict[str, SinkSpec] = {}
    for name, entry in (reader.mapping(mapping.get("sinks")) or {}).items():
        settings = _settings_of(reader, entry)
        kind = settings.pop("type", name)
        if kind not in SINKS:
            known = ", ".join(sorted(SINKS))
            reader.error(entry, f'no callback type "{kind}" in this build (one of: {known})')
            continue
        specs[name] = SinkSpec(name=name, kind=kind, settings=settings)
    tracing: list[str] = []
    success = _names(reader, mapping.get("success"), specs=specs, tracing=tracing)
    failure = _names(reader, mapping.get("failure"), specs=specs, tracing=tracing)
    used = {*success, *failure}
    specs = {name: spec for name, spec in specs.items() if name in used}
    left_out = _specs_finish(reader, specs, _environ(reader), node)
    success = tuple(name for name in success if name not in left_out)
    failure = tuple(name for name in failure if name not in left_out)
    message_logging = reader.boolean(mapping.get("message_logging"))
    queue_size = reader.integer(mapping.get("queue_size"), minimum=1)
    flush_interval = reader.number(mapping.get("flush_interval"))
    max_retries = reader.integer(mapping.get("max_retries"))
    defaults = CallbackSettings()
    return CallbackSettings(
        success=success,
        failure=failure,
        sinks=specs,
        tracing=tuple(tracing),
        message_logging=defaults.message_logging if message_logging is None else message_logging,
        queue_size=queue_size or defaults.queue_size,
        flush_interval=flush_interval or defaults.flush_interval,
        max_retries=defaults.max_retries if max_retries is None else max_retries,
    )
