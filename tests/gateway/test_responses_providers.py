"""The Responses API beyond the mock, through the live server and the official `openai` SDK:
served by Ogem over chat on the Anthropic and Gemini emulators, and passed through to the
OpenAI emulator (OpenAI's and Azure's paths) with its stored-response routes forwarded."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest

from billing.models import RequestLog
from billing.services import usage_drain
from gateway.models import StoredResponse
from keys.services import key_create
from providers.base import Deployment
from tests.emulators import anthropic_api, gemini_api
from tests.emulators.anthropic_api import AnthropicEmulator, anthropic_emulator_get
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.gemini_api import GeminiEmulator, gemini_emulator_get
from tests.emulators.openai_api import OpenAIEmulator
from tests.factories import OrganizationFactory, TeamFactory
from tests.live import LiveServer
from tests.schemas import schema_validate

pytestmark = pytest.mark.live

TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def _collapsed(kinds: list[str]) -> list[str]:
    return [kind for i, kind in enumerate(kinds) if i == 0 or kinds[i - 1] != kind]


def _sdk(live: LiveServer, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=secret, max_retries=0)


# ---- Anthropic and Gemini: served by Ogem over chat ---------------------------------------------


@pytest.fixture
def anthropic() -> Iterator[AnthropicEmulator]:
    emulator = anthropic_emulator_get()
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def gemini() -> Iterator[GeminiEmulator]:
    emulator = gemini_emulator_get()
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def claude(anthropic: AnthropicEmulator, install_deployments: Callable[..., None]) -> str:
    install_deployments(
        Deployment(
            id="test:claude-responses:0",
            model_name="claude-responses",
            provider="anthropic",
            upstream_model="claude-3-5-haiku-20241022",
            api_base=anthropic.url,
            api_key=anthropic_api.API_KEY,
        )
    )
    return "claude-responses"


@pytest.fixture
def gemini_model(gemini: GeminiEmulator, install_deployments: Callable[..., None]) -> str:
    install_deployments(
        Deployment(
            id="test:gemini-responses:0",
            model_name="gemini-responses",
            provider="gemini",
            upstream_model="gemini-2.0-flash",
            api_base=gemini.url,
            api_key=gemini_api.API_KEY,
        )
    )
    return "gemini-responses"


def test_anthropic_create_stream_retrieve_and_continue(
    sdk: openai.OpenAI, claude: str, anthropic: AnthropicEmulator
) -> None:
    anthropic.script(anthropic_api.reply_text("Hello Ada."))
    first = sdk.responses.create(
        model=claude, input="My name is Ada.", instructions="Be kind.", max_output_tokens=64
    )
    assert first.output_text == "Hello Ada."
    assert first.usage is not None
    assert (first.usage.input_tokens, first.usage.output_tokens) == (12, 7)
    sent = anthropic.bodies[-1]
    assert sent["system"] in ("Be kind.", [{"type": "text", "text": "Be kind."}])
    assert sent["max_tokens"] == 64
    assert sent["messages"] == [{"role": "user", "content": "My name is Ada."}]

    anthropic.script(anthropic_api.reply_text("Your name is Ada."))
    events = list(
        sdk.responses.create(
            model=claude, input="What is my name?", previous_response_id=first.id, stream=True
        )
    )
    assert _collapsed([event.type for event in events]) == TEXT_EVENTS
    assert [event.sequence_number for event in events] == list(range(len(events)))
    completed = events[-1].response  # type: ignore[union-attr]
    assert completed.output_text == "Your name is Ada."
    assert completed.usage is not None and completed.usage.output_tokens == 7
    # The conversation so far reached Anthropic: the first turn, its answer, the new turn.
    assert [(m["role"], m["content"]) for m in anthropic.bodies[-1]["messages"]] == [
        ("user", "My name is Ada."),
        ("assistant", "Hello Ada."),
        ("user", "What is my name?"),
    ]
    retrieved = sdk.responses.with_raw_response.retrieve(completed.id).http_response.json()
    schema_validate("Response", retrieved)
    assert retrieved["output"][0]["content"][0]["text"] == "Your name is Ada."


def test_anthropic_tool_use_becomes_a_function_call(
    sdk: openai.OpenAI, claude: str, anthropic: AnthropicEmulator
) -> None:
    anthropic.script(
        anthropic_api.Reply(
            content=[
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                }
            ],
            stop_reason="tool_use",
        ),
        anthropic_api.reply_text("It is 3°C in Oslo."),
    )
    tool = {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    first = sdk.responses.create(model=claude, input="Weather in Oslo?", tools=[tool])
    call = first.output[0]
    assert call.type == "function_call"
    assert (call.name, call.call_id, call.arguments) == (
        "get_weather",
        "toolu_01",
        '{"city":"Oslo"}',
    )
    final = sdk.responses.create(
        model=claude,
        previous_response_id=first.id,
        tools=[tool],
        input=[{"type": "function_call_output", "call_id": "toolu_01", "output": "3°C"}],
    )
    assert final.output_text == "It is 3°C in Oslo."
    sent = anthropic.bodies[-1]
    assert sent["tools"][0]["name"] == "get_weather"
    assert sent["messages"][1]["content"][0]["type"] == "tool_use"
    assert sent["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "toolu_01",
        "content": "3°C",
    }


def test_gemini_create_stream_retrieve_and_continue(
    sdk: openai.OpenAI, gemini_model: str, gemini: GeminiEmulator
) -> None:
    gemini.script(gemini_api.reply_text("Hello Ada."))
    first = sdk.responses.create(model=gemini_model, input="My name is Ada.")
    assert first.output_text == "Hello Ada."
    assert first.usage is not None
    assert (first.usage.input_tokens, first.usage.output_tokens) == (10, 6)
    gemini.script(gemini_api.reply_text("Your name is Ada."))
    events = list(
        sdk.responses.create(
            model=gemini_model,
            input="What is my name?",
            previous_response_id=first.id,
            stream=True,
        )
    )
    assert _collapsed([event.type for event in events]) == TEXT_EVENTS
    assert [event.sequence_number for event in events] == list(range(len(events)))
    completed = events[-1].response  # type: ignore[union-attr]
    assert completed.output_text == "Your name is Ada."
    contents = gemini.bodies[-1]["contents"]
    assert [(c["role"], c["parts"][0]["text"]) for c in contents] == [
        ("user", "My name is Ada."),
        ("model", "Hello Ada."),
        ("user", "What is my name?"),
    ]
    assert sdk.responses.retrieve(completed.id).output_text == "Your name is Ada."


# ---- OpenAI and Azure: passed through ------------------------------------------------------------


@pytest.fixture
def upstream(
    openai_emulator: OpenAIEmulator, install_deployments: Callable[..., None]
) -> OpenAIEmulator:
    install_deployments(
        Deployment(
            id="test:gpt-responses",
            model_name="gpt-responses",
            provider="openai",
            upstream_model="gpt-4o-mini",
            api_base=f"{openai_emulator.url}/v1",
            api_key=UPSTREAM_KEY,
        ),
        Deployment(
            id="test:azure-responses",
            model_name="azure-responses",
            provider="azure",
            upstream_model="gpt-4o-mini",
            api_base=openai_emulator.url,
            api_key=UPSTREAM_KEY,
            params={"deployment": "my-gpt"},
        ),
    )
    return openai_emulator


def test_openai_is_passed_through_and_accounted(
    live_ogem: LiveServer, make_key: Callable[..., str], upstream: OpenAIEmulator
) -> None:
    client = _sdk(live_ogem, make_key())
    raw = client.responses.with_raw_response.create(
        model="gpt-responses", input="Hello, world!", metadata={"k": "v"}
    )
    response = raw.parse()
    schema_validate("Response", raw.http_response.json())
    assert response.output_text == "Emulated reply to: Hello, world!"
    assert response.model == "gpt-4o-mini-2024-07-18"  # the upstream's answer, as it came
    sent = upstream.last
    assert (sent.method, sent.path) == ("POST", "/v1/responses")
    assert sent.json == {"model": "gpt-4o-mini", "input": "Hello, world!", "metadata": {"k": "v"}}
    usage_drain()
    log = RequestLog.objects.get(request_id=raw.headers["x-request-id"])
    assert log.endpoint == "responses"
    assert (log.prompt_tokens, log.completion_tokens) == (4, 8)
    assert log.cost > 0
    stored = StoredResponse.objects.get(response_id=response.id)
    assert stored.deployment_id == "test:gpt-responses"

    # Its routes are the upstream's, for its owner.
    assert client.responses.retrieve(response.id).output_text == response.output_text
    assert upstream.last.path == f"/v1/responses/{response.id}"
    items = client.responses.input_items.list(response.id)
    assert [item.type for item in items.data] == ["message"]
    following = client.responses.create(
        model="gpt-responses", input="And now?", previous_response_id=response.id
    )
    assert upstream.last.json["previous_response_id"] == response.id
    assert following.usage is not None and following.usage.input_tokens == 4 + 8 + 3
    client.responses.delete(response.id)
    assert (upstream.last.method, upstream.last.path) == ("DELETE", f"/v1/responses/{response.id}")
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_openai_stream_is_relayed_and_recorded(
    sdk: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    raw = sdk.responses.with_raw_response.create(
        model="gpt-responses", input="Hello, world!", stream=True
    )
    events = list(raw.parse())
    assert _collapsed([event.type for event in events]) == TEXT_EVENTS
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert upstream.last.json["stream"] is True
    completed = events[-1].response  # type: ignore[union-attr]
    assert sdk.responses.retrieve(completed.id).output_text == completed.output_text
    usage_drain()  # billed at the usage of the stream's response.completed
    log = RequestLog.objects.get(request_id=raw.headers["x-request-id"])
    assert (log.endpoint, log.stream) == ("responses", True)
    assert (log.prompt_tokens, log.completion_tokens) == (4, 8)
    assert log.usage_estimated is False


def test_azure_is_passed_through_on_its_v1_api(
    sdk: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    response = sdk.responses.create(model="azure-responses", input="Hello, world!")
    assert response.output_text == "Emulated reply to: Hello, world!"
    sent = upstream.last
    assert sent.path == "/openai/v1/responses"
    assert sent.headers["api-key"] == UPSTREAM_KEY
    assert sent.json["model"] == "my-gpt"
    assert sdk.responses.retrieve(response.id).id == response.id
    assert upstream.last.path == f"/openai/v1/responses/{response.id}"


def test_a_conversation_ogem_served_continues_on_openai(
    sdk: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    first = sdk.responses.create(model="mock-chat", input="My name is Ada.")
    following = sdk.responses.create(
        model="gpt-responses", input="What is my name?", previous_response_id=first.id
    )
    assert following.output_text == "Emulated reply to: What is my name?"
    sent = upstream.last.json
    assert "previous_response_id" not in sent
    assert [item.get("role") for item in sent["input"]] == ["user", "assistant", "user"]
    assert sent["input"][1]["content"][0]["text"] == "Mock reply to: My name is Ada."


def test_another_organization_gets_404_on_a_passed_through_response(
    live_ogem: LiveServer, upstream: OpenAIEmulator
) -> None:
    owner = _sdk(
        live_ogem, key_create(name="a", team=TeamFactory(organization=OrganizationFactory())).secret
    )
    outsider = _sdk(
        live_ogem, key_create(name="b", team=TeamFactory(organization=OrganizationFactory())).secret
    )
    response = owner.responses.create(model="gpt-responses", input="Secret plans")
    asked = len(upstream.requests)
    for call in (
        lambda: outsider.responses.retrieve(response.id),
        lambda: outsider.responses.input_items.list(response.id),
        lambda: outsider.responses.delete(response.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    with pytest.raises(openai.BadRequestError):
        outsider.responses.create(
            model="gpt-responses", input="hi", previous_response_id=response.id
        )
    assert len(upstream.requests) == asked  # never asked the upstream on the outsider's behalf


THOUGHT = {"type": "thinking", "thinking": "The user wants a number.", "signature": "sig-1"}
ADD = {
    "type": "function",
    "name": "add",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}},
}


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_thinking_is_a_reasoning_item_sent_back_signed(
    sdk: openai.OpenAI, claude: str, anthropic: AnthropicEmulator, stream: bool
) -> None:
    anthropic.script(
        anthropic_api.Reply(
            content=[
                THOUGHT,
                {"type": "tool_use", "id": "toolu_02", "name": "add", "input": {"a": 1}},
            ],
            stop_reason="tool_use",
        ),
        anthropic_api.reply_text("2"),
    )
    asked = {"model": claude, "input": "Add one.", "tools": [ADD], "reasoning": {"effort": "low"}}
    if stream:
        events = list(sdk.responses.create(**asked, stream=True))  # type: ignore[call-overload]
        kinds = _collapsed([event.type for event in events])
        assert kinds[:5] == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_text.delta",
            "response.reasoning_text.done",
        ]
        assert [event.sequence_number for event in events] == list(range(len(events)))
        first = events[-1].response  # type: ignore[union-attr]
    else:
        first = sdk.responses.create(**asked)  # type: ignore[call-overload]
    assert anthropic.bodies[-1]["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert [item.type for item in first.output] == ["reasoning", "function_call"]
    reasoning = first.output[0]
    assert reasoning.content[0].text == "The user wants a number."  # type: ignore[union-attr]
    assert first.reasoning.effort == "low"  # type: ignore[union-attr]
    sdk.responses.create(
        model=claude,
        previous_response_id=first.id,
        tools=[ADD],
        reasoning={"effort": "low"},
        input=[{"type": "function_call_output", "call_id": "toolu_02", "output": "2"}],
    )
    # Anthropic requires the signed thinking block back, first in the assistant's turn.
    assistant = anthropic.bodies[-1]["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["content"][0] == THOUGHT
    assert assistant["content"][1]["type"] == "tool_use"


def test_what_only_the_upstream_knows_is_passed_through(
    sdk: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    """Hosted tools and item types Ogem does not translate are OpenAI's to judge."""
    response = sdk.responses.create(
        model="gpt-responses",
        input=[
            {"role": "user", "content": "Find it."},
            {"type": "item_reference", "id": "msg_earlier"},
        ],
        tools=[{"type": "web_search"}],
    )
    assert response.output_text == "Emulated reply to: Find it."
    assert upstream.last.json["tools"] == [{"type": "web_search"}]
    assert upstream.last.json["input"][1] == {"type": "item_reference", "id": "msg_earlier"}


