"""End to end: the `openai` SDK -> a live Ogem -> the watsonx.ai and IAM emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest

from providers.base import Deployment
from providers.watsonx.auth import tokens_forget
from tests.emulators.watsonx_api import (
    API_KEY,
    PROJECT_ID,
    SPACE_ID,
    TOKEN,
    WatsonxEmulator,
    error,
    watsonx_emulator_get,
)
from tests.live import LiveServer

pytestmark = pytest.mark.live
MODEL = "ibm/granite-3-8b-instruct"


@pytest.fixture
def watsonx_emulator() -> Iterator[WatsonxEmulator]:
    emulator = watsonx_emulator_get()
    emulator.reset()
    tokens_forget()
    yield emulator
    emulator.reset()
    tokens_forget()


def watsonx_deployment(
    emulator: WatsonxEmulator, *, name: str, model: str = MODEL, api_key: str = API_KEY, **params
) -> Deployment:
    return Deployment(
        id=f"test:{name}:0",
        model_name=name,
        provider="watsonx",
        upstream_model=model,
        api_base=emulator.url,
        api_key=api_key,
        params={"iam_url": f"{emulator.url}/identity/token", **params},
    )


@pytest.fixture
def client(
    live_ogem: LiveServer,
    master_key: str,
    watsonx_emulator: WatsonxEmulator,
    install_deployments: Callable[..., None],
) -> openai.OpenAI:
    install_deployments(
        watsonx_deployment(watsonx_emulator, name="granite", project_id=PROJECT_ID),
        watsonx_deployment(
            watsonx_emulator,
            name="granite-embed",
            model="ibm/slate-30m-english-rtrvr",
            project_id=PROJECT_ID,
        ),
        watsonx_deployment(watsonx_emulator, name="deployed", model="deployment/my-dep"),
        watsonx_deployment(watsonx_emulator, name="bad-key", api_key="wrong", space_id=SPACE_ID),
        watsonx_deployment(watsonx_emulator, name="no-project"),
    )
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)


def test_chat_exchanges_the_api_key_once_and_sends_watsonx_s_body(
    client: openai.OpenAI, watsonx_emulator: WatsonxEmulator
) -> None:
    for _ in range(2):
        completion = client.chat.completions.create(
            model="granite",
            messages=[{"role": "user", "content": "Say hello"}],
            max_tokens=20,
            tool_choice="none",
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        )
        assert completion.choices[0].message.content == "Hello from watsonx."
        assert completion.usage is not None
        assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (2, 3)
    assert watsonx_emulator.token_requests == 1
    chats = [r for r in watsonx_emulator.requests if r.path == "/ml/v1/text/chat"]
    assert len(chats) == 2
    assert chats[0].query == {"version": "2024-03-13"}
    assert chats[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert chats[0].body == {
        "model_id": MODEL,
        "project_id": PROJECT_ID,
        "messages": [{"role": "user", "content": "Say hello"}],
        "max_tokens": 20,
        "tool_choice_option": "none",
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    }


def test_stream_is_translated_with_usage(
    client: openai.OpenAI, watsonx_emulator: WatsonxEmulator
) -> None:
    stream = client.chat.completions.create(
        model="granite",
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from watsonx."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = [c.usage for c in chunks if c.usage]
    assert usage and usage[-1].total_tokens == 5
    [streamed] = [r for r in watsonx_emulator.requests if r.path == "/ml/v1/text/chat_stream"]
    assert streamed.query == {"version": "2024-03-13"}


def test_deployed_model_is_called_at_its_deployment(
    client: openai.OpenAI, watsonx_emulator: WatsonxEmulator
) -> None:
    client.chat.completions.create(model="deployed", messages=[{"role": "user", "content": "Hi"}])
    [call] = [r for r in watsonx_emulator.requests if r.path.startswith("/ml/v1/deployments")]
    assert call.path == "/ml/v1/deployments/my-dep/text/chat"
    assert "model_id" not in call.body and "project_id" not in call.body


def test_embeddings(client: openai.OpenAI, watsonx_emulator: WatsonxEmulator) -> None:
    answer = client.embeddings.create(model="granite-embed", input=["one two", "three"])
    assert [d.embedding for d in answer.data] == [[7.0, 2.0, 0.5], [5.0, 1.0, 0.5]]
    assert answer.usage.prompt_tokens == 3
    [call] = [r for r in watsonx_emulator.requests if r.path == "/ml/v1/text/embeddings"]
    assert call.body == {
        "inputs": ["one two", "three"],
        "model_id": "ibm/slate-30m-english-rtrvr",
        "project_id": PROJECT_ID,
    }


def test_errors_are_mapped(client: openai.OpenAI, watsonx_emulator: WatsonxEmulator) -> None:
    watsonx_emulator.script(error(400, "model_not_supported", "Model 'x' is not supported"))
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model="granite", messages=[{"role": "user", "content": "Hi"}]
        )
    assert "Model 'x' is not supported" in bad.value.message
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(
            model="bad-key", messages=[{"role": "user", "content": "Hi"}]
        )
    assert refused.value.status_code == 502
    assert "IAM refused the API key" in refused.value.message
    assert "wrong" not in refused.value.message
    with pytest.raises(openai.BadRequestError) as missing:
        client.chat.completions.create(
            model="no-project", messages=[{"role": "user", "content": "Hi"}]
        )
    assert "project_id or params.space_id" in missing.value.message


def test_litellm_environment_variables_fill_what_the_deployment_leaves_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from providers.base import Endpoint
    from providers.watsonx.adapter import WatsonxAdapter

    monkeypatch.setenv("WATSONX_URL", "https://eu-de.ml.cloud.ibm.com/")
    monkeypatch.setenv("WATSONX_PROJECT_ID", "project-from-env")
    deployment = Deployment(
        id="x", model_name="x", provider="watsonx", upstream_model=MODEL, api_version="2025-01-01"
    )
    request = WatsonxAdapter().build_request(
        endpoint=Endpoint.CHAT,
        deployment=deployment,
        body={"messages": [{"role": "user", "content": "Hi"}]},
        stream=True,
    )
    assert request.url == "https://eu-de.ml.cloud.ibm.com/ml/v1/text/chat_stream?version=2025-01-01"
    assert request.json["project_id"] == "project-from-env"
