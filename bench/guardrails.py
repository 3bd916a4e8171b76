"""`python -m bench guardrails`: the built-in detectors' cost on one prompt, in process.

A 2 KB chat prompt of ordinary prose with a few personal details in it (an email, a phone
number, a card number): the PII detector's `find` (what a pre_call `pii` guardrail runs on each
text), the secrets detector's, and a whole mask step (find, placeholders, restore). p50 and p99
over N runs, one thread, after a warm-up (docs/benchmark.md, docs/guardrails.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

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
    args = parser.parse_args(argv)
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

    print(f"prompt: {len(text.encode())} bytes, {len(pii.find(text))} PII findings")
    for name, run in (
        ("pii find", lambda: pii.find(text)),
        ("secrets find", lambda: secrets.find(text)),
        ("pii mask + restore", mask),
    ):
        p50, p99 = _timed(run, args.runs)
        print(f"{name:>20}: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    return 0
