"""The Responses API's `file_search` tool on a model Ogem serves over chat (the mock provider),
through the live server and the official SDK: the model calls the search, Ogem runs it on the
caller's vector store and hands the passages back, the Response reports a `file_search_call`."""

from __future__ import annotations

import io
from typing import Any

import openai
import pytest

from tests.live import wait_for
from tests.schemas import schema_validate
from tests.vector_stores.corpus import DOCUMENTS

pytestmark = pytest.mark.django_db(transaction=True)


def _store(client: openai.OpenAI) -> str:
    file_ids = [
        client.files.create(file=(name, io.BytesIO(text.encode())), purpose="assistants").id
        for name, text in DOCUMENTS.items()
    ]
    return client.vector_stores.create(name="kb", file_ids=file_ids).id


def test_file_search_answers_from_the_store(key_sdk) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    store_id = _store(client)
    question = "How is espresso coffee brewed?"
    raw = client.responses.with_raw_response.create(
        model="mock-chat",
        input=question,
        tools=[{"type": "file_search", "vector_store_ids": [store_id], "max_num_results": 3}],
        include=["file_search_call.results"],
    )
    schema_validate("Response", raw.http_response.json())
    response = raw.parse()
    assert response.status == "completed"
    search, answer = response.output
    assert search.type == "file_search_call" and search.status == "completed"
    # The mock fills the function's `queries` with the user's text: the query the model chose.
    assert search.queries == [question]
    assert search.results is not None and len(search.results) == 3
    assert search.results[0].filename == "coffee.txt"
    assert "espresso" in (search.results[0].text or "")
    assert answer.type == "message" and answer.content[0].type == "output_text"  # type: ignore[union-attr]
    # Two chat turns (the search call, then the answer), both the caller's, usage added up.
    assert response.usage is not None and response.usage.input_tokens > 0
    # Without `include`, the call is reported without its results; the stored response is
    # retrievable and continues.
    plain = client.responses.create(
        model="mock-chat",
        input=question,
        tools=[{"type": "file_search", "vector_store_ids": [store_id]}],
    )
    assert plain.output[0].type == "file_search_call" and plain.output[0].results is None  # type: ignore[union-attr]
    assert client.responses.retrieve(plain.id).output[0].id == plain.output[0].id
    follow = client.responses.create(
        model="mock-chat", input="thanks", previous_response_id=plain.id
    )
    assert follow.status == "completed"


def test_another_tenants_store_is_404(key_sdk) -> None:  # type: ignore[no-untyped-def]
    store_id = _store(key_sdk())
    with pytest.raises(openai.NotFoundError):
        key_sdk().responses.create(
            model="mock-chat",
            input="coffee?",
            tools=[{"type": "file_search", "vector_store_ids": [store_id]}],
        )


def test_a_streamed_file_search_shows_the_search_and_then_the_answer(key_sdk) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    store_id = _store(client)
    question = "How is espresso coffee brewed?"
    events = list(
        client.responses.create(
            model="mock-chat",
            input=question,
            tools=[{"type": "file_search", "vector_store_ids": [store_id], "max_num_results": 2}],
            include=["file_search_call.results"],
            stream=True,
        )
    )
    kinds = [event.type for event in events]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert kinds[:7] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.output_item.done",
    ]
    added, done = events[2], events[6]
    assert added.item.type == "file_search_call" and added.item.status == "in_progress"  # type: ignore[union-attr]
    assert added.output_index == 0 and events[3].item_id == added.item.id  # type: ignore[union-attr]
    assert done.item.status == "completed" and done.item.queries == [question]  # type: ignore[union-attr]
    assert done.item.results[0].filename == "coffee.txt"  # type: ignore[union-attr]
    # The answer's text comes as it is generated, in several deltas, as output item 1.
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and {e.output_index for e in deltas} == {1}
    assert kinds[-1] == "response.completed"
    final = events[-1].response  # type: ignore[union-attr]
    assert [item.type for item in final.output] == ["file_search_call", "message"]
    assert final.output[1].content[0].text == "".join(e.delta for e in deltas)  # type: ignore[union-attr]
    assert final.usage is not None and final.usage.input_tokens > 0
    # Stored as streamed.
    stored = client.responses.retrieve(final.id)
    assert [item.id for item in stored.output] == [item.id for item in final.output]


def test_a_streamed_file_search_on_another_tenants_store_is_404_before_it_starts(key_sdk) -> None:  # type: ignore[no-untyped-def]
    store_id = _store(key_sdk())
    with pytest.raises(openai.NotFoundError):
        key_sdk().responses.create(
            model="mock-chat",
            input="coffee?",
            tools=[{"type": "file_search", "vector_store_ids": [store_id]}],
            stream=True,
        )


def test_a_background_file_search_is_polled_to_its_answer(key_sdk) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    store_id = _store(client)
    queued = client.responses.create(
        model="mock-chat",
        input="How is espresso coffee brewed?",
        tools=[{"type": "file_search", "vector_store_ids": [store_id]}],
        include=["file_search_call.results"],
        background=True,
    )
    assert queued.status == "queued" and queued.background is True

    def ended() -> Any:
        response = client.responses.retrieve(queued.id)
        return response if response.status not in ("queued", "in_progress") else None

    response = wait_for(ended, what="the background response's end", every=0.05)
    assert response.status == "completed", response.error
    search, answer = response.output
    assert search.type == "file_search_call" and search.results  # type: ignore[union-attr]
    assert search.results[0].filename == "coffee.txt"  # type: ignore[union-attr]
    assert answer.type == "message"
    with pytest.raises(openai.NotFoundError):
        key_sdk().responses.create(
            model="mock-chat",
            input="coffee?",
            tools=[{"type": "file_search", "vector_store_ids": [store_id]}],
            background=True,
        )
