"""A `batch` file is checked line by line as it is uploaded: the first bad line is a 400 naming
it and why, and nothing is stored (files/batch_input.py)."""

from __future__ import annotations

import io
from typing import Any

import openai
import orjson
import pytest

from files.models import File
from tests.files.conftest import blobs

pytestmark = pytest.mark.django_db(transaction=True)


def _line(custom_id: str = "a", model: str = "mock-chat", **fields: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": "hi"}]},
    }
    line.update(fields)
    return line


def _jsonl(*lines: Any) -> bytes:
    return b"".join(
        (line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines
    )


def _upload(client: openai.OpenAI, content: bytes) -> Any:
    return client.files.create(file=("input.jsonl", io.BytesIO(content)), purpose="batch")


def _refusal(client: openai.OpenAI, content: bytes) -> dict[str, Any]:
    with pytest.raises(openai.BadRequestError) as refused:
        _upload(client, content)
    return refused.value.body  # type: ignore[return-value]


def test_a_valid_file_is_accepted_and_summarised(key_sdk) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    content = _jsonl(_line("a"), _line("b"), b"", _line("c"))  # a blank line is skipped
    created = _upload(client, content)
    assert (created.purpose, created.bytes) == ("batch", len(content))
    stored = File.objects.get(file_id=created.id)
    assert stored.batch_summary == {
        "lines": 3,
        "url": "/v1/chat/completions",
        "models": ["mock-chat"],
    }


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            [_line("a"), b"{not json"],
            "Line 2 of the batch file is invalid: not valid JSON",
        ),
        ([b"[1, 2]"], "Line 1 of the batch file is invalid: a line must be a JSON object."),
        (
            [{k: v for k, v in _line().items() if k != "custom_id"}],
            "Line 1 of the batch file is invalid: `custom_id` must be a non-empty string.",
        ),
        (
            [_line(method="GET")],
            'Line 1 of the batch file is invalid: `method` must be "POST".',
        ),
        (
            [_line(url="/v1/images/generations")],
            'Line 1 of the batch file is invalid: `url` "/v1/images/generations" is not one '
            "batches serve (/v1/chat/completions, /v1/completions, /v1/embeddings, "
            "/v1/moderations).",
        ),
        (
            [_line(body="hi")],
            "Line 1 of the batch file is invalid: `body` must be a JSON object.",
        ),
        (
            [_line(body={"messages": [{"role": "user", "content": "hi"}]})],
            "Line 1 of the batch file is invalid: `body`: You must provide a model parameter.",
        ),
        (
            [_line("a"), _line("b"), _line("a")],
            "Line 3 of the batch file is invalid: duplicate `custom_id` 'a'.",
        ),
        (
            [
                _line("a"),
                _line(
                    "b",
                    url="/v1/embeddings",
                    body={"model": "mock-embed", "input": "x"},
                ),
            ],
            "Line 2 of the batch file is invalid: `url` /v1/embeddings differs from "
            "/v1/chat/completions: every line of a batch names one url.",
        ),
        (
            [_line("a"), _line("b", model="mock-image")],
            "Line 2 of the batch file is invalid: model `mock-image` differs from `mock-chat` "
            "(line 1): a batch file names one model.",
        ),
        (
            [_line("a", model="no-such-model")],
            "Line 1 of the batch file is invalid: The model `no-such-model` does not exist or "
            "you do not have access to it.",
        ),
        (
            [_line("a", stream=True)],
            "Line 1 of the batch file is invalid: unknown field `stream`.",
        ),
    ],
)
def test_the_first_bad_line_is_named(key_sdk, files_dir, lines, expected) -> None:  # type: ignore[no-untyped-def]
    error = _refusal(key_sdk(), _jsonl(*lines))
    assert error["message"].startswith(expected), error["message"]
    assert (error["type"], error["param"], error["code"]) == (
        "invalid_request_error",
        "file",
        "invalid_batch_input",
    )
    assert blobs(files_dir) == []
    assert File.objects.count() == 0


def test_a_model_the_key_may_not_use_is_refused(key_sdk, files_dir) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk(models=["mock-embed"])
    error = _refusal(client, _jsonl(_line("a")))
    assert error["message"] == (
        "Line 1 of the batch file is invalid: This key is not allowed to use the model `mock-chat`."
    )
    assert blobs(files_dir) == []


def test_streaming_lines_and_empty_files_are_refused(key_sdk) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    streaming = _line()
    streaming["body"]["stream"] = True
    assert _refusal(client, _jsonl(streaming))["message"] == (
        "Line 1 of the batch file is invalid: `body.stream` cannot be true in a batch."
    )
    assert _refusal(client, b"\n\n")["message"] == "The batch file holds no request."


def test_mixed_models_are_accepted_when_the_setting_allows_them(key_sdk, settings) -> None:  # type: ignore[no-untyped-def]
    settings.OGEM_FILES_BATCH_MIXED_MODELS = True
    created = _upload(key_sdk(), _jsonl(_line("a"), _line("b", model="mock-image")))
    summary = File.objects.get(file_id=created.id).batch_summary
    assert summary["models"] == ["mock-chat", "mock-image"]


def test_every_batch_endpoint_is_accepted(key_sdk) -> None:  # type: ignore[no-untyped-def]
    client = key_sdk()
    for url, body in (
        ("/v1/completions", {"model": "mock-chat", "prompt": "hi"}),
        ("/v1/embeddings", {"model": "mock-embed", "input": "hi"}),
        ("/v1/moderations", {"model": "mock-moderation", "input": "hi"}),
    ):
        created = _upload(client, _jsonl(_line("a", url=url, body=body)))
        assert File.objects.get(file_id=created.id).batch_summary["url"] == url
