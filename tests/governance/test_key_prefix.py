"""Two Ogem installations on one Redis database, told apart by OGEM_CACHE_PREFIX alone.

Each installation is a web worker process with production settings (Django's cache, governance,
the key cache, usage, routing, Channels and Celery all on Redis). What one writes carries its
prefix, and its usage is drained only by itself.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis
from django.db import connection

from billing.models import RequestLog
from billing.services import usage_drain
from keys.services import key_create
from ogem_site.redis import redis_client_sync
from tests.emulators.openai_api import OpenAIEmulator
from tests.factories import TeamFactory
from tests.governance.cluster import MODEL, Process, cluster_env, web_worker_start

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"),
        reason="needs PostgreSQL and Redis",
    ),
]


# The installations' own database on the suite's Redis server: the suite's other processes (other
# test workers, an earlier test's tasks still finishing) write into REDIS_URL's meanwhile, so a
# scan there saw their keys among what a request wrote.
INSTALLATIONS_DB = 15


def _installations_url() -> str:
    return urlunsplit(urlsplit(os.environ["REDIS_URL"])._replace(path=f"/{INSTALLATIONS_DB}"))


def _client() -> redis.Redis:
    return redis.Redis.from_url(_installations_url())


def _keys(prefixes: dict[str, Process]) -> set[bytes]:
    """The keys in the installations' database, but those of another run's installations."""
    ours = tuple(prefix.encode() for prefix in prefixes)
    with _client() as client:
        return {
            key
            for key in client.scan_iter(count=1000)
            if not key.startswith(b"inst-") or key.startswith(ours)
        }


@pytest.fixture
def installations(openai_emulator: OpenAIEmulator, tmp_path: Path) -> Iterator[dict[str, Process]]:
    run = uuid.uuid4().hex[:8]
    workers: dict[str, Process] = {}
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            env = cluster_env(
                tmp=tmp_path / name,
                emulator_url=openai_emulator.url,
                usage_stream="usage",
                OGEM_CACHE_PREFIX=f"inst-{name}-{run}",
                DJANGO_SETTINGS_MODULE="ogem_site.settings.base",
                REDIS_URL=_installations_url(),
            )
            workers[f"inst-{name}-{run}"] = web_worker_start(env, name=name)
        yield workers
    finally:
        for worker in workers.values():
            worker.kill()
        with _client() as client:
            for prefix in workers:
                stale = list(client.scan_iter(match=f"{prefix}:*", count=1000))
                if stale:
                    client.delete(*stale)


def test_each_installation_writes_under_its_prefix_and_drains_only_its_usage(
    installations: dict[str, Process], settings
) -> None:  # type: ignore[no-untyped-def]
    # Every kind of limit and a budget, so that every governance key is written.
    issued = key_create(
        name="prefixed",
        team=TeamFactory(),
        rpm_limit=100,
        tpm_limit=100_000,
        max_parallel_requests=5,
        max_budget=Decimal("10"),
    )
    headers = {"Authorization": f"Bearer {issued.secret}"}
    served: dict[str, str] = {}
    for prefix, worker in installations.items():
        before = _keys(installations)
        request_id = f"req-{prefix}"
        response = httpx.post(
            f"{worker.url}/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
            headers={**headers, "x-request-id": request_id},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        served[prefix] = request_id
        written = sorted(key.decode() for key in _keys(installations) - before)
        assert written, "the request wrote nothing to Redis"
        # The other installation's worker refreshes its own lease on a timer meanwhile.
        others = {f"{other}:leases" for other in installations if other != prefix}
        assert [k for k in written if not k.startswith(f"{prefix}:") and k not in others] == []
        # The usage stream, the rate-limit windows and the budget counter among them.
        assert f"{prefix}:usage" in written
        assert any(f":rl:key:{issued.key.pk}:rpm" in key for key in written)
        assert any(":budget:key:" in key for key in written)
        # The broadcast listener hears its own installation's channel.
        channels = {c.decode() for c in redis_client_sync().pubsub_channels(f"{prefix}:*")}
        assert channels == {f"{prefix}:broadcast"}

    settings.REDIS_URL = _installations_url()
    settings.OGEM_USAGE_STREAM = "usage"
    first, second = installations
    settings.OGEM_CACHE_PREFIX = second
    assert usage_drain() == 1
    assert set(RequestLog.objects.values_list("request_id", flat=True)) == {served[second]}
    settings.OGEM_CACHE_PREFIX = first
    assert usage_drain() == 1
    assert set(RequestLog.objects.values_list("request_id", flat=True)) == {
        served[first],
        served[second],
    }
    settings.OGEM_CACHE_PREFIX = second
    assert usage_drain() == 0
