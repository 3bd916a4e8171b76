"""Finding tools, pinning and stopping the processes the benchmark starts."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Placed:
    """Where a run goes: the tools it found, its temporary directory, Ogem's core and the load's
    (None on a one-core machine)."""

    tools: dict[str, str]
    workdir: Path
    ogem_core: int
    load_core: int | None


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message says which and what to do."""


_handed_out: set[int] = set()

_CPUIDLE = Path("/sys/devices/system/cpu/cpuidle/current_driver")
_HALT_POLL = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")


def cpu_idle_described() -> str:
    """How an idle core waits, when Linux says (else ""): on a virtual machine whose guest halts
    at once (the haltpoll driver with `guest_halt_poll_ns` 0), every wait for a socket gives the
    core back to the host, and the next request's code runs on caches others have used. There,
    a request that waits once more costs far more CPU than its instructions (docs/benchmark.md,
    8 December 2026): figures from machines that idle differently do not compare."""
    try:
        driver = _CPUIDLE.read_text().strip()
    except OSError:
        return ""
    try:
        polling = f", guest halt polling {int(_HALT_POLL.read_text()):,} ns"
    except (OSError, ValueError):
        polling = ""
    return f"CPU idle driver {driver}{polling}."


def dead_url() -> str:
    """The URL of a local port nothing listens on: a sink that is down (`--callbacks-down`)."""
    return f"http://127.0.0.1:{free_port()}"


def free_port() -> int:
    """A free local port: any, or one of OGEM_BENCH_PORTS ("LOW-HIGH") when set (a machine
    shared by several benches gives each its own range)."""
    span = os.environ.get("OGEM_BENCH_PORTS", "")
    if not span:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]
    low, _, high = span.partition("-")
    for port in range(int(low), int(high) + 1):
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise BenchError(f"no free port in OGEM_BENCH_PORTS={span}")


def ensure_tools(names: dict[str, str]) -> dict[str, str]:
    """Return {tool: path}, installing missing Debian packages when we are root."""
    missing = {tool: package for tool, package in names.items() if not _which(tool)}
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        packages = sorted(set(missing.values()))
        print(f"installing {' '.join(packages)} with apt-get ...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True)
    still = [tool for tool in names if not _which(tool)]
    if still:
        packages = " ".join(sorted({names[tool] for tool in still}))
        raise BenchError(
            f"missing {', '.join(still)}: install them (e.g. `sudo apt-get install -y {packages}`)"
        )
    return {tool: _which(tool) or tool for tool in names}


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


def cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def pinned(argv: list[str], core: int | None) -> list[str]:
    if core is None or not shutil.which("taskset"):
        return argv
    return ["taskset", "-c", str(core), *argv]


def at_idle_priority(argv: list[str]) -> list[str]:
    """`argv` under Linux's SCHED_IDLE policy (util-linux's `chrt`; its children inherit it):
    it runs only on CPU time that every other process of its core leaves unused."""
    chrt = shutil.which("chrt")
    if chrt is None or not hasattr(os, "SCHED_IDLE"):
        raise BenchError("the idle CPU priority needs Linux and `chrt` (util-linux)")
    return [chrt, "--idle", "0", *argv]


def wait_port(port: int, process: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{what} exited with code {process.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{what} did not listen on port {port} within {timeout:.0f}s")


def stop(process: subprocess.Popen | None, timeout: float = 15) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no RSS for pid {pid}")


def python() -> str:
    return sys.executable


def cpu_ns(pid: int) -> int:
    """The CPU time of a process, all its threads, in ns (the scheduler's count)."""
    total = 0
    for task in os.scandir(f"/proc/{pid}/task"):
        try:
            with open(f"{task.path}/schedstat") as schedstat:
                total += int(schedstat.read().split()[0])
        except OSError:  # a thread gone meanwhile
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
