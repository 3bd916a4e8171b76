"""GET /v1/models and /v1/models/{model}: only the models the calling key may use."""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest, HttpResponse

from gateway.auth import caller_authenticate
from gateway.errors import NotFoundError
from gateway.registry import DeploymentRegistry, registry_get, wildcard_match
from gateway.responses import json_response, request_id_for
from gateway.router import model_usable, models_visible


def _model_object(name: str, registry: DeploymentRegistry) -> dict[str, Any]:
    group = registry.by_model.get(name) or wildcard_match(registry, name)
    return {
        "id": name,
        "object": "model",
        "created": int(registry.installed_at),
        "owned_by": group[0].provider,
    }


def _headers(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    response["x-request-id"] = request_id_for(request)
    started = request.ogem_started  # type: ignore[attr-defined]
    response["x-ogem-overhead-ms"] = f"{(time.perf_counter() - started) * 1000:.2f}"
    return response


async def models_list(request: HttpRequest) -> HttpResponse:
    request.ogem_started = time.perf_counter()  # type: ignore[attr-defined]
    caller = await caller_authenticate(request)
    registry = registry_get()
    data = [_model_object(n, registry) for n in models_visible(caller=caller, registry=registry)]
    return _headers(request, json_response({"object": "list", "data": data}))


async def models_retrieve(request: HttpRequest, model: str) -> HttpResponse:
    request.ogem_started = time.perf_counter()  # type: ignore[attr-defined]
    caller = await caller_authenticate(request)
    registry = registry_get()
    if not model_usable(caller=caller, registry=registry, model=model):
        raise NotFoundError(
            f"The model `{model}` does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    return _headers(request, json_response(_model_object(model, registry)))
