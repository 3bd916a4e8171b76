"""Pieces both formats share: building a Deployment and reading fallbacks, aliases, strategies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from billing.pricing import price_is_named, price_value_problem
from gateway.config.fields import Reader
from gateway.config.provider_names import (
    provider_is_servable,
    provider_model_problem,
    provider_unservable_reason,
)
from gateway.config.secrets import secret_is_reference
from gateway.config.types import (
    ROUTING_STRATEGIES,
    AlertingSettings,
    CacheSettings,
    CallbackSettings,
    GuardrailSettings,
    RouterSettings,
    TracingSettings,
)
from gateway.config.yamltree import YNode
from providers.base import Deployment, Timeouts


@dataclass(slots=True)
class DeploymentDraft:
    """A deployment as read from the file, before ids and organizations are settled."""

    node: YNode  # the list entry, for locations
    model_name: str
    provider: str
    upstream_model: str
    explicit_id: str | None = None
    api_base: str = ""
    api_key: str | None = None
    api_version: str = ""
    region: str = ""
    organization_slug: str | None = None
    access_groups: tuple[str, ...] = ()
    weight: int = 1
    priority: int = 0
    tags: tuple[str, ...] = ()
    rpm: int | None = None
    tpm: int | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    proxy: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    max_parallel_requests: int | None = None
    drop_params: bool | None = None
    modify_params: bool | None = None
    guardrails: tuple[str, ...] = ()  # guardrails every request to this model group runs


@dataclass(slots=True)
class ParsedFile:
    drafts: list[DeploymentDraft] = field(default_factory=list)
    router: RouterSettings = field(default_factory=RouterSettings)
    general: dict[str, Any] = field(default_factory=dict)
    cache: CacheSettings | None = None
    guardrails: GuardrailSettings | None = None
    callbacks: CallbackSettings | None = None
    alerting: AlertingSettings | None = None
    tracing: TracingSettings | None = None


def drafts_to_deployments(
    reader: Reader, drafts: list[DeploymentDraft], *, organizations: dict[str, int]
) -> list[Deployment]:
    """Assign ids (`config:<id>` or `config:<model_name>#<n-th in its group>`), check uniqueness,
    resolve organization slugs, and drop deployments whose provider Ogem cannot serve."""
    deployments: list[Deployment] = []
    seen: dict[str, YNode] = {}
    per_group: dict[str, int] = {}
    for draft in drafts:
        index = per_group.get(draft.model_name, 0)
        per_group[draft.model_name] = index + 1
        deployment_id = f"config:{draft.explicit_id or f'{draft.model_name}#{index}'}"
        if deployment_id in seen:
            first = seen[deployment_id].location
            reader.error(
                draft.node, f'duplicate deployment id "{deployment_id}" (first used at {first})'
            )
            continue
        seen[deployment_id] = draft.node
        if not provider_is_servable(draft.provider):
            reader.warning(
                draft.node, f"{provider_unservable_reason(draft.provider)}; deployment skipped"
            )
            continue
        problem = provider_model_problem(
            provider=draft.provider, upstream_model=draft.upstream_model
        )
        if problem is not None:
            reader.warning(draft.node, f"{problem}; deployment skipped")
            continue
        if not batch_mode_check(reader, draft):
            continue
        organization_id = None
        if draft.organization_slug is not None:
            organization_id = organizations.get(draft.organization_slug)
            if organization_id is None:
                continue  # reported (a warning) by the organization lookup
        deployments.append(
            Deployment(
                id=deployment_id,
                model_name=draft.model_name,
                provider=draft.provider,
                upstream_model=draft.upstream_model,
                api_base=draft.api_base,
                api_key=draft.api_key,
                api_version=draft.api_version,
                region=draft.region,
                organization_id=organization_id,
                access_groups=draft.access_groups,
                weight=draft.weight,
                priority=draft.priority,
                tags=draft.tags,
                rpm=draft.rpm,
                tpm=draft.tpm,
                timeouts=draft.timeouts,
                proxy=draft.proxy,
                params=draft.params,
                max_parallel_requests=draft.max_parallel_requests,
                drop_params=draft.drop_params,
                modify_params=draft.modify_params,
            )
        )
    return deployments


BATCH_MODES = ("ogem", "passthrough")


def batch_mode_check(reader: Reader, draft: DeploymentDraft) -> bool:
    """A deployment's `batch_mode` (docs/batches.md): "ogem" or "passthrough", the latter only on
    a provider with a batch API. False (an error, deployment skipped) for another value."""
    mode = draft.params.get("batch_mode")
    if mode is None:
        return True
    if mode not in BATCH_MODES:
        reader.error(
            draft.node,
            f'batch_mode "{mode}" is not one of {", ".join(BATCH_MODES)}; deployment skipped',
        )
        return False
    from providers.registry import BATCH_APIS  # on use: it loads every adapter

    if mode == "passthrough" and draft.provider not in BATCH_APIS:
        reader.warning(
            draft.node,
            f'provider "{draft.provider}" has no batch API Ogem passes batches to '
            f"({', '.join(BATCH_APIS)}); its batches are run by Ogem",
        )
    return True


def read_deployment_flags(
    reader: Reader, draft: DeploymentDraft, fields: Mapping[str, YNode]
) -> None:
    """A deployment's own max_parallel_requests, drop_params and modify_params (LiteLLM's
    litellm_params names; unset: the configuration's defaults, applied by config_merge)."""
    draft.max_parallel_requests = reader.integer(fields.get("max_parallel_requests"), minimum=1)
    draft.drop_params = reader.boolean(fields.get("drop_params"))
    draft.modify_params = reader.boolean(fields.get("modify_params"))


