"""Jina AI: translation (exact dicts) and end to end through a live Ogem with the `openai` SDK."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from gateway.config import config_load
from gateway.errors import InvalidRequestError
from providers.base import Deployment
from providers.jina_ai.adapter import embeddings_request, jina_url, rerank_response
from tests.emulators.jina_ai_api import API_KEY, JinaEmulator, jina_emulator_get
from tests.emulators.voyage_api import detail, vector
from tests.live import LiveServer
from tests.schemas import schema_validate

DEPLOYMENT = Deployment(
    id="t", model_name="j", provider="jina_ai", upstream_model="jina-embeddings-v3"
)


@pytest.fixture
def jina_emulator() -> Iterator[JinaEmulator]:
    emulator = jina_emulator_get()
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def jina_models(
    jina_emulator: JinaEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    install_deployments: Callable[..., None],
) -> None:
    monkeypatch.setenv("R2E_JINA_KEY", API_KEY)
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
model_list:
  - model_name: jina-embed
    litellm_params:
      model: jina_ai/jina-embeddings-v3
      api_base: {jina_emulator.url}
      api_key: os.environ/R2E_JINA_KEY
      task: retrieval.passage
  - model_name: jina-rerank
    litellm_params:
      model: jina_ai/jina-reranker-v2-base-multilingual
      api_base: {jina_emulator.url}/v1
      api_key: os.environ/R2E_JINA_KEY
"""
    )
    install_deployments(*config_load(str(path)).deployments)


def test_url() -> None:
    assert jina_url("", "rerank") == "https://api.jina.ai/v1/rerank"
    assert jina_url("http://h:2", "embeddings") == "http://h:2/v1/embeddings"


def test_embeddings_request_translation() -> None:
    body = {
        "model": "j",
        "input": ["a", {"image": "https://example.com/cat.png"}],
        "input_type": "query",
        "dimensions": 64,
        "encoding_format": "base64",
        "late_chunking": True,
    }
    assert embeddings_request(body=body, deployment=DEPLOYMENT) == {
        "model": "jina-embeddings-v3",
        "input": ["a", {"image": "https://example.com/cat.png"}],
        "task": "retrieval.query",
        "dimensions": 64,
        "embedding_type": "base64",
        "late_chunking": True,
    }
    explicit = {"input": "a", "task": "text-matching", "input_type": "query"}
    assert embeddings_request(body=explicit, deployment=DEPLOYMENT)["task"] == "text-matching"


@pytest.mark.parametrize("value", [[1, 2], [], {"audio": "x"}, None])
def test_embeddings_request_refuses_token_arrays_and_junk(value: object) -> None:
    with pytest.raises(InvalidRequestError):
        embeddings_request(body={"input": value}, deployment=DEPLOYMENT)


def test_rerank_response_translation() -> None:
    reply = {
        "model": "jina-reranker-v2-base-multilingual",
        "usage": {"total_tokens": 12},
        "results": [{"index": 2, "document": {"text": "c"}, "relevance_score": 0.9}],
    }
    assert rerank_response(reply) == {
        "model": "jina-reranker-v2-base-multilingual",
        "results": [{"index": 2, "relevance_score": 0.9, "document": {"text": "c"}}],
        "usage": {"prompt_tokens": 12, "total_tokens": 12},
    }


@pytest.mark.live
def test_embeddings_through_the_sdk(
    sdk: openai.OpenAI, jina_models: None, jina_emulator: JinaEmulator
) -> None:
    raw = sdk.embeddings.with_raw_response.create(
        model="jina-embed", input=["hello there"], dimensions=3, encoding_format="float"
    )
    result = raw.parse()
    assert jina_emulator.bodies("/v1/embeddings") == [
        {
            "model": "jina-embeddings-v3",
            "input": ["hello there"],
            "task": "retrieval.passage",
            "dimensions": 3,
        }
    ]
    assert jina_emulator.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert result.data[0].embedding == vector("hello there", dimension=3)
    assert result.model == "jina-embeddings-v3"
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (2, 2)
    assert raw.headers["x-ogem-provider"] == "jina_ai"
    schema_validate("CreateEmbeddingResponse", raw.http_response.json())


@pytest.mark.live
def test_embeddings_base64_default_of_the_sdk(
    sdk: openai.OpenAI, jina_models: None, jina_emulator: JinaEmulator
) -> None:
    result = sdk.embeddings.create(
        model="jina-embed", input="abc", dimensions=4, extra_body={"input_type": "query"}
    )
    sent = jina_emulator.bodies("/v1/embeddings")[0]
    assert (sent["embedding_type"], sent["task"]) == ("base64", "retrieval.query")
    assert result.data[0].embedding == vector("abc", dimension=4)


@pytest.mark.live
def test_rerank_through_ogem(
    live_ogem: LiveServer, master_key: str, jina_models: None, jina_emulator: JinaEmulator
) -> None:
    response = httpx.post(
        f"{live_ogem.url}/v1/rerank",
        headers={"Authorization": f"Bearer {master_key}"},
        json={
            "model": "jina-rerank",
            "query": "organic skincare",
            "documents": ["Organic skincare for sensitive skin", "Steel pipes"],
            "top_n": 2,
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert jina_emulator.bodies("/v1/rerank") == [
        {
            "model": "jina-reranker-v2-base-multilingual",
            "query": "organic skincare",
            "documents": ["Organic skincare for sensitive skin", "Steel pipes"],
            "top_n": 2,
        }
    ]
    assert response.json() == {
        "model": "jina-reranker-v2-base-multilingual",
        "results": [
            {
                "index": 0,
                "relevance_score": 1.0,
                "document": {"text": "Organic skincare for sensitive skin"},
            },
            {"index": 1, "relevance_score": 0.0, "document": {"text": "Steel pipes"}},
        ],
        "usage": {"prompt_tokens": 9, "total_tokens": 9},
    }


@pytest.mark.live
def test_upstream_error_and_rate_limit(
    sdk: openai.OpenAI, jina_models: None, jina_emulator: JinaEmulator
) -> None:
    jina_emulator.script(
        detail(422, "dimensions: Input should be less than or equal to 1024"),
        detail(429, "Rate limit reached", **{"Retry-After": "3"}),
    )
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.embeddings.create(model="jina-embed", input="x", encoding_format="float")
    assert bad.value.body["message"] == (
        "jina_ai returned 422: dimensions: Input should be less than or equal to 1024"
    )
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.embeddings.create(model="jina-embed", input="x", encoding_format="float")
    assert limited.value.response.headers["retry-after"] == "3"
    assert limited.value.body["message"] == "jina_ai returned 429: Rate limit reached"
