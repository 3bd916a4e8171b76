"""`python -m bench ab` (bench/ab.py): its arithmetic and its report, from figures given here (no
timed run)."""

from __future__ import annotations

import math
import os
import re
import time
import urllib.request

import pytest

from bench.ab import VARIANTS, Latency, Pair, p50_limit, parse, ratio, report, spread
from bench.bodies import REQUEST_JSON
from bench.load import _lua
from bench.otlp_sink import OTLPSink


def test_ratio_is_b_over_a_and_nan_when_a_did_nothing():
    assert ratio(1000.0, 900.0) == pytest.approx(0.9)
    assert math.isnan(ratio(0.0, 900.0))


def test_spread_is_median_min_max():
    assert spread([0.95, 0.80, 1.02, 0.91]) == (pytest.approx(0.93), 0.80, 1.02)
    assert spread([0.5]) == (0.5, 0.5, 0.5)


def test_the_p50_limit_is_absolute_for_tracing_and_a_share_of_a_for_the_cache():
    assert p50_limit(VARIANTS["tracing"], 1.2) == 0.15
    assert p50_limit(VARIANTS["cache-miss"], 1.2) == pytest.approx(0.036)


def test_defaults_are_ten_rounds_at_1_and_50_for_3_seconds():
    args = parse(["--variant", "tracing"])
    assert (args.rounds, args.concurrency, args.seconds, args.gap) == (10, (1, 50), 3, 1.5)
    with pytest.raises(SystemExit):
        parse(["--variant", "tracing", "--rounds", "0"])


def _pairs(a: list[float], b: list[float], concurrency: int) -> list[Pair]:
    return [
        Pair(round=n + 1, concurrency=concurrency, first="AB"[n % 2], a_rps=x, b_rps=y, errors=0)
        for n, (x, y) in enumerate(zip(a, b, strict=True))
    ]


def test_the_report_gives_each_round_the_median_ratio_and_the_verdict():
    pairs = _pairs([1000, 1100, 900], [920, 990, 850], 1)  # 0.92, 0.90, 0.944
    pairs += _pairs([2000, 2200, 2100], [1700, 2100, 1890], 50)  # 0.85, 0.955, 0.90
    latencies = [
        Latency(round=1, direct_ms=0.20, a_ms=1.00, b_ms=1.10),
        Latency(round=2, direct_ms=0.30, a_ms=1.20, b_ms=1.30),
        Latency(round=3, direct_ms=0.25, a_ms=1.05, b_ms=1.25),
    ]
    text = report(VARIANTS["tracing"], pairs, latencies, seconds=3)
    said = [
        "| 1 | A | 1,000 | 920 | 0.920 | - | - | - | - | 0 |",
        "| 2 | B | 2,200 | 2,100 | 0.955 | - | - | - | - | 0 |",
        "B/A: median 0.920 (min 0.900, max 0.944) over 3 rounds.",
        "B/A: median 0.900 (min 0.850, max 0.955) over 3 rounds.",
        # Added p50s: A 0.80, 0.90, 0.80 (median 0.80); B 0.90, 1.00, 1.00 (median 1.00).
        "A 0.800 ms, B 1.000 ms; Δp50 (B's minus A's) +0.200 ms",
        "- met: median B/A at concurrency 1 0.920 ≥ 0.90",
        "- met: median B/A at concurrency 50 0.900 ≥ 0.90",
        "- NOT met: Δp50 +0.200 ms ≤ +0.15 ms",
    ]
    assert [line for line in said if line not in text] == []
    assert re.search(r"^## Target \(issue 19\): NOT met$", text, re.MULTILINE)
    assert "errors" not in text.split("## Target")[1]


def test_the_cache_target_holds_within_three_percent_of_a():
    pairs = _pairs([1000, 1000], [980, 990], 1) + _pairs([2000, 2000], [1960, 1950], 50)
    latencies = [
        Latency(round=1, direct_ms=0.2, a_ms=1.0, b_ms=1.02),
        Latency(round=2, direct_ms=0.2, a_ms=1.0, b_ms=1.02),
    ]
    text = report(VARIANTS["cache-miss"], pairs, latencies, seconds=3, notes="a note")
    assert "- met: Δp50 +0.020 ms ≤ +3% of A's p50 through Ogem, 0.030 ms" in text
    assert re.search(r"^## Target \(issue 18\): met$", text, re.MULTILINE)
    assert text.endswith("a note")


def test_without_concurrency_1_the_latency_is_not_judged_and_errors_are_said():
    pairs = _pairs([2000], [1990], 50)
    pairs[0].errors = 3
    text = report(VARIANTS["cache-miss"], pairs, [], seconds=3)
    assert "Δp50 not judged" in text
    assert "3 errors" in text


