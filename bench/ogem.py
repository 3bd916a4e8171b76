"""Ogem under test: migrated, configured for the mock upstream, with a real virtual key."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from bench.bodies import REQUEST_JSON, REQUEST_STREAM
from bench.nginx import MockUpstream
from bench.procs import (
    ROOT,
    BenchError,
    ensure_tools,
    free_port,
    pinned,
    python,
    stop,
    wait_port,
)

KEY_SCRIPT = """
import secrets
from decimal import Decimal
from billing.services import budget_upsert
from tenants.models import Organization, Team
from keys.services import key_create
slug = "bench-" + secrets.token_hex(4)
organization = Organization.objects.create(name=slug, slug=slug)
team = Team.objects.create(organization=organization, name="Bench", slug="bench")
# Limits and budgets far above what the run can reach (limits within a 32-bit column): every
# check runs (rpm and tpm of the key, a worst-case reservation on the key's and the team's monthly
# budgets), nothing is refused.
issued = key_create(
    name="bench",
    team=team,
    rpm_limit=2_000_000_000,
    tpm_limit=2_000_000_000,
    max_budget=Decimal("1000000"),
    budget_duration="30d",
)
budget_upsert(scope="team", target=team, max_budget=Decimal("1000000"), duration="30d")
print(issued.secret)
"""


@dataclass
class Ogem:
    process: subprocess.Popen
    url: str
    key: str
    env: dict[str, str]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}

    def server_pids(self) -> list[int]:
        """The ASGI server's processes: everything below `manage.py serve`."""
        found: list[int] = []
        frontier = [self.process.pid]
        while frontier:
            pid = frontier.pop()
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            found.extend(int(child) for child in children)
            frontier.extend(int(child) for child in children)
        if not found:
            raise BenchError("no server process under `manage.py serve`")
        return found

    def stop(self) -> None:
        stop(self.process, timeout=40)


