"""The deployment registry: an immutable snapshot of every deployment, swapped atomically.

Readers call `registry_get()` once per request and keep the snapshot they got, so a reload
(`registry_install`) never changes the deployments under an in-flight request.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from gateway.config import config_deployments
from providers.base import Deployment


@dataclass(frozen=True, slots=True)
class DeploymentRegistry:
    by_model: MappingProxyType[str, tuple[Deployment, ...]]
    by_id: MappingProxyType[str, Deployment]
    source: str
    installed_at: float


_current: DeploymentRegistry | None = None
_lock = threading.Lock()

# `model_info.mode` (LiteLLM's) says what each is: image requests without a model take the
# image one, and the on-demand health check calls each through its own endpoint.
MOCK_DEPLOYMENTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("mock-chat", {"model_info": {"mode": "chat"}}),
    ("mock-embed", {"model_info": {"mode": "embedding"}}),
    ("mock-image", {"model_info": {"mode": "image_generation"}}),
    ("mock-tts", {"model_info": {"mode": "audio_speech"}}),
    ("mock-whisper", {"model_info": {"mode": "audio_transcription"}}),
    ("mock-moderation", {"model_info": {"mode": "moderation"}}),
    ("mock-rerank", {"model_info": {"mode": "rerank"}}),
)
# Served by the in-process `local` provider (providers/local/): real embeddings, still offline,
# for the semantic cache and vector stores of an Ogem with nothing configured.
LOCAL_DEPLOYMENTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("local-embed", "wordllama-l2-supercat", {"model_info": {"mode": "embedding"}}),
)


def registry_install(deployments: list[Deployment], *, source: str) -> DeploymentRegistry:
    """Replace the snapshot; deployments of one model keep their given order."""
    global _current
    grouped: dict[str, list[Deployment]] = {}
    for deployment in deployments:
        grouped.setdefault(deployment.model_name, []).append(deployment)
    snapshot = DeploymentRegistry(
        by_model=MappingProxyType({name: tuple(group) for name, group in grouped.items()}),
        by_id=MappingProxyType({d.id: d for d in deployments}),
        source=source,
        installed_at=time.time(),
    )
    with _lock:
        _current = snapshot
    return snapshot


def registry_get() -> DeploymentRegistry:
    snapshot = _current
    if snapshot is not None:
        return snapshot
    with _lock:
        if _current is not None:
            return _current
    return registry_install(registry_load_initial(), source="initial")


def registry_load_initial() -> list[Deployment]:
    """The deployments Ogem starts with: OGEM_CONFIG's (or, when it is unset, the built-in
    offline `mock` and `local` models) plus the database's, hot-reloaded by gateway.config into this
    registry."""
    return config_deployments(builtin=registry_builtin(), install=_reload_install)


def _reload_install(deployments: list[Deployment], source: str) -> None:
    registry_install(deployments, source=source)


def registry_builtin() -> list[Deployment]:
    """The built-in offline deployments of the embedded default: `mock`'s, then `local`'s."""
    mock = [
        Deployment(
            id=f"builtin:{name}",
            model_name=name,
            provider="mock",
            upstream_model=name,
            params=dict(params),
        )
        for name, params in MOCK_DEPLOYMENTS
    ]
    local = [
        Deployment(
            id=f"builtin:{name}",
            model_name=name,
            provider="local",
            upstream_model=upstream,
            params=dict(params),
        )
        for name, upstream, params in LOCAL_DEPLOYMENTS
    ]
    return [*mock, *local]


def registry_builtin_names() -> list[str]:
    """The public model names of the built-in deployments (what `registry_builtin` serves)."""
    return [name for name, _ in MOCK_DEPLOYMENTS] + [name for name, _, _ in LOCAL_DEPLOYMENTS]
