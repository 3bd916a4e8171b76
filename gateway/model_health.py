"""Health of every model on demand: one small real request to each deployment, concurrently, each
bounded by a timeout. Read-only: circuits are left to the background checks and live traffic
(gateway/health.py), so an admin's check never takes a deployment out of rotation."""

from __future__ import annotations

import asyncio
import io
import struct
import time
import wave
from collections.abc import Iterable
from typing import Any

from gateway.errors import GatewayError
from gateway.registry import registry_get
from providers.adapter import ProviderAdapter, UploadFile
from providers.base import Deployment, Endpoint
from providers.realtime import realtime_probe
from providers.registry import adapter_get

# A Realtime check's bound on opening its WebSocket and on the first event.
REALTIME_PROBE_SECONDS = 10.0

# LiteLLM's `model_info.mode` names the kind of model, hence the endpoint a check calls.
MODE_ENDPOINTS: dict[str, Endpoint] = {
    "chat": Endpoint.CHAT,
    "completion": Endpoint.COMPLETIONS,
    "embedding": Endpoint.EMBEDDINGS,
    "image_generation": Endpoint.IMAGES_GENERATIONS,
    "audio_speech": Endpoint.AUDIO_SPEECH,
    "audio_transcription": Endpoint.AUDIO_TRANSCRIPTIONS,
    "moderation": Endpoint.MODERATIONS,
    "rerank": Endpoint.RERANK,
    "realtime": Endpoint.REALTIME,
}
# Without a mode, the model's name says what it is, as far as names go; otherwise chat.
_NAME_HINTS: tuple[tuple[tuple[str, ...], Endpoint], ...] = (
    (("realtime",), Endpoint.REALTIME),
    (("embed",), Endpoint.EMBEDDINGS),
    (("whisper", "transcri"), Endpoint.AUDIO_TRANSCRIPTIONS),
    (("tts", "speech"), Endpoint.AUDIO_SPEECH),
    (("dall-e", "image"), Endpoint.IMAGES_GENERATIONS),
    (("moderation",), Endpoint.MODERATIONS),
    (("rerank",), Endpoint.RERANK),
)
# The cheapest request of each kind: one output token, one word, one small image.
PROBE_BODIES: dict[Endpoint, dict[str, Any]] = {
    Endpoint.CHAT: {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1},
    Endpoint.COMPLETIONS: {"prompt": "ping", "max_tokens": 1},
    Endpoint.EMBEDDINGS: {"input": "ping"},
    Endpoint.IMAGES_GENERATIONS: {"prompt": "a dot", "n": 1},
    Endpoint.AUDIO_SPEECH: {"input": "ping", "voice": "alloy"},
    Endpoint.AUDIO_TRANSCRIPTIONS: {},
    Endpoint.MODERATIONS: {"input": "ping"},
    Endpoint.RERANK: {"query": "ping", "documents": ["ping"]},
}
CHECK_TIMEOUT_DEFAULT = 10.0
CHECK_TIMEOUT_MAX = 60.0
_CONCURRENCY = 16


