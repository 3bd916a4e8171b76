"""Requests Ogem makes to its own /v1 pipeline on a caller's behalf.

The semantic cache embeds prompts, a batch runs its lines, a vector store embeds its chunks: each
goes through `gateway.relay.relay` exactly as a client's request would (the caller's model
allow-lists, routing and fallbacks, rate limits, budgets, caching and accounting, a RequestLog of
its own), with the Caller given instead of a credential. Only JSON, non-streaming answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.http import HttpRequest

from gateway.body import body_read_json
from gateway.context import Caller
from gateway.errors import GatewayError
from gateway.guardrails.pipeline import guard_pipeline_set
from gateway.relay import relay
from gateway.semantic import semantic_embedder_set
from providers.base import Endpoint


@dataclass(frozen=True, slots=True)
class InternalAnswer:
    """What /v1 answered: its status, its JSON body (OpenAI's error shape when not 200) and the
    headers Ogem set (x-ogem-*, x-request-id, rate-limit headers)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200


async def internal_call(
    *,
    caller: Caller,
    endpoint: Endpoint,
    body: Mapping[str, Any],
    headers: Mapping[str, str] | None = None,
    request_id: str | None = None,
    recorded_as: Endpoint | None = None,
    batch_id: str = "",
) -> InternalAnswer:
    """Run one request through the pipeline as `caller`. Never raises a GatewayError: the error
    comes back as the answer a client would have had. `recorded_as`: as `relay`'s. `batch_id`
    makes it a line of that batch: its cost is recorded at the batch price factor, and its usage
    once per `request_id` however often the line is run again (a resumed batch)."""
    request = HttpRequest()
    request.method = "POST"
    request.path = request.path_info = f"/v1/{endpoint.value}"
    request.META["CONTENT_TYPE"] = "application/json"
    for name, value in (headers or {}).items():
        request.META["HTTP_" + name.upper().replace("-", "_")] = value
    request.ogem_request_id = request_id or uuid.uuid4().hex  # type: ignore[attr-defined]
    payload = {name: value for name, value in body.items() if name != "stream"}
    request._body = orjson.dumps(payload)  # type: ignore[attr-defined]
    try:
        response = await relay(
            request,
            endpoint=endpoint,
            reader=body_read_json,
            caller=caller,
            recorded_as=recorded_as,
            batch_id=batch_id,
        )
    except GatewayError as error:
        return InternalAnswer(
            status=error.status, body=error.to_body(), headers=dict(error.headers)
        )
    try:
        answer = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        answer = {"error": {"message": "not a JSON answer", "type": "api_error"}}
    return InternalAnswer(
        status=response.status_code,
        body=answer if isinstance(answer, dict) else {"data": answer},
        headers={name.lower(): value for name, value in response.items()},
    )


# The semantic cache embeds prompts through this pipeline, and guardrails ask model groups through
# it; neither can import this module (the pipeline runs them), so they are given the call here.
# /v1's views import this module.
semantic_embedder_set(internal_call)
guard_pipeline_set(internal_call)
