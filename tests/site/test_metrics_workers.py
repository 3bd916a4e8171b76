"""Metrics of /v1 requests served by the two web workers of `manage.py serve --workers 2`
(docs/metrics.md): whichever worker answers a scrape, the totals are those of every request sent,
against the OpenAI emulator's own ledger of what it reported."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.openai_api import OpenAIEmulator
from tests.live import free_port
from tests.site.serve_processes import alive, descendants, manage, parent, wait_ready
from tests.site.test_serve_cache import _server_socket_inode, _socket_owner

MASTER = "sk-master-" + "w" * 32
PLAIN = 16
STREAMED = 8
INPUT_PRICE = 0.000001
OUTPUT_PRICE = 0.000002


def _redis_url() -> str | None:
    url = os.environ.get("REDIS_URL")
    if not url:
        return None
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return None
    return url


def _scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str):
    return sum(
        value
        for found, value in samples.get(name, [])
        if all(found.get(label) == wanted for label, wanted in labels.items())
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("with_redis", [False, True], ids=["embedded", "redis"])
def test_totals_equal_the_requests_sent_across_two_workers(  # type: ignore[no-untyped-def]
    tmp_path: Path, migrated_env, started, openai_emulator: OpenAIEmulator, with_redis: bool
) -> None:
    redis_url = _redis_url() if with_redis else None
    if with_redis and redis_url is None:
        pytest.skip("no Redis reachable")
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: emulated\n"
        "    litellm_params:\n"
        "      model: openai/gpt-4o-mini\n"
        f"      api_base: {openai_emulator.url}/v1\n"
        f"      api_key: {UPSTREAM_KEY}\n"
        f"      input_cost_per_token: {INPUT_PRICE}\n"
        f"      output_cost_per_token: {OUTPUT_PRICE}\n"
    )
    prefix = f"metrics-workers-{os.getpid()}-{time.time_ns()}"
    env = {
        **migrated_env,
        "OGEM_CONFIG": str(config),
        "OGEM_MASTER_KEY": MASTER,
        "OGEM_METRICS_KEY_LABELS": "true",
    }
    if redis_url is not None:
        env.update(REDIS_URL=redis_url, OGEM_CACHE_PREFIX=prefix)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = manage(
        "serve", "--no-migrate", "--no-celery", "--port", str(port), "--workers", "2", env=env
    )
    started.append(process)
    try:
        wait_ready(url, process)
        granian = [pid for pid in descendants(process.pid) if parent(pid) == process.pid]
        workers: list[int] = []
        deadline = time.monotonic() + 30
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = [p for p in descendants(process.pid) if parent(p) in granian and alive(p)]
            time.sleep(0.1)
        assert len(workers) == 2, workers

        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MASTER}"})
        org = admin.post("/api/v1/organizations", json={"name": "Metrics", "slug": "m"}).json()
        team = admin.post("/api/v1/teams", json={"organization": org["id"], "name": "T"}).json()
        created = admin.post("/api/v1/keys", json={"name": "counted", "team": team["id"]})
        assert created.status_code == 201, created.text
        key, key_id = created.json()["key"], str(created.json()["id"])
        before = _scrape(url)
        assert _total(before, "ogem_model_requests_total") == 0

        answered_by: set[int | None] = set()
        # At least PLAIN, and on until both workers have answered (a loaded machine can leave
        # one worker's accept behind for a while); bounded.
        plain_sent = 0
        while plain_sent < PLAIN or (not answered_by >= set(workers) and plain_sent < PLAIN * 10):
            index = plain_sent
            plain_sent += 1
            # A fresh connection each time: the kernel hands it to either worker's accept.
            with httpx.Client(base_url=url, timeout=30) as client:
                response = client.post(
                    "/v1/chat/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json={
                        "model": "emulated",
                        "messages": [{"role": "user", "content": f"question number {index}"}],
                    },
                )
                assert response.status_code == 200, response.text
                stream = response.extensions["network_stream"]
                inode = _server_socket_inode(port, stream.get_extra_info("client_addr")[1])
                answered_by.add(_socket_owner(inode, workers) if inode is not None else None)
        assert answered_by >= set(workers), f"one worker answered all: {answered_by}"
        for index in range(STREAMED):
            with openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as client:
                chunks = list(
                    client.chat.completions.create(
                        model="emulated",
                        messages=[{"role": "user", "content": f"stream {index} please, words"}],
                        stream=True,
                        stream_options={"include_usage": True},
                    )
                )
            assert chunks[-1].usage is not None

        sent = plain_sent + STREAMED
        ledger = openai_emulator.ledger
        assert len(ledger) == sent
        prompt = sum(entry.prompt_tokens for entry in ledger)
        completion = sum(entry.completion_tokens for entry in ledger)
        spend = prompt * INPUT_PRICE + completion * OUTPUT_PRICE
        # Any worker may answer a scrape: each one sums both workers' values.
        for _ in range(6):
            after = _scrape(url)
            model = {"model": "emulated"}
            assert _total(after, "ogem_model_requests_total", status="200", **model) == sent
            assert _total(after, "ogem_model_requests_total") == sent
            assert _total(after, "ogem_model_request_duration_seconds_count", **model) == sent
            assert _total(after, "ogem_time_to_first_token_seconds_count", **model) == STREAMED
            assert _total(after, "ogem_time_per_output_token_seconds_count", **model) == STREAMED
            tenant = {"organization": str(org["id"]), "team": str(team["id"]), "key": key_id}
            tokens = "ogem_tokens_total"
            assert _total(after, tokens, type="prompt", **tenant, **model) == prompt
            assert _total(after, tokens, type="completion", **tenant, **model) == completion
            assert _total(after, "ogem_spend_usd_total", **tenant) == pytest.approx(spend)
            endpoint = {"endpoint": "v1/chat/completions", "status": "200"}
            assert _total(after, "ogem_requests_total", **endpoint) == sent
            assert _total(after, "ogem_upstream_duration_seconds_count", provider="openai") == sent
            (deployment,) = {
                labels["deployment"] for labels, _ in after["ogem_model_requests_total"]
            }
            assert deployment
            assert _total(after, "ogem_deployment_up", deployment=deployment) == 1
            assert (
                _total(
                    after, "ogem_deployment_circuit_state", deployment=deployment, state="closed"
                )
                == 1
            )
            if redis_url is not None:
                assert "ogem_usage_stream_backlog" in after
                assert after["ogem_celery_queue_length"] == [({"queue": "celery"}, 0.0)]
    finally:
        if redis_url is not None:
            client = redis.Redis.from_url(redis_url)
            stale = list(client.scan_iter(match=f"{prefix}:*"))
            if stale:
                client.delete(*stale)
