from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from tests.live import LiveServer


@pytest.fixture(autouse=True)
def files_dir(settings, tmp_path: Path) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """Every test stores its files in a directory of its own."""
    root = tmp_path / "files"
    settings.STORAGES = {
        **settings.STORAGES,
        "files": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    yield root


@pytest.fixture(autouse=True)
def batches_in_threads(settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Batches run in a thread of the test process, as in the embedded default (the live
    server is a thread of it too); tests/batches/test_worker_crash.py runs real workers."""
    settings.OGEM_BATCH_RUNNER = "thread"
    yield
    from batches.models import Batch

    # A batch still running would write into the next test's database: stop every one.
    Batch.objects.exclude(status__in=["completed", "failed", "expired", "cancelled"]).update(
        status="cancelling"
    )
    deadline = time.monotonic() + 10
    while Batch.objects.filter(lease_owner__gt="").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def sdk_retries() -> int:
    """The SDK's retries: none, except on the test run's SQLite, an in-memory database in shared
    cache mode whose table locks fail at once (no busy timeout, unlike the embedded default's
    file): a read that meets the batch thread's write answers 503 with Retry-After, and the
    client retries as the SDK does by default."""
    from django.db import connection

    return 4 if connection.vendor == "sqlite" else 0


@pytest.fixture
def key_sdk(live_ogem: LiveServer, make_key: Callable[..., str]) -> Callable[..., openai.OpenAI]:
    """The SDK with a new virtual key (options as `make_key` takes them)."""

    def make(**options: Any) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{live_ogem.url}/v1", api_key=make_key(**options), max_retries=sdk_retries()
        )

    return make


def chat_lines(count: int, *, model: str = "mock-chat", start: int = 0) -> bytes:
    """A batch input file of `count` chat requests, custom ids `req-<n>`."""
    return b"".join(
        orjson.dumps(
            {
                "custom_id": f"req-{n}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": model, "messages": [{"role": "user", "content": f"line {n}"}]},
            }
        )
        + b"\n"
        for n in range(start, start + count)
    )


def upload(client: openai.OpenAI, content: bytes, *, purpose: str = "batch") -> Any:
    return client.files.create(file=("input.jsonl", io.BytesIO(content)), purpose=purpose)  # type: ignore[arg-type]


def jsonl(content: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in content.splitlines() if line.strip()]


@pytest.fixture
def broker(settings) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Batches go to the broker's default queue (emptied first), and usage to a stream of this
    test's own; the workers share both."""
    from ogem_site.celery import app

    settings.OGEM_BATCH_RUNNER = "celery"
    settings.OGEM_USAGE_STREAM = f"usage-batches-{uuid.uuid4().hex[:8]}"
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    app.control.purge()
    yield settings.OGEM_USAGE_STREAM
    app.conf.task_always_eager = eager
    app.control.purge()
    from ogem_site.redis import redis_client_sync, redis_slot_key

    redis_client_sync().delete(redis_slot_key(settings.OGEM_USAGE_STREAM))
