"""`request_counts` grows as lines are answered, not a whole chunk at a time: a chunk still
running after batches.runner.PROGRESS_SECONDS keeps the answers it has, while its slow lines are
still in flight, through the live server and the official openai SDK."""

from __future__ import annotations

import pytest

from tests.batches.conftest import chat_lines, jsonl, upload
from tests.emulators.fixtures import slow_mock
from tests.live import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

FAST, SLOW = "progress-fast", "progress-slow"
LINES = 32  # one chunk
SLOW_EVERY = 8  # lines 7, 15, 23, 31 (0-based) hold the chunk open


def test_request_counts_rise_before_a_chunk_ends(  # type: ignore[no-untyped-def]
    key_sdk, install_deployments, settings
) -> None:
    # The slow lines take long enough that a loaded machine still reads the counts before
    # them; the mock waits without using the CPU.
    install_deployments(
        slow_mock(FAST, latency_ms=20, upstream_model="mock-chat"),
        slow_mock(SLOW, latency_ms=15_000, upstream_model="mock-chat"),
    )
    settings.OGEM_FILES_BATCH_MIXED_MODELS = True
    settings.OGEM_BATCH_CONCURRENCY = LINES
    settings.OGEM_BATCH_YIELD_CPU = 0  # every line of the chunk in flight at once
    client = key_sdk()
    content = b"".join(
        chat_lines(1, model=SLOW if n % SLOW_EVERY == SLOW_EVERY - 1 else FAST, start=n)
        for n in range(LINES)
    )
    batch = client.batches.create(
        input_file_id=upload(client, content).id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )

    midway = wait_for(
        lambda: (found := client.batches.retrieve(batch.id)).request_counts.completed > 0 and found,
        what="the first answers to be counted",
    )
    # Counted while the chunk's slow lines are still in flight: not a whole chunk at once.
    assert midway.status == "in_progress"
    assert 0 < midway.request_counts.completed <= LINES - LINES // SLOW_EVERY
    assert midway.usage.total_tokens > 0

    done = wait_for(
        lambda: (found := client.batches.retrieve(batch.id)).status == "completed" and found,
        what="the batch to complete",
        timeout=60,
    )
    # Kept in several writes, each line once.
    assert (done.request_counts.completed, done.request_counts.failed) == (LINES, 0)
    assert done.usage.total_tokens > midway.usage.total_tokens
    lines = jsonl(client.files.content(done.output_file_id).read())
    assert [line["custom_id"] for line in lines] == [f"req-{n}" for n in range(LINES)]
