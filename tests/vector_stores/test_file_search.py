"""The Responses API's `file_search` tool on a model Ogem serves over chat (the mock provider),
through the live server and the official SDK: the model calls the search, Ogem runs it on the
caller's vector store and hands the passages back, the Response reports a `file_search_call`."""

from __future__ import annotations

import io

import openai
import pytest

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
