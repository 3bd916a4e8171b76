"""Provider prompt caching end to end: the official SDKs → a live Ogem → each provider's emulator.

Each test asserts what the emulator received (the cache markers where its API wants them), the
usage the client got (OpenAI's `prompt_tokens_details.cached_tokens`, Ogem's
`cache_creation_tokens`, Anthropic's cache fields on `/v1/messages`; in streams, the final usage
chunk) and the cost recorded in `RequestLog` after the usage drain, at the shipped price table's
input, cache read and cache write prices. The emulators keep a prompt cache the way each API
documents it (tests/emulators/prompt_cache.py), so a first request writes and a second reads.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import anthropic
import httpx
import openai
import pytest

from billing.models import RequestLog
from billing.services import usage_drain
from keys.services import key_create
from providers.base import Deployment
from providers.bedrock.auth import credentials_forget
from tests.emulators.anthropic_api import API_KEY as ANTHROPIC_KEY
from tests.emulators.anthropic_api import AnthropicEmulator, anthropic_emulator_get
from tests.emulators.anthropic_api import reply_cached as anthropic_reply
from tests.emulators.bedrock_api import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    BedrockEmulator,
    bedrock_emulator_get,
)
from tests.emulators.bedrock_api import reply_cached as bedrock_reply
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.gemini_api import API_KEY as GEMINI_KEY
from tests.emulators.gemini_api import GeminiEmulator, gemini_emulator_get
from tests.emulators.gemini_api import reply_cached as gemini_reply
from tests.emulators.openai_api import OpenAIEmulator
from tests.factories import TeamFactory
from tests.live import LiveServer

pytestmark = pytest.mark.live

# Well over every provider's minimum cacheable prefix (1,024 tokens in the emulators).
LONG_INSTRUCTIONS = "You answer questions about the attached handbook. " + " ".join(
    f"Rule {i}: keep answers short and cite the section." for i in range(200)
)
EPHEMERAL = {"type": "ephemeral"}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
MILLION = Decimal(1_000_000)
# The shipped price table (billing/prices/prices.yaml), USD per million tokens.
PRICES: dict[str, dict[str, Decimal]] = {
    "claude-3-5-haiku-20241022": {
        "input": Decimal("0.80"),
        "output": Decimal("4.00"),
        "cache_write": Decimal("1.00"),
        "cache_write_1h": Decimal("1.60"),
        "cache_read": Decimal("0.08"),
    },
    "gemini-2.0-flash": {
        "input": Decimal("0.10"),
        "output": Decimal("0.40"),
        "cache_read": Decimal("0.025"),
    },
    "gpt-4o-mini": {
        "input": Decimal("0.15"),
        "output": Decimal("0.60"),
        "cache_read": Decimal("0.075"),
    },
    "deepseek-chat": {
        "input": Decimal("0.28"),
        "output": Decimal("0.42"),
        "cache_read": Decimal("0.028"),
    },
}
PRICES["us.anthropic.claude-3-5-haiku-20241022-v1:0"] = PRICES["claude-3-5-haiku-20241022"]


def _cost(
    upstream: str, *, prompt: int, read: int, written: int, completion: int, hour: int = 0
) -> Decimal:
    """At the shipped prices; `hour` of the `written` tokens were written for an hour."""
    price = PRICES[upstream]
    fresh = prompt - read - written
    cost = (
        fresh * price["input"]
        + read * price.get("cache_read", price["input"])
        + (written - hour) * price.get("cache_write", price["input"])
        + hour * price.get("cache_write_1h", price["input"])
        + completion * price["output"]
    ) / MILLION
    return cost.quantize(Decimal("0.00000001"), rounding=ROUND_HALF_EVEN)


@pytest.fixture
def usage_isolated(settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Usage events of this test only: a stream of its own (or the local buffer, emptied)."""
    from billing.usage import usage_buffer_take, usage_stream_key
    from ogem_site.redis import redis_client_sync

    settings.OGEM_USAGE_STREAM = f"test-usage:{uuid.uuid4().hex}"
    usage_buffer_take(limit=10**9)
    yield
    usage_buffer_take(limit=10**9)
    if settings.REDIS_URL:
        redis_client_sync().delete(usage_stream_key())


