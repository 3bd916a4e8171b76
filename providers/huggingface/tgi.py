"""OpenAI text completions ↔ Text Generation Inference's native `/generate` and
`/generate_stream` (Hugging Face Inference Endpoints and self-hosted TGI).

`prompt` becomes `inputs`; `max_tokens` → `max_new_tokens`, `stop` → `stop` (TGI's list of stop
sequences), `temperature`/`top_p`/`seed` keep their names, `return_full_text` is off so only
the completion comes back. Non-streamed calls ask for `details` and `decoder_input_details` so the
prompt's token count (its `prefill`) is known; streams report it as `details.input_length`.
TGI's finish reasons `eos_token`/`stop_sequence` are OpenAI's `stop`, `length` stays `length`.
"""

from __future__ import annotations

import time
from typing import Any

from providers.errors import InvalidRequestError

FINISH_REASONS = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}


def generate_request(*, body: dict[str, Any], stream: bool) -> dict[str, Any]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidRequestError(
            "huggingface (TGI) takes one `prompt` string per request.", param="prompt"
        )
    parameters: dict[str, Any] = {"return_full_text": False, "details": True}
    if not stream:
        parameters["decoder_input_details"] = True
    max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        parameters["max_new_tokens"] = max_tokens
    stop = body.get("stop")
    if stop is not None:
        parameters["stop"] = [stop] if isinstance(stop, str) else list(stop)
    for name in ("temperature", "top_p", "seed"):
        if body.get(name) is not None:
            parameters[name] = body[name]
    if body.get("temperature"):
        parameters["do_sample"] = True
    return {"inputs": prompt, "parameters": parameters}


def _text(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        return "".join(
            str(p.get("text") or "") for p in content if isinstance(p, dict) and "text" in p
        )
    raise InvalidRequestError("A message's content must be a string or a list of parts.")


def chat_prompt(messages: Any) -> str:
    """Chat messages as one generation prompt (`Role: text` lines, then `Assistant:`), for
    servers of TGI's text generation format behind a chat deployment (SageMaker, Predibase)."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError("`messages` must be a non-empty list.", param="messages")
    lines = [
        f"{str(m.get('role') or 'user').capitalize()}: {_text(m.get('content'))}"
        for m in messages
        if isinstance(m, dict)
    ]
    return "\n".join([*lines, "Assistant:"])


def chat_generate_request(*, body: dict[str, Any], stream: bool) -> dict[str, Any]:
    """A chat completion request as TGI's `{"inputs", "parameters"}`."""
    generation = {**body, "prompt": chat_prompt(body.get("messages"))}
    if body.get("max_completion_tokens") is not None:
        generation["max_tokens"] = body["max_completion_tokens"]
    return generate_request(body=generation, stream=stream)


def completion_as_chat(text: dict[str, Any]) -> dict[str, Any]:
    """`generate_response`'s text completion as a chat completion."""
    [choice] = text["choices"]
    return text | {
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": choice["text"]},
                "finish_reason": choice["finish_reason"],
                "logprobs": None,
            }
        ],
    }


def chunk_as_chat(chunk: dict[str, Any], *, first: bool) -> dict[str, Any]:
    """A `GenerateStreamTranslator` chunk as a chat completion chunk (the role on the first)."""
    choices = []
    for choice in chunk["choices"]:
        delta: dict[str, Any] = {"content": choice["text"]} if choice["text"] else {}
        if first:
            delta["role"] = "assistant"
        choices.append({"index": 0, "delta": delta, "finish_reason": choice["finish_reason"]})
    return chunk | {"object": "chat.completion.chunk", "choices": choices}


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def generate_response(reply: Any, *, model: str, identity: str) -> dict[str, Any]:
    if isinstance(reply, list):  # the Inference API wraps single answers in a list
        reply = reply[0] if reply else {}
    details = reply.get("details") or {}
    return {
        "id": identity,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "text": reply.get("generated_text") or "",
                "index": 0,
                "logprobs": None,
                "finish_reason": FINISH_REASONS.get(details.get("finish_reason"), "stop"),
            }
        ],
        "usage": _usage(
            len(details.get("prefill") or []), int(details.get("generated_tokens") or 0)
        ),
    }


class GenerateStreamTranslator:
    """`/generate_stream` events → OpenAI text completion chunks (usage as a final chunk)."""

    def __init__(self, *, model: str, identity: str) -> None:
        self.model = model
        self.identity = identity
        self.created = int(time.time())
        self.finished = False

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.identity,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        token = event.get("token") or {}
        details = event.get("details")
        text = "" if token.get("special") else str(token.get("text") or "")
        finish = None
        if details:
            finish = FINISH_REASONS.get(details.get("finish_reason"), "stop")
        out = []
        if text or finish:
            out.append(
                self._chunk([{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}])
            )
        if details:
            self.finished = True
            usage = _usage(
                int(details.get("input_length") or 0), int(details.get("generated_tokens") or 0)
            )
            out.append(self._chunk([]) | {"usage": usage})
        return out
