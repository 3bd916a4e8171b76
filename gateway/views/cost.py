"""POST /v1/cost/estimate: what a request would cost at most, before sending it.

Prompt tokens are estimated with a simple approximation (every run of word characters and every
other non-space character is a token: close to BPE counts for English, and the same rule as the
mock provider); the output is priced at `max_tokens` (else the model's own output limit).
"""

from __future__ import annotations

import re
import time
from typing import Any

from django.http import HttpRequest, HttpResponse

from billing.pricing import cost_worst_case, price_overrides_ensure, price_resolve
from gateway.auth import caller_authenticate
from gateway.body import body_read_json
from gateway.errors import InvalidRequestError
from gateway.registry import registry_get
from gateway.responses import json_response, request_id_for
from gateway.router import deployment_choose, deployments_for

_TOKEN = re.compile(r"\w+|[^\w\s]")


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_text_of(v) for v in value)
    if isinstance(value, dict):
        return " ".join(_text_of(value.get(k)) for k in ("content", "text") if k in value)
    return ""


async def cost_estimate(request: HttpRequest) -> HttpResponse:
    started = time.perf_counter()
    caller = await caller_authenticate(request)
    body = body_read_json(request).body
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("`model` must be a non-empty string.", param="model")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)):
        raise InvalidRequestError("`max_tokens` must be an integer.", param="max_tokens")
    deployment = deployment_choose(
        candidates=deployments_for(
            caller=caller, model=model, endpoint=None, registry=registry_get()
        )
    )
    text = _text_of(body.get("messages") or body.get("prompt") or body.get("input") or "")
    prompt_tokens = len(_TOKEN.findall(text))
    await price_overrides_ensure()
    price = price_resolve(
        model=deployment.upstream_model, provider=deployment.provider, deployment=deployment
    )
    input_cost = prompt_tokens * price.input if price is not None else None
    total = cost_worst_case(price=price, prompt_tokens=prompt_tokens, max_tokens=max_tokens)
    response = json_response(
        {
            "object": "cost.estimate",
            "model": model,
            "provider": deployment.provider,
            "priced": price is not None,
            "prompt_tokens": prompt_tokens,
            "max_completion_tokens": max_tokens
            or (price.max_output_tokens if price is not None else None),
            "input_cost_usd": float(input_cost) if input_cost is not None else None,
            "max_total_cost_usd": float(total) if price is not None else None,
            "currency": "USD",
        }
    )
    response["x-request-id"] = request_id_for(request)
    response["x-ogem-overhead-ms"] = f"{(time.perf_counter() - started) * 1000:.2f}"
    return response
