"""An upstream that reports no usage is not free: Ogem estimates it, tells the client, records it
as estimated and charges it. The upstream is the OpenAI emulator with `report_usage` off: it
speaks OpenAI's wire format and ignores `stream_options.include_usage`, as llama-cpp-python's
server does. The estimate (docs/governance.md): the prompt at the admission estimate (request
body bytes / 4, rounded down), the completion at ceil(UTF-8 bytes of the generated text / 4)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx
import openai
import pytest
from prometheus_client import REGISTRY

from billing.models import RequestLog
from billing.services import usage_drain
from gateway.governance import governance_snapshot_flush
from keys.services import key_create
from providers.base import Deployment
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.openai_api import OpenAIEmulator
from tests.factories import TeamFactory
from tests.live import LiveServer

INPUT_PRICE = Decimal("0.000001")
OUTPUT_PRICE = Decimal("0.000002")
# Multi-byte characters: the estimate counts UTF-8 bytes, not characters.
MESSAGES = [{"role": "user", "content": "Grüße aus München, 日本語も少し。"}]


@pytest.fixture
def silent(
    openai_emulator: OpenAIEmulator,
    install_deployments,  # type: ignore[no-untyped-def]
    live_ogem: LiveServer,
    backend: str,
) -> Iterator[OpenAIEmulator]:
    """Model `local` on an OpenAI-compatible upstream that reports no usage, priced."""
    governance_snapshot_flush()
    openai_emulator.report_usage = False
    install_deployments(
        Deployment(
            id="test:local",
            model_name="local",
            provider="openai_compatible",
            upstream_model="qwen2.5-0.5b-instruct",
            api_base=f"{openai_emulator.url}/v1",
            api_key=UPSTREAM_KEY,
            params={
                "input_cost_per_token": float(INPUT_PRICE),
                "output_cost_per_token": float(OUTPUT_PRICE),
            },
        )
    )
    yield openai_emulator
    governance_snapshot_flush()


class _Client:
    """The official SDK with a new key, keeping the bytes of each request body it sends."""

    def __init__(self, live: LiveServer) -> None:
        self.sent: list[bytes] = []
        secret = key_create(name="unreported", team=TeamFactory()).secret
        http = httpx.Client(event_hooks={"request": [lambda r: self.sent.append(r.read())]})
        self.sdk = openai.OpenAI(
            base_url=f"{live.url}/v1", api_key=secret, max_retries=0, http_client=http
        )


def _estimate(body: bytes, text: str) -> tuple[int, int]:
    return len(body) // 4, math.ceil(len(text.encode()) / 4)


def _charged(prompt: int, completion: int) -> RequestLog:
    """The request's row: recorded at these estimated counts and charged for them."""
    row = _row()
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (
        prompt,
        completion,
        prompt + completion,
    )
    assert row.usage_estimated is True
    assert row.cost == prompt * INPUT_PRICE + completion * OUTPUT_PRICE
    assert row.cost > 0
    return row


def _row() -> RequestLog:
    # A stream settles just after its last byte: wait for its usage event.
    deadline = time.monotonic() + 5
    written = usage_drain()
    while not written and time.monotonic() < deadline:
        time.sleep(0.02)
        written = usage_drain()
    assert written == 1
    assert usage_drain() == 0
    (row,) = RequestLog.objects.all()
    return row


def test_a_stream_without_usage_gets_the_estimated_usage_chunk_and_is_charged(
    silent: OpenAIEmulator, live_ogem: LiveServer
) -> None:
    client = _Client(live_ogem)
    chunks = list(
        client.sdk.chat.completions.create(
            model="local",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    # The upstream was asked for usage and sent none.
    assert silent.last.json["stream_options"] == {"include_usage": True}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Emulated reply to: Grüße aus München, 日本語も少し。"
    prompt, completion = _estimate(client.sent[-1], text)
    assert completion == math.ceil(62 / 4) == 16  # 62 UTF-8 bytes, 45 characters
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (
        prompt,
        completion,
        prompt + completion,
    )
    assert last.id == chunks[0].id and last.object == "chat.completion.chunk"
    assert all(c.usage is None for c in chunks[:-1])

    row = _charged(prompt, completion)
    assert (row.stream, row.status_code) == (True, 200)


def test_a_stream_without_usage_is_charged_even_when_the_client_asked_for_none(
    silent: OpenAIEmulator, live_ogem: LiveServer
) -> None:
    client = _Client(live_ogem)
    chunks = list(client.sdk.chat.completions.create(model="local", messages=MESSAGES, stream=True))
    assert all(c.usage is None and c.choices for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    prompt, completion = _estimate(client.sent[-1], text)
    _charged(prompt, completion)


def test_an_answer_without_usage_gets_the_estimated_usage_and_is_charged(
    silent: OpenAIEmulator, live_ogem: LiveServer
) -> None:
    client = _Client(live_ogem)
    raw = client.sdk.chat.completions.with_raw_response.create(model="local", messages=MESSAGES)
    assert raw.headers["x-ogem-usage-estimated"] == "true"
    answer = raw.parse()
    text = answer.choices[0].message.content or ""
    prompt, completion = _estimate(client.sent[-1], text)
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (prompt, completion)
    assert answer.usage.total_tokens == prompt + completion
    _charged(prompt, completion)


def test_an_embedding_without_usage_is_charged_for_its_input(
    silent: OpenAIEmulator, live_ogem: LiveServer
) -> None:
    client = _Client(live_ogem)
    answer = client.sdk.embeddings.create(model="local", input="Grüße", encoding_format="float")
    prompt = len(client.sent[-1]) // 4
    assert answer.usage.prompt_tokens == prompt
    _charged(prompt, 0)


def _impossible(field: str) -> float:
    labels = {"provider": "openai_compatible", "field": field}
    return REGISTRY.get_sample_value("ogem_usage_impossible_total", labels) or 0.0


def test_impossible_usage_from_an_upstream_is_counted_and_estimated(
    silent: OpenAIEmulator, live_ogem: LiveServer
) -> None:
    silent.report_usage = True
    silent.usage_override = {"prompt_tokens": -3, "completion_tokens": 10**12, "total_tokens": 1.5}
    before = {field: _impossible(field) for field in ("prompt_tokens", "completion_tokens")}
    client = _Client(live_ogem)
    raw = client.sdk.chat.completions.with_raw_response.create(model="local", messages=MESSAGES)
    answer = raw.parse()
    prompt, completion = _estimate(client.sent[-1], answer.choices[0].message.content or "")
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (prompt, completion)
    assert raw.headers["x-ogem-usage-estimated"] == "true"
    for field in ("prompt_tokens", "completion_tokens"):
        assert _impossible(field) - before[field] == 1
    _charged(prompt, completion)


def test_impossible_usage_in_a_stream_is_replaced_by_the_estimate(
    silent: OpenAIEmulator, live_ogem: LiveServer
) -> None:
    silent.report_usage = True
    silent.usage_override = {"prompt_tokens": 7, "completion_tokens": -5, "total_tokens": 2}
    before = _impossible("completion_tokens")
    client = _Client(live_ogem)
    chunks = list(
        client.sdk.chat.completions.create(
            model="local", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    _, completion = _estimate(client.sent[-1], text)
    # One usage chunk: the upstream's possible prompt count and the estimated completion.
    assert [c.usage.model_dump(exclude_none=True) for c in chunks if c.usage] == [
        {"prompt_tokens": 7, "completion_tokens": completion, "total_tokens": 7 + completion}
    ]
    assert _impossible("completion_tokens") - before == 1
    _charged(7, completion)
