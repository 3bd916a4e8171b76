"""The Grafana dashboard shipped in docker/grafana (docs/metrics.md): valid JSON whose every query
names series Ogem exports, and docs/metrics.md naming every series."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import gateway.metrics  # noqa: F401  (the instruments, as a served process has them)
import ogem_site.metrics  # noqa: F401
from gateway.metrics import SCRAPED_METRICS

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docker" / "grafana" / "ogem-dashboard.json"
SERIES = re.compile(r"\bogem_[a-z0-9_]+")


def _exported() -> set[str]:
    """Every series name Ogem's instruments and scrape-time renders write."""
    names = set(SCRAPED_METRICS)
    for family in REGISTRY.collect():
        if family.name.startswith("ogem_"):
            names.add(family.name)
            names.update(sample.name for sample in family.samples)
            if family.type == "counter":
                names.add(f"{family.name}_total")
            if family.type == "histogram":
                names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "count", "sum"))
    return names


def _panels(panels: list[dict]) -> list[dict]:
    found = []
    for panel in panels:
        found.append(panel)
        found.extend(_panels(panel.get("panels", [])))
    return found


def test_every_dashboard_query_names_exported_series() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "ogem-gateway"
    exported = _exported()
    expressions = [
        target["expr"]
        for panel in _panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]
    variables = [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    assert len(expressions) >= 30
    used = set()
    for expr in [*expressions, *variables]:
        names = SERIES.findall(expr)
        assert names, expr
        assert set(names) <= exported, (expr, set(names) - exported)
        used.update(names)
    # The list, each on the dashboard.
    for name in (
        "ogem_model_request_duration_seconds_bucket",
        "ogem_time_to_first_token_seconds_bucket",
        "ogem_time_per_output_token_seconds_bucket",
        "ogem_tokens_total",
        "ogem_spend_usd_total",
        "ogem_upstream_errors_total",
        "ogem_refusals_total",
        "ogem_cache_requests_total",
        "ogem_deployment_up",
        "ogem_deployment_circuit_state",
        "ogem_routing_queue_depth",
        "ogem_celery_queue_length",
        "ogem_celery_task_failures_total",
        "ogem_usage_stream_backlog",
    ):
        assert name in used, name
    ids = [panel["id"] for panel in _panels(dashboard["panels"])]
    assert len(ids) == len(set(ids))


def test_docs_name_every_series() -> None:
    docs = (ROOT / "docs" / "metrics.md").read_text()
    families = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in REGISTRY.collect()
        if family.name.startswith("ogem_")
    }
    missing = sorted(name for name in families | set(SCRAPED_METRICS) if f"`{name}" not in docs)
    assert not missing
    assert "docker/grafana/ogem-dashboard.json" in docs
    assert "(metrics.md)" in (ROOT / "docs" / "index.md").read_text()
