"""End to end: the `openai` SDK -> a live Ogem -> the SageMaker runtime emulator (SigV4 checked
on every request, streams framed as AWS event streams)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest

from providers.base import Deployment
from providers.bedrock.auth import credentials_forget
from tests.emulators.bedrock_api import ACCESS_KEY, REGION, SECRET_KEY
from tests.emulators.sagemaker_api import (
    ModelFault,
    SageMakerEmulator,
    StreamFault,
    sagemaker_emulator_get,
)
from tests.live import LiveServer

pytestmark = pytest.mark.live


@pytest.fixture
def sagemaker_emulator() -> Iterator[SageMakerEmulator]:
    emulator = sagemaker_emulator_get()
    emulator.reset()
    credentials_forget()
    yield emulator
    emulator.reset()
    credentials_forget()


def sagemaker_deployment(
    emulator: SageMakerEmulator, *, name: str, provider: str, endpoint: str, **params: object
) -> Deployment:
    return Deployment(
        id=f"test:{name}:0",
        model_name=name,
        provider=provider,
        upstream_model=endpoint,
        api_base=emulator.url,
        region=REGION,
        params={"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY, **params},
    )


@pytest.fixture
def client(
    live_ogem: LiveServer,
    master_key: str,
    sagemaker_emulator: SageMakerEmulator,
    install_deployments: Callable[..., None],
) -> openai.OpenAI:
    install_deployments(
        sagemaker_deployment(
            sagemaker_emulator, name="sm-chat", provider="sagemaker_chat", endpoint="tgi-chat"
        ),
        sagemaker_deployment(
            sagemaker_emulator,
            name="sm-generate",
            provider="sagemaker",
            endpoint="tgi-generate",
            model_id="ic-llama",
        ),
        sagemaker_deployment(
            sagemaker_emulator, name="sm-embed", provider="sagemaker", endpoint="jumpstart-embed"
        ),
        sagemaker_deployment(
            sagemaker_emulator, name="sm-gone", provider="sagemaker_chat", endpoint="gone"
        ),
    )
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)


def test_chat_messages_api_is_signed_and_passed(
    client: openai.OpenAI, sagemaker_emulator: SageMakerEmulator
) -> None:
    completion = client.chat.completions.create(
        model="sm-chat", messages=[{"role": "user", "content": "Say hello"}], max_tokens=9
    )
    assert completion.choices[0].message.content == "Hello from SageMaker."
    assert completion.usage is not None and completion.usage.total_tokens == 5
    [call] = sagemaker_emulator.requests
    assert call.path == "/endpoints/tgi-chat/invocations"
    assert "/us-west-2/sagemaker/aws4_request" in call.headers["authorization"]
    assert call.body == {
        "messages": [{"role": "user", "content": "Say hello"}],
        "max_tokens": 9,
        "model": "tgi-chat",
    }


def test_chat_stream_from_payload_parts(
    client: openai.OpenAI, sagemaker_emulator: SageMakerEmulator
) -> None:
    chunks = list(
        client.chat.completions.create(
            model="sm-chat",
            messages=[{"role": "user", "content": "Say hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from SageMaker. "
    assert [c.usage.total_tokens for c in chunks if c.usage] == [5]
    [call] = sagemaker_emulator.requests
    assert call.path == "/endpoints/tgi-chat/invocations-response-stream"
    assert call.headers["accept"] == "application/vnd.amazon.eventstream"


def test_generate_format_and_inference_component(
    client: openai.OpenAI, sagemaker_emulator: SageMakerEmulator
) -> None:
    completion = client.chat.completions.create(
        model="sm-generate",
        messages=[
            {"role": "system", "content": "Be brief"},
            {"role": "user", "content": "Say hello"},
        ],
        max_tokens=12,
    )
    assert completion.choices[0].message.content == "Hello from SageMaker."
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 3)
    [call] = sagemaker_emulator.requests
    assert call.headers["x-amzn-sagemaker-inference-component"] == "ic-llama"
    assert call.body["inputs"] == "System: Be brief\nUser: Say hello\nAssistant:"
    assert call.body["parameters"]["max_new_tokens"] == 12


def test_generate_stream(client: openai.OpenAI, sagemaker_emulator: SageMakerEmulator) -> None:
    chunks = list(
        client.chat.completions.create(
            model="sm-generate",
            messages=[{"role": "user", "content": "Say hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Hello from SageMaker."
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert [c.usage.prompt_tokens for c in chunks if c.usage] == [4]


def test_embeddings(client: openai.OpenAI, sagemaker_emulator: SageMakerEmulator) -> None:
    answer = client.embeddings.create(model="sm-embed", input=["abc", "de"])
    assert [d.embedding for d in answer.data] == [[3.0, 0.5], [2.0, 0.5]]
    assert sagemaker_emulator.requests[0].body == {"text_inputs": ["abc", "de"]}


def test_errors_are_mapped(client: openai.OpenAI, sagemaker_emulator: SageMakerEmulator) -> None:
    with pytest.raises(openai.BadRequestError) as gone:
        client.chat.completions.create(
            model="sm-gone", messages=[{"role": "user", "content": "Hi"}]
        )
    assert "Endpoint gone of account 123456789012 not found." in gone.value.message
    sagemaker_emulator.script(ModelFault(400, "Input validation error: inputs too long"))
    with pytest.raises(openai.APIStatusError) as model:
        client.chat.completions.create(
            model="sm-chat", messages=[{"role": "user", "content": "Hi"}]
        )
    assert model.value.status_code == 502
    assert "inputs too long" in model.value.message
    sagemaker_emulator.script(StreamFault(after=2))
    with pytest.raises(openai.APIError) as broken:
        list(
            client.chat.completions.create(
                model="sm-chat", messages=[{"role": "user", "content": "Hi"}], stream=True
            )
        )
    assert "Model stream broke" in str(broken.value.message)