@pytest.fixture
def key(live_ogem: LiveServer, usage_isolated: None) -> str:
    return key_create(name="prompt caching", team=TeamFactory()).secret


@pytest.fixture
def client(live_ogem: LiveServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=key, max_retries=0)


def _costs(count: int) -> list[Decimal]:
    """The costs recorded for this test's requests, in order, once the drain wrote them."""
    deadline = time.monotonic() + 5
    while RequestLog.objects.count() < count and time.monotonic() < deadline:
        usage_drain()
        time.sleep(0.02)
    rows = list(RequestLog.objects.order_by("created_at", "id"))
    assert len(rows) == count
    return [row.cost for row in rows]


def _chat(client: openai.OpenAI, *, stream: bool, **request: Any) -> Any:
    """A chat completion's usage (a stream's comes in its final chunk)."""
    if not stream:
        return client.chat.completions.create(**request).usage
    chunks = list(
        client.chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == []
    return chunks[-1].usage


# -- Anthropic and Bedrock: explicit breakpoints ----------------------------------------------


@dataclass
class Breakpoints:
    """A provider whose cache is written at breakpoints the request marks."""

    model: str
    upstream: str
    emulator: AnthropicEmulator | BedrockEmulator
    bodies: Callable[[], list[dict[str, Any]]]
    reply: Callable[[str], Any]


@pytest.fixture(params=["anthropic", "bedrock"])
def breakpoints(
    request: pytest.FixtureRequest, install_deployments: Callable[..., None]
) -> Iterator[Breakpoints]:
    if request.param == "anthropic":
        emulator: Any = anthropic_emulator_get()
        emulator.reset()
        upstream = "claude-3-5-haiku-20241022"
        install_deployments(
            Deployment(
                id="test:claude:0",
                model_name="claude",
                provider="anthropic",
                upstream_model=upstream,
                api_base=emulator.url,
                api_key=ANTHROPIC_KEY,
            )
        )
        yield Breakpoints("claude", upstream, emulator, lambda: emulator.bodies, anthropic_reply)
    else:
        emulator = bedrock_emulator_get()
        emulator.reset()
        credentials_forget()
        upstream = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
        install_deployments(
            Deployment(
                id="test:claude-bedrock:0",
                model_name="claude-bedrock",
                provider="bedrock",
                upstream_model=upstream,
                api_base=emulator.url,
                region=REGION,
                params={"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY},
            )
        )

        def bodies() -> list[dict[str, Any]]:
            return emulator.bodies("converse") + emulator.bodies("converse-stream")

        yield Breakpoints("claude-bedrock", upstream, emulator, bodies, bedrock_reply)
        credentials_forget()
    emulator.reset()


def _marked_request(model: str, question: str) -> dict[str, Any]:
    """Breakpoints on a system part (an hour's TTL), a tool and a user message."""
    return {
        "model": model,
        "messages": [
            {
                "role": "system",
                "content": [
                    {
                        "type": "text",
                        "text": LONG_INSTRUCTIONS,
                        "cache_control": {"type": "ephemeral", "ttl": "1h"},
                    }
                ],
            },
            {"role": "user", "content": question, "cache_control": EPHEMERAL},
        ],
        "tools": [{**WEATHER_TOOL, "cache_control": EPHEMERAL}],
        "max_tokens": 50,
    }


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_cache_control_markers_write_then_read_the_cache(
    client: openai.OpenAI, breakpoints: Breakpoints, stream: bool
) -> None:
    provider = breakpoints
    provider.emulator.script(provider.reply("First."), provider.reply("Second."))
    first = _chat(client, stream=stream, **_marked_request(provider.model, "Section 1?"))
    second = _chat(client, stream=stream, **_marked_request(provider.model, "Section 2?"))

    # (a) the markers reached the upstream where its API wants them
    body = provider.bodies()[0]
    if isinstance(provider.emulator, AnthropicEmulator):
        assert body["system"] == [
            {
                "type": "text",
                "text": LONG_INSTRUCTIONS,
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            }
        ]
        assert body["tools"][0]["cache_control"] == EPHEMERAL
        assert body["messages"] == [
            {
                "role": "user",
                "content": [{"type": "text", "text": "Section 1?", "cache_control": EPHEMERAL}],
            }
        ]
    else:
        assert body["system"] == [
            {"text": LONG_INSTRUCTIONS},
            {"cachePoint": {"type": "default", "ttl": "1h"}},
        ]
        assert body["toolConfig"]["tools"][1:] == [{"cachePoint": {"type": "default"}}]
        assert body["messages"] == [
            {
                "role": "user",
                "content": [{"text": "Section 1?"}, {"cachePoint": {"type": "default"}}],
            }
        ]

    # (b) the first request wrote the cached prefix, the second read it
    reported = provider.emulator.usages
    hour = [0, 0]  # Converse does not split its cache writes by TTL
    if isinstance(provider.emulator, AnthropicEmulator):
        hour = [u["cache_creation"]["ephemeral_1h_input_tokens"] for u in reported]
        written = [u["cache_creation_input_tokens"] for u in reported]
        read = [u["cache_read_input_tokens"] for u in reported]
        fresh = [u["input_tokens"] for u in reported]
        output = [u["output_tokens"] for u in reported]
        # the system prefix at its hour's TTL, the question after it at five minutes
        split = reported[0]["cache_creation"]
        assert split["ephemeral_1h_input_tokens"] == read[1]
        assert split["ephemeral_5m_input_tokens"] == written[0] - read[1]
    else:
        written = [u["cacheWriteInputTokens"] for u in reported]
        read = [u["cacheReadInputTokens"] for u in reported]
        fresh = [u["inputTokens"] for u in reported]
        output = [u["outputTokens"] for u in reported]
    # The first request wrote up to the question; the second, asking another, read the tools
    # and system prefix and wrote its own question.
    assert read[0] == 0 and read[1] > 1024 and written[0] > read[1]
    assert written[1] == written[0] - read[1]
    for usage, index in ((first, 0), (second, 1)):
        prompt = fresh[index] + read[index] + written[index]
        assert (usage.prompt_tokens, usage.completion_tokens) == (prompt, output[index])
        assert usage.prompt_tokens_details.cached_tokens == read[index]
        extra = {"cache_creation_tokens": written[index]}
        if hour[index]:
            extra["cache_creation_1h_tokens"] = hour[index]
        assert usage.prompt_tokens_details.model_extra == extra

    # (c) priced at the cache write prices (an hour's, five minutes'), then the cache read price
    assert _costs(2) == [
        _cost(
            provider.upstream,
            prompt=fresh[i] + read[i] + written[i],
            read=read[i],
            written=written[i],
            completion=output[i],
            hour=hour[i],
        )
        for i in (0, 1)
    ]


def test_a_top_level_cache_control_is_anthropics_automatic_caching(
    client: openai.OpenAI, breakpoints: Breakpoints
) -> None:
    provider = breakpoints
    provider.emulator.script(provider.reply("Yes."), provider.reply("Yes."))
    request = {
        "model": provider.model,
        "messages": [{"role": "user", "content": LONG_INSTRUCTIONS}],
        "max_tokens": 20,
    }
    for _ in range(2):
        completion = client.chat.completions.create(
            **request, extra_body={"cache_control": EPHEMERAL}
        )
    body = provider.bodies()[1]
    if isinstance(provider.emulator, AnthropicEmulator):
        assert body["cache_control"] == EPHEMERAL
        assert body["messages"] == [{"role": "user", "content": LONG_INSTRUCTIONS}]
    else:  # Converse has no automatic caching: a cache point ends the last turn
        assert "cache_control" not in body
        assert body["messages"][-1]["content"][-1] == {"cachePoint": {"type": "default"}}
    usage = completion.usage
    assert usage.prompt_tokens_details.cached_tokens == usage.prompt_tokens > 1024


# -- Anthropic's own API on /v1/messages -------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_messages_route_passes_markers_untouched_and_reports_anthropics_fields(
    live_ogem: LiveServer,
    key: str,
    breakpoints: Breakpoints,
    stream: bool,
) -> None:
    provider = breakpoints
    provider.emulator.script(provider.reply("First."), provider.reply("Second."))
    claude = anthropic.Anthropic(base_url=live_ogem.url, api_key=key, max_retries=0)
    tool = {
        "name": "get_weather",
        "description": "Current weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        "cache_control": EPHEMERAL,
    }
    system = [{"type": "text", "text": LONG_INSTRUCTIONS, "cache_control": EPHEMERAL}]
    history = [
        {"role": "user", "content": "Hello"},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Hi, ask away.", "cache_control": EPHEMERAL}],
        },
        {"role": "user", "content": "Section 1?"},
    ]
    usages = []
    for _ in range(2):
        request: dict[str, Any] = {
            "model": provider.model,
            "max_tokens": 50,
            "system": system,
            "tools": [tool],
            "messages": history,
        }
        if stream:
            with claude.messages.stream(**request) as events:
                usages.append(events.get_final_message().usage)
        else:
            usages.append(claude.messages.create(**request).usage)

    body = provider.bodies()[0]
    if isinstance(provider.emulator, AnthropicEmulator):
        assert body["system"] == system
        assert body["tools"] == [tool]
        assert body["messages"][1] == history[1]
    else:
        assert body["system"] == [{"text": LONG_INSTRUCTIONS}, {"cachePoint": {"type": "default"}}]
        assert body["messages"][1]["content"] == [
            {"text": "Hi, ask away."},
            {"cachePoint": {"type": "default"}},
        ]
    reported = provider.emulator.usages
    if isinstance(provider.emulator, AnthropicEmulator):
        expected = [
            (
                u["input_tokens"],
                u["cache_creation_input_tokens"],
                u["cache_read_input_tokens"],
                u["output_tokens"],
            )
            for u in reported
        ]
    else:
        expected = [
            (
                u["inputTokens"],
                u["cacheWriteInputTokens"],
                u["cacheReadInputTokens"],
                u["outputTokens"],
            )
            for u in reported
        ]
    got = [
        (
            u.input_tokens,
            u.cache_creation_input_tokens,
            u.cache_read_input_tokens,
            u.output_tokens,
        )
        for u in usages
    ]
    assert got == expected
    assert expected[0][1] > 1024 and expected[1][2] == expected[0][1]
    assert _costs(2) == [
        _cost(
            provider.upstream,
            prompt=fresh + written + read,
            read=read,
            written=written,
            completion=output,
        )
        for fresh, written, read, output in expected
    ]


