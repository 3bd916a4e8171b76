"""What the pass-through batch tests share: a deployment per provider whose model group passes
batches through to its emulator (the same deployment in this process and, through a config
file, in real Celery workers), the input, and the checks of the output."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from providers.base import Deployment
from tests.emulators.anthropic_api import API_KEY as ANTHROPIC_KEY
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.gemini_api import API_KEY as GEMINI_KEY

PROVIDERS = ("openai", "azure", "anthropic", "gemini")
INPUT_PRICE = Decimal("0.000001")
OUTPUT_PRICE = Decimal("0.000002")
FAIL_TEXT = "emulate error"  # the emulators answer such a request with a 400


def model_of(provider: str) -> str:
    return f"pt-{provider}"


def settings_of(provider: str, urls: dict[str, str]) -> dict[str, Any]:
    """The deployment's fields, as Deployment takes them and as a LiteLLM file writes them."""
    base = {
        "openai": (f"{urls['openai']}/v1", UPSTREAM_KEY, "gpt-4o-mini"),
        "azure": (urls["openai"], UPSTREAM_KEY, "gpt-4o-mini"),
        "anthropic": (urls["anthropic"], ANTHROPIC_KEY, "claude-3-5-haiku-20241022"),
        "gemini": (urls["gemini"], GEMINI_KEY, "gemini-2.0-flash"),
    }[provider]
    params: dict[str, Any] = {
        "batch_mode": "passthrough",
        "input_cost_per_token": str(INPUT_PRICE),
        "output_cost_per_token": str(OUTPUT_PRICE),
    }
    if provider == "azure":
        params["deployment"] = "gpt4o-global-batch"
    return {
        "api_base": base[0],
        "api_key": base[1],
        "upstream_model": base[2],
        "api_version": "2024-10-21" if provider == "azure" else "",
        "params": params,
    }


def deployment_of(provider: str, urls: dict[str, str]) -> Deployment:
    fields = settings_of(provider, urls)
    params = {
        name: Decimal(value) if name.endswith("_per_token") else value
        for name, value in fields.pop("params").items()
    }
    return Deployment(
        id=f"config:{model_of(provider)}",
        model_name=model_of(provider),
        provider=provider,
        params=params,
        **fields,
    )


def config_write(path: Path, urls: dict[str, str]) -> Path:
    """The same deployments in LiteLLM's config.yaml, for worker processes."""
    entries = []
    for provider in PROVIDERS:
        fields = settings_of(provider, urls)
        params = {
            "model": f"{provider}/{fields['upstream_model']}",
            "api_base": fields["api_base"],
            "api_key": fields["api_key"],
            **fields["params"],
            "input_cost_per_token": float(INPUT_PRICE),
            "output_cost_per_token": float(OUTPUT_PRICE),
        }
        if fields["api_version"]:
            params["api_version"] = fields["api_version"]
        entries.append(
            {
                "model_name": model_of(provider),
                "litellm_params": params,
                "model_info": {"id": model_of(provider)},
            }
        )
    # JSON is YAML: no YAML writer needed.
    path.write_bytes(orjson.dumps({"model_list": entries}))
    return path


def input_lines(provider: str, count: int, *, failing: bool = True) -> bytes:
    """`count` chat requests (`req-<n>`, "line <n>"), and a last one the emulator refuses."""
    texts = [f"line {n}" for n in range(count)] + ([FAIL_TEXT] if failing else [])
    return b"".join(
        orjson.dumps(
            {
                "custom_id": f"req-{n}" if text != FAIL_TEXT else "req-bad",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": model_of(provider),
                    "messages": [{"role": "user", "content": text}],
                    "max_tokens": 50,
                },
            }
        )
        + b"\n"
        for n, text in enumerate(texts)
    )


def reply_of(provider: str, text: str) -> str:
    """What the provider's emulator answers to a user turn."""
    return f"Emulated reply to: {text}" if provider in ("openai", "azure") else f"Echo: {text}"


def output_check(provider: str, lines: list[dict[str, Any]], count: int) -> None:
    """Every line of the output in OpenAI's batch output format, in input order, answered."""
    assert [line["custom_id"] for line in lines] == [f"req-{n}" for n in range(count)]
    for n, line in enumerate(lines):
        assert set(line) == {"id", "custom_id", "response", "error"}
        assert line["error"] is None
        assert line["id"] == f"batch_req_{line['response']['request_id']}"
        assert line["response"]["status_code"] == 200
        body = line["response"]["body"]
        assert body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["role"] == "assistant"
        assert body["choices"][0]["message"]["content"] == reply_of(provider, f"line {n}")
        assert body["choices"][0]["finish_reason"] == "stop"
        usage = body["usage"]
        assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def error_check(lines: list[dict[str, Any]]) -> None:
    (line,) = lines
    assert line["custom_id"] == "req-bad"
    assert line["error"] is None
    assert line["response"]["status_code"] == 400
    error = line["response"]["body"]["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]


def line_cost(body: dict[str, Any], factor: Decimal) -> Decimal:
    usage = body["usage"]
    full = usage["prompt_tokens"] * INPUT_PRICE + usage["completion_tokens"] * OUTPUT_PRICE
    return (full * factor).quantize(Decimal("0.00000001"))
