"""Private Redis servers for fault tests: one server (killable, restartable with its data), a TCP
proxy in front of it that can turn into a black hole or a refused port, and a 6-node Cluster.

Each listens on its own free port, never the shared Redis of the test run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tests.live import free_port, wait_for


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisProcess:
    """A redis-server of the test's own. Every write is on disk before it is acknowledged
    (appendfsync always), so a SIGKILL and a restart lose nothing, as with a production Redis
    that persists its data."""

    directory: Path
    port: int = field(default_factory=free_port)
    extra: tuple[str, ...] = ()
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--save", "", "--appendonly", "yes",
            "--appendfsync", "always", "--daemonize", "no", "--loglevel", "warning",
            *self.extra,
        ]  # fmt: skip
        log = (self.directory / "redis.log").open("ab")
        self.popen = subprocess.Popen(argv, stdout=log, stderr=log)
        wait_for(lambda: _answers(self.port), timeout=20, what=f"redis-server on {self.port}")
        return self

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class FaultProxy:
    """A TCP proxy to a Redis, on its own port and event loop thread. `blackhole()`: it keeps
    accepting connections, and neither forwards nor answers anything, on new connections and on
    those already open. `refuse()`: nothing listens on the port any more. `heal()`: a fresh
    listener forwards again (connections of the fault are dropped, as a restarted Redis does)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.base_events.Server | None = None
        self.frozen = False
        self.writers: set[asyncio.StreamWriter] = set()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._call(self._listen())

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _call(self, coroutine: object) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        if self.frozen:
            return  # accepted, never answered
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self.target_port
            )
        except OSError:
            writer.close()
            return
        self.writers.add(upstream_writer)
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                while self.frozen:  # a black hole holds what it got
                    await asyncio.sleep(0.05)
                if writer.is_closing():
                    return
                writer.write(data)
        writer.close()

    async def _drop_connections(self) -> None:
        for writer in list(self.writers):
            with contextlib.suppress(OSError):
                writer.transport.abort()
        self.writers.clear()

    def blackhole(self) -> None:
        self.frozen = True

    def refuse(self) -> None:
        async def close() -> None:
            assert self.server is not None
            self.server.close()
            await self._drop_connections()

        self._call(close())
        wait_for(lambda: not _accepts(self.port), timeout=5, what="the proxy to stop listening")

    def heal(self) -> None:
        async def reopen() -> None:
            self.frozen = False
            await self._drop_connections()
            if self.server is None or not self.server.is_serving():
                await self._listen()

        self._call(reopen())

    def close(self) -> None:
        async def shut() -> None:
            if self.server is not None:
                self.server.close()
            await self._drop_connections()

        self._call(shut())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


@dataclass
class RedisCluster:
    """Six redis-server nodes with cluster-enabled, joined by `redis-cli --cluster create` into
    three masters with a replica each."""

    directory: Path
    nodes: list[RedisProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        seeds = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes[:2])
        return f"redis+cluster://{seeds}"

    def start(self) -> RedisCluster:
        ports: list[int] = []
        while len(ports) < 6:
            port = _cluster_port()
            if port not in ports:
                ports.append(port)
        for port in ports:
            node = RedisProcess(
                directory=self.directory / str(port),
                port=port,
                extra=("--cluster-enabled", "yes", "--cluster-node-timeout", "5000"),
            )
            self.nodes.append(node.start())
        subprocess.run(
            ["redis-cli", "--cluster", "create",
             *(f"127.0.0.1:{port}" for port in ports),
             "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        wait_for(self._ok, timeout=60, what="the Redis Cluster to be ok on every node")
        return self

    def _ok(self) -> bool:
        for node in self.nodes:
            info = subprocess.run(
                ["redis-cli", "-p", str(node.port), "cluster", "info"],
                capture_output=True, text=True, timeout=10,
            ).stdout  # fmt: skip
            if "cluster_state:ok" not in info:
                return False
        return True

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


@dataclass
class RedisSentinel:
    """One Redis master and one Sentinel that monitors it as `service`."""

    directory: Path
    service: str = "ogem-test"
    master: RedisProcess | None = None
    sentinel: subprocess.Popen[bytes] | None = None
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.service}/0"

    def start(self) -> RedisSentinel:
        self.master = RedisProcess(directory=self.directory / "master").start()
        config = self.directory / "sentinel.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 1\n"
        )
        log = (self.directory / "sentinel.log").open("ab")
        self.sentinel = subprocess.Popen(
            ["redis-server", str(config), "--sentinel"], stdout=log, stderr=log
        )
        wait_for(self._knows_master, timeout=20, what="the Sentinel to know its master")
        return self

    def _knows_master(self) -> bool:
        command = ["sentinel", "get-master-addr-by-name", self.service]
        answer = subprocess.run(
            ["redis-cli", "-p", str(self.port), *command],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        return self.master is not None and str(self.master.port) in answer

    def stop(self) -> None:
        if self.sentinel is not None and self.sentinel.poll() is None:
            self.sentinel.kill()
            self.sentinel.wait(10)
        if self.master is not None:
            self.master.stop()
