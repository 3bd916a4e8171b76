"""Batch lines yield the CPU to live traffic (OGEM_BATCH_YIELD_CPU, batches/cpu_yield.py): a real
busy-loop process pinned to the runner's CPU makes it start lines only at the minimum pace, the
batch still ends, and once the busy loop stops the lines run concurrently again."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from openai import OpenAI
from openai.types import Batch

from batches.cpu_yield import CpuSampler, LinePacer, process_cpu_seconds
from tests.batches.conftest import chat_lines, upload
from tests.emulators.fixtures import slow_mock
from tests.live import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not sys.platform.startswith("linux") or not os.path.isfile("/proc/stat"),
        reason="the CPUs' busy time is read from Linux's /proc/stat",
    ),
]


@contextmanager
def _burner(cpu: int) -> Iterator[subprocess.Popen]:
    """A busy loop pinned to `cpu` (niced: it is busy time all the same to the sampler)."""
    code = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nos.nice(10)\nwhile True: pass\n"
    burner = subprocess.Popen([sys.executable, "-c", code])
    try:
        yield burner
    finally:
        burner.kill()
        burner.wait()


@contextmanager
def _pinned(cpu: int, *, every_thread: bool = False) -> Iterator[None]:
    """This thread (`every_thread`: the whole process, the live server's threads too, and so
    the batch threads they start) on `cpu` alone."""
    mask = os.sched_getaffinity(0)
    tids = [int(tid) for tid in os.listdir("/proc/self/task")] if every_thread else [0]
    for tid in tids:
        os.sched_setaffinity(tid, {cpu})
    try:
        yield
    finally:
        for tid in [int(tid) for tid in os.listdir("/proc/self/task")] if every_thread else [0]:
            try:
                os.sched_setaffinity(tid, mask)
            except ProcessLookupError:  # a thread that ended meanwhile
                continue


def _share(sampler: CpuSampler, seconds: float) -> float:
    """The others' mean share over `seconds`."""
    sampler.others_share()
    time.sleep(seconds)
    return sampler.others_share()


def _quietest_cpu() -> int:
    """The CPU of this process's that others keep the least busy now."""
    shares = {}
    for cpu in os.sched_getaffinity(0):
        sampler = CpuSampler(own_seconds=process_cpu_seconds, cpus={cpu})
        shares[cpu] = _share(sampler, 0.3)
    return min(shares, key=shares.__getitem__)


def test_the_sampler_sees_another_process_busy_on_its_cpu() -> None:
    cpu = _quietest_cpu()
    with _pinned(cpu):
        sampler = CpuSampler.create(own_seconds=process_cpu_seconds)
        assert sampler is not None
        with _burner(cpu):
            # The burner has the CPU to itself but for what else runs there: it is all others'.
            wait_for(lambda: _share(sampler, 0.3) > 0.9, what="the burner's busy time")
        # This process's own busy time is its own, not others': at most the rest of the wall
        # time is theirs (give or take a clock tick's rounding).
        sampler.others_share()
        began, wall = time.process_time(), time.monotonic()
        while time.process_time() - began < 0.3:
            pass
        own = (time.process_time() - began) / (time.monotonic() - wall)
        assert sampler.others_share() <= 1 - own + 0.1


async def _lines(pacer: LinePacer, stop: asyncio.Event, count: int, seconds: float) -> int:
    """`count` lines of `seconds` each through the pacer; the most found in flight."""
    most = 0

    async def line() -> None:
        nonlocal most
        if not await pacer.acquire(stop):
            return
        try:
            most = max(most, pacer.in_flight)
            await asyncio.sleep(seconds)
        finally:
            pacer.release()

    await asyncio.gather(*(line() for _ in range(count)))
    return most


def test_lines_slow_to_the_pace_while_another_process_burns_the_cpu_and_recover() -> None:
    cpu = _quietest_cpu()
    with _pinned(cpu):
        sampler = CpuSampler.create(own_seconds=process_cpu_seconds)
        assert sampler is not None
        ambient = max(_share(sampler, 0.2) for _ in range(3))
        asyncio.run(_busy_then_quiet(cpu, sampler, ambient))