def check_literal_key(reader: Reader, node: YNode | None) -> None:
    if node is None or not isinstance(node.value, str) or not node.value:
        return
    if not node.interpolated and not secret_is_reference(node.value):
        reader.warning(
            node, "the key is written in the file; prefer os.environ/NAME or file:///path"
        )


def check_prices(reader: Reader, nodes: Mapping[str, YNode]) -> None:
    """Report every price among `nodes` that is not a number >= 0 (an error at its location:
    a negative price would credit budgets)."""
    for name, node in nodes.items():
        if price_is_named(name):
            problem = price_value_problem(name, node.plain())
            if problem:
                reader.error(node, problem)


def groups_check(
    reader: Reader, node: YNode | None, names: Sequence[str], *, groups: frozenset[str]
) -> None:
    """Warn at `node` for each name that is no model group (nor alias) of this configuration:
    a fallback to a typo would only show when the first request fails over."""
    if node is None:
        return
    for name in names:
        if name not in groups:
            reader.warning(
                node,
                f'"{name}" is not a model group of this configuration (a typo, or a group '
                "that only the database defines)",
            )


def read_fallbacks(
    reader: Reader, node: YNode | None, *, groups: frozenset[str]
) -> dict[str, tuple[str, ...]]:
    """Fallbacks as a mapping (`{a: [b, c]}`) or LiteLLM's list of one-key mappings; `groups`:
    the configuration's model groups and aliases, which every name should be."""
    if node is None or node.value is None:
        return {}
    entries: list[YNode] = [node] if node.is_mapping else reader.items(node)
    result: dict[str, tuple[str, ...]] = {}
    for entry in entries:
        mapping = reader.mapping(entry)
        if mapping is None:
            continue
        for group, targets in mapping.items():
            names = reader.strings(targets)
            if not names:
                reader.error(targets, "expected a list of model group names")
                continue
            groups_check(reader, entry, [group, *names], groups=groups)
            result[group] = names
    return result


def read_aliases(reader: Reader, node: YNode | None) -> tuple[dict[str, str], frozenset[str]]:
    """`alias: group`, or LiteLLM's `alias: {model: group, hidden: true}`."""
    mapping = reader.mapping(node)
    if not mapping:
        return {}, frozenset()
    aliases: dict[str, str] = {}
    hidden: set[str] = set()
    for alias, target in mapping.items():
        if target.is_mapping:
            group = reader.string(target.get("model"), secret=False)
            if not group:
                reader.error(target, 'expected "model: <model group>"')
                continue
            if reader.boolean(target.get("hidden")):
                hidden.add(alias)
            aliases[alias] = group
            continue
        group = reader.string(target, secret=False)
        if group:
            aliases[alias] = group
    return aliases, frozenset(hidden)


def read_strategy(reader: Reader, node: YNode | None) -> str | None:
    strategy = reader.string(node, secret=False)
    if strategy is None or node is None:
        return None
    # A dotted path names a custom strategy class (gateway.strategies).
    if strategy not in ROUTING_STRATEGIES and "." not in strategy:
        choices = ", ".join(sorted(ROUTING_STRATEGIES))
        reader.error(node, f'unknown routing strategy "{strategy}" (one of: {choices})')
        return None
    return strategy