# -- Gemini: a cached content resource ----------------------------------------------------------


@pytest.fixture
def gemini_emulator(install_deployments: Callable[..., None]) -> Iterator[GeminiEmulator]:
    emulator = gemini_emulator_get()
    emulator.reset()
    install_deployments(
        Deployment(
            id="test:gemini:0",
            model_name="gemini",
            provider="gemini",
            upstream_model="gemini-2.0-flash",
            api_base=emulator.url,
            api_key=GEMINI_KEY,
        )
    )
    yield emulator
    emulator.reset()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_gemini_cached_content_is_passed_and_its_tokens_priced(
    client: openai.OpenAI, gemini_emulator: GeminiEmulator, stream: bool
) -> None:
    created = httpx.post(
        f"{gemini_emulator.url}/v1beta/cachedContents",
        headers={"x-goog-api-key": GEMINI_KEY},
        json={
            "model": "models/gemini-2.0-flash",
            "systemInstruction": {"parts": [{"text": LONG_INSTRUCTIONS}]},
            "ttl": "300s",
        },
    ).json()
    gemini_emulator.script(gemini_reply("Section 1 says so."))
    usage = _chat(
        client,
        stream=stream,
        model="gemini",
        messages=[{"role": "user", "content": "Section 1?"}],
        extra_body={"cached_content": created["name"]},
    )
    generate = [r.body for r in gemini_emulator.requests if "cachedContent" in (r.body or {})]
    assert generate == [
        {
            "contents": [{"role": "user", "parts": [{"text": "Section 1?"}]}],
            "cachedContent": created["name"],
        }
    ]
    (reported,) = gemini_emulator.usages
    cached = created["usageMetadata"]["totalTokenCount"]
    assert reported["cachedContentTokenCount"] == cached > 1024
    assert usage.prompt_tokens == reported["promptTokenCount"]
    assert usage.prompt_tokens_details.cached_tokens == cached
    assert usage.completion_tokens == reported["candidatesTokenCount"]
    assert _costs(1) == [
        _cost(
            "gemini-2.0-flash",
            prompt=usage.prompt_tokens,
            read=cached,
            written=0,
            completion=usage.completion_tokens,
        )
    ]


