"""The benchmark's in-process CPU mode and its slow-stream CPU accounting."""

from __future__ import annotations

import orjson
import pytest

from bench.__main__ import _steady_cost
from bench.cpu import asgi_request


def test_steady_cost_counts_cpu_only_while_every_stream_is_open() -> None:
    # Two streams open from t=10 to t=20 (the later start and the earlier end); the CPU samples
    # outside that window (set-up at t=9, teardown at t=21) must not count.
    spans = [(9.5, 21.0), (10.0, 20.0)]
    samples = [(9.0, 0.0), (10.0, 1.0), (15.0, 1.5), (20.0, 2.0), (21.0, 5.0)]
    text = _steady_cost(samples, spans, rate=10)
    # 1.0 s of CPU over 10 s, for 2 streams x 10 events/s x 10 s = 200 events: 5,000 µs each.
    assert text == (
        "Steady state (10.0 s with all 2 streams open): Ogem used 10% of a core for "
        "~20 events/s, 5000 µs of CPU per relayed event; one core relays at most ~200 events/s "
        "(~20 streams at 10 events/s)."
    )


def test_steady_cost_without_a_common_window_says_so() -> None:
    spans = [(0.0, 1.0), (2.0, 3.0)]  # never open at the same time
    samples = [(0.0, 0.0), (1.5, 1.0), (3.0, 2.0)]
    assert "not measured" in _steady_cost(samples, spans, rate=10)
    assert "not measured" in _steady_cost([], [], rate=10)


@pytest.mark.django_db(transaction=True)
async def test_asgi_request_drives_ogems_app_in_process(master_key: str) -> None:
    from ogem_site.asgi import application

    body = orjson.dumps(
        {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    )
    headers = [
        (b"authorization", f"Bearer {master_key}".encode()),
        (b"content-type", b"application/json"),
    ]
    status, answer = await asgi_request(
        application, path="/v1/chat/completions", body=body, headers=headers
    )
    assert status == 200
    assert answer.startswith(b"data: {")
    assert answer.endswith(b"data: [DONE]\n\n")

    status, answer = await asgi_request(
        application, path="/v1/chat/completions", body=b"{", headers=headers
    )
    assert status == 400
    assert orjson.loads(answer)["error"]["code"] == "invalid_json"
