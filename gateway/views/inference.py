"""The /v1 inference endpoints: thin async views over the pipeline in gateway/relay.py."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from django.http import HttpRequest, HttpResponse

from gateway.body import Inbound, body_read_json, body_read_multipart
from gateway.context import RequestContext
from gateway.errors import NotFoundError
from gateway.internal import internal_call  # noqa: F401  (it gives the semantic cache its embedder)
from gateway.registry import registry_get
from gateway.relay import Reader, relay
from gateway.router import image_model_default, models_visible
from providers.base import HTTP_ENDPOINTS, Endpoint

DefaultModel = Callable[[RequestContext], str | None]


def _start(request: HttpRequest) -> None:
    request.ogem_started = time.perf_counter()  # type: ignore[attr-defined]


def _default_moderation_model(ctx: RequestContext) -> str | None:
    """Moderations may omit `model`: use the first visible model named like a moderation one."""
    for name in models_visible(caller=ctx.caller, registry=registry_get()):
        if "moderation" in name:
            return name
    return None


def _default_image_model(ctx: RequestContext) -> str | None:
    return image_model_default(caller=ctx.caller, registry=registry_get())


# Multipart endpoints carry files; every other endpoint reads a JSON body.
_MULTIPART = frozenset(
    {
        Endpoint.IMAGES_EDITS,
        Endpoint.IMAGES_VARIATIONS,
        Endpoint.AUDIO_TRANSCRIPTIONS,
        Endpoint.AUDIO_TRANSLATIONS,
    }
)


def _reader_for(endpoint: Endpoint) -> Reader:
    return body_read_multipart if endpoint in _MULTIPART else body_read_json


def _relay_view(
    endpoint: Endpoint, *, default_model: DefaultModel | None = None
) -> Callable[[HttpRequest], Awaitable[HttpResponse]]:
    """One thin async view per endpoint, all the same line into the pipeline."""
    reader = _reader_for(endpoint)

    async def view(request: HttpRequest) -> HttpResponse:
        _start(request)
        return await relay(request, endpoint=endpoint, reader=reader, default_model=default_model)

    view.__name__ = view.__qualname__ = endpoint.value.replace("/", "_")
    return view


chat_completions = _relay_view(Endpoint.CHAT)
completions = _relay_view(Endpoint.COMPLETIONS)
embeddings = _relay_view(Endpoint.EMBEDDINGS)
images_generations = _relay_view(Endpoint.IMAGES_GENERATIONS, default_model=_default_image_model)
images_edits = _relay_view(Endpoint.IMAGES_EDITS, default_model=_default_image_model)
images_variations = _relay_view(Endpoint.IMAGES_VARIATIONS, default_model=_default_image_model)
audio_transcriptions = _relay_view(Endpoint.AUDIO_TRANSCRIPTIONS)
audio_translations = _relay_view(Endpoint.AUDIO_TRANSLATIONS)
audio_speech = _relay_view(Endpoint.AUDIO_SPEECH)
moderations = _relay_view(Endpoint.MODERATIONS, default_model=_default_moderation_model)
rerank = _relay_view(Endpoint.RERANK)

_BY_PATH = {endpoint.value: endpoint for endpoint in HTTP_ENDPOINTS}


async def azure_deployment(request: HttpRequest, deployment: str, operation: str) -> HttpResponse:
    """Azure OpenAI clients' paths (`/deployments/{name}/chat/completions?api-version=...`):
    the deployment name is the model, the api-version is ignored."""
    _start(request)
    endpoint = _BY_PATH.get(operation)
    if endpoint is None:
        raise NotFoundError(
            f"Unknown request URL: POST /v1/deployments/{deployment}/{operation}.",
            code="unknown_url",
        )
    reader = _reader_for(endpoint)

    def read(incoming: HttpRequest) -> Inbound:
        inbound = reader(incoming)
        inbound.body.setdefault("model", deployment)
        return inbound

    return await relay(request, endpoint=endpoint, reader=read)