def _silence_wav() -> bytes:
    """A tenth of a second of 16 kHz mono silence: the smallest audio every API accepts."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(16_000)
        audio.writeframes(struct.pack("<h", 0) * 1_600)
    return buffer.getvalue()


_SILENCE = _silence_wav()


def deployment_kind(deployment: Deployment) -> Endpoint:
    """The endpoint a deployment serves: its `model_info.mode`, else what its name says, else
    chat."""
    mode = (deployment.params.get("model_info") or {}).get("mode")
    wanted = MODE_ENDPOINTS.get(mode) if isinstance(mode, str) else None
    if wanted is not None:
        return wanted
    name = f"{deployment.model_name} {deployment.upstream_model}".lower()
    return next(
        (endpoint for hints, endpoint in _NAME_HINTS if any(h in name for h in hints)),
        Endpoint.CHAT,
    )


def probe_endpoint(deployment: Deployment, adapter: ProviderAdapter) -> Endpoint | None:
    """The endpoint a check calls for this deployment, or None when its adapter serves none."""
    wanted = deployment_kind(deployment)
    if wanted in adapter.endpoints:
        return wanted
    return next((e for e in PROBE_BODIES if e in adapter.endpoints), None)


async def deployment_probe(
    *, deployment: Deployment, adapter: ProviderAdapter, endpoint: Endpoint
) -> None:
    """One small real request to `deployment`; raises GatewayError when it fails."""
    if endpoint == Endpoint.REALTIME:  # a session opened (session.created), then closed
        await realtime_probe(adapter=adapter, deployment=deployment, seconds=REALTIME_PROBE_SECONDS)
        return
    body = {"model": deployment.upstream_model, **PROBE_BODIES[endpoint]}
    if endpoint == Endpoint.AUDIO_SPEECH:
        stream = await adapter.open_binary(endpoint=endpoint, deployment=deployment, body=body)
        try:
            async for _ in stream.chunks:
                break  # the first bytes prove it answers; the rest is not worth paying for
        finally:
            await stream.chunks.aclose()  # type: ignore[attr-defined]
        return
    files = None
    if endpoint == Endpoint.AUDIO_TRANSCRIPTIONS:
        files = [
            UploadFile(
                field="file", filename="ping.wav", content=_SILENCE, content_type="audio/wav"
            )
        ]
    await adapter.call(endpoint=endpoint, deployment=deployment, body=body, files=files)


def health_deployments_visible(
    *, organization_ids: set[int] | None, model: str | None = None
) -> list[Deployment]:
    """The deployments an admin may check: every one for a proxy admin (`organization_ids`
    None), else the shared ones and those of the given organizations; `model`: one group."""
    return [
        deployment
        for deployment in registry_get().by_id.values()
        if (model is None or deployment.model_name == model)
        and (
            organization_ids is None
            or deployment.organization_id is None
            or deployment.organization_id in organization_ids
        )
    ]


async def _check_one(
    deployment: Deployment, *, seconds: float, gate: asyncio.Semaphore
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "model": deployment.model_name,
        "deployment": deployment.id,
        "provider": deployment.provider,
        "endpoint": None,
        "healthy": False,
        "latency_ms": None,
        "error": None,
    }
    adapter = adapter_get(deployment.provider)
    endpoint = probe_endpoint(deployment, adapter) if adapter is not None else None
    if adapter is None or endpoint is None:
        result["error"] = "no endpoint of this deployment can be checked"
        return result
    result["endpoint"] = endpoint.value
    async with gate:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(seconds):
                await deployment_probe(deployment=deployment, adapter=adapter, endpoint=endpoint)
        except TimeoutError:
            result["error"] = f"no answer within {seconds:g} s"
        except GatewayError as exc:
            # The adapters' messages never carry a secret (providers' error map redacts them).
            result["error"] = f"{exc.status}: {exc.message}"
        else:
            result["healthy"] = True
        result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


async def deployments_health_check(
    *, deployments: Iterable[Deployment], seconds: float = CHECK_TIMEOUT_DEFAULT
) -> dict[str, Any]:
    """Check every deployment concurrently (at most 16 at a time, each within `seconds`).
    LiteLLM's `/health` shape: healthy and unhealthy endpoints, with their counts."""
    gate = asyncio.Semaphore(_CONCURRENCY)
    results = await asyncio.gather(
        *(_check_one(d, seconds=seconds, gate=gate) for d in deployments)
    )
    healthy = [r for r in results if r["healthy"]]
    unhealthy = [r for r in results if not r["healthy"]]
    return {
        "healthy_endpoints": healthy,
        "unhealthy_endpoints": unhealthy,
        "healthy_count": len(healthy),
        "unhealthy_count": len(unhealthy),
    }
