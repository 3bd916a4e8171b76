"""The response cache across the web workers of `manage.py serve --workers 2` (docs/caching.md):
an answer stored by one worker is a hit in the other, through Redis (L2)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.openai_api import OpenAIEmulator
from tests.live import free_port, wait_for
from tests.site.serve_processes import manage, server_workers, wait_ready

MASTER = "sk-master-" + "c" * 32


def _redis_url() -> str | None:
    url = os.environ.get("REDIS_URL")
    if not url:
        return None
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return None
    return url


def _server_socket_inode(port: int, client_port: int) -> int | None:
    """The inode of the server's end of the TCP connection from client_port (/proc/net/tcp)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if int(local.rsplit(":", 1)[1], 16) == port and (
                int(remote.rsplit(":", 1)[1], 16) == client_port
            ):
                return int(fields[9])
    return None


def _socket_owner(inode: int, pids: list[int]) -> int | None:
    """Which of pids holds the socket (its file descriptors in /proc)."""
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    return pid
            except OSError:
                continue
    return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_repeat_requests_hit_across_two_web_workers(  # type: ignore[no-untyped-def]
    tmp_path, migrated_env, started, openai_emulator: OpenAIEmulator
) -> None:
    redis_url = _redis_url()
    if redis_url is None:
        pytest.skip("no Redis reachable")
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: emulated\n"
        "    litellm_params:\n"
        "      model: openai/gpt-4o-mini\n"
        f"      api_base: {openai_emulator.url}/v1\n"
        f"      api_key: {UPSTREAM_KEY}\n"
        "litellm_settings:\n"
        "  cache: true\n"
        "  cache_params: {type: redis}\n"
    )
    prefix = f"serve-cache-{os.getpid()}-{time.time_ns()}"
    env = {
        **migrated_env,
        "REDIS_URL": redis_url,
        "OGEM_CACHE_PREFIX": prefix,
        "OGEM_CONFIG": str(config),
        "OGEM_MASTER_KEY": MASTER,
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = manage(
        "serve", "--no-migrate", "--no-celery", "--port", str(port), "--workers", "2", env=env
    )
    started.append(process)
    try:
        wait_ready(url, process)
        workers = server_workers(process.pid)

        body = {"model": "emulated", "messages": [{"role": "user", "content": "Same question"}]}
        headers = {"Authorization": f"Bearer {MASTER}"}
        answered_by: list[int | None] = []
        stored = redis.Redis.from_url(redis_url)
        results: list[str] = []
        for _ in range(60):
            # A fresh connection each time: the kernel hands it to either worker's accept.
            with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
                response = client.post("/v1/chat/completions", json=body)
                assert response.status_code == 200, response.text
                results.append(response.headers["x-ogem-cache"])
                stream = response.extensions["network_stream"]
                client_port = stream.get_extra_info("client_addr")[1]
                inode = _server_socket_inode(port, client_port)
                answered_by.append(_socket_owner(inode, workers) if inode is not None else None)
            if len(results) >= 20 and set(answered_by) >= set(workers):
                break
            if len(results) == 1:  # the entry reaches Redis after the answer has left
                wait_for(
                    lambda: next(stored.scan_iter(match=f"{prefix}:cache:*"), None),
                    what="the cached answer's write to Redis",
                )

        assert set(answered_by) >= set(workers), f"one worker answered all: {answered_by}"
        assert results[0] == "miss"
        assert results[1:] == ["hit"] * (len(results) - 1)
        calls = [r for r in openai_emulator.requests if r.path.endswith("/chat/completions")]
        assert len(calls) == 1
    finally:
        client = redis.Redis.from_url(redis_url)
        stale = list(client.scan_iter(match=f"{prefix}:*"))
        if stale:
            client.delete(*stale)
