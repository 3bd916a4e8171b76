from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ogem_site.metrics import endpoint_label, unpriced_model_record, upstream_observe
from tests.live import free_port
from tests.site.serve_processes import manage, wait_ready


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return _samples(response.text)


def _requests(endpoint: str, status: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("ogem_requests_total", (("endpoint", endpoint), ("status", status)))


@pytest.mark.parametrize(
    ("path", "status", "label"),
    [
        ("/v1/chat/completions", 200, "v1/chat/completions"),
        ("/v1/files/file-abc123/content", 200, "v1/files/{id}/content"),
        ("/v1/fine_tuning/jobs/ftjob-9x/events", 200, "v1/fine_tuning/jobs/{id}/events"),
        ("/v1/whatever/we/do", 404, "not_found"),
        ("/api/v1/keys/42/revoke", 200, "api/v1/keys/{id}/revoke"),
        ("/scim/v2/Users", 401, "scim/v2/Users"),
        ("/admin/tenants/team/3/change/", 200, "admin"),
        ("/static/admin/css/base.css", 200, "static"),
        ("/v1/batches/batch_6f1a/cancel", 200, "v1/batches/{id}/cancel"),
        ("/", 200, "portal"),
        ("/teams/7/", 200, "portal"),
    ],
)
def test_endpoint_labels_are_bounded(path, status, label):
    assert endpoint_label(path, status) == label


def test_metrics_count_requests_by_endpoint_and_status(live_ogem):
    before = _scrape(live_ogem.url)
    for _ in range(3):
        assert httpx.get(f"{live_ogem.url}/admin/login/").status_code == 200
    assert httpx.get(f"{live_ogem.url}/v1/no-such-thing").status_code == 404
    assert httpx.get(f"{live_ogem.url}/health/live").status_code == 200
    after = _scrape(live_ogem.url)

    def delta(key: tuple[str, tuple[tuple[str, str], ...]]) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta(_requests("admin", "200")) == 3
    assert delta(_requests("not_found", "404")) == 1
    assert delta(("ogem_request_duration_seconds_count", (("endpoint", "admin"),))) == 3
    # Health probes and scrapes are not requests to Ogem's API: they are not counted.
    assert not [key for key in after if ("endpoint", "health") in key[1]]
    assert after[("ogem_requests_in_flight", ())] == 0


def test_shared_instruments_are_exported(live_ogem):
    before = _scrape(live_ogem.url)
    upstream_observe(provider="openai", outcome="ok", seconds=0.2)
    unpriced_model_record(model="my-new-model")
    after = _scrape(live_ogem.url)

    upstream = (
        "ogem_upstream_duration_seconds_count",
        (("outcome", "ok"), ("provider", "openai")),
    )
    unpriced = ("ogem_unpriced_model_requests_total", (("model", "my-new-model"),))
    assert after[upstream] - before.get(upstream, 0.0) == 1
    assert after[unpriced] - before.get(unpriced, 0.0) == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux")
def test_workers_share_one_view_of_the_metrics(tmp_path, migrated_env):
    env = migrated_env
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = manage("serve", "--no-migrate", "--port", str(port), "--workers", "2", env=env)
    try:
        wait_ready(url, process)
        # New connections each time, so both workers answer some of them.
        for _ in range(20):
            assert httpx.get(f"{url}/admin/login/").status_code == 200
        totals = {_scrape(url)[_requests("admin", "200")] for _ in range(6)}
        assert totals == {20.0}
        assert (tmp_path / "var" / "prometheus").is_dir()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
    assert process.returncode == 0


def test_metrics_token_guards_the_scrape(migrated_env):
    env = {**migrated_env, "OGEM_METRICS_TOKEN": "scrape-secret-123"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = manage("serve", "--no-migrate", "--port", str(port), env=env)
    try:
        wait_ready(url, process)
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "scrape-secret-123"},
        ):
            refused = httpx.get(f"{url}/metrics", headers=headers)
            assert refused.status_code == 401
            assert "ogem_requests_total" not in refused.text
            assert refused.headers["www-authenticate"] == 'Bearer realm="metrics"'
        scraped = httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer scrape-secret-123"})
        assert scraped.status_code == 200
        assert "ogem_requests_total" in scraped.text
        assert httpx.get(f"{url}/health/live").status_code == 200  # probes need no token
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def test_tallied_counts_reach_the_scrape_once() -> None:
    """In one process a request's counts, its latency bucket and the in-flight gauge are tallied
    without a lock and folded in when /metrics renders: each request once, whatever the number
    of scrapes, and a request still being served counted in flight."""
    import asyncio

    from ogem_site.metrics import MetricsASGI, metrics_render

    path = "/api/tallied"
    release = asyncio.Event()

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["path"] == path + "/slow":
            await release.wait()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def sent(message):  # type: ignore[no-untyped-def]
        return None

    async def receive():  # type: ignore[no-untyped-def]
        return {"type": "http.request"}

    wrapped = MetricsASGI(app)

    def call(where: str):  # type: ignore[no-untyped-def]
        return wrapped({"type": "http", "path": where, "headers": []}, receive, sent)

    endpoint = endpoint_label(path, 204)
    key = _requests(endpoint, "204")
    bucket = ("ogem_request_duration_seconds_bucket", (("endpoint", endpoint), ("le", "+Inf")))

    async def run() -> tuple[dict, dict, dict]:  # type: ignore[type-arg]
        before = _samples(metrics_render().decode())
        for _ in range(5):
            await call(path)
        slow = asyncio.ensure_future(call(path + "/slow"))
        await asyncio.sleep(0)
        during = _samples(metrics_render().decode())
        release.set()
        await slow
        return before, during, _samples(metrics_render().decode())

    before, during, after = asyncio.run(run())
    assert during[key] - before.get(key, 0.0) == 5
    assert during[("ogem_requests_in_flight", ())] - before[("ogem_requests_in_flight", ())] == 1
    assert after[key] - before.get(key, 0.0) == 5  # the slow one has an endpoint of its own
    assert after[bucket] - before.get(bucket, 0.0) == 5
    assert after[("ogem_requests_in_flight", ())] == before[("ogem_requests_in_flight", ())]
