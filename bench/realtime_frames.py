"""`python -m bench realtime-frames`: the Realtime relay's own work per frame, in process.

`python -m bench --realtime` measures frames through a live server and a real upstream: on a
shared machine its wall-clock figures follow the neighbours' load, and its CPU figure mixes the
ASGI server's and `websockets`' framing with the relay's own work. This mode runs one
`RealtimeSession` (gateway/realtime/session.py) between an in-memory ASGI client and an in-memory
upstream and relays N frames of each kind of a voice conversation through it, one kind at a
time: what Ogem's relay code itself costs a frame, which framing does not change. A response is
running (its deltas are counted, as in a conversation); no frame needs the database or Redis.

Reports CPU µs per frame (`time.process_time`, unaffected by the time the process waits for a
core) and, under `valgrind --tool=callgrind --instr-atstart=no` (`--callgrind FILE` runs it so),
instructions per frame, counted over the relayed frames only. `--profile` adds a cProfile
listing. A null relay (the same in-memory ends, no session) is measured too and subtracted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import gc
import io
import json
import os
import pstats
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

RESPONSE_ID = "resp_bench0000000000000"
AUDIO_100MS = base64.b64encode(bytes(4800)).decode()  # 100 ms of 24 kHz PCM16


def _frames() -> dict[str, tuple[str, str]]:
    """name -> (direction, frame): what a voice conversation relays most."""
    where = {"response_id": RESPONSE_ID, "item_id": "item_bench000000000000", "output_index": 0}
    return {
        "client input_audio_buffer.append (100 ms)": (
            "client",
            json.dumps(
                {"type": "input_audio_buffer.append", "event_id": "ev_1", "audio": AUDIO_100MS}
            ),
        ),
        "upstream response.output_audio.delta (100 ms)": (
            "upstream",
            json.dumps(
                {
                    "type": "response.output_audio.delta",
                    "event_id": "event_bench00000000000",
                    **where,
                    "content_index": 0,
                    "delta": AUDIO_100MS,
                }
            ),
        ),
        "upstream response.output_audio_transcript.delta": (
            "upstream",
            json.dumps(
                {
                    "type": "response.output_audio_transcript.delta",
                    "event_id": "event_bench00000000000",
                    **where,
                    "content_index": 0,
                    "delta": " weather",
                }
            ),
        ),
        "upstream conversation.item.added (ungoverned)": (
            "upstream",
            json.dumps(
                {
                    "type": "conversation.item.added",
                    "event_id": "event_bench00000000000",
                    "previous_item_id": "item_a",
                    "item": {
                        "id": "item_b",
                        "object": "realtime.item",
                        "type": "message",
                        "role": "user",
                        "status": "completed",
                        "content": [{"type": "input_text", "text": "How is the weather?"}],
                    },
                }
            ),
        ),
    }


class _Upstream:
    """An in-memory upstream: takes what the relay sends, yields the frames it is given."""

    close_code: int | None = None

    def __init__(self, frames: list[str]) -> None:
        self.frames = frames
        self.sent = 0

    async def send(self, text: str) -> None:
        self.sent += 1

    def __aiter__(self) -> AsyncIterator[str]:
        return self._yield()

    async def _yield(self) -> AsyncIterator[str]:
        for frame in self.frames:
            yield frame

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.close_code = code


def _client(frames: list[str]) -> tuple[Any, Any, list[int]]:
    """An in-memory ASGI client: receive gives the frames then a disconnect; send counts."""
    messages = iter(frames)
    sent = [0]

    async def receive() -> dict[str, Any]:
        frame = next(messages, None)
        if frame is None:
            return {"type": "websocket.disconnect", "code": 1000}
        return {"type": "websocket.receive", "text": frame}

    async def send(message: dict[str, Any]) -> None:
        sent[0] += 1

    return receive, send, sent


def _session(receive: Any, send: Any, upstream: _Upstream) -> Any:
    from gateway.context import Caller, RequestContext
    from gateway.governance import Admission, SessionHold
    from gateway.realtime.handshake import Opening
    from gateway.realtime.session import RealtimeSession, _Turn
    from providers.base import Deployment, Endpoint

    caller = Caller(key_id=1, key_prefix="bench", key_name="bench")
    session = RealtimeSession(
        opening=Opening(caller=caller, model="bench-voice", beta=False, subprotocol=None),
        deployment=Deployment(
            id="bench", model_name="bench-voice", provider="openai", upstream_model="gpt-realtime"
        ),
        upstream=upstream,  # type: ignore[arg-type]
        receive=receive,
        send=send,
        hold=SessionHold(rules=[], bucket=0),
    )
    ctx = RequestContext(request_id="bench-1", endpoint=Endpoint.REALTIME, caller=caller)
    session._running[RESPONSE_ID] = _Turn(ctx=ctx, admission=Admission(), response_id=RESPONSE_ID)
    return session


async def _relay(direction: str, frames: list[str], *, null: bool) -> None:
    receive, send, sent = _client(frames if direction == "client" else [])
    upstream = _Upstream(frames if direction == "upstream" else [])
    if null:  # the same ends, frames handed straight across
        if direction == "client":
            while (message := await receive())["type"] == "websocket.receive":
                await upstream.send(message["text"])
        else:
            async for frame in upstream:
                await send({"type": "websocket.send", "text": frame})
        return
    session = _session(receive, send, upstream)
    if direction == "client":
        await session.from_client()
        assert upstream.sent == len(frames), upstream.sent
    else:
        await session.from_upstream()
        assert sent[0] == len(frames), sent[0]


def _callgrind(on: bool) -> None:
    if os.environ.get("OGEM_BENCH_CALLGRIND"):
        flag = "on" if on else "off"
        subprocess.run(["callgrind_control", "-i", flag, str(os.getpid())], check=True)


def _measure(direction: str, frame: str, count: int, *, null: bool) -> float:
    """CPU µs per frame over `count` frames (after a warm-up of the same)."""
    asyncio.run(_relay(direction, [frame] * 200, null=null))
    gc.collect()
    cpu = time.process_time()
    asyncio.run(_relay(direction, [frame] * count, null=null))
    return (time.process_time() - cpu) / count * 1e6


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench realtime-frames", description=__doc__)
    parser.add_argument("--frames", type=int, default=20000, help="per kind (default 20000)")
    parser.add_argument("--profile", action="store_true", help="a cProfile listing per kind")
    parser.add_argument(
        "--callgrind",
        type=Path,
        help="run under callgrind, writing its profile here; report instructions per frame",
    )
    parser.add_argument("--only", help="just the kind whose name contains this")
    args = parser.parse_args(argv)
    if args.callgrind is not None:
        return _under_callgrind(args)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ogem_site.settings.test")
    import django

    django.setup()
    kinds = {n: f for n, f in _frames().items() if not args.only or args.only in n}
    print(f"{args.frames} frames of each kind, one session, in process (CPU µs per frame)")
    print(f"{'frame':<52} {'bytes':>6} {'relay':>8} {'null':>8} {'relay-null':>11}")
    for name, (direction, frame) in kinds.items():
        null = _measure(direction, frame, args.frames, null=True)
        relay = _measure(direction, frame, args.frames, null=False)
        print(f"{name:<52} {len(frame):>6} {relay:>8.2f} {null:>8.2f} {relay - null:>11.2f}")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            asyncio.run(_relay(direction, [frame] * args.frames, null=False))
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
            print(out.getvalue())
    return 0


def _under_callgrind(args: argparse.Namespace) -> int:
    """One callgrind run per kind (and its null relay): instructions per frame."""
    print(f"{args.frames} frames of each kind, one session, in process (instructions per frame)")
    print(f"{'frame':<52} {'relay':>10} {'null':>10} {'relay-null':>11}")
    for name in _frames():
        if args.only and args.only not in name:
            continue
        counts = []
        for null in (False, True):
            out = args.callgrind.with_name(
                f"{args.callgrind.name}.{name.split()[1]}{'.null' if null else ''}"
            )
            argv = [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-c",
                "import sys; from bench.realtime_frames import _one; sys.exit(_one(sys.argv[1:]))",
                name,
                str(args.frames),
                "null" if null else "relay",
            ]
            env = {**os.environ, "OGEM_BENCH_CALLGRIND": "1"}
            result = subprocess.run(argv, env=env, capture_output=True, text=True)
            if result.returncode != 0:
                print(result.stderr[-3000:], file=sys.stderr)
                return 1
            totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")]
            counts.append(int(totals[0].split()[1]) / args.frames)
        print(f"{name:<52} {counts[0]:>10,.0f} {counts[1]:>10,.0f} {counts[0] - counts[1]:>11,.0f}")
    return 0


def _one(argv: list[str]) -> int:
    """Under callgrind: one kind, counted over its frames only."""
    name, count, mode = argv[0], int(argv[1]), argv[2]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ogem_site.settings.test")
    import django

    django.setup()
    direction, frame = _frames()[name]
    null = mode == "null"
    asyncio.run(_relay(direction, [frame] * 200, null=null))
    gc.collect()
    _callgrind(True)
    asyncio.run(_relay(direction, [frame] * count, null=null))
    _callgrind(False)
    return 0
