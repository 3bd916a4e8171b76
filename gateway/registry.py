"""The deployment registry: an immutable snapshot of every deployment, swapped atomically.

Readers call `registry_get()` once per request and keep the snapshot they got, so a reload
(`registry_install`) never changes the deployments under an in-flight request.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from gateway.config import config_deployments
from gateway.config.provider_names import WILDCARD_MODEL_PARAM, provider_split
from providers.base import Deployment

# Deployments built from wildcards, kept per snapshot (stable identity for prices and limits).
_DERIVED_MAX = 10_000


@dataclass(frozen=True, slots=True)
class DeploymentRegistry:
    by_model: MappingProxyType[str, tuple[Deployment, ...]]
    by_id: MappingProxyType[str, Deployment]
    source: str
    installed_at: float
    # LiteLLM's wildcard deployments (`model_name: "*"`, `"openai/*"`): templates, never served
    # as they are, most specific pattern first; `wildcard_match` builds the served deployment.
    patterns: tuple[tuple[str, re.Pattern[str], tuple[Deployment, ...]], ...] = ()
    derived: dict[tuple[str, str], Deployment] = field(default_factory=dict)


def _pattern(model_name: str) -> re.Pattern[str]:
    return re.compile("(.*)".join(re.escape(part) for part in model_name.split("*")))


def _wildcard_build(template: Deployment, *, model: str, parts: tuple[str, ...]) -> Deployment:
    """The deployment serving `model` from a wildcard template: the parts `*` matched in the
    model name fill the template model's `*`s in order (LiteLLM's rule; a template with more
    `*`s than parts reuses the last part)."""
    params = {k: v for k, v in template.params.items() if k != WILDCARD_MODEL_PARAM}
    pieces = str(template.params.get(WILDCARD_MODEL_PARAM, "*")).split("*")
    filled = pieces[0]
    for index, piece in enumerate(pieces[1:]):
        filled += (parts[index] if index < len(parts) else parts[-1] if parts else "") + piece
    provider, upstream, _ = provider_split(filled)
    return replace(
        template,
        id=f"{template.id}[{model}]",
        model_name=model,
        provider=provider,
        upstream_model=upstream,
        params=params,
    )


def wildcard_match(registry: DeploymentRegistry, model: str) -> tuple[Deployment, ...]:
    """The deployments a wildcard serves `model` with (the first matching pattern's), or ()."""
    for _, pattern, templates in registry.patterns:
        match = pattern.fullmatch(model)
        if match is None:
            continue
        built = []
        for template in templates:
            key = (template.id, model)
            deployment = registry.derived.get(key)
            if deployment is None:
                deployment = _wildcard_build(template, model=model, parts=match.groups())
                if len(registry.derived) < _DERIVED_MAX:
                    registry.derived[key] = deployment
            built.append(deployment)
        return tuple(built)
    return ()


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
    wildcards: dict[str, list[Deployment]] = {}
    for deployment in deployments:
        target = wildcards if "*" in deployment.model_name else grouped
        target.setdefault(deployment.model_name, []).append(deployment)
    # LiteLLM tries the most specific pattern first: the one with the most literal characters.
    ordered = sorted(wildcards, key=lambda name: -len(name.replace("*", "")))
    snapshot = DeploymentRegistry(
        by_model=MappingProxyType({name: tuple(group) for name, group in grouped.items()}),
        by_id=MappingProxyType({d.id: d for group in grouped.values() for d in group}),
        source=source,
        installed_at=time.time(),
        patterns=tuple((name, _pattern(name), tuple(wildcards[name])) for name in ordered),
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
