"""The callbacks' delivery process alone: `python -m bench.callbacks_replay`.

A recorded stream of N events, as a web worker hands them over with `python -m bench --cpu
--callbacks` (a non-streaming chat request's event, message logging on, two generic_api webhooks
to a local sink), is written to a fresh `python -m gateway.callbacks.deliver` in the dispatcher's
frames (gateway/child_pipe.py), 32 events a frame (dispatcher.BATCH_EVENTS) at REPLAY_RATE events
a second, then flushed. It prints the process's CPU time per event (the scheduler's count, not
the wall clock: the machine may be loaded). `--profile PATH` runs the process under cProfile
instead (`python -m pstats PATH`); `--callgrind PATH` under valgrind's callgrind (instructions,
deterministic).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from typing import Any

import orjson

from bench.bodies import completion_json
from bench.otlp_sink import OTLPSink
from bench.procs import cpu_ns

REPLAY_RATE = 1000  # events a second: bench/cpu.py's REPLAY_RATE
STEP = 32  # events a frame: gateway/callbacks/dispatcher.BATCH_EVENTS


def _event(number: int) -> tuple[Any, ...]:
    """gateway.callbacks.emit.event_build's tuple for the bench's chat request."""
    output = orjson.loads(completion_json())
    now = 1_765_000_000.0 + number / REPLAY_RATE
    return (
        "success",
        f"req_{number:032x}",
        f"{number:032x}",
        f"{number:016x}",
        now - 0.004,
        now,
        "chat/completions",
        "bench-chat",
        output["model"],
        "openai",
        "bench-chat-0",
        200,
        False,
        10,
        20,
        30,
        0,
        "0.000045",
        4,
        None,
        False,
        1,
        2,
        3,
        "bench key",
        4,
        "",
        (),
        {},
        None,
        [{"role": "user", "content": "Say hello."}],
        output["choices"],
    )


def _frames(url: str, events: int) -> list[bytes]:
    """The worker's frames: its configuration, two sinks, then the events, STEP at a time."""
    from gateway.callbacks.dispatcher import _events_frame
    from gateway.child_pipe import frame

    frames = [
        frame(("config", 10_000, 1.0, 3, True)),
        frame(
            ("sink", 1, "bench-a", "generic_api", {"generic_logger_endpoint": f"{url}/a"}, False)
        ),
        frame(
            ("sink", 2, "bench-b", "generic_api", {"generic_logger_endpoint": f"{url}/b"}, False)
        ),
    ]
    for first in range(0, events, STEP):
        frames.append(_events_frame([(_event(n), (1, 2)) for n in range(first, first + STEP)]))
    return frames


def _user_system(pid: int) -> tuple[int, int]:
    """The process's user and system CPU time, in clock ticks (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def replay(*, events: int, command: list[str]) -> tuple[float, float, int]:
    """CPU µs per event of one delivery process fed `events` events, the part of it spent in
    the kernel (sending), and the sink's posts."""
    sink = OTLPSink()
    frames = _frames(sink.url, events)
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    # The first frames (configuration, sinks, a batch) start it: imports are not counted.
    process.stdin.write(b"".join(frames[:4]) + _flush(1))
    process.stdin.flush()
    _answer(process, b"flushed 1")
    _instrument(command, process.pid, on=True)
    before = cpu_ns(process.pid)
    user, system = _user_system(process.pid)
    started = time.monotonic()
    for index, data in enumerate(frames[4:], start=1):
        process.stdin.write(data)
        process.stdin.flush()
        time.sleep(max(started + index * STEP / REPLAY_RATE - time.monotonic(), 0.0))
    process.stdin.write(_flush(2))
    process.stdin.flush()
    _answer(process, b"flushed 2")
    spent = cpu_ns(process.pid) - before
    _instrument(command, process.pid, on=False)
    user_after, system_after = _user_system(process.pid)
    ticks = (user_after - user) + (system_after - system)
    kernel = (system_after - system) / ticks if ticks else 0.0
    process.stdin.close()
    process.wait()
    sink.stop()
    return spent / (events - STEP) / 1e3, kernel, sink.exports


def _instrument(command: list[str], pid: int, *, on: bool) -> None:
    """Under callgrind, only the replay is counted (not the imports nor the exit)."""
    if command[0].endswith("valgrind"):
        subprocess.run(
            ["callgrind_control", "-i", "on" if on else "off", str(pid)],
            check=True,
            capture_output=True,
        )


def _flush(number: int) -> bytes:
    from gateway.child_pipe import frame

    return frame(("flush", number))


def _answer(process: subprocess.Popen[bytes], line: bytes) -> None:
    assert process.stdout is not None
    while (got := process.stdout.readline()) and not got.startswith(line):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.callbacks_replay")
    parser.add_argument("--events", type=int, default=20_000, help="events replayed")
    parser.add_argument("--runs", type=int, default=2, help="replays, each in a fresh process")
    parser.add_argument("--profile", metavar="PATH", help="run the process under cProfile")
    parser.add_argument("--callgrind", metavar="PATH", help="run the process under callgrind")
    args = parser.parse_args(argv)
    command = [sys.executable, "-m", "gateway.callbacks.deliver"]
    if args.profile:
        command[1:1] = ["-m", "cProfile", "-o", args.profile]
    elif args.callgrind:
        valgrind = shutil.which("valgrind")
        if valgrind is None:
            parser.error("valgrind is not installed")
        command[:0] = [
            valgrind,
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={args.callgrind}",
        ]
    for run in range(1, args.runs + 1):
        cpu_us, kernel, posts = replay(events=args.events, command=command)
        print(
            f"run {run}: {cpu_us:.1f} µs CPU per event in the delivery process "
            f"({kernel:.0%} in the kernel), {posts} posts"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
