"""The `alerting:` section of Ogem's format and LiteLLM's `general_settings.alerting` keys
(docs/alerts.md): which rules run, their thresholds, and the channels notified."""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings

from gateway.config.fields import Reader
from gateway.config.types import ALERT_CHANNELS, ALERT_TYPES, AlertingSettings
from gateway.config.yamltree import YNode

NATIVE_KEYS = frozenset(
    {
        "channels",
        "alert_types",
        "window",
        "min_requests",
        "error_rate_threshold",
        "latency_multiplier",
        "latency_threshold_ms",
        "latency_baseline_hours",
        "spend_multiplier",
        "spend_min_usd",
        "slack_webhook_url",
        "webhook_url",
        "webhook_secret",
        "emails",
        "pagerduty_routing_key",
        "pagerduty_url",
    }
)
# LiteLLM's alert_types, read as Ogem's rules (those without one are warned about and ignored).
LITELLM_ALERT_TYPES = {
    "llm_exceptions": "error_rate",
    "llm_too_slow": "latency",
    "llm_requests_hanging": "latency",
    "outage_alerts": "deployment_down",
    "region_outage_alerts": "deployment_down",
    "cooldown_deployment": "deployment_down",
    "spend_reports": "spend_anomaly",
    # Soft-budget alerts are always on with a destination (docs/governance.md).
    "budget_alerts": "",
}


def _channels(reader: Reader, node: YNode | None) -> tuple[str, ...]:
    names = reader.strings(node)
    for name in names:
        if name not in ALERT_CHANNELS:
            reader.warning(
                node,  # type: ignore[arg-type]
                f'alerting channel "{name}" is not one of {", ".join(ALERT_CHANNELS)}; ignored',
            )
    return tuple(name for name in names if name in ALERT_CHANNELS)


# Where each channel's destination comes from when the configuration does not say.
_DESTINATIONS = {
    "slack": ("slack_webhook_url", "OGEM_ALERT_SLACK_WEBHOOK_URL", "SLACK_WEBHOOK_URL"),
    "webhook": ("webhook_url", "OGEM_ALERT_WEBHOOK_URL", "OGEM_ALERT_WEBHOOK_URL"),
    "email": ("emails", "OGEM_ALERT_EMAILS", "OGEM_ALERT_EMAILS"),
    "pagerduty": (
        "pagerduty_routing_key",
        "OGEM_ALERT_PAGERDUTY_ROUTING_KEY",
        "PAGERDUTY_ROUTING_KEY",
    ),
}


def _destinations_check(reader: Reader, node: YNode, alerting: AlertingSettings) -> None:
    """Warn about a listed channel that has nowhere to send (it stays off)."""
    for name in alerting.channels:
        field, setting, variable = _DESTINATIONS[name]
        if not getattr(alerting, field) and not getattr(settings, setting):
            reader.warning(
                node,
                f'alerting channel "{name}" has no destination ({field} or {variable}); '
                "it stays off",
            )


def alerting_read_native(reader: Reader, node: YNode | None) -> AlertingSettings | None:
    fields = reader.mapping(node)
    if fields is None:
        return None
    reader.unknown_keys(node, NATIVE_KEYS, section="alerting")  # type: ignore[arg-type]
    types = reader.strings(fields.get("alert_types")) or ALERT_TYPES
    for name in types:
        if name not in ALERT_TYPES:
            reader.error(
                fields["alert_types"],
                f'unknown alert type "{name}" (one of {", ".join(ALERT_TYPES)})',
            )
    defaults = AlertingSettings()
    rate = reader.number(fields.get("error_rate_threshold"))
    if rate is not None and rate > 1:
        reader.error(fields["error_rate_threshold"], "a share of requests: at most 1")
    window = reader.number(fields.get("window"))
    minimum = reader.integer(fields.get("min_requests"), minimum=1)
    latency = reader.number(fields.get("latency_multiplier"))
    threshold = reader.integer(fields.get("latency_threshold_ms"), minimum=1)
    baseline = reader.number(fields.get("latency_baseline_hours"))
    spend = reader.number(fields.get("spend_multiplier"))
    spend_min = reader.number(fields.get("spend_min_usd"), positive=False)
    alerting = AlertingSettings(
        channels=_channels(reader, fields.get("channels")),
        alert_types=tuple(name for name in types if name in ALERT_TYPES),
        window=window or defaults.window,
        min_requests=minimum or defaults.min_requests,
        error_rate_threshold=rate if rate is not None else defaults.error_rate_threshold,
        latency_multiplier=latency or defaults.latency_multiplier,
        latency_threshold_ms=threshold,
        latency_baseline_hours=baseline or defaults.latency_baseline_hours,
        spend_multiplier=spend or defaults.spend_multiplier,
        spend_min_usd=spend_min if spend_min is not None else defaults.spend_min_usd,
        slack_webhook_url=reader.string(fields.get("slack_webhook_url")),
        webhook_url=reader.string(fields.get("webhook_url")),
        webhook_secret=reader.string(fields.get("webhook_secret")),
        emails=reader.strings(fields.get("emails")),
        pagerduty_routing_key=reader.string(fields.get("pagerduty_routing_key")),
        pagerduty_url=reader.string(fields.get("pagerduty_url"), secret=False),
    )
    _destinations_check(reader, node, alerting)  # type: ignore[arg-type]
    return alerting


def alerting_read_litellm(reader: Reader, general: Mapping[str, YNode]) -> AlertingSettings | None:
    """`general_settings.alerting: ["slack", ...]`, `alerting_threshold` (seconds: a request
    slower than that is a latency alert) and `alert_types`; destinations come from the
    environment (SLACK_WEBHOOK_URL, ...)."""
    node = general.get("alerting")
    if node is None or node.value is None:
        return None
    channels = _channels(reader, node)
    types: list[str] = []
    types_node = general.get("alert_types")
    for name in reader.strings(types_node):
        rule = LITELLM_ALERT_TYPES.get(name)
        if rule is None:
            reader.warning(types_node, f'alert type "{name}" is not one Ogem sends; ignored')  # type: ignore[arg-type]
        elif rule and rule not in types:
            types.append(rule)
    threshold = reader.number(general.get("alerting_threshold"))
    alerting = AlertingSettings(
        channels=channels,
        alert_types=tuple(types) if types_node is not None else ALERT_TYPES,
        latency_threshold_ms=int(threshold * 1000) if threshold else None,
    )
    _destinations_check(reader, node, alerting)
    return alerting
