"""OpenAI requests → Replicate prediction inputs, and finished predictions back.

Chat models on Replicate (Llama, Mistral, Granite, ...) take a `prompt` and a `system_prompt`
and apply their own chat template, so system messages become `system_prompt` and the rest of the
conversation the `prompt`: the last user turn alone, or earlier turns written as
"User: ...\\n\\nAssistant: ..." before it. The first image part becomes the `image` input (vision
models; Replicate downloads it). `max_tokens`, `temperature`, `top_p` and `seed` keep their names,
`stop` becomes the comma-separated `stop_sequences`. Replicate models have no tool calling or
JSON mode: such requests are refused rather than silently degraded (tools offered with
`tool_choice: "none"` are accepted: no call was asked for, none can happen). A request's
`input` object (`extra_body`) is merged into the prediction's input for model-specific options.
"""

from __future__ import annotations

import time
from typing import Any

from providers.errors import InvalidRequestError

PASSED = ("temperature", "top_p", "seed")
TERMINAL = frozenset({"succeeded", "failed", "canceled"})


def _text_and_image(content: Any, index: int) -> tuple[str, str | None]:
    if content is None:
        return "", None
    if isinstance(content, str):
        return content, None
    texts, image = [], None
    for part in content:
        kind = part.get("type")
        if kind == "text":
            texts.append(str(part.get("text") or ""))
        elif kind == "image_url" and image is None:
            url = part.get("image_url")
            image = url.get("url") if isinstance(url, dict) else url
        else:
            raise InvalidRequestError(
                f"replicate does not accept `{kind}` parts.", param=f"messages[{index}].content"
            )
    return "\n".join(texts), image


def chat_input(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("tools") and body.get("tool_choice") != "none":
        raise InvalidRequestError("replicate models do not support tool calling.", param="tools")
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") != "text":
        raise InvalidRequestError(
            "replicate models do not support JSON mode.", param="response_format"
        )
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    image: str | None = None
    for index, message in enumerate(body["messages"]):
        text, found = _text_and_image(message.get("content"), index)
        image = image or found
        role = message["role"]
        if role in ("system", "developer"):
            system.append(text)
        elif role in ("user", "assistant"):
            turns.append((role, text))
        else:
            raise InvalidRequestError(
                f"replicate does not accept `{role}` messages.", param=f"messages[{index}].role"
            )
    if not turns or turns[-1][0] != "user":
        raise InvalidRequestError("The last message must be a user message.", param="messages")
    if len(turns) == 1:
        prompt = turns[0][1]
    else:
        lines = [f"{'User' if role == 'user' else 'Assistant'}: {text}" for role, text in turns]
        prompt = "\n\n".join([*lines, "Assistant:"])
    payload: dict[str, Any] = {"prompt": prompt}
    if system:
        payload["system_prompt"] = "\n\n".join(system)
    if image:
        payload["image"] = image
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    for name in PASSED:
        if body.get(name) is not None:
            payload[name] = body[name]
    stop = body.get("stop")
    if stop:
        payload["stop_sequences"] = stop if isinstance(stop, str) else ",".join(stop)
    payload.update(body.get("input") or {})
    return payload


def image_input(body: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = {"prompt": body["prompt"]}
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        payload["num_outputs"] = n
    size = body.get("size")
    if isinstance(size, str) and "x" in size:
        width, _, height = size.partition("x")
        if width.isdigit() and height.isdigit():
            payload["width"], payload["height"] = int(width), int(height)
    payload.update(body.get("input") or {})
    return payload


def output_text(output: Any) -> str:
    if output is None:
        return ""
    if isinstance(output, list):
        return "".join(str(piece) for piece in output)
    return str(output)


def output_urls(output: Any) -> list[str]:
    if isinstance(output, str):
        return [output]
    if isinstance(output, list):
        return [str(item) for item in output if item]
    return []


def prediction_usage(prediction: dict[str, Any]) -> dict[str, int]:
    metrics = prediction.get("metrics") or {}
    prompt = int(metrics.get("input_token_count") or 0)
    completion = int(metrics.get("output_token_count") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def prediction_to_chat(prediction: dict[str, Any], *, model: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{prediction.get('id', '')}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": output_text(prediction.get("output")),
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": prediction_usage(prediction),
    }