def test_gemini_cached_content_with_its_own_system_instruction_is_refused_as_google_does(
    client: openai.OpenAI, gemini_emulator: GeminiEmulator
) -> None:
    created = httpx.post(
        f"{gemini_emulator.url}/v1beta/cachedContents",
        headers={"x-goog-api-key": GEMINI_KEY},
        json={
            "model": "models/gemini-2.0-flash",
            "contents": [{"role": "user", "parts": [{"text": LONG_INSTRUCTIONS}]}],
        },
    ).json()
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="gemini",
            messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "?"}],
            extra_body={"cached_content": created["name"]},
        )
    assert "CachedContent can not be used" in refused.value.message


# -- OpenAI and DeepSeek: automatic caching -----------------------------------------------------


@pytest.fixture
def automatic(
    request: pytest.FixtureRequest,
    openai_emulator: OpenAIEmulator,
    install_deployments: Callable[..., None],
) -> tuple[str, str]:
    provider, upstream = request.param
    openai_emulator.flavor = "deepseek" if provider == "deepseek" else "openai"
    install_deployments(
        Deployment(
            id=f"test:{provider}:0",
            model_name=provider,
            provider=provider,
            upstream_model=upstream,
            api_base=f"{openai_emulator.url}/v1",
            api_key=UPSTREAM_KEY,
        )
    )
    return provider, upstream


