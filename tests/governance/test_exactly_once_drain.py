"""Exactly once through a drain killed with SIGKILL (the issue's soak, scaled to this machine).

Scale: 3,000 usage events (10% of them cancelled streams, 100 emitted twice) already in the
Redis stream, as the web tier leaves them; a separate drain process is SIGKILLed while it writes,
and a second consumer takes over its unacknowledged entries. The web-worker kill of the full soak
is not part of this test. Needs real PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Sum

from billing.models import RequestLog
from billing.services import usage_drain
from billing.usage import USAGE_GROUP, usage_event_encode
from ogem_site.redis import redis_client_sync

REPO = Path(__file__).resolve().parents[2]
EVENTS = 3000

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"),
        reason="needs PostgreSQL and Redis",
    ),
]

DRAIN = """
import os
from billing.services import usage_drain
name = os.environ["SOAK_CONSUMER"]
while True:
    usage_drain(batch_size=10, consumer=name, claim_idle_ms=600_000, max_batches=1)
"""


def _event(i: int) -> dict[str, object]:
    prompt, completion = 5 + i % 17, i % 23
    return {
        "request_id": f"soak-{i}",
        "ts": 1_790_000_000 + i / 10,
        "organization_id": 1,
        "team_id": 2,
        "key_id": 3 + i % 5,
        "endpoint": "chat/completions",
        "model": "mock-chat",
        "status_code": 200,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": str(Decimal(prompt + completion) / Decimal(1_000_000)),
        "stream": i % 10 == 0,
        "cancelled": i % 10 == 0,
    }


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def test_a_drain_killed_mid_write_loses_and_doubles_nothing(
    settings, usage_stream, tmp_path
) -> None:
    settings.REDIS_URL = os.environ["REDIS_URL"]
    client = redis_client_sync()
    events = [_event(i) for i in range(EVENTS)]
    pipe = client.pipeline(transaction=False)
    for event in events + events[:100]:  # the first 100 emitted twice
        pipe.xadd(usage_stream, {"e": usage_event_encode(event)})
    pipe.execute()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ogem_site.settings.test",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": os.environ["REDIS_URL"],
        "OGEM_USAGE_STREAM": settings.OGEM_USAGE_STREAM,
        "OGEM_VAR_DIR": str(tmp_path / "var"),
    }
    # Kill drains until one dies holding entries it read but never acknowledged (a batch in
    # flight, maybe already committed): the case that loses or doubles usage if anything does.
    pending_at_kill = []
    for cycle in range(6):
        target = RequestLog.objects.count() + 150
        drain = subprocess.Popen(
            [sys.executable, "manage.py", "shell", "-c", DRAIN],
            cwd=REPO,
            env={**env, "SOAK_CONSUMER": f"doomed-{cycle}"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 120
            while RequestLog.objects.count() < target and time.monotonic() < deadline:
                assert drain.poll() is None, "the drain process died on its own"
                time.sleep(0.01)
            os.kill(drain.pid, signal.SIGKILL)
            drain.wait(10)
        finally:
            if drain.poll() is None:
                drain.kill()
        pending_at_kill.append(client.xpending(usage_stream, USAGE_GROUP)["pending"])
        if pending_at_kill[-1]:
            break
    assert pending_at_kill[-1] > 0, pending_at_kill
    assert RequestLog.objects.count() < EVENTS  # killed mid-way

    time.sleep(0.05)
    while usage_drain(consumer="survivor", claim_idle_ms=10, batch_size=200):
        pass
    assert client.xpending(usage_stream, USAGE_GROUP)["pending"] == 0
    assert client.xlen(usage_stream) == 0
    totals = RequestLog.objects.aggregate(tokens=Sum("total_tokens"), cost=Sum("cost"))
    assert RequestLog.objects.count() == EVENTS
    assert totals["tokens"] == sum(int(e["total_tokens"]) for e in events)
    assert totals["cost"] == sum(Decimal(str(e["cost"])) for e in events)
    assert RequestLog.objects.filter(cancelled=True).count() == EVENTS // 10