def test_a_passed_through_background_response_is_cancelled_upstream(
    sdk: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    queued = sdk.responses.create(model="gpt-responses", input="Long job.", background=True)
    assert queued.status == "queued"
    cancelled = sdk.responses.cancel(queued.id)
    assert cancelled.status == "cancelled"
    assert (upstream.last.method, upstream.last.path) == (
        "POST",
        f"/v1/responses/{queued.id}/cancel",
    )
    plain = sdk.responses.create(model="gpt-responses", input="Quick.")
    asked = len(upstream.requests)
    with pytest.raises(openai.BadRequestError):
        sdk.responses.cancel(plain.id)
    assert len(upstream.requests) == asked


def test_a_passed_through_store_false_keeps_nothing(
    sdk: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    response = sdk.responses.create(model="gpt-responses", input="Hello.", store=False)
    assert upstream.last.json["store"] is False
    assert not StoredResponse.objects.filter(response_id=response.id).exists()
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(response.id)


def test_a_passed_through_background_response_streams_again(
    live_ogem: LiveServer, master_key: str, sdk: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    queued = sdk.responses.create(model="gpt-responses", input="Hello, world!", background=True)
    events = list(sdk.responses.retrieve(queued.id, stream=True))
    assert _collapsed([event.type for event in events]) == TEXT_EVENTS
    assert events[-1].response.output_text == "Emulated reply to: Hello, world!"  # type: ignore[union-attr]
    resumed = list(sdk.responses.retrieve(queued.id, stream=True, starting_after=5))
    assert [event.sequence_number for event in resumed] == list(range(6, len(events)))
    assert upstream.last.query == {"stream": "true", "starting_after": "5"}
    # A response Ogem made, or anyone else's, is not streamed again.
    mine = sdk.responses.create(model="mock-chat", input="Hi")
    with pytest.raises(openai.BadRequestError):
        list(sdk.responses.retrieve(mine.id, stream=True))
    outsider = _sdk(live_ogem, key_create(name="o", team=TeamFactory()).secret)
    with pytest.raises(openai.NotFoundError):
        list(outsider.responses.retrieve(queued.id, stream=True))
