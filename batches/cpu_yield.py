"""Batch lines yield the CPU to live traffic (OGEM_BATCH_YIELD_CPU, docs/batches.md).

SCHED_IDLE (ogem_site/cpu_priority.py) lets a worker run only when the web workers leave a core
idle, but it runs in every such gap: each line it answers there leaves the web worker colder
caches and a preemption to wait for, and /v1 slows by 5 to 15 % on a shared core. So the runner
also watches the CPUs it may run on: every SAMPLE_SECONDS it reads how busy other processes kept
them (/proc/stat, less this worker's own CPU time), and while that share exceeds the threshold it
starts no new line, except one every OGEM_BATCH_YIELD_PACE seconds (a batch on a host that is
never quiet still ends, and its completion window still closes). A run starts with one line in
flight; while the others' share stays under the threshold, the lines in flight double a sample up
to OGEM_BATCH_CONCURRENCY.

It costs /v1 nothing: it runs only where batches run, and reads /proc/stat at most ten times a
second while lines wait. Where there is no /proc/stat (not Linux), nothing yields.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

# How often the others' share of the CPUs is read while lines wait to start.
SAMPLE_SECONDS = 0.1
PROC_STAT = Path("/proc/stat")


def process_cpu_seconds() -> float:
    """This process's CPU time, every thread's (a Celery worker's)."""
    times = os.times()
    return times.user + times.system


class CpuSampler:
    """The share of the CPUs this thread may run on that other processes kept busy since the
    last reading (0 to 1): their busy time in /proc/stat less `own_seconds` (this process's CPU
    time; in the embedded default, the batch thread's, as the server's live requests run in
    the same process)."""

    def __init__(self, *, own_seconds: Callable[[], float], cpus: set[int]) -> None:
        self._own_seconds = own_seconds
        self._names = {f"cpu{cpu}".encode() for cpu in cpus}
        self._tick = 1.0 / os.sysconf("SC_CLK_TCK")
        self._busy, self._total = self._read()
        self._own = own_seconds()

    @classmethod
    def create(cls, *, own_seconds: Callable[[], float]) -> CpuSampler | None:
        """A sampler, or None where the kernel tells nothing of its CPUs (not Linux)."""
        affinity = getattr(os, "sched_getaffinity", None)
        if affinity is None or not PROC_STAT.is_file():
            return None
        try:
            return cls(own_seconds=own_seconds, cpus=affinity(0))
        except (OSError, ValueError):
            return None

    def _read(self) -> tuple[float, float]:
        """Busy and total seconds of this thread's CPUs since boot."""
        busy = total = 0
        for line in PROC_STAT.read_bytes().splitlines():
            fields = line.split()
            if not fields or fields[0] not in self._names:
                continue
            # user nice system idle iowait irq softirq steal (guest is counted in user already)
            ticks = [int(field) for field in fields[1:9]]
            total += sum(ticks)
            busy += sum(ticks) - ticks[3] - ticks[4]
        return busy * self._tick, total * self._tick

    def others_share(self) -> float:
        busy, total = self._read()
        own = self._own_seconds()
        elapsed = total - self._total
        others = busy - self._busy - (own - self._own)
        self._busy, self._total, self._own = busy, total, own
        if elapsed <= 0:
            return 0.0
        return min(max(others / elapsed, 0.0), 1.0)


class LinePacer:
    """How many of a batch's lines may be in flight now: `concurrency` while the others' share
    of the CPUs stays at or under `threshold`; above it, none new but one every `pace` seconds.
    Used from one event loop; only the next line to start polls (a FIFO lock holds the rest)."""

    def __init__(
        self, *, concurrency: int, threshold: float, pace: float, sampler: CpuSampler
    ) -> None:
        self.concurrency = concurrency
        self.threshold = threshold
        self.pace = pace
        self.sampler = sampler
        # A run starts with one line and ramps up as samples find the CPUs quiet, rather than
        # start `concurrency` lines at once on a busy host.
        self.limit = 1
        self.in_flight = 0
        self.yielding = False
        # What a test or the bench reads: samples that found the CPUs busy, lines started then.
        self.busy_samples = 0
        self.paced_starts = 0
        self._sampled_at = time.monotonic()
        self._started_at = -math.inf
        self._turn = asyncio.Lock()
        self._freed = asyncio.Event()

    def sample(self) -> None:
        """Read the CPUs if SAMPLE_SECONDS passed: yield above the threshold, else ramp up."""
        now = time.monotonic()
        if now - self._sampled_at < SAMPLE_SECONDS:
            return
        self._sampled_at = now
        if self.sampler.others_share() > self.threshold:
            self.yielding = True
            self.limit = 0
            self.busy_samples += 1
        else:
            self.yielding = False
            self.limit = min(self.concurrency, max(1, self.limit * 2))

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait for a line's turn; False when the batch stopped meanwhile."""
        async with self._turn:
            while not stop.is_set():
                self.sample()
                now = time.monotonic()
                if self.in_flight < self.limit:
                    break
                if self.yielding and now - self._started_at >= self.pace:
                    self.paced_starts += 1
                    break
                self._freed.clear()
                wait = SAMPLE_SECONDS
                if self.yielding:
                    wait = min(wait, max(self._started_at + self.pace - now, 0.0))
                try:
                    await asyncio.wait_for(self._freed.wait(), timeout=max(wait, 0.01))
                except TimeoutError:
                    pass
            else:
                return False
            self.in_flight += 1
            self._started_at = time.monotonic()
            return True

    def release(self) -> None:
        self.in_flight -= 1
        self._freed.set()


def line_pacer(
    *, concurrency: int, threshold: float, pace: float, own_seconds: Callable[[], float]
) -> LinePacer | None:
    """The pacer of a batch's run, or None when lines never yield (`threshold` 0: off; or no
    /proc/stat)."""
    if threshold <= 0:
        return None
    sampler = CpuSampler.create(own_seconds=own_seconds)
    if sampler is None:
        return None
    return LinePacer(concurrency=concurrency, threshold=threshold, pace=pace, sampler=sampler)
