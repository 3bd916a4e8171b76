"""Analytics of real /v1 traffic, end to end: requests through the OpenAI SDK on a live Ogem,
drained into the request log, read back with Ogem's Python SDK (docs/analytics.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import openai
import pytest
from ogem_sdk import Ogem

from billing.analytics import percentile_cont
from billing.models import RequestLog
from tests.live import LiveServer, usage_record_now

pytestmark = pytest.mark.live


def test_the_sdk_reads_the_figures_of_real_requests(live_ogem: LiveServer, master_key: str) -> None:
    start = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    with Ogem(base_url=live_ogem.url, api_key=master_key) as ogem:
        organization = ogem.organizations.create(name="Acme", slug="acme")
        team = ogem.teams.create(organization=organization["id"], name="Search", slug="search")
        key = ogem.keys.create(team=team["id"], name="search-prod", max_budget="5")
        chat = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=key["key"], max_retries=0)
        messages = [{"role": "user", "content": "hello"}]
        for _ in range(2):
            chat.chat.completions.create(model="mock-chat", messages=messages)
        stream = chat.chat.completions.create(model="mock-chat", messages=messages, stream=True)
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        usage_record_now()

        logs = list(RequestLog.objects.filter(team_id=team["id"]))
        assert len(logs) == 3
        latencies = sorted(log.latency_ms for log in logs)
        (ttft,) = [log.ttft_ms for log in logs if log.stream]
        assert ttft is not None

        query = {"start": start, "bucket": "hour", "team": team["id"]}
        (row,) = ogem.analytics.performance(**query)["results"]
        assert row["model"] == "mock-chat"
        total = row["total"]
        assert (total["requests"], total["errors"], total["error_rate"]) == (3, 0, 0.0)
        assert total["latency_p50_ms"] == percentile_cont(latencies, 0.5)
        assert total["latency_p95_ms"] == pytest.approx(percentile_cont(latencies, 0.95), abs=1e-3)
        assert total["ttft_p50_ms"] == ttft

        spent = sum((log.cost for log in logs), Decimal(0))
        assert spent > 0
        usage = ogem.analytics.usage(**query, group_by="model")
        assert [(r["model"], r["total"]["requests"]) for r in usage["results"]] == [
            ("mock-chat", 3)
        ]
        assert Decimal(usage["total"]["spend"]) == spent

        insights = ogem.analytics.insights(start=start, team=team["id"])
        assert insights["cheaper_models"]["results"] == []  # mock-chat is the only chat model
        (budget,) = [b for b in insights["budgets"] if b.get("key") == key["id"]]
        assert Decimal(budget["spend"]) == spent and budget["exhausted"] is False
        assert key["id"] not in {k["id"] for k in insights["unused_keys"]}
        assert ogem.analytics.cache(**query)["total"]["requests"] == 0  # no cache configured