async def _busy_then_quiet(cpu: int, sampler: CpuSampler, ambient: float) -> None:
    # One event loop for the pacer's life, as in a batch's run. The threshold halfway between
    # what others keep busy now and the burner's whole CPU.
    threshold = min((ambient + 1) / 2, 0.9)
    stop = asyncio.Event()
    with _burner(cpu):
        wait_for(lambda: _share(sampler, 0.3) > threshold, what="the burner's busy time")
        pacer = LinePacer(concurrency=8, threshold=threshold, pace=0.05, sampler=sampler)
        # Every line still runs (the minimum pace), one at a time, never eight at once.
        most = await _lines(pacer, stop, 8, 0.05)
        assert pacer.busy_samples >= 1
        assert pacer.paced_starts >= 1
        assert most < 8
    # The burner gone, lines run concurrently again once samples find the CPU quiet. Where
    # others keep the CPU busy without it (a loaded machine), quiet is declared: the ramp is
    # tested then, if not the measurement.
    if ambient > 0.8:
        pacer.threshold = 1.0
    deadline = time.monotonic() + 30
    while await _lines(pacer, stop, 8, 0.05) < 2 or pacer.yielding:
        assert time.monotonic() < deadline, "lines never ran together again"


@contextmanager
def _batch_beside_a_busy_loop(client: OpenAI, *, lines: int) -> Iterator[Batch]:
    """A batch of `lines` slow-chat lines created while this process (the live server and its
    batch thread) and a busy loop share one CPU, which they keep sharing until the block ends."""
    source = upload(client, chat_lines(lines, model="slow-chat"))
    cpu = _quietest_cpu()
    with _pinned(cpu, every_thread=True), _burner(cpu):
        yield client.batches.create(
            input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
        )


def test_a_batch_on_a_busy_cpu_yields_and_still_completes(  # type: ignore[no-untyped-def]
    key_sdk, install_deployments, settings, caplog
) -> None:
    """The embedded default's runner (a thread of the server process) beside a busy loop on its
    one CPU: its lines start at the minimum pace, and the batch completes."""
    # Lines of 50 ms: the run outlasts the pacer's first reading of the CPUs (0.1 s in).
    install_deployments(slow_mock("slow-chat", latency_ms=50, upstream_model="mock-chat"))
    settings.OGEM_BATCH_YIELD_CPU = 0.5
    settings.OGEM_BATCH_YIELD_PACE = 0.05
    settings.OGEM_BATCH_CONCURRENCY = 4
    caplog.set_level(logging.INFO, logger="batches.runner")
    client = key_sdk()
    with _batch_beside_a_busy_loop(client, lines=12) as batch:
        done = wait_for(
            lambda: (found := client.batches.retrieve(batch.id)).status == "completed" and found,
            what="the batch to complete",
        )
    assert done.request_counts.completed == 12
    yielded = [r for r in caplog.records if "yielded the CPU" in r.getMessage()]
    assert yielded and batch.id in yielded[0].getMessage()


def test_request_counts_follow_the_lines_started_at_the_minimum_pace(  # type: ignore[no-untyped-def]
    key_sdk, install_deployments, settings
) -> None:
    """A chunk of 32 lines started one at a time at the minimum pace lasts seconds: its answers
    are counted while it runs, not once it ends (batches.runner.PROGRESS_SECONDS)."""
    install_deployments(slow_mock("slow-chat", latency_ms=50, upstream_model="mock-chat"))
    settings.OGEM_BATCH_YIELD_CPU = 0.5
    settings.OGEM_BATCH_YIELD_PACE = 0.25  # 32 lines: 8 s at least
    settings.OGEM_BATCH_CONCURRENCY = 32
    client = key_sdk()
    with _batch_beside_a_busy_loop(client, lines=32) as batch:
        midway = wait_for(
            lambda: (
                (found := client.batches.retrieve(batch.id)).request_counts.completed > 0 and found
            ),
            what="the first answers to be counted",
        )
        assert midway.status == "in_progress"
        assert midway.request_counts.completed < 32
        done = wait_for(
            lambda: (found := client.batches.retrieve(batch.id)).status == "completed" and found,
            what="the batch to complete",
            timeout=60,
        )
    assert (done.request_counts.completed, done.request_counts.failed) == (32, 0)
