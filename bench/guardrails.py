"""`python -m bench guardrails`: the built-in detectors' cost on one prompt, in process.

A 2 KB chat prompt of ordinary prose with a few personal details in it (an email, a phone
number, a card number): the PII detector's `find` (what a pre_call `pii` guardrail runs on each
text), the secrets detector's, and a whole mask step (find, placeholders, restore). p50 and p99
over N runs, one thread, after a warm-up (docs/benchmark.md, docs/guardrails.md).

`--ttfb`: the time to the first byte of a streamed chat completion of that prompt through two
Ogem servers on the bench's nginx upstream, one without guardrails and one with a default_on
`presidio` (the `pii` kind) masking guardrail, requests alternating between them one at a time
(so that the machine's load falls on both alike); p50 and p99 of each and the difference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROSE = (
    "Our quarterly review covers the onboarding flow, the billing migration and the support "
    "backlog. The team shipped the new dashboard on time, and customers noticed the faster "
    "search. Next quarter we plan to retire the legacy exporter, tighten access reviews and "
    "write down the incident process so that on-call engineers know whom to page. "
)
DETAILS = (
    "Please contact Jane Doe at jane.doe@example.com or +1 415-555-2671; the refund goes to "
    "card 4111 1111 1111 1111. "
)


def prompt(size: int = 2048) -> str:
    text = DETAILS
    while len(text) < size:
        text += PROSE
    return text[:size]


def _timed(run: Callable[[], object], count: int) -> tuple[float, float]:
    for _ in range(min(count, 200)):
        run()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.median(samples) * 1000, samples[int(len(samples) * 0.99) - 1] * 1000


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench guardrails", description=__doc__)
    parser.add_argument("--runs", type=int, default=5000, help="(default 5000)")
    parser.add_argument("--size", type=int, default=2048, help="prompt bytes (default 2048)")
    parser.add_argument(
        "--ttfb",
        action="store_true",
        help="time to first byte of streamed completions, PII masking on against off (servers)",
    )
    args = parser.parse_args(argv)
    if args.ttfb:
        return ttfb_main(runs=min(args.runs, 2000), size=args.size)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ogem_site.settings.test")
    import django

    django.setup()  # the detectors read their vocabulary from gateway.config

    from gateway.guardrails.detectors.pii import PIIDetector
    from gateway.guardrails.detectors.secrets import SecretsDetector
    from gateway.guardrails.masking import Masker, spans_disjoint

    text = prompt(args.size)
    pii = PIIDetector()
    secrets = SecretsDetector()

    def mask() -> None:
        masker = Masker()
        masked = masker.mask(text, spans_disjoint(pii.find(text)))
        masker.restore(masked)

    first_byte = _stage_to_first_chunk(text)
    print(f"prompt: {len(text.encode())} bytes, {len(pii.find(text))} PII findings")
    for name, run in (
        ("pii find", lambda: pii.find(text)),
        ("secrets find", lambda: secrets.find(text)),
        ("pii mask + restore", mask),
        ("stage to 1st chunk", first_byte),
    ):
        p50, p99 = _timed(run, args.runs)
        print(f"{name:>20}: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    return 0


def _stage_to_first_chunk(text: str) -> Callable[[], object]:
    """What a default_on masking `pii` guardrail adds before a stream's first byte: the guard
    stage's plan, its pre_call check and mask of the request, and the first chunk through the
    stream's restorer (one event loop turn included: an upper bound)."""
    import asyncio

    from gateway.config.types import GuardrailSettings, GuardrailSpec
    from gateway.context import Caller, RequestContext
    from gateway.guardrails.stage import guard_chunks, guard_input, guard_plan
    from providers.base import Endpoint

    spec = GuardrailSpec(name="pii", kind="pii", action="mask", default_on=True)
    settings = GuardrailSettings(guardrails={"pii": spec}, default_on=("pii",))
    chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": ""}}]}

    async def upstream() -> Any:
        yield chunk

    async def once() -> None:
        ctx = RequestContext(
            request_id="bench", endpoint=Endpoint.CHAT, caller=Caller(), model="m", stream=True
        )
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": text}]}
        plan, body = guard_plan(ctx, settings=settings, body=body)
        assert plan is not None
        await guard_input(ctx, plan, body)
        stream = guard_chunks(ctx, plan, upstream())
        await anext(stream)
        await stream.aclose()

    loop = asyncio.new_event_loop()
    return lambda: loop.run_until_complete(once())


