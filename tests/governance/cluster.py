"""Ogem as separate processes sharing the test database and Redis, each one killable.

Web workers run the serve command's uvicorn variant (`--server uvicorn`: one process each, with
no supervisor to respawn it, so a SIGKILL takes down one worker and the others keep serving);
Celery workers are `celery -A ogem_site worker` on a queue of the test's own. They see the
test's committed data (pair them with transactional_db) and route `soak-gpt` to the OpenAI
emulator through an OGEM_CONFIG file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from django.db import connection

from gateway.management.commands.serve import server_argv
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.live import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
MODEL = "soak-gpt"
UPSTREAM_MODEL = "gpt-4o-mini"


def governance_counters_clear() -> None:
    """Drop limit and budget counters of earlier runs: a new test database reuses their ids."""
    from ogem_site.redis import redis_client_sync, redis_slot_key

    client = redis_client_sync()
    for pattern in ("o:*:rl:*", "u:*:rl:*", "o:*:budget:*", "u:*:budget:*"):
        pattern = redis_slot_key(pattern)
        stale = list(client.scan_iter(match=pattern, count=1000))
        if stale:
            client.delete(*stale)


def database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def cluster_env(*, tmp: Path, emulator_url: str, usage_stream: str, **extra: str) -> dict[str, str]:
    """The environment every process of the cluster shares; `usage_stream` is the stream's name
    (OGEM_USAGE_STREAM), under this process's OGEM_CACHE_PREFIX."""
    from django.conf import settings

    config = tmp / "ogem.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{UPSTREAM_MODEL}\n"
        f"      api_base: {emulator_url}/v1\n"
        f"      api_key: {UPSTREAM_KEY}\n"
    )
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ogem_site.settings.test",
        "DATABASE_URL": database_url(),
        "REDIS_URL": os.environ["REDIS_URL"],
        "OGEM_USAGE_STREAM": usage_stream,
        "OGEM_CACHE_PREFIX": settings.OGEM_CACHE_PREFIX,
        "OGEM_VAR_DIR": str(tmp / "var"),
        "OGEM_CONFIG": str(config),
        "OGEM_MASTER_KEY": settings.OGEM_MASTER_KEY,
        # Keys the test creates are digested with peppers derived from these.
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "OGEM_KEY_PEPPERS": settings.OGEM_KEY_PEPPERS,
        **extra,
    }


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    url: str = ""

    def kill(self) -> None:
        """SIGKILL: no cleanup, no graceful shutdown, as a crash or the OOM killer would."""
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def alive(self) -> bool:
        return self.popen.poll() is None


def web_worker_start(env: dict[str, str], *, name: str) -> Process:
    port = free_port()
    argv = server_argv(server="uvicorn", host="127.0.0.1", port=port, workers=1)
    popen = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    worker = Process(name=name, popen=popen, url=f"http://127.0.0.1:{port}")

    def ready() -> bool:
        assert worker.alive(), f"web worker {name} exited with {popen.returncode}"
        try:
            with urllib.request.urlopen(f"{worker.url}/health/live", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    wait_for(ready, timeout=60, what=f"web worker {name} to serve")
    return worker


def celery_worker_start(env: dict[str, str], *, name: str, queue: str) -> Process:
    argv = [
        sys.executable, "-m", "celery", "-A", "ogem_site", "worker",
        "--pool", "solo", "--queues", queue, "--hostname", f"{name}@soak",
        "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel", "WARNING",
    ]  # fmt: skip
    popen = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return Process(name=name, popen=popen)
