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