@pytest.mark.parametrize(
    "automatic", [("openai", "gpt-4o-mini"), ("deepseek", "deepseek-chat")], indirect=True
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_automatic_caching_is_reported_as_cached_tokens_and_priced(
    client: openai.OpenAI,
    openai_emulator: OpenAIEmulator,
    automatic: tuple[str, str],
    stream: bool,
) -> None:
    provider, upstream = automatic
    turn = [
        {"role": "system", "content": LONG_INSTRUCTIONS},
        {"role": "user", "content": "Section 1?"},
    ]
    first = _chat(client, stream=stream, model=provider, messages=turn)
    follow_up = [*turn, {"role": "assistant", "content": "Emulated reply to: Section 1?"}]
    follow_up.append({"role": "user", "content": "And section 2?"})
    second = _chat(client, stream=stream, model=provider, messages=follow_up)

    sent = [r.json for r in openai_emulator.requests if r.path.endswith("/chat/completions")]
    assert [s["messages"] for s in sent] == [turn, follow_up]  # nothing to mark: automatic
    if provider == "deepseek":
        # DeepSeek hits a whole earlier request: its input and its output.
        expected = first.prompt_tokens + first.completion_tokens
        assert second.model_extra["prompt_cache_hit_tokens"] == expected
        assert second.model_extra["prompt_cache_miss_tokens"] == second.prompt_tokens - expected
    else:
        # OpenAI's longest shared prefix, in 128-token steps after the first 1,024.
        shared = first.prompt_tokens  # the first turn is a prefix of the second
        expected = 1024 + (shared - 1024) // 128 * 128
    assert first.prompt_tokens_details.cached_tokens == 0
    assert second.prompt_tokens_details.cached_tokens == expected > 1024
    assert _costs(2) == [
        _cost(
            upstream,
            prompt=usage.prompt_tokens,
            read=usage.prompt_tokens_details.cached_tokens,
            written=0,
            completion=usage.completion_tokens,
        )
        for usage in (first, second)
    ]
