"""The semantic cache tier while its durable store, the database, is gone (docs/caching.md,
failure policy): a real `manage.py serve` whose PostgreSQL connection runs through a proxy the
test closes. Requests are still answered within a bounded time, the entries already indexed in
the worker still hit, and the failed writes are counted, never an error to the caller."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.emulators.fixtures import UPSTREAM_KEY
from tests.live import free_port
from tests.site.serve_processes import TcpProxy, manage, serve_env, wait_ready

pytestmark = pytest.mark.django_db(transaction=True)

MASTER = "sk-master-" + "s" * 30
QUESTION = "How do I reset my password?"
PARAPHRASE = "How can I reset my password?"
OTHER = "Write a haiku about autumn leaves."


def _ask(url: str, text: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {MASTER}"},
        json={"model": "emulated", "messages": [{"role": "user", "content": text}]},
        timeout=30,
    )


def _semantic_errors(url: str, operation: str) -> float:
    total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("ogem_cache_semantic_errors_total{") and f'"{operation}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _until(check, *, seconds: float = 15) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_the_semantic_tier_serves_on_without_its_database(
    tmp_path: Path, started, openai_emulator
) -> None:  # type: ignore[no-untyped-def]
    from django.db import connection

    from gateway.models import SemanticCacheEntry

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    config = tmp_path / "ogem.yaml"
    config.write_text(
        "version: 1\n"
        "models:\n"
        "  - name: emulated\n"
        "    provider: openai\n"
        "    model: gpt-4o-mini\n"
        f"    api_base: {openai_emulator.url}/v1\n"
        f"    api_key: {UPSTREAM_KEY}\n"
        "  - name: local-embed\n"
        "    provider: local\n"
        "    model: wordllama-l2-supercat\n"
        "cache:\n"
        "  type: local\n"
        "  semantic:\n"
        "    model: local-embed\n"
        "    similarity_threshold: 0.9\n"
        # The model loads on the first embedding: more than the 2 s default on a busy machine.
        "    timeout: 30\n"
    )
    proxy = TcpProxy(int(connection.settings_dict["PORT"] or 5432))
    db = connection.settings_dict
    env = serve_env(
        tmp_path,
        DATABASE_URL=f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}",
        OGEM_MASTER_KEY=MASTER,
        OGEM_CONFIG=str(config),
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = manage("serve", "--no-migrate", "--port", str(port), env=env)
    started.append(process)
    try:
        wait_ready(url, process, timeout=90)
        first = _ask(url, QUESTION)
        assert first.status_code == 200, first.text
        assert first.headers["x-ogem-cache"] == "miss"
        # Embedded and written to the database before the database goes.
        _until(SemanticCacheEntry.objects.exists, seconds=30)
        warm = _ask(url, PARAPHRASE)
        assert warm.headers["x-ogem-cache"] == "semantic-hit"
        upstream_before = len(openai_emulator.requests)

        proxy.stop()

        began = time.monotonic()
        hit = _ask(url, "How can I reset my password, please?")
        assert hit.status_code == 200 and hit.headers["x-ogem-cache"] == "semantic-hit"
        miss = _ask(url, OTHER)
        waited = time.monotonic() - began
        assert miss.status_code == 200, miss.text
        assert miss.headers["x-ogem-cache"] == "miss"
        assert miss.json()["choices"][0]["message"]["content"]
        assert len(openai_emulator.requests) == upstream_before + 1  # only the new question
        assert waited < 15  # bounded: OGEM_DB_POOL_TIMEOUT and the cache's own timeouts
        # Its entry cannot be written: counted, and the caller never saw it.
        _until(lambda: _semantic_errors(url, "write") >= 1, seconds=30)
    finally:
        proxy.stop()