# LiteLLM's Presidio guardrail as a LiteLLM config writes it: Ogem's `pii` kind, masking.
PII_MASK = {
    "guardrail_name": "pii",
    "litellm_params": {"guardrail": "presidio", "mode": "pre_call", "default_on": True},
}


def _first_byte(client: object, url: str, body: bytes, headers: dict[str, str]) -> float:
    """Seconds to the first bytes of the streamed answer (the whole stream is then read)."""
    started = time.perf_counter()
    first = 0.0
    with client.stream("POST", url, content=body, headers=headers) as response:  # type: ignore[attr-defined]
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.read()[:300]!r}")
        for _chunk in response.iter_raw():
            if not first:
                first = time.perf_counter() - started
    return first


def ttfb_main(*, runs: int, size: int) -> int:
    import httpx
    import orjson

    from bench.nginx import start_nginx
    from bench.ogem import cpu_stream_run, start_ogem
    from bench.procs import ensure_tools

    tools = ensure_tools({"nginx": "nginx"})
    workdir = Path(tempfile.mkdtemp(prefix="ogem-bench-ttfb-"))
    for name in ("off", "on"):
        (workdir / name).mkdir()
    body = orjson.dumps(
        {
            "model": "bench-stream",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": prompt(size)}],
        }
    )
    upstream = start_nginx(nginx=tools["nginx"], workdir=workdir / "nginx", core=None)
    servers = []
    try:
        servers.append(
            start_ogem(workdir=workdir / "off", upstream=upstream, core=None, redis_url="")
        )
        servers.append(
            start_ogem(
                workdir=workdir / "on",
                upstream=upstream,
                core=None,
                redis_url="",
                guardrails=[PII_MASK],
            )
        )
        samples: dict[str, list[float]] = {"off": [], "on": []}
        cpu: dict[str, float] = {}
        clients = [httpx.Client(timeout=30) for _ in servers]
        for index in range(runs + 100):
            if index == 100:  # the first 100 of each warm up
                cpu = {name: _cpu(ogem) for name, ogem in zip(("off", "on"), servers, strict=True)}
            # Alternate which goes first, so neither always follows the other's request.
            order = (0, 1) if index % 2 else (1, 0)
            for which in order:
                ogem, client = servers[which], clients[which]
                url = f"{ogem.url}/v1/chat/completions"
                seconds = _first_byte(client, url, body, ogem.headers)
                if index >= 100:
                    samples["off" if which == 0 else "on"].append(seconds * 1000)
        for name, ogem in zip(("off", "on"), servers, strict=True):
            cpu[name] = (_cpu(ogem) - cpu[name]) / runs * 1000
        for client in clients:
            client.close()
        # In process, without the ASGI server nor the client: the CPU time of a whole streamed
        # request (bench/cpu.py), which the machine's load does not change.
        in_process = {
            name: cpu_stream_run(ogem, requests=runs, prompt_size=size)
            for name, ogem in zip(("off", "on"), servers, strict=True)
        }
    finally:
        for ogem in servers:
            ogem.stop()
        upstream.stop()
    load = os.getloadavg()
    print(f"prompt: {size} bytes, streamed, {runs} requests each, load average {load[0]:.1f}")
    p50: dict[str, float] = {}
    for name, values in samples.items():
        values.sort()
        p50[name] = statistics.median(values)
        p99 = values[int(len(values) * 0.99) - 1]
        print(f"guardrails {name:>3}: TTFB p50 {p50[name]:.3f} ms, p99 {p99:.3f} ms")
    print(f"added by PII masking: {p50['on'] - p50['off']:+.3f} ms at p50")
    # CPU time is not taken by the neighbours: what the server spends on a whole streamed
    # request (its TTFB share included), whatever the load.
    print(
        f"server CPU a request: off {cpu['off']:.3f} ms, on {cpu['on']:.3f} ms "
        f"({cpu['on'] - cpu['off']:+.3f} ms)"
    )
    for name, report in in_process.items():
        print(f"\nguardrails {name}, in process:\n{report.split(chr(10), 2)[2].strip()}")
    return 0


def _cpu(ogem: object) -> float:
    from bench.procs import cpu_seconds

    return sum(cpu_seconds(pid) for pid in ogem.server_pids())  # type: ignore[attr-defined]
