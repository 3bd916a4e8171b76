from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.live import LiveServer, start_live_server

pytest_plugins = ["tests.emulators.fixtures"]

# google-auth's application-default credentials ping the metadata server at 169.254.169.254 when
# nothing else is configured; the suite never sends traffic there (google-auth reads this when
# imported; tests that emulate the metadata server lift it: tests/emulators/google_identity_api).
os.environ.setdefault("NO_GCE_CHECK", "true")

# The slowest files (seconds of setup, call and teardown summed per file, `--durations=0` with two
# workers on 7 December 2026) run first: a parallel run then ends on short files, not on one of
# these alone. `make test` passes `--no-loadscope-reorder`, which keeps this order (xdist's own
# order puts files with few tests last: the schemathesis file, one test of three minutes, ran
# alone at the end).
SLOW_FIRST = (
    "tests/site/test_serve.py",  # 224 s
    "tests/api/test_schemathesis.py",  # 193 s, one test
    "tests/site/test_shutdown.py",  # 147 s
    "tests/gateway/test_bad_input.py",  # 51 s
    "tests/gateway/test_cache.py",  # 51 s
    "tests/governance/test_soak.py",  # 41 s
    "tests/site/test_metrics_workers.py",  # 38 s
    "tests/governance/test_live.py",  # 37 s
    "tests/batches/test_worker_crash.py",  # 35 s
    "tests/config/test_litellm_providers.py",  # 35 s
    "tests/site/test_metrics.py",  # 32 s
    "tests/batches/test_batches_api.py",  # 30 s
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: index for index, path in enumerate(SLOW_FIRST)}
    last = len(rank)
    # A stable sort: the other files, and every file's own tests, keep their order.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], last))


@pytest.fixture(scope="session", autouse=True)
def _redis_keys_of_an_earlier_run_dropped() -> None:
    """Under parallel workers each one's Redis keys lie under a prefix of its own (`ogem-gw0`,
    ogem_site/settings/test.py) that every run reuses, as a recreated test database reuses its
    row ids: limit counters an earlier run left there (they live for minutes) refused a rerun's
    requests. Dropped when the worker starts; never without a worker's prefix (`ogem` alone may
    be a developer's own `make run` on the same Redis)."""
    from django.conf import settings

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    prefix = settings.OGEM_CACHE_PREFIX
    if not worker or not settings.REDIS_URL or not prefix.endswith(f"-{worker}"):
        return
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
    try:
        for pattern in (f"{prefix}:*", f"{{{prefix}}}:*"):  # plain, and a Cluster's hash tag
            names = list(client.scan_iter(match=pattern, count=1000))
            for start in range(0, len(names), 1000):
                client.unlink(*names[start : start + 1000])
    except (redis.RedisError, ValueError):  # no Redis here, or a URL redis-py cannot read
        pass  # the tests that need Redis say so themselves
    finally:
        client.close()


@pytest.fixture(scope="session")
def ogem_server(django_db_setup: None) -> Iterator[LiveServer]:
    """One live Ogem server for the whole session; pair it with `transactional_db`. It stops
    before the test database is dropped, and closes the connections its loop opened there."""
    from ogem_site.asgi import application

    server = start_live_server(application)
    yield server
    server.stop()
    from ogem_site.pg import pg_connections_close

    pg_connections_close()


@pytest.fixture
def live_ogem(ogem_server: LiveServer, transactional_db: None) -> LiveServer:
    return ogem_server


@pytest.fixture(autouse=True)
def _registry_restored() -> Iterator[None]:
    """The deployment registry a test loaded (database rows its transaction then rolled back)
    does not serve the next test: on SQLite a later row can even reuse the rolled-back ids."""
    from gateway import registry as deployment_registry

    previous = deployment_registry._current
    yield
    deployment_registry._current = previous


@pytest.fixture(autouse=True)
def _redis_answers_again() -> Iterator[None]:
    """A test that made Redis unreachable leaves no outage behind for the next one."""
    yield
    from ogem_site.redis import redis_outage_reset

    redis_outage_reset()


@pytest.fixture(autouse=True)
def _usage_of_earlier_tests_dropped() -> None:
    """Usage an earlier test's requests emitted after it last drained (a background embedding, a
    stream's late settle) is not this test's: recorded now, it would land in this test's request
    log under ids this test's rows may reuse. Dropped before each test (the drain recreates the
    stream's consumer group)."""
    from django.conf import settings

    from billing.usage import usage_buffer_take, usage_stream_key

    if settings.REDIS_URL:
        from ogem_site.redis import redis_client_sync

        try:
            redis_client_sync().delete(usage_stream_key())
        except Exception:  # a test that broke Redis on purpose: its own fixtures restore it
            pass
    while usage_buffer_take(limit=10_000):
        pass


@pytest.fixture
def master_key(settings) -> str:  # type: ignore[no-untyped-def]
    return settings.OGEM_MASTER_KEY
