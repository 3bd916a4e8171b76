"""Voyage: translation (exact dicts) and end to end through a live Ogem with the `openai` SDK."""

from __future__ import annotations

import httpx
import openai
import pytest

from gateway.errors import InvalidRequestError
from providers.base import Deployment, Endpoint
from providers.registry import adapter_get
from providers.voyage.adapter import (
    embeddings_request,
    rerank_request,
    rerank_response,
    voyage_url,
)
from tests.emulators.scripted import Fault
from tests.emulators.voyage_api import VoyageEmulator, detail, vector
from tests.live import LiveServer
from tests.schemas import schema_validate

DEPLOYMENT = Deployment(id="t", model_name="v", provider="voyage", upstream_model="voyage-3.5")


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("", "https://api.voyageai.com/v1/embeddings"),
        ("http://h:1", "http://h:1/v1/embeddings"),
        ("http://h:1/v1/", "http://h:1/v1/embeddings"),
        ("http://h:1/v1/embeddings", "http://h:1/v1/embeddings"),
    ],
)
def test_url(base: str, url: str) -> None:
    assert voyage_url(base, "embeddings") == url


def test_embeddings_request_translation() -> None:
    body = {
        "model": "v",
        "input": ["a", "b"],
        "dimensions": 256,
        "encoding_format": "base64",
        "input_type": "query",
        "truncation": False,
        "user": "u1",
    }
    assert embeddings_request(body=body, deployment=DEPLOYMENT) == {
        "input": ["a", "b"],
        "model": "voyage-3.5",
        "input_type": "query",
        "truncation": False,
        "output_dimension": 256,
        "encoding_format": "base64",
    }
    with_default = Deployment(
        id="t",
        model_name="v",
        provider="voyage",
        upstream_model="m",
        params={"input_type": "document"},
    )
    assert embeddings_request(body={"input": "x"}, deployment=with_default) == {
        "input": "x",
        "model": "m",
        "input_type": "document",
    }


@pytest.mark.parametrize(
    "body",
    [{"input": [1, 2, 3]}, {"input": "x", "input_type": "passage"}, {"input": []}],
)
def test_embeddings_request_refuses_what_voyage_cannot_take(body: dict) -> None:
    with pytest.raises(InvalidRequestError):
        embeddings_request(body=body, deployment=DEPLOYMENT)


def test_rerank_translation_both_ways() -> None:
    body = {
        "model": "r",
        "query": "q",
        "documents": ["a", {"text": "b"}],
        "top_n": 1,
        "return_documents": True,
    }
    assert rerank_request(body=body, deployment=DEPLOYMENT) == {
        "query": "q",
        "documents": ["a", "b"],
        "model": "voyage-3.5",
        "top_k": 1,
        "return_documents": True,
    }
    reply = {
        "object": "list",
        "data": [{"relevance_score": 0.5, "index": 1, "document": "b"}],
        "model": "rerank-2.5",
        "usage": {"total_tokens": 9},
    }
    translated = rerank_response(reply)
    assert translated["id"].startswith("rerank-")
    del translated["id"]
    assert translated == {
        "model": "rerank-2.5",
        "results": [{"index": 1, "relevance_score": 0.5, "document": {"text": "b"}}],
        "usage": {"prompt_tokens": 9, "total_tokens": 9},
    }


def test_other_endpoints_are_refused() -> None:
    adapter = adapter_get("voyage")
    assert adapter is not None
    with pytest.raises(InvalidRequestError):
        adapter.build_request(endpoint=Endpoint.CHAT, deployment=DEPLOYMENT, body={}, stream=False)


# -- end to end ---------------------------------------------------------------------------------