def is_helper(pid: int) -> bool:
    """Whether the process is a helper a worker started (`python -m gateway....`: tracing's
    exporter, the callbacks' delivery)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:  # gone meanwhile
        return False
    return argv[1:2] == [b"-m"] and argv[2:3] != [] and argv[2].startswith(b"gateway.")


def write_config(
    path: Path,
    upstream: MockUpstream,
    *,
    deployment_limits: bool = False,
    cache: str = "off",
    realtime_api_base: str = "",
    callbacks_url: str = "",
    guardrails: list[dict] | None = None,
) -> Path:
    """A LiteLLM-format config with routing on: each bench model is a group of two weighted
    deployments (weighted shuffle, health and circuit checks per pick) with retries and cooldowns
    configured. `--deployment-limits` also gives each deployment its own rpm/tpm, far above what a
    run reaches, so that the router's capacity count runs (one more Redis round trip at the pick
    and one at the settle). `cache` `local`, `redis` or `redis-l2` (Redis without the in-process
    tier) turns the response cache on (docs/caching.md), as LiteLLM's `litellm_settings` says
    it."""

    def entry(name: str, port: int, *, weight: int, provider: str = "openai") -> dict:
        return {
            "model_name": name,
            "litellm_params": {
                "model": f"{provider}/gpt-4o-mini",
                "api_base": upstream.base(port),
                "api_key": "sk-bench",
                "weight": weight,
                **({"rpm": 100_000_000, "tpm": 100_000_000_000} if deployment_limits else {}),
            },
        }

    models = (
        ("bench-chat", upstream.json_port),
        ("bench-stream", upstream.sse_port),
        ("bench-slow", upstream.slow_port),
    )
    config = {
        "model_list": [
            *(entry(name, port, weight=weight) for name, port in models for weight in (1, 2)),
            # Not OpenAI: the Responses API is served by Ogem over its chat completions.
            *(
                entry("bench-hosted", upstream.json_port, weight=weight, provider="hosted_vllm")
                for weight in (1, 2)
            ),
        ],
        "router_settings": {
            "routing_strategy": "simple-shuffle",
            "num_retries": 2,
            "allowed_fails": 3,
            "cooldown_time": 30,
        },
    }
    if realtime_api_base:  # `--realtime`: one Realtime deployment on the echo upstream
        config["model_list"].append(
            {
                "model_name": "bench-voice",
                "litellm_params": {
                    "model": "openai/gpt-realtime",
                    "api_base": realtime_api_base,
                    "api_key": "sk-bench",
                },
            }
        )
    if cache != "off":
        params: dict[str, object] = {"type": cache}
        if cache == "redis-l2":  # no in-process tier: every hit is read from Redis
            params = {"type": "redis", "local_max_bytes": 0}
        config["litellm_settings"] = {"cache": True, "cache_params": params}
    if callbacks_url:  # `--callbacks`: two generic webhooks (LiteLLM's generic_api) to a sink
        settings = config.setdefault("litellm_settings", {})
        settings["callbacks"] = ["bench-a", "bench-b"]
        config["callback_settings"] = {
            name: {"callback_type": "generic_api", "endpoint": f"{callbacks_url}/{name}"}
            for name in ("bench-a", "bench-b")
        }
    if guardrails:  # `bench guardrails --ttfb`: LiteLLM's `guardrails:` section
        config["guardrails"] = guardrails
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _environment(workdir: Path, config: Path, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        DJANGO_SETTINGS_MODULE="ogem_site.settings.base",
        OGEM_VAR_DIR=str(workdir / "var"),
        OGEM_CONFIG=str(config),
        OGEM_LOG_LEVEL="WARNING",
        REDIS_URL=redis_url,
    )
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = f"sqlite:///{workdir / 'ogem.sqlite3'}"
    return env


def _manage(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [python(), "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise BenchError(f"manage.py {args[0]} failed:\n{result.stderr.strip()[-2000:]}")
    return result.stdout


def start_ogem(
    *,
    workdir: Path,
    upstream: MockUpstream,
    core: int | None,
    redis_url: str,
    deployment_limits: bool = False,
    cache: str = "off",
    realtime_api_base: str = "",
    environment: dict[str, str] | None = None,
    callbacks_url: str = "",
    guardrails: list[dict] | None = None,
) -> Ogem:
    """Ogem on `redis_url` ("" for local memory), its response cache `cache` (off, local, redis)."""
    config = write_config(
        workdir / "config.yaml",
        upstream,
        deployment_limits=deployment_limits,
        cache=cache,
        realtime_api_base=realtime_api_base,
        callbacks_url=callbacks_url,
        guardrails=guardrails,
    )
    env = _environment(workdir, config, redis_url)
    env.update(environment or {})  # e.g. tracing's (bench/otlp_sink.py)
    _manage(["migrate", "--noinput"], env)
    key = _manage(["shell", "-c", KEY_SCRIPT], env).strip().splitlines()[-1]
    port = free_port()
    argv = [python(), "manage.py", "serve", "--no-migrate", "--no-celery", "--workers", "1"]
    argv += ["--port", str(port)]
    log = (workdir / "ogem.log").open("w")
    process = subprocess.Popen(pinned(argv, core), cwd=ROOT, env=env, stdout=log, stderr=log)
    ogem = Ogem(process=process, url=f"http://127.0.0.1:{port}", key=key, env=env)
    try:
        wait_port(port, process, "Ogem", timeout=120)  # slow to start on a loaded machine
        _check(ogem, workdir)
    except BaseException:
        ogem.stop()
        raise
    return ogem


def _check(ogem: Ogem, workdir: Path) -> None:
    """One request of each kind before measuring: a run of errors is not a benchmark."""
    url = f"{ogem.url}/v1/chat/completions"
    for body in (REQUEST_JSON, REQUEST_STREAM):
        response = httpx.post(url, content=body, headers=ogem.headers, timeout=30)
        if response.status_code != 200 or b"Hello!" not in response.content:
            raise BenchError(
                f"Ogem answered {response.status_code} to a benchmark request:\n"
                f"  {response.text[:300]}\n"
                "Ogem must load the LiteLLM-format config in OGEM_CONFIG and serve "
                "`openai/` models on /v1/chat/completions (the config loader and the openai "
                f"provider). Ogem's log: {workdir / 'ogem.log'}"
            )


_CALLGRIND_ENV = {
    "OGEM_GOVERNANCE_SNAPSHOT_TTL": "3600",
    "OGEM_PRICE_OVERRIDE_TTL": "3600",
    "OGEM_WORKER_LEASE_TTL": "3600",
    "OGEM_REDIS_TIMEOUT": "30",
    "OGEM_REDIS_CONNECT_TIMEOUT": "30",
}


def cpu_run(
    ogem: Ogem,
    *,
    requests: int,
    profile: bool,
    core: int | None,
    callgrind: Path | None = None,
    cache: str = "off",
    responses: bool = False,
) -> str:
    """`bench/cpu.py` in a child process with Ogem's environment, pinned to Ogem's core. With
    `callgrind`, under valgrind's callgrind (non-streaming requests only, counted after 100
    warm-up ones), writing its profile there and reporting instructions per request. With the
    response cache on, non-streaming requests only, twice: every request a miss (a new body
    each), then every request a hit (one body)."""
    if cache != "off":
        runs = [("cache on, every request a miss", ["--cache", "miss"])]
        runs.append(("cache on, every request a hit", ["--cache", "hit"]))
        parts = []
        for name, extra in runs:
            where = None
            if callgrind is not None:
                where = callgrind.with_name(f"{callgrind.name}.{extra[1]}")
            report = _cpu_once(ogem, requests, profile, core, where, extra)
            parts.append(f"### {name} ({cache})\n\n{report}")
        return "\n".join(parts)
    if responses:
        if callgrind is None:
            return _cpu_once(ogem, requests, profile, core, None, ["--mode", "responses"])
        parts = []  # callgrind counts a whole run: one row each
        for row, name in enumerate(("chat completion", "response, store: false", "stored")):
            where = callgrind.with_name(f"{callgrind.name}.{row}")
            extra = ["--mode", "responses", "--row", str(row)]
            parts.append(f"### {name}\n\n{_cpu_once(ogem, requests, profile, core, where, extra)}")
        return "\n".join(parts)
    return _cpu_once(ogem, requests, profile, core, callgrind, [])


def cpu_stream_run(ogem: Ogem, *, requests: int, prompt_size: int) -> str:
    """bench/cpu.py's streaming mode with a prompt of `prompt_size` bytes (bench/guardrails.py's
    prose with personal details in it): CPU time per streamed request, in process."""
    return _cpu_once(
        ogem, requests, False, None, None, ["--mode", "stream", "--prompt-size", str(prompt_size)]
    )


def _cpu_once(
    ogem: Ogem,
    requests: int,
    profile: bool,
    core: int | None,
    callgrind: Path | None,
    extra: list[str],
) -> str:
    argv = [python(), "-m", "bench.cpu", "--key", ogem.key, "--requests", str(requests), *extra]
    if extra and "--mode" not in extra:
        argv += ["--mode", "json"]
    if profile:
        argv.append("--profile")
    env = ogem.env
    if callgrind is not None:
        # bench/cpu.py switches counting on and off with callgrind_control.
        valgrind = ensure_tools({"valgrind": "valgrind", "callgrind_control": "valgrind"})
        tool = [valgrind["valgrind"], "--tool=callgrind", "--instr-atstart=no"]
        argv = [*tool, f"--callgrind-out-file={callgrind}", *argv]
        argv += ["--warmup", "100"]
        if not extra:
            argv += ["--mode", "json"]
        # Time-driven work out of the counted window (bench/cpu.py `_timers_still`): the
        # refreshes of budget snapshots, price overrides and the worker lease, and Redis
        # timeouts that a process slowed fifty-fold would take for an outage.
        env = {**_CALLGRIND_ENV, **env, "OGEM_BENCH_CALLGRIND": "1"}
    result = subprocess.run(pinned(argv, core), cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchError(f"bench.cpu failed:\n{result.stderr.strip()[-3000:]}")
    if callgrind is not None:
        totals = re.search(r"^totals: (\d+)", callgrind.read_text(), re.MULTILINE)
        if totals is None:
            raise BenchError(f"no totals line in {callgrind}")
        counted = int(totals.group(1)) / requests
        return (
            "## Instructions per request, in process (callgrind)\n\n"
            f"non-streaming: {counted / 1e6:.3f} M instructions a request over {requests:,} "
            f"requests (CPU time under valgrind is meaningless); profile: {callgrind} "
            "(`callgrind_annotate` reads it)\n"
        )
    return "## CPU time per request, in process (ASGI app driven directly)\n\n" + result.stdout
