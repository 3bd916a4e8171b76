"""`python -m bench --realtime N`: Realtime sessions through Ogem (docs/benchmark.md).

An echo upstream speaking the Realtime protocol's shape (`session.created` on connect, then one
`conversation.item.added` for each client event) runs in a thread of this process, on the load
core. Ogem holds N idle sessions (their memory: the server processes' RSS before and after,
divided by N); then `active` of them each send `frames` events one after another, waiting for
each echo, through Ogem and directly to the upstream: the added round-trip time, halved, is what
relaying one frame costs (a round trip crosses Ogem twice). With `audio` the events are what a
voice session relays most: 100 ms `input_audio_buffer.append`s, each echoed as a 100 ms
`response.output_audio.delta`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import statistics
import threading
import time
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from bench.procs import BenchError, free_port, rss_kib

EVENT = json.dumps(
    {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "How is the weather today? " * 4}],
        },
    }
)
ECHO = json.dumps({"type": "conversation.item.added", "item": {"id": "item_1", "status": "ok"}})
AUDIO_100MS = base64.b64encode(bytes(4800)).decode()  # 24 kHz PCM16
AUDIO_EVENT = json.dumps({"type": "input_audio_buffer.append", "audio": AUDIO_100MS})
AUDIO_ECHO = json.dumps(
    {
        "type": "response.output_audio.delta",
        "event_id": "event_bench",
        "response_id": "resp_bench",
        "item_id": "item_bench",
        "output_index": 0,
        "content_index": 0,
        "delta": AUDIO_100MS,
    }
)
CREATED = json.dumps({"type": "session.created", "session": {"id": "sess_bench"}})


class EchoUpstream:
    def __init__(self, *, audio: bool = False) -> None:
        self.port = free_port()
        self.audio = audio
        echo = AUDIO_ECHO if audio else ECHO
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        ready = threading.Event()

        async def handler(ws: ServerConnection) -> None:
            await ws.send(CREATED)
            async for _ in ws:
                await ws.send(echo)

        async def main() -> None:
            self._stop = asyncio.Event()
            async with serve(handler, "127.0.0.1", self.port, compression=None, max_size=None):
                ready.set()
                await self._stop.wait()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(main())

        self._thread = threading.Thread(target=run, name="bench-realtime-upstream", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise BenchError("the Realtime echo upstream did not start")

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)


async def _open(url: str, headers: dict[str, str]) -> ClientConnection:
    ws = await connect(url, additional_headers=headers, compression=None, open_timeout=60)
    created = json.loads(await ws.recv())
    if created.get("type") != "session.created":
        raise BenchError(f"a session opened with {created!r}")
    return ws


async def _round_trips(ws: ClientConnection, frames: int, event: str = EVENT) -> list[float]:
    times = []
    for _ in range(frames):
        started = time.perf_counter()
        await ws.send(event)
        await ws.recv()
        times.append(time.perf_counter() - started)
    return times


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the server's processes used so far (/proc/PID/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)] * 1000


async def _measure(
    *,
    ogem_url: str,
    key: str,
    upstream: EchoUpstream,
    pids: list[int],
    sessions: int,
    active: int,
    frames: int,
) -> str:
    through = ogem_url.replace("http://", "ws://") + "/v1/realtime?model=bench-voice"
    direct = f"ws://127.0.0.1:{upstream.port}/v1/realtime?model=gpt-realtime"
    headers = {"Authorization": f"Bearer {key}"}
    # One session first: the first /v1/realtime imports and warms what the others share.
    warm = await _open(through, headers)
    await _round_trips(warm, 10)
    before = sum(rss_kib(pid) for pid in pids)
    opened: list[ClientConnection] = []
    for start in range(0, sessions, 100):
        batch = min(100, sessions - start)
        opened += await asyncio.gather(*(_open(through, headers) for _ in range(batch)))
    await asyncio.sleep(2)
    after = sum(rss_kib(pid) for pid in pids)
    per_session = (after - before) / sessions
    cpu_before = _cpu_seconds(pids)
    event = AUDIO_EVENT if upstream.audio else EVENT
    runs = await asyncio.gather(*(_round_trips(ws, frames, event) for ws in opened[:active]))
    # Each round trip is two relayed frames (client to upstream, and back): CPU per frame does
    # not move with the machine's load the way the wall-clock round trip does.
    cpu_per_frame = (_cpu_seconds(pids) - cpu_before) / (active * frames * 2) * 1e6
    relayed = [t for run in runs for t in run]
    baseline_sockets = await asyncio.gather(*(_open(direct, {}) for _ in range(active)))
    runs = await asyncio.gather(*(_round_trips(ws, frames, event) for ws in baseline_sockets))
    straight = [t for run in runs for t in run]
    for ws in [warm, *opened, *baseline_sockets]:
        await ws.close()
    added = (statistics.median(relayed) - statistics.median(straight)) * 1000
    return "\n".join(
        [
            f"Realtime: {sessions} idle sessions held by one worker; {active} of them then send "
            f"{frames} events each, one after another, waiting for each echo"
            f"{' (100 ms audio both ways)' if upstream.audio else ''}.",
            "",
            "| measure | value |",
            "| --- | ---: |",
            f"| server RSS before / after {sessions} idle sessions | "
            f"{before / 1024:.1f} / {after / 1024:.1f} MiB |",
            f"| memory per idle session | {per_session:.1f} KiB |",
            f"| round trip direct, p50 / p99 | {_p(straight, 0.5):.2f} / "
            f"{_p(straight, 0.99):.2f} ms |",
            f"| round trip through Ogem, p50 / p99 | {_p(relayed, 0.5):.2f} / "
            f"{_p(relayed, 0.99):.2f} ms |",
            f"| added per relayed frame, p50 (half the round trip's) | {added / 2:.2f} ms |",
            f"| server CPU per relayed frame (governance reads included) | "
            f"{cpu_per_frame:.0f} µs |",
        ]
    )


def realtime_run(
    *,
    ogem_url: str,
    key: str,
    upstream: EchoUpstream,
    pids: list[int],
    sessions: int,
    active: int,
    frames: int,
) -> str:
    return asyncio.run(
        _measure(
            ogem_url=ogem_url,
            key=key,
            upstream=upstream,
            pids=pids,
            sessions=sessions,
            active=min(active, sessions),
            frames=frames,
        )
    )