def test_each_wrk_script_of_unique_bodies_marks_its_own_run(tmp_path):
    """The numbers start again at 1 in each wrk run: a mark of the run keeps them misses."""
    marks = {
        re.search(r'"Say hello\. #([0-9a-f]+)-"', script.read_text()).group(1)
        for script in (
            _lua(tmp_path / f"{n}.lua", body=REQUEST_JSON, headers={}, unique=True)
            for n in range(2)
        )
    }
    assert len(marks) == 2


def test_the_report_gives_cpu_per_request_and_its_ratio():
    pairs = _pairs([1000, 1000, 1000], [900, 950, 1000], 50)
    for pair, (a_cpu, b_cpu) in zip(pairs, [(400, 500), (400, 440), (400, 400)], strict=True):
        pair.a_cpu_us, pair.b_cpu_us, pair.b_helpers_us = a_cpu, b_cpu, 30
    text = report(VARIANTS["tracing"], pairs, [], seconds=3)
    assert "| 1 | A | 1,000 | 900 | 0.900 | 400 | 500 | 30 | 0.800 | 0 |" in text
    # A's µs over B's: 0.800, 0.909, 1.000; the verdict stays wrk's.
    assert "helpers included, over the same wrk run): median 0.909 (min 0.800, max 1.000)" in text
    assert "- met: median B/A at concurrency 50 0.950 ≥ 0.90" in text


def test_the_sink_counts_posts_in_a_process_of_its_own():
    sink = OTLPSink()
    try:
        assert (sink.exports, sink.last_post) == (0, 0.0)
        for size in (3, 5):
            request = urllib.request.Request(f"{sink.url}/v1/traces", data=b"x" * size)
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert (answer.status, answer.read()) == (200, b"")
        assert sink.exports == 2
        assert 0 < time.monotonic() - sink.last_post < 10  # one clock for every process
        assert "2 posts (OTLP exports, webhook batches), 8 bytes" in sink.summary()
        assert sink._process.pid != os.getpid()
    finally:
        sink.stop()
    assert sink._process.poll() is not None


def test_the_sink_down_variant_compares_with_the_same_callbacks_on_a_live_sink() -> None:
    from bench.ab import _callbacks_url

    class Sink:
        url = "http://127.0.0.1:1/sink"

    variant = VARIANTS["callbacks-down"]
    assert parse(["--variant", "callbacks-down"]).variant == "callbacks-down"
    assert _callbacks_url(variant, Sink(), variant_on=False) == Sink.url  # type: ignore[arg-type]
    down = _callbacks_url(variant, Sink(), variant_on=True)  # type: ignore[arg-type]
    assert down.startswith("http://127.0.0.1:") and down != Sink.url
    assert _callbacks_url(VARIANTS["tracing"], Sink(), variant_on=False) == ""  # type: ignore[arg-type]
    assert _callbacks_url(VARIANTS["tracing"], Sink(), variant_on=True) == Sink.url  # type: ignore[arg-type]
    assert p50_limit(variant, 1.2) == 0.05


def test_the_write_only_control_sends_its_cache_control_from_b_alone() -> None:
    from bench.ab import cache_seen_expected, headers_of
    from bench.ogem import Ogem

    ogem = Ogem(process=None, url="http://127.0.0.1:1", key="sk-x", env={})  # type: ignore[arg-type]
    variant = VARIANTS["cache-write-only"]
    assert headers_of(ogem, variant, variant_on=True) == {
        **ogem.headers,
        "Cache-Control": "no-cache",
    }
    assert headers_of(ogem, variant, variant_on=False) == ogem.headers
    assert headers_of(ogem, VARIANTS["cache-miss"], variant_on=True) == ogem.headers
    # Written, never read: the two sends are not looked up, a plain one then hits.
    assert cache_seen_expected(variant) == ["bypass", "bypass", "hit"]
    assert cache_seen_expected(VARIANTS["cache-miss"]) == ["miss", "hit"]
    assert (variant.cache, variant.unique, p50_limit(variant, 1.0)) == ("redis", True, 0.03)


def test_the_a_a_control_is_two_equal_servers_judged_as_the_cache_miss() -> None:
    control, miss = VARIANTS["aa"], VARIANTS["cache-miss"]
    assert (control.cache, control.unique, control.b_headers) == ("off", True, ())
    assert (control.min_ratio, control.added_p50_share) == (miss.min_ratio, miss.added_p50_share)
    assert parse(["--variant", "aa"]).variant == "aa"
