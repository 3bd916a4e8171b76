"""Hugging Face (router / TGI / HF Inference tasks): translation (exact dicts) and end to end
through a live Ogem with the official `openai` SDK."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import orjson
import pytest

from gateway.config import config_load
from gateway.errors import InvalidRequestError
from providers.base import Deployment
from providers.huggingface.adapter import asr_to_transcript, chat_request, task_url
from providers.huggingface.tgi import GenerateStreamTranslator, generate_request
from tests.emulators.huggingface_api import (
    API_KEY,
    TTS_AUDIO,
    ChatReply,
    GenerateReply,
    HuggingFaceEmulator,
    hf_error,
    huggingface_emulator_get,
)
from tests.emulators.voyage_api import vector
from tests.schemas import schema_validate

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
DEPLOYMENT = Deployment(id="t", model_name="h", provider="huggingface", upstream_model=LLAMA)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def hf_emulator() -> Iterator[HuggingFaceEmulator]:
    emulator = huggingface_emulator_get()
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def hf_models(
    hf_emulator: HuggingFaceEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    install_deployments: Callable[..., None],
) -> None:
    monkeypatch.setenv("R2E_HF_TOKEN", API_KEY)
    entries = {
        "hf-llama": LLAMA,
        "hf-embed": "sentence-transformers/all-MiniLM-L6-v2",
        "hf-whisper": "openai/whisper-large-v3",
        "hf-tts": "facebook/mms-tts-eng",
    }
    lines = ["model_list:"]
    for name, model in entries.items():
        lines += [
            f"  - model_name: {name}",
            "    litellm_params:",
            f"      model: huggingface/{model}",
            f"      api_base: {hf_emulator.url}",
            "      api_key: os.environ/R2E_HF_TOKEN",
        ]
    path = tmp_path / "config.yaml"
    path.write_text("\n".join(lines) + "\n")
    install_deployments(*config_load(str(path)).deployments)


def test_urls() -> None:
    assert task_url(DEPLOYMENT) == f"https://router.huggingface.co/hf-inference/models/{LLAMA}"
    endpoint = Deployment(
        id="t",
        model_name="h",
        provider="huggingface",
        upstream_model="m",
        api_base="https://x.endpoints.huggingface.cloud/",
        params={"task_path": ""},
    )
    assert task_url(endpoint, suffix="/pipeline/feature-extraction") == (
        "https://x.endpoints.huggingface.cloud"
    )


def test_chat_request_drops_what_tgi_does_not_know() -> None:
    body = {
        "model": "h",
        "messages": [{"role": "user", "content": "hi"}],
        "user": "u",
        "store": True,
        "max_completion_tokens": 9,
        "stream_options": {"include_usage": False},
    }
    assert chat_request(body=body, deployment=DEPLOYMENT, stream=True) == {
        "model": LLAMA,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 9,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_generate_request_and_stream_translation() -> None:
    body = {"prompt": ["Hello"], "max_tokens": 5, "stop": "\n", "temperature": 0.5}
    assert generate_request(body=body, stream=False) == {
        "inputs": "Hello",
        "parameters": {
            "return_full_text": False,
            "details": True,
            "decoder_input_details": True,
            "max_new_tokens": 5,
            "stop": ["\n"],
            "temperature": 0.5,
            "do_sample": True,
        },
    }
    with pytest.raises(InvalidRequestError):
        generate_request(body={"prompt": ["a", "b"]}, stream=False)
    translator = GenerateStreamTranslator(model="m", identity="cmpl-1")
    special = translator.feed({"token": {"text": "</s>", "special": True}, "details": None})
    assert special == []
    last = translator.feed(
        {
            "token": {"text": "!", "special": False},
            "details": {"finish_reason": "length", "generated_tokens": 2, "input_length": 7},
        }
    )
    assert [c["choices"] for c in last] == [
        [{"text": "!", "index": 0, "logprobs": None, "finish_reason": "length"}],
        [],
    ]
    assert last[1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    assert translator.finished


def test_asr_chunks_become_segments() -> None:
    reply = {
        "text": " Hi. Bye.",
        "chunks": [
            {"text": " Hi.", "timestamp": [0.0, 0.4]},
            {"text": " Bye.", "timestamp": [0.4, None]},
        ],
    }
    transcript = asr_to_transcript(reply, language="en")
    assert [(s.start, s.end, s.text) for s in transcript.segments] == [
        (0.0, 0.4, "Hi."),
        (0.4, 0.4, "Bye."),
    ]
    assert (transcript.text, transcript.duration) == ("Hi. Bye.", 0.4)


# -- chat ---------------------------------------------------------------------------------------


@pytest.mark.live
def test_chat_plain_system_multi_turn_stop(
    sdk: openai.OpenAI, hf_models: None, hf_emulator: HuggingFaceEmulator
) -> None:
    raw = sdk.chat.completions.with_raw_response.create(
        model="hf-llama",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Again?"},
        ],
        stop=["\n\n"],
        user="end-user",
    )
    completion = raw.parse()
    assert hf_emulator.bodies("/v1/chat/completions") == [
        {
            "model": LLAMA,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Again?"},
            ],
            "stop": ["\n\n"],
        }
    ]
    assert hf_emulator.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert completion.choices[0].message.content == "Hello from TGI."
    assert completion.usage is not None and completion.usage.total_tokens == 13
    assert raw.headers["x-ogem-provider"] == "huggingface"


@pytest.mark.live
def test_chat_image_and_json_mode_pass_through(
    sdk: openai.OpenAI, hf_models: None, hf_emulator: HuggingFaceEmulator
) -> None:
    hf_emulator.script(ChatReply(content='{"animal": "cat"}'))
    content = [
        {"type": "text", "text": "What animal?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    completion = sdk.chat.completions.create(
        model="hf-llama",
        messages=[{"role": "user", "content": content}],
        response_format={"type": "json_object"},
    )
    sent = hf_emulator.bodies("/v1/chat/completions")[0]
    assert sent["messages"][0]["content"] == content
    assert sent["response_format"] == {"type": "json_object"}
    assert orjson.loads(completion.choices[0].message.content or "") == {"animal": "cat"}


@pytest.mark.live
def test_chat_streamed_tool_call_then_its_result(
    sdk: openai.OpenAI, hf_models: None, hf_emulator: HuggingFaceEmulator
) -> None:
    call = {
        "id": "0",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }
    hf_emulator.script(
        ChatReply(content=None, tool_calls=[call], finish_reason="tool_calls"),
        ChatReply(content="Sunny."),
    )
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    stream = sdk.chat.completions.create(
        model="hf-llama", messages=messages, tools=[WEATHER_TOOL], stream=True
    )
    chunks = list(stream)
    for chunk in chunks:
        schema_validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert deltas[0].function.name == "get_weather"
    assert "".join(d.function.arguments or "" for d in deltas) == '{"city":"Paris"}'
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    answer = sdk.chat.completions.create(
        model="hf-llama",
        tools=[WEATHER_TOOL],
        messages=[
            *messages,
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "0", "content": "22C"},
        ],
    )
    assert hf_emulator.bodies("/v1/chat/completions")[1]["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "0", "content": "22C"},
    ]
    assert answer.choices[0].message.content == "Sunny."


@pytest.mark.live
def test_chat_error_and_model_loading(
    sdk: openai.OpenAI, hf_models: None, hf_emulator: HuggingFaceEmulator
) -> None:
    hf_emulator.script(
        hf_error(422, "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096"),
        hf_error(429, "Rate limit reached. You reached free usage limit", **{"Retry-After": "30"}),
        hf_error(503, "Model meta-llama/Llama-3.1-8B-Instruct is currently loading", "overloaded"),
    )
    messages = [{"role": "user", "content": "Hi"}]
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.chat.completions.create(model="hf-llama", messages=messages)
    assert bad.value.body["message"] == (
        "huggingface returned 422: Input validation error: `inputs` tokens + `max_new_tokens` "
        "must be <= 4096"
    )
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.chat.completions.create(model="hf-llama", messages=messages)
    assert limited.value.response.headers["retry-after"] == "30"
    with pytest.raises(openai.APIStatusError) as loading:
        sdk.chat.completions.create(model="hf-llama", messages=messages)
    assert loading.value.status_code == 503
    assert "is currently loading" in loading.value.body["message"]


# -- TGI native generate ------------------------------------------------------------------------


@pytest.mark.live
def test_completions_through_generate(
    sdk: openai.OpenAI, hf_models: None, hf_emulator: HuggingFaceEmulator
) -> None:
    completion = sdk.completions.create(model="hf-llama", prompt="Hello", max_tokens=10)
    assert hf_emulator.bodies("/generate") == [
        {
            "inputs": "Hello",
            "parameters": {
                "return_full_text": False,
                "details": True,
                "decoder_input_details": True,
                "max_new_tokens": 10,
            },
        }
    ]
    assert completion.choices[0].text == " world, said the model."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 4)


@pytest.mark.live
def test_completions_streamed_through_generate_stream(
    sdk: openai.OpenAI, hf_models: None, hf_emulator: HuggingFaceEmulator
) -> None:
    hf_emulator.script(GenerateReply(text="abcdefghij", finish_reason="length", prompt_tokens=5))
    chunks = list(
        sdk.completions.create(
            model="hf-llama",
            prompt="Go",
            stream=True,
            stream_options={"include_usage": True},
            stop=["."],
        )
    )
    assert hf_emulator.bodies("/generate_stream")[0]["parameters"]["stop"] == ["."]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "abcdefghij"
    assert [c.choices[0].finish_reason for c in chunks if c.choices] == [None, "length"]
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 2)


# -- embeddings and audio -----------------------------------------------------------------------


@pytest.mark.live
def test_feature_extraction_embeddings(
    sdk: openai.OpenAI, hf_models: None, hf_emulator: HuggingFaceEmulator
) -> None:
    raw = sdk.embeddings.with_raw_response.create(
        model="hf-embed", input=["one", "two words"], encoding_format="float"
    )
    result = raw.parse()
    path = "/hf-inference/models/sentence-transformers/all-MiniLM-L6-v2/pipeline/feature-extraction"
    assert hf_emulator.bodies(path) == [{"inputs": ["one", "two words"]}]
    assert [d.embedding for d in result.data] == [
        vector("one", dimension=4),
        vector("two words", dimension=4),
    ]
    schema_validate("CreateEmbeddingResponse", raw.http_response.json())
    encoded = sdk.embeddings.create(model="hf-embed", input="one")  # the SDK asks for base64
    assert encoded.data[0].embedding == vector("one", dimension=4)


@pytest.mark.live
def test_whisper_transcriptions(
    sdk: openai.OpenAI, hf_models: None, hf_emulator: HuggingFaceEmulator
) -> None:
    audio = ("a.wav", b"Good morning. See you soon.", "audio/wav")
    text = sdk.audio.transcriptions.create(model="hf-whisper", file=audio, response_format="text")
    path = "/hf-inference/models/openai/whisper-large-v3"
    assert hf_emulator.bodies(path)[0] == {"inputs": base64.b64encode(audio[1]).decode()}
    assert text == "Good morning. See you soon.\n"
    srt = sdk.audio.transcriptions.create(model="hf-whisper", file=audio, response_format="srt")
    assert hf_emulator.bodies(path)[1]["parameters"] == {"return_timestamps": True}
    assert srt == (
        "1\n00:00:00,000 --> 00:00:01,000\nGood morning.\n\n"
        "2\n00:00:01,000 --> 00:00:02,500\nSee you soon.\n"
    )
    verbose = sdk.audio.transcriptions.with_raw_response.create(
        model="hf-whisper", file=audio, response_format="verbose_json", language="en"
    )
    body = verbose.http_response.json()
    schema_validate("CreateTranscriptionResponseVerboseJson", body)
    assert (body["language"], body["duration"], len(body["segments"])) == ("en", 2.5, 2)


@pytest.mark.live
def test_text_to_speech(
    sdk: openai.OpenAI, hf_models: None, hf_emulator: HuggingFaceEmulator
) -> None:
    response = sdk.audio.speech.create(model="hf-tts", voice="alloy", input="Hello there")
    assert hf_emulator.bodies("/hf-inference/models/facebook/mms-tts-eng") == [
        {"inputs": "Hello there"}
    ]
    assert response.content == TTS_AUDIO + b"Hello there"
    assert response.response.headers["content-type"] == "audio/flac"


@pytest.mark.live
def test_chat_tool_choice_none_reasoning_effort_and_cached_tokens(
    sdk: openai.OpenAI, hf_models: None, hf_emulator: HuggingFaceEmulator
) -> None:
    # tool_choice "none" is part of TGI's Messages API (its model then calls no tool);
    # reasoning_effort is not (TGI refuses unknown fields); usage is relayed as reported.
    call = {"id": "0", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    usage = {
        "prompt_tokens": 900,
        "completion_tokens": 4,
        "total_tokens": 904,
        "prompt_tokens_details": {"cached_tokens": 640},
    }
    hf_emulator.script(ChatReply(content=None, tool_calls=[call], usage=usage))
    completion = sdk.chat.completions.create(
        model="hf-llama",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[WEATHER_TOOL],
        tool_choice="none",
        reasoning_effort="low",
    )
    [body] = hf_emulator.bodies("/v1/chat/completions")
    assert body["tool_choice"] == "none"
    assert "reasoning_effort" not in body
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].message.content == "No tool."
    assert completion.usage is not None and completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 640
