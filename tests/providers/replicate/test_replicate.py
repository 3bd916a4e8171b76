"""Replicate: prediction inputs (exact dicts) and the prediction lifecycle end to end through a
live Ogem with the official `openai` SDK (wait, poll, stream, versions, images, failures)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest

from gateway.config import config_load
from gateway.errors import InvalidRequestError
from providers.base import Deployment, Timeouts
from providers.replicate.adapter import create_request
from providers.replicate.stream import NamedSSEParser
from providers.replicate.translate import chat_input
from tests.emulators.replicate_api import (
    API_KEY,
    CHAT_MODEL,
    IMAGE_MODEL,
    PNG,
    VERSION,
    Prediction,
    ReplicateEmulator,
    problem,
    replicate_emulator_get,
)
from tests.schemas import schema_validate

CREATE_CHAT = f"/v1/models/{CHAT_MODEL}/predictions"


@pytest.fixture
def replicate_emulator() -> Iterator[ReplicateEmulator]:
    emulator = replicate_emulator_get()
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def replicate_models(
    replicate_emulator: ReplicateEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    install_deployments: Callable[..., None],
) -> None:
    monkeypatch.setenv("R2E_REPLICATE_TOKEN", API_KEY)
    entries = {
        "llama": CHAT_MODEL,
        "llama-pinned": f"{CHAT_MODEL}:{VERSION}",
        "flux": IMAGE_MODEL,
    }
    lines = ["model_list:"]
    for name, model in entries.items():
        lines += [
            f"  - model_name: {name}",
            "    litellm_params:",
            f"      model: replicate/{model}",
            f"      api_base: {replicate_emulator.url}",
            "      api_key: os.environ/R2E_REPLICATE_TOKEN",
            "      poll_interval: 0.05",
            "      allow_private_urls: true",
        ]
    path = tmp_path / "config.yaml"
    path.write_text("\n".join(lines) + "\n")
    install_deployments(*config_load(str(path)).deployments)


def test_chat_input_translation() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}},
                ],
            },
        ],
        "max_completion_tokens": 64,
        "stop": ["\n\n", "###"],
        "temperature": 0.1,
        "input": {"top_k": 5},
    }
    assert chat_input(body) == {
        "prompt": "User: Hi\n\nAssistant: Hello!\n\nUser: What is this?\n\nAssistant:",
        "system_prompt": "Be kind.",
        "image": "https://example.com/x.png",
        "max_tokens": 64,
        "temperature": 0.1,
        "stop_sequences": "\n\n,###",
        "top_k": 5,
    }


@pytest.mark.parametrize(
    "extra",
    [
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
        {"response_format": {"type": "json_object"}},
    ],
)
def test_chat_input_refuses_what_replicate_cannot_do(extra: dict) -> None:
    with pytest.raises(InvalidRequestError):
        chat_input({"messages": [{"role": "user", "content": "hi"}], **extra})


def test_create_request_for_models_and_versions() -> None:
    def deployment(model: str) -> Deployment:
        return Deployment(id="t", model_name="r", provider="replicate", upstream_model=model)

    assert create_request(
        deployment=deployment("meta/llama"), prediction_input={"prompt": "x"}, stream=True
    ) == (
        "https://api.replicate.com/v1/models/meta/llama/predictions",
        {"input": {"prompt": "x"}, "stream": True},
    )
    assert create_request(
        deployment=deployment("meta/llama:abc"), prediction_input={"prompt": "x"}, stream=False
    ) == ("https://api.replicate.com/v1/predictions", {"version": "abc", "input": {"prompt": "x"}})


def test_named_sse_parser_keeps_event_names_and_multiline_data() -> None:
    parser = NamedSSEParser()
    events = parser.feed(b"event: output\nid: 1\ndata: a\ndata: b\n\nevent: do")
    assert events == [("output", "a\nb")]
    assert parser.feed(b"ne\ndata: {}\n\n") == [("done", "{}")]


# -- end to end ---------------------------------------------------------------------------------


@pytest.mark.live
def test_plain_text_with_prefer_wait(
    sdk: openai.OpenAI, replicate_models: None, replicate_emulator: ReplicateEmulator
) -> None:
    raw = sdk.chat.completions.with_raw_response.create(
        model="llama", messages=[{"role": "user", "content": "Hi there"}]
    )
    completion = raw.parse()
    (create,) = replicate_emulator.requests
    assert (create.method, create.path) == ("POST", CREATE_CHAT)
    assert create.body == {"input": {"prompt": "Hi there"}}
    assert create.headers["prefer"] == "wait=60"
    assert create.headers["authorization"] == f"Bearer {API_KEY}"
    assert completion.id == "chatcmpl-pred0001"
    assert completion.choices[0].message.content == "Echo: Hi there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 6)
    assert raw.headers["x-ogem-provider"] == "replicate"
    schema_validate("CreateChatCompletionResponse", raw.http_response.json())


@pytest.mark.live
def test_system_multi_turn_stop_and_image(
    sdk: openai.OpenAI, replicate_models: None, replicate_emulator: ReplicateEmulator
) -> None:
    sdk.chat.completions.create(
        model="llama",
        messages=[
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Capital of Italy?"},
            {"role": "assistant", "content": "Rome."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "And this city?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/paris.jpg"}},
                ],
            },
        ],
        stop=["."],
        max_tokens=20,
    )
    assert replicate_emulator.bodies(CREATE_CHAT) == [
        {
            "input": {
                "prompt": "User: Capital of Italy?\n\nAssistant: Rome.\n\nUser: And this city?"
                "\n\nAssistant:",
                "system_prompt": "Answer briefly.",
                "image": "https://example.com/paris.jpg",
                "max_tokens": 20,
                "stop_sequences": ".",
            }
        }
    ]


@pytest.mark.live
def test_slow_prediction_is_polled_and_versions_use_predictions(
    sdk: openai.OpenAI, replicate_models: None, replicate_emulator: ReplicateEmulator
) -> None:
    replicate_emulator.script(Prediction(output=["Slow", " answer"], polls=3))
    completion = sdk.chat.completions.create(
        model="llama-pinned", messages=[{"role": "user", "content": "Hi"}]
    )
    assert [(r.method, r.path) for r in replicate_emulator.requests] == [
        ("POST", "/v1/predictions"),
        ("GET", "/v1/predictions/pred0001"),
        ("GET", "/v1/predictions/pred0001"),
        ("GET", "/v1/predictions/pred0001"),
    ]
    assert replicate_emulator.requests[0].body == {"version": VERSION, "input": {"prompt": "Hi"}}
    assert completion.choices[0].message.content == "Slow answer"


@pytest.mark.live
def test_stream_through_the_stream_url(
    sdk: openai.OpenAI, replicate_models: None, replicate_emulator: ReplicateEmulator
) -> None:
    replicate_emulator.script(Prediction(output=["Line one", "\nline two", "!"]))
    chunks = list(
        sdk.chat.completions.create(
            model="llama",
            messages=[{"role": "user", "content": "Go"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert [(r.method, r.path) for r in replicate_emulator.requests] == [
        ("POST", CREATE_CHAT),
        ("GET", "/stream/pred0001"),
        ("GET", "/v1/predictions/pred0001"),
    ]
    assert replicate_emulator.requests[0].body == {"input": {"prompt": "Go"}, "stream": True}
    assert "prefer" not in replicate_emulator.requests[0].headers
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Line one\nline two!"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (12, 6)
    for chunk in chunks:
        schema_validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))


@pytest.mark.live
def test_stream_error_event_arrives_as_an_error(
    sdk: openai.OpenAI, replicate_models: None, replicate_emulator: ReplicateEmulator
) -> None:
    replicate_emulator.script(Prediction(output=["a", "b", "c"], stream_error="CUDA out of memory"))
    stream = sdk.chat.completions.create(
        model="llama", messages=[{"role": "user", "content": "Go"}], stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        list(stream)
    assert "replicate returned 502: CUDA out of memory" in str(caught.value)


@pytest.mark.live
def test_failed_prediction_upstream_error_and_rate_limit(
    sdk: openai.OpenAI, replicate_models: None, replicate_emulator: ReplicateEmulator
) -> None:
    replicate_emulator.script(
        Prediction(error="Prediction interrupted; please retry (code: PA)"),
        problem(
            422, "- input.max_tokens: Must be less than or equal to 8192", "Input validation failed"
        ),
        problem(
            429,
            "Request was throttled. Expected available in 4 seconds.",
            "Request was throttled",
            **{"Retry-After": "4"},
        ),
    )
    messages = [{"role": "user", "content": "Hi"}]
    with pytest.raises(openai.APIStatusError) as failed:
        sdk.chat.completions.create(model="llama", messages=messages)
    assert failed.value.status_code == 502
    assert failed.value.body["message"] == (
        "replicate prediction pred0001 failed: Prediction interrupted; please retry (code: PA)"
    )
    assert failed.value.body["code"] == "prediction_failed"
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.chat.completions.create(model="llama", messages=messages)
    assert bad.value.body["message"] == (
        "replicate returned 422: - input.max_tokens: Must be less than or equal to 8192"
    )
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.chat.completions.create(model="llama", messages=messages)
    assert limited.value.response.headers["retry-after"] == "4"


@pytest.mark.live
def test_tools_and_json_mode_are_refused_before_the_upstream(
    sdk: openai.OpenAI, replicate_models: None, replicate_emulator: ReplicateEmulator
) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError) as tools:
        sdk.chat.completions.create(
            model="llama", messages=[{"role": "user", "content": "Hi"}], tools=[tool]
        )
    assert tools.value.body["param"] == "tools"
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(
            model="llama",
            messages=[{"role": "user", "content": "Hi"}],
            response_format={"type": "json_object"},
        )
    assert replicate_emulator.requests == []


@pytest.mark.live
def test_image_generation_urls_and_b64(
    sdk: openai.OpenAI, replicate_models: None, replicate_emulator: ReplicateEmulator
) -> None:
    raw = sdk.images.with_raw_response.generate(
        model="flux", prompt="a red fox", n=2, size="1024x768"
    )
    images = raw.parse()
    assert replicate_emulator.bodies(f"/v1/models/{IMAGE_MODEL}/predictions") == [
        {"input": {"prompt": "a red fox", "num_outputs": 2, "width": 1024, "height": 768}}
    ]
    assert [d.url for d in images.data or []] == [
        f"{replicate_emulator.url}/files/out-0.png",
        f"{replicate_emulator.url}/files/out-1.png",
    ]
    schema_validate("ImagesResponse", raw.http_response.json())
    encoded = sdk.images.generate(model="flux", prompt="a fox", response_format="b64_json")
    assert [base64.b64decode(d.b64_json or "") for d in encoded.data or []] == [PNG]


@pytest.mark.live
def test_polling_stops_at_the_deployment_timeout(
    sdk: openai.OpenAI,
    replicate_emulator: ReplicateEmulator,
    install_deployments: Callable[..., None],
) -> None:
    install_deployments(
        Deployment(
            id="test:slow-llama:0",
            model_name="slow-llama",
            provider="replicate",
            upstream_model=CHAT_MODEL,
            api_base=replicate_emulator.url,
            api_key=API_KEY,
            timeouts=Timeouts(total=0.5),
            params={"poll_interval": 0.1},
        )
    )
    replicate_emulator.script(Prediction(output=["never"], polls=1000))
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(
            model="slow-llama", messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.status_code == 504
    assert caught.value.body["message"] == "replicate did not finish the prediction in time."
    polls = [r for r in replicate_emulator.requests if r.method == "GET"]
    assert 1 <= len(polls) <= 5


@pytest.mark.live
def test_b64_download_of_a_private_url_is_refused_by_default(
    sdk: openai.OpenAI,
    replicate_emulator: ReplicateEmulator,
    install_deployments: Callable[..., None],
) -> None:
    install_deployments(
        Deployment(
            id="test:flux:0",
            model_name="flux-guarded",
            provider="replicate",
            upstream_model=IMAGE_MODEL,
            api_base=replicate_emulator.url,
            api_key=API_KEY,
        )
    )
    with pytest.raises(openai.BadRequestError):
        sdk.images.generate(model="flux-guarded", prompt="a fox", response_format="b64_json")
    assert not any(r.path.startswith("/files/") for r in replicate_emulator.requests)


@pytest.mark.live
def test_tools_with_tool_choice_none_are_accepted_and_not_sent(
    sdk: openai.OpenAI, replicate_models: None, replicate_emulator: ReplicateEmulator
) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    completion = sdk.chat.completions.create(
        model="llama",
        messages=[{"role": "user", "content": "Hi"}],
        tools=[tool],
        tool_choice="none",
    )
    (create,) = replicate_emulator.requests
    assert create.body == {"input": {"prompt": "Hi"}}
    assert completion.choices[0].message.content == "Echo: Hi"
    assert completion.choices[0].message.tool_calls is None
