"""The response cache's semantic tier across the web workers of `manage.py serve --workers 2`
(docs/caching.md): an entry stored by one worker answers a paraphrase in the other (the
`semantic_cache` broadcast), and after a restart both rebuild their indexes from the database."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import httpx
import pytest
import redis

from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.openai_api import OpenAIEmulator
from tests.live import free_port, wait_for
from tests.site.serve_processes import manage, server_workers, wait_ready
from tests.site.test_serve_cache import _redis_url, _server_socket_inode, _socket_owner

MASTER = "sk-master-" + "d" * 32
QUESTION = "How do I reset my password?"
PARAPHRASE = "How can I reset my password?"  # 0.984 under local-embed


def _asker(
    url: str, port: int, workers: list[int], secret: str
) -> Callable[..., tuple[str, int | None]]:
    def ask(text: str, **cache: bool) -> tuple[str, int | None]:
        """(x-ogem-cache, the worker that answered), on a fresh connection each time: the kernel
        hands it to either worker's accept."""
        body = {"model": "emulated", "messages": [{"role": "user", "content": text}]}
        if cache:
            body["cache"] = cache
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            response = client.post("/v1/chat/completions", json=body)
            assert response.status_code == 200, response.text
            stream = response.extensions["network_stream"]
            client_port = stream.get_extra_info("client_addr")[1]
            inode = _server_socket_inode(port, client_port)
            worker = _socket_owner(inode, workers) if inode is not None else None
            return response.headers["x-ogem-cache"], worker

    return ask


def _key_create(url: str) -> str:
    """A virtual key's secret: a worker subscribes to the broadcasts when it first authenticates
    one (gateway/auth.py), never for the master key alone."""
    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MASTER}"}, timeout=30)
    org = admin.post("/api/v1/organizations", json={"name": "Semantic", "slug": "semantic"})
    team = admin.post("/api/v1/teams", json={"organization": org.json()["id"], "name": "T"})
    created = admin.post("/api/v1/keys", json={"name": "asker", "team": team.json()["id"]})
    assert created.status_code == 201, created.text
    return created.json()["key"]


def _warm(
    ask: Callable[..., tuple[str, int | None]], workers: list[int], listeners: Callable[[], int]
) -> None:
    """Each worker starts its index's rebuild and its broadcast listener on its first semantic
    request: ask until each has answered one whose embedding worked (a miss, not the error of an
    embedding model still loading past the tier's timeout) and both listen for the other's new
    entries. Lookups miss until a rebuild ends: `_both_hit` asks again until they hit."""
    answered: set[int | None] = set()

    def warm() -> bool:
        result, worker = ask(f"warm-up {time.time_ns()}", **{"no-store": True})
        if result == "miss":
            answered.add(worker)
        return answered >= set(workers) and listeners() >= len(workers)

    try:
        wait_for(warm, what="both workers' embeddings and listeners", timeout=60, every=0)
    except AssertionError as timeout:
        raise AssertionError(
            f"{timeout}; a miss from {answered} of {workers}, {listeners()} listening"
        ) from None


def _both_hit(ask: Callable[..., tuple[str, int | None]], workers: list[int]) -> list[str]:
    """Ask the paraphrase (never stored) until each worker answered it from the cache."""
    hit_by: set[int | None] = set()
    results: list[str] = []

    def both() -> bool:
        result, worker = ask(PARAPHRASE, **{"no-store": True})
        results.append(result)
        if result == "semantic-hit":
            hit_by.add(worker)
        return hit_by >= set(workers)

    try:
        wait_for(both, what="a hit in every worker", timeout=60, every=0)
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}; the answers: {results}") from None
    return results


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_semantic_entries_are_shared_by_workers_and_survive_a_restart(  # type: ignore[no-untyped-def]
    tmp_path, migrated_env, started, openai_emulator: OpenAIEmulator
) -> None:
    redis_url = _redis_url()
    if redis_url is None:
        pytest.skip("no Redis reachable")
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: emulated\n"
        "    litellm_params:\n"
        "      model: openai/gpt-4o-mini\n"
        f"      api_base: {openai_emulator.url}/v1\n"
        f"      api_key: {UPSTREAM_KEY}\n"
        "  - model_name: local-embed\n"
        "    litellm_params:\n"
        "      model: local/wordllama-l2-supercat\n"
        "litellm_settings:\n"
        "  cache: true\n"
        "  cache_params:\n"
        "    type: redis-semantic\n"
        "    similarity_threshold: 0.9\n"
        "    redis_semantic_cache_embedding_model: local-embed\n"
    )
    prefix = f"serve-semantic-{os.getpid()}-{time.time_ns()}"
    env = {
        **migrated_env,
        "REDIS_URL": redis_url,
        "OGEM_CACHE_PREFIX": prefix,
        "OGEM_CONFIG": str(config),
        "OGEM_MASTER_KEY": MASTER,
    }

    client = redis.Redis.from_url(redis_url)
    channel = f"{prefix}:broadcast"  # ogem_site.broadcast.broadcast_channel

    def listeners() -> int:
        ((_, count),) = client.pubsub_numsub(channel)
        return int(count)

    def chat_calls() -> int:
        return sum(1 for r in openai_emulator.requests if r.path.endswith("/chat/completions"))

    try:
        for restart in (False, True):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            process = manage(
                "serve",
                "--no-migrate",
                "--no-celery",
                "--port",
                str(port),
                "--workers",
                "2",
                env=env,
            )
            started.append(process)
            wait_ready(url, process)
            workers = server_workers(process.pid)
            if not restart:
                secret = _key_create(url)
            ask = _asker(url, port, workers, secret)
            _warm(ask, workers, listeners)
            if not restart:
                result, _ = ask(QUESTION)
                assert result == "miss"
            calls = chat_calls()
            results = _both_hit(ask, workers)
            # Every answer was the entry's or a miss that asked upstream (not stored: no-store);
            # the worker that did not store the entry hit it too.
            assert set(results) <= {"semantic-hit", "miss"}
            assert chat_calls() - calls == results.count("miss")
            process.terminate()
            process.wait(timeout=30)
    finally:
        stale = list(client.scan_iter(match=f"{prefix}:*"))
        if stale:
            client.delete(*stale)