@pytest.mark.live
def test_embeddings_through_the_sdk(
    sdk: openai.OpenAI, voyage_models: tuple[Deployment, ...], voyage_emulator: VoyageEmulator
) -> None:
    raw = sdk.embeddings.with_raw_response.create(
        model="voyage-embed",
        input=["hello world", "good bye"],
        dimensions=3,
        encoding_format="float",
        extra_body={"input_type": "document"},
    )
    result = raw.parse()
    assert voyage_emulator.bodies("/v1/embeddings") == [
        {
            "input": ["hello world", "good bye"],
            "model": "voyage-3.5",
            "input_type": "document",
            "output_dimension": 3,
        }
    ]
    assert voyage_emulator.requests[0].headers["authorization"] == "Bearer pa-voyage-emulator-key"
    assert raw.headers["x-ogem-provider"] == "voyage"
    assert [d.embedding for d in result.data] == [
        vector("hello world", dimension=3),
        vector("good bye", dimension=3),
    ]
    assert [d.index for d in result.data] == [0, 1]
    assert result.model == "voyage-3.5"
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (4, 4)
    schema_validate("CreateEmbeddingResponse", raw.http_response.json())


@pytest.mark.live
def test_embeddings_base64_round_trip(
    sdk: openai.OpenAI, voyage_models: tuple[Deployment, ...], voyage_emulator: VoyageEmulator
) -> None:
    # The SDK asks for base64 by default and decodes it: the floats must survive unchanged.
    result = sdk.embeddings.create(model="voyage-embed", input="abc", dimensions=4)
    assert voyage_emulator.bodies("/v1/embeddings")[0]["encoding_format"] == "base64"
    assert result.data[0].embedding == vector("abc", dimension=4)


@pytest.mark.live
def test_rerank_through_ogem(
    live_ogem: LiveServer,
    master_key: str,
    voyage_models: tuple[Deployment, ...],
    voyage_emulator: VoyageEmulator,
) -> None:
    response = httpx.post(
        f"{live_ogem.url}/v1/rerank",
        headers={"Authorization": f"Bearer {master_key}"},
        json={
            "model": "voyage-rerank",
            "query": "capital of France",
            "documents": ["Berlin is in Germany", "Paris is the capital of France"],
            "top_n": 1,
            "return_documents": True,
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert voyage_emulator.bodies("/v1/rerank") == [
        {
            "query": "capital of France",
            "documents": ["Berlin is in Germany", "Paris is the capital of France"],
            "model": "rerank-2.5",
            "top_k": 1,
            "return_documents": True,
        }
    ]
    body = response.json()
    assert body["model"] == "rerank-2.5"
    assert body["results"] == [
        {"index": 1, "relevance_score": 1.0, "document": {"text": "Paris is the capital of France"}}
    ]
    assert body["usage"] == {"prompt_tokens": 16, "total_tokens": 16}
    assert response.headers["x-ogem-provider"] == "voyage"


@pytest.mark.live
def test_upstream_error_keeps_the_message(
    sdk: openai.OpenAI, voyage_models: tuple[Deployment, ...], voyage_emulator: VoyageEmulator
) -> None:
    voyage_emulator.script(detail(400, "Input text too long for model voyage-3.5."))
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.embeddings.create(model="voyage-embed", input="x", encoding_format="float")
    assert caught.value.status_code == 400
    assert caught.value.body["message"] == (
        "voyage returned 400: Input text too long for model voyage-3.5."
    )
    assert caught.value.body["type"] == "invalid_request_error"


@pytest.mark.live
def test_rate_limit_is_429_with_retry_after(
    sdk: openai.OpenAI, voyage_models: tuple[Deployment, ...], voyage_emulator: VoyageEmulator
) -> None:
    voyage_emulator.script(detail(429, "Rate limit exceeded.", **{"Retry-After": "7"}))
    with pytest.raises(openai.RateLimitError) as caught:
        sdk.embeddings.create(model="voyage-embed", input="x", encoding_format="float")
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.body["message"] == "voyage returned 429: Rate limit exceeded."


@pytest.mark.live
def test_rejected_upstream_key_is_a_502_without_the_key(
    sdk: openai.OpenAI, voyage_models: tuple[Deployment, ...], voyage_emulator: VoyageEmulator
) -> None:
    voyage_emulator.script(
        Fault(401, {"detail": "Provided API key pa-voyage-emulator-key is invalid."})
    )
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.embeddings.create(model="voyage-embed", input="x", encoding_format="float")
    assert caught.value.status_code == 502
    assert (
        caught.value.body["message"]
        == "voyage returned 401: Provided API key [redacted] is invalid."
    )
