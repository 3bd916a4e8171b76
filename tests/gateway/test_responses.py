"""The Responses API (`/v1/responses`) served by Ogem over chat completions, through the live
server and the official `openai` SDK, on the offline mock provider: create, stream, retrieve,
delete, input items, previous_response_id, function calling, background and cancel, bad input,
accounting and tenant isolation."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import openai
import pytest

from billing.models import RequestLog
from billing.services import usage_drain
from gateway.models import StoredResponse
from keys.services import key_create
from tests.factories import OrganizationFactory, TeamFactory
from tests.live import LiveServer
from tests.schemas import schema_validate

pytestmark = pytest.mark.live

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
# OpenAI's order of a streamed text answer.
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


def _sdk(live: LiveServer, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=secret, max_retries=0)


def _error(raised: pytest.ExceptionInfo[openai.APIStatusError]) -> dict:
    return raised.value.response.json()["error"]


def _collapsed(kinds: list[str]) -> list[str]:
    """Event types with runs of one type (the deltas) counted once."""
    return [kind for i, kind in enumerate(kinds) if i == 0 or kinds[i - 1] != kind]


def test_create_answers_a_response_object_and_keeps_it(sdk: openai.OpenAI) -> None:
    raw = sdk.responses.with_raw_response.create(
        model="mock-chat",
        input="Hello, world!",
        instructions="Be brief.",
        metadata={"topic": "greeting"},
        temperature=0.5,
    )
    body = raw.http_response.json()
    schema_validate("Response", body)
    response = raw.parse()
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == "Mock reply to: Hello, world!"
    assert response.instructions == "Be brief."
    assert response.metadata == {"topic": "greeting"}
    assert response.temperature == 0.5
    assert response.output[0].type == "message"
    assert response.output[0].role == "assistant"
    assert response.usage is not None
    # The prompt is the instructions and the input (mock: a token per word or sign).
    assert (response.usage.input_tokens, response.usage.output_tokens) == (7, 8)
    assert response.usage.total_tokens == 15
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    assert raw.http_response.headers["x-ogem-provider"] == "mock"

    retrieved = sdk.responses.with_raw_response.retrieve(response.id).http_response.json()
    schema_validate("Response", retrieved)
    assert retrieved == body
    items = sdk.responses.input_items.list(response.id)
    assert [item.type for item in items.data] == ["message"]
    assert items.data[0].role == "user"
    assert items.data[0].content[0].text == "Hello, world!"  # type: ignore[union-attr]


def test_one_request_log_per_response_recorded_as_responses(
    live_ogem: LiveServer, make_key: Callable[..., str]
) -> None:
    client = _sdk(live_ogem, make_key())
    raw = client.responses.with_raw_response.create(model="mock-chat", input="Hello, world!")
    usage_drain()
    logs = RequestLog.objects.filter(request_id=raw.headers["x-request-id"])
    assert logs.count() == 1
    log = logs.get()
    assert log.endpoint == "responses"
    assert (log.prompt_tokens, log.completion_tokens) == (4, 8)
    assert log.cost > 0


def test_stream_follows_openai_event_order(sdk: openai.OpenAI) -> None:
    events = list(sdk.responses.create(model="mock-chat", input="Hello, world!", stream=True))
    kinds = [event.type for event in events]
    assert _collapsed(kinds) == TEXT_EVENTS
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "Mock reply to: Hello, world!"
    created, completed = events[0].response, events[-1].response  # type: ignore[union-attr]
    assert created.status == "in_progress" and created.output == []
    assert completed.id == created.id
    assert completed.status == "completed"
    assert completed.output_text == "Mock reply to: Hello, world!"
    assert completed.usage is not None and completed.usage.output_tokens == 8
    item_ids = {e.item_id for e in events if hasattr(e, "item_id")}
    assert item_ids == {completed.output[0].id}
    stored = sdk.responses.retrieve(completed.id)
    assert stored.output_text == "Mock reply to: Hello, world!"
    assert stored.usage == completed.usage


def test_sdk_stream_helper_assembles_the_response(sdk: openai.OpenAI) -> None:
    with sdk.responses.stream(model="mock-chat", input="Hello, world!") as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == final.output_text == "Mock reply to: Hello, world!"


def test_previous_response_id_continues_the_conversation(sdk: openai.OpenAI) -> None:
    first = sdk.responses.create(model="mock-chat", input="My name is Ada.")
    second = sdk.responses.create(
        model="mock-chat", input="What is my name?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    assert second.output_text == "Mock reply to: What is my name?"
    # The model saw the first turn: its input and its answer.
    items = sdk.responses.input_items.list(second.id, order="asc")
    assert [(item.type, getattr(item, "role", None)) for item in items.data] == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
    ]
    assert items.data[1].content[0].text == "Mock reply to: My name is Ada."  # type: ignore[union-attr]
    assert second.usage is not None and second.usage.input_tokens == 5 + 9 + 5


def test_input_items_page_with_a_cursor(sdk: openai.OpenAI) -> None:
    created = sdk.responses.create(
        model="mock-chat",
        input=[{"role": "user", "content": f"message {n}"} for n in range(5)],
    )
    page = sdk.responses.input_items.with_raw_response.list(created.id, limit=2)
    body = page.http_response.json()
    schema_validate("ResponseItemList", body)
    texts = [item["content"][0]["text"] for item in body["data"]]
    assert texts == ["message 4", "message 3"]  # newest first by default
    assert body["has_more"] is True
    assert body["first_id"] == body["data"][0]["id"]
    rest = sdk.responses.input_items.list(created.id, limit=10, after=body["last_id"])
    assert [item.content[0].text for item in rest.data] == [  # type: ignore[union-attr]
        "message 2",
        "message 1",
        "message 0",
    ]
    assert rest.has_more is False
    ascending = sdk.responses.input_items.list(created.id, order="asc", limit=1)
    assert ascending.data[0].content[0].text == "message 0"  # type: ignore[union-attr]


def test_store_false_keeps_nothing(sdk: openai.OpenAI) -> None:
    response = sdk.responses.create(model="mock-chat", input="Hello, world!", store=False)
    assert response.store is False
    assert not StoredResponse.objects.filter(response_id=response.id).exists()
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(response.id)
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.responses.create(model="mock-chat", input="Hi", previous_response_id=response.id)
    assert _error(raised)["code"] == "previous_response_not_found"
    assert _error(raised)["param"] == "previous_response_id"


def test_delete_forgets_the_response(sdk: openai.OpenAI) -> None:
    response = sdk.responses.create(model="mock-chat", input="Hello, world!")
    deleted = sdk.responses.with_raw_response.delete(response.id).http_response.json()
    assert deleted == {"id": response.id, "object": "response", "deleted": True}
    with pytest.raises(openai.NotFoundError) as raised:
        sdk.responses.retrieve(response.id)
    assert _error(raised)["type"] == "not_found_error"
    with pytest.raises(openai.NotFoundError):
        sdk.responses.delete(response.id)


def test_function_calling_loop(sdk: openai.OpenAI) -> None:
    first = sdk.responses.create(
        model="mock-chat", input="What is the weather in Paris?", tools=[WEATHER]
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "What is the weather in Paris?"}
    assert call.call_id and call.id.startswith("fc_")
    assert first.tools[0].name == "get_weather"  # type: ignore[union-attr]
    final = sdk.responses.create(
        model="mock-chat",
        previous_response_id=first.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "22°C, sunny"}],
    )
    assert [item.type for item in final.output] == ["message"]
    assert final.output_text.startswith("Mock reply to:")
    # The same loop without stored state: the client sends the items back itself.
    stateless = sdk.responses.create(
        model="mock-chat",
        store=False,
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "22°C, sunny"},
        ],
    )
    assert stateless.output[0].type == "message"


def test_function_call_streams_its_arguments(sdk: openai.OpenAI) -> None:
    events = list(
        sdk.responses.create(
            model="mock-chat",
            input="Weather in Oslo?",
            tools=[WEATHER],
            tool_choice={"type": "function", "name": "get_weather"},
            stream=True,
        )
    )
    kinds = _collapsed([event.type for event in events])
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    streamed = "".join(
        e.delta for e in events if e.type == "response.function_call_arguments.delta"
    )
    assert streamed == done.arguments
    assert json.loads(done.arguments) == {"city": "Weather in Oslo?"}
    completed = events[-1].response  # type: ignore[union-attr]
    assert completed.output[0].type == "function_call"
    assert completed.output[0].arguments == done.arguments


def test_json_schema_format(sdk: openai.OpenAI) -> None:
    response = sdk.responses.create(
        model="mock-chat",
        input="Name a city.",
        text={
            "format": {
                "type": "json_schema",
                "name": "city",
                "schema": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}},
                    "required": ["name"],
                },
            }
        },
    )
    assert set(json.loads(response.output_text)) == {"name"}
    assert response.text.format.type == "json_schema"  # type: ignore[union-attr]


def test_max_output_tokens_cuts_the_answer_short(sdk: openai.OpenAI) -> None:
    response = sdk.responses.create(model="mock-chat", input="Hello, world!", max_output_tokens=2)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 2
    assert [item.status for item in response.output] == ["incomplete"]  # the message cut short
    assert sdk.responses.retrieve(response.id).output[0].status == "incomplete"


def test_a_stream_cut_short_ends_with_response_incomplete(sdk: openai.OpenAI) -> None:
    """OpenAI's order: the text and its part done, the message done `incomplete`, then
    `response.incomplete` (the SDK's stream helper follows it; its get_final_response
    wants a `response.completed`, as it does from OpenAI)."""
    with sdk.responses.stream(
        model="mock-chat", input="Hello, world!", max_output_tokens=2
    ) as stream:
        events = list(stream)
    assert _collapsed([event.type for event in events]) == [
        *TEXT_EVENTS[:-1],
        "response.incomplete",
    ]
    texts = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = next(e for e in events if e.type == "response.output_item.done")
    assert done.item.status == "incomplete"  # type: ignore[union-attr]
    assert done.item.content[0].text == texts != ""  # type: ignore[union-attr]
    ended = events[-1].response  # type: ignore[union-attr]
    assert (ended.status, ended.incomplete_details.reason) == ("incomplete", "max_output_tokens")
    assert ended.output[0].status == "incomplete" and ended.output_text == texts
    stored = sdk.responses.retrieve(ended.id)
    assert stored.status == "incomplete" and stored.output[0].status == "incomplete"
    # A cut-short response can be continued.
    follow = sdk.responses.create(model="mock-chat", input="Go on.", previous_response_id=ended.id)
    assert follow.status == "completed"


def test_image_and_file_parts_reach_the_model(sdk: openai.OpenAI) -> None:
    response = sdk.responses.create(
        model="mock-chat",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Describe these."},
                    {"type": "input_image", "image_url": "data:image/png;base64,aW1hZ2U="},
                    {
                        "type": "input_file",
                        "filename": "a.pdf",
                        "file_data": "data:application/pdf;base64,cGRm",
                    },
                ],
            }
        ],
    )
    assert response.output_text == "Mock reply to: Describe these."
    items = sdk.responses.input_items.list(response.id)
    parts = [part.type for part in items.data[0].content]  # type: ignore[union-attr]
    assert parts == ["input_text", "input_image", "input_file"]


def test_background_response_completes_and_is_polled(sdk: openai.OpenAI) -> None:
    queued = sdk.responses.create(model="mock-chat", input="Hello, world!", background=True)
    assert queued.status == "queued" and queued.background is True
    deadline = time.monotonic() + 10
    response = queued
    while response.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.05)
        response = sdk.responses.retrieve(queued.id)
    assert response.status == "completed"
    assert response.output_text == "Mock reply to: Hello, world!"
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.responses.cancel(queued.id)
    assert "completed" in _error(raised)["message"]


def test_background_response_is_cancelled(
    sdk: openai.OpenAI, install_deployments: Callable[..., None]
) -> None:
    from tests.emulators.fixtures import slow_mock

    install_deployments(slow_mock("slow-chat", latency_ms=5000, upstream_model="mock-chat"))
    queued = sdk.responses.create(model="slow-chat", input="Hello, world!", background=True)
    cancelled = sdk.responses.cancel(queued.id)
    assert cancelled.id == queued.id
    assert cancelled.status == "cancelled"
    assert sdk.responses.retrieve(queued.id).status == "cancelled"
    assert sdk.responses.cancel(queued.id).status == "cancelled"  # as OpenAI: idempotent


def test_cancel_of_a_response_not_in_the_background_is_refused(sdk: openai.OpenAI) -> None:
    response = sdk.responses.create(model="mock-chat", input="Hello, world!")
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.responses.cancel(response.id)
    assert "background" in _error(raised)["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [{"type": "computer_call_output", "call_id": "x"}]}, "input[0].type"),
        ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "input[0].content[0].type",
        ),
        ({"input": "hi", "tools": [{"type": "web_search_preview"}]}, "tools[0].type"),
        ({"input": "hi", "tools": [{"type": "file_search"}]}, "tools[0].vector_store_ids"),
        ({"input": "hi", "tool_choice": "sometimes"}, "tool_choice"),
        ({"input": "hi", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"input": "hi", "temperature": 3}, "temperature"),
        ({"input": "hi", "metadata": {"k": 1}}, "metadata.k"),
        ({"input": "hi", "background": True, "store": False}, "store"),
        ({}, "input"),
        ({"input": "hi", "previous_response_id": "resp_missing"}, "previous_response_id"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(
    live_ogem: LiveServer, master_key: str, body: dict, param: str
) -> None:
    answer = httpx.post(
        f"{live_ogem.url}/v1/responses",
        json={"model": "mock-chat", **body},
        headers={"Authorization": f"Bearer {master_key}"},
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_unknown_model_and_missing_ids(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        sdk.responses.create(model="no-such-model", input="hi")
    assert _error(raised)["code"] == "model_not_found"
    for call in (
        lambda: sdk.responses.retrieve("resp_missing"),
        lambda: sdk.responses.delete("resp_missing"),
        lambda: sdk.responses.cancel("resp_missing"),
        lambda: sdk.responses.input_items.list("resp_missing"),
    ):
        with pytest.raises(openai.NotFoundError) as missing:
            call()
        assert _error(missing)["message"] == "Response with id 'resp_missing' not found."


def test_another_organization_gets_404(live_ogem: LiveServer) -> None:
    team_a = TeamFactory(organization=OrganizationFactory())
    team_b = TeamFactory(organization=OrganizationFactory())
    owner = _sdk(live_ogem, key_create(name="a", team=team_a).secret)
    outsider = _sdk(live_ogem, key_create(name="b", team=team_b).secret)
    teammate = _sdk(live_ogem, key_create(name="a2", team=team_a).secret)
    response = owner.responses.create(model="mock-chat", input="Secret plans")
    for call in (
        lambda: outsider.responses.retrieve(response.id),
        lambda: outsider.responses.input_items.list(response.id),
        lambda: outsider.responses.delete(response.id),
        lambda: outsider.responses.cancel(response.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    with pytest.raises(openai.BadRequestError) as raised:
        outsider.responses.create(model="mock-chat", input="hi", previous_response_id=response.id)
    assert _error(raised)["code"] == "previous_response_not_found"
    # The team's other keys share its responses; the owner still has it.
    assert teammate.responses.retrieve(response.id).output_text == response.output_text
    assert owner.responses.retrieve(response.id).id == response.id


def test_previous_response_id_is_found_only_where_the_response_is_visible(
    live_ogem: LiveServer, master_key: str
) -> None:
    """Who may continue a response: its team's keys, its organization's keys without a team, the
    master key; neither another team of the organization nor a key of no organization."""
    organization = OrganizationFactory()
    team = TeamFactory(organization=organization)
    owner = _sdk(live_ogem, key_create(name="owner", team=team).secret)
    allowed = {
        "a teammate": _sdk(live_ogem, key_create(name="mate", team=team).secret),
        "the organization's key": _sdk(
            live_ogem, key_create(name="org", organization=organization).secret
        ),
        "the master key": _sdk(live_ogem, master_key),
    }
    refused = {
        "another team": _sdk(
            live_ogem, key_create(name="other", team=TeamFactory(organization=organization)).secret
        ),
        "a key of no organization": _sdk(live_ogem, key_create(name="lone").secret),
    }
    response = owner.responses.create(model="mock-chat", input="My name is Ada.")
    for who, client in allowed.items():
        follow = client.responses.create(
            model="mock-chat", input="And?", previous_response_id=response.id
        )
        assert follow.status == "completed", who
    for who, client in refused.items():
        with pytest.raises(openai.BadRequestError) as raised:
            client.responses.create(
                model="mock-chat", input="And?", previous_response_id=response.id
            )
        assert _error(raised)["code"] == "previous_response_not_found", who
    # A key of no organization continues its own.
    lone = refused["a key of no organization"]
    own = lone.responses.create(model="mock-chat", input="Hi.")
    assert (
        lone.responses.create(
            model="mock-chat", input="Again.", previous_response_id=own.id
        ).previous_response_id
        == own.id
    )


def test_a_stream_that_fails_midway_ends_with_response_failed(sdk: openai.OpenAI) -> None:
    failing = {"error": {"status": 500, "message": "boom", "after_chunks": 3}}
    events = list(
        sdk.responses.create(
            model="mock-chat",
            input="Hello, world!",
            stream=True,
            extra_body={"mock_response": failing},
        )
    )
    assert events[-1].type == "response.failed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.status == "failed"
    assert failed.error is not None and "boom" in failed.error.message
    assert sdk.responses.retrieve(failed.id).status == "failed"
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.responses.create(model="mock-chat", input="Hi", previous_response_id=failed.id)
    assert _error(raised)["param"] == "previous_response_id"


def test_a_background_response_that_fails_says_why(sdk: openai.OpenAI) -> None:
    queued = sdk.responses.create(
        model="mock-chat",
        input="Hello, world!",
        background=True,
        extra_body={"mock_response": {"error": {"status": 429, "message": "slow down"}}},
    )
    deadline = time.monotonic() + 10
    response = queued
    while response.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.05)
        response = sdk.responses.retrieve(queued.id)
    assert response.status == "failed"
    assert response.error is not None and "slow down" in response.error.message


def test_sdk_parse_with_a_pydantic_format(sdk: openai.OpenAI) -> None:
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    parsed = sdk.responses.parse(model="mock-chat", input="Name a city.", text_format=City)
    assert isinstance(parsed.output_parsed, City)
    assert parsed.output_parsed.name == "Name a city."


def test_a_background_response_whose_worker_stopped_is_failed_in_time(
    sdk: openai.OpenAI,
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from gateway.responses_api.views import BACKGROUND_LIMIT_SECONDS

    started = timezone.now() - timedelta(seconds=BACKGROUND_LIMIT_SECONDS + 60)
    shell = {"id": "resp_lost", "object": "response", "status": "in_progress", "output": []}
    StoredResponse.objects.create(
        response_id="resp_lost",
        model="mock-chat",
        status="in_progress",
        background=True,
        created_at=started,
        response=shell,
    )
    response = sdk.responses.retrieve("resp_lost")
    assert response.status == "failed"
    assert response.error is not None and response.error.code == "server_error"
    assert StoredResponse.objects.get(response_id="resp_lost").status == "failed"
    with pytest.raises(openai.BadRequestError):
        sdk.responses.cancel("resp_lost")
