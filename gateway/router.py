"""Which deployments a caller may use for a model, and which one serves this request.

Visibility: a deployment with `organization_id` is visible only to that organization's keys (the
master key sees everything). A key with `allowed_models` may use a model when the list names the
model or one of the deployment's `access_groups`; an empty list allows every model. The key's
team's and organization's lists (`team_models`, `organization_models`) bound it the same way.

Region pinning: a caller with `regions` (from its key's metadata, else its team's, else its
organization's: gateway.auth) only reaches deployments whose `region` is one of them.

Errors: a model that does not exist, or exists only in another organization, is 404
`model_not_found` (so names of other tenants' models do not leak); a visible model the key is not
allowed to use is 403 `model_not_allowed`.
"""

from __future__ import annotations

import dataclasses
from fnmatch import fnmatchcase

from gateway.config import config_current
from gateway.config.provider_names import WILDCARD_MODEL_PARAM
from gateway.context import Caller
from gateway.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from gateway.registry import DeploymentRegistry, wildcard_match
from gateway.strategies.base import weighted_shuffle
from providers.base import Deployment, Endpoint
from providers.registry import adapter_get


def deployment_visible(*, caller: Caller, deployment: Deployment) -> bool:
    return (
        caller.is_master
        or deployment.organization_id is None
        or deployment.organization_id == caller.organization_id
    )


def _listed(allowed: tuple[str, ...], deployment: Deployment) -> bool:
    """An empty allow-list bounds nothing; else it names the model or one of its access groups,
    or holds a LiteLLM wildcard the model matches (`openai/*`)."""
    return (
        not allowed
        or deployment.model_name in allowed
        or any(g in allowed for g in deployment.access_groups)
        or any("*" in name and fnmatchcase(deployment.model_name, name) for name in allowed)
    )


def deployment_allowed(*, caller: Caller, deployment: Deployment) -> bool:
    if caller.is_master:
        return True
    return (
        _listed(caller.allowed_models, deployment)
        and _listed(caller.team_models, deployment)
        and _listed(caller.organization_models, deployment)
    )


def _refuser(*, caller: Caller, deployments: list[Deployment]) -> str:
    """Whose allow-list refuses a model: the organization's, else the team's, else the key's."""
    for who, allowed in (
        ("organization", caller.organization_models),
        ("team", caller.team_models),
    ):
        if not any(_listed(allowed, d) for d in deployments):
            return f"This key's {who}"
    return "This key"


def _usable(*, caller: Caller, group: tuple[Deployment, ...]) -> bool:
    return any(
        deployment_visible(caller=caller, deployment=d)
        and deployment_allowed(caller=caller, deployment=d)
        for d in group
    )


def _wildcard_names(registry: DeploymentRegistry) -> list[str]:
    """The names a provider wildcard (`openai/*`, or `*` routed to `openai/*`) serves that Ogem
    knows of: the provider's models in the shipped price table, as LiteLLM lists a wildcard's
    provider's known models. A bare `*` to `*` names no provider, so it lists nothing."""
    from billing.pricing import price_table  # the shipped table, parsed once per process

    known = price_table().prices
    names: list[str] = []
    for name, _, templates in registry.patterns:
        template = templates[0]
        if name.count("*") != 1 or template.upstream_model != "*":
            continue
        if "/" not in str(template.params.get(WILDCARD_MODEL_PARAM, "")):
            continue
        prefix, _, suffix = name.partition("*")
        names.extend(
            f"{prefix}{model}{suffix}" for provider, model in known if provider == template.provider
        )
    return names


def models_visible(*, caller: Caller, registry: DeploymentRegistry) -> list[str]:
    """Public model names the caller may use, in registry order, then the known models of its
    wildcards."""
    names = [
        name for name, group in registry.by_model.items() if _usable(caller=caller, group=group)
    ]
    if registry.patterns:
        seen = set(names)
        for name in _wildcard_names(registry):
            if name not in seen and _usable(caller=caller, group=wildcard_match(registry, name)):
                seen.add(name)
                names.append(name)
    return names


def model_usable(*, caller: Caller, registry: DeploymentRegistry, model: str) -> bool:
    """Whether the caller may use `model`: a deployment's name or one a wildcard serves."""
    group = registry.by_model.get(model) or wildcard_match(registry, model)
    return _usable(caller=caller, group=group)


# OpenAI's default image model, taken when this install serves it under that name.
OPENAI_DEFAULT_IMAGE_MODEL = "dall-e-2"


def image_model_default(*, caller: Caller, registry: DeploymentRegistry) -> str | None:
    """The model of an image request that names none (OpenAI defaults it): the first model the
    caller may use that the config marks `model_info: {mode: image_generation}` (LiteLLM's mark),
    else `dall-e-2` when served, else the first one named like an image model."""
    visible = models_visible(caller=caller, registry=registry)
    for name in visible:
        if any(
            (d.params.get("model_info") or {}).get("mode") == "image_generation"
            for d in registry.by_model[name]
        ):
            return name
    if OPENAI_DEFAULT_IMAGE_MODEL in visible:
        return OPENAI_DEFAULT_IMAGE_MODEL
    return next((name for name in visible if "dall-e" in name or "image" in name), None)


def deployments_for(
    *, caller: Caller, model: str, endpoint: Endpoint | None, registry: DeploymentRegistry
) -> tuple[Deployment, ...]:
    """The deployments of `model` this caller may use for `endpoint` (never empty)."""
    group = registry.by_model.get(model)
    if group is None:
        # LiteLLM's model_group_alias: a second public name for a model group.
        target = config_current().router.model_group_alias.get(model)
        group = registry.by_model.get(target, ()) if target else ()
    if not group and registry.patterns:
        # LiteLLM's wildcard routing: a name no deployment has, matched by `*`/`openai/*`.
        group = wildcard_match(registry, model)
    visible = [d for d in group if deployment_visible(caller=caller, deployment=d)]
    if not visible:
        raise NotFoundError(
            f"The model `{model}` does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    allowed = [d for d in visible if deployment_allowed(caller=caller, deployment=d)]
    if not allowed:
        raise PermissionDeniedError(
            f"{_refuser(caller=caller, deployments=visible)} is not allowed to use the model "
            f"`{model}`.",
            param="model",
            code="model_not_allowed",
        )
    if caller.regions:
        # Data residency: a caller pinned to regions never reaches a deployment elsewhere.
        allowed = [d for d in allowed if d.region in caller.regions]
        if not allowed:
            raise PermissionDeniedError(
                f"No deployment of `{model}` is in the regions this key may use.",
                param="model",
                code="region_not_allowed",
            )
    if endpoint is not None:
        serving = []
        for deployment in allowed:
            adapter = adapter_get(deployment.provider)
            if adapter is not None and endpoint in adapter.endpoints:
                serving.append(deployment)
        if not serving:
            raise InvalidRequestError(
                f"The model `{model}` does not support /v1/{endpoint.value}.",
                param="model",
                code="unsupported_endpoint",
            )
        allowed = serving
    return tuple(allowed)


def deployment_choose(*, candidates: tuple[Deployment, ...]) -> Deployment:
    """Weighted random choice among the candidates of the lowest priority."""
    return weighted_shuffle(candidates)


def mock_candidates(
    *, candidates: tuple[Deployment, ...], endpoint: Endpoint | None
) -> tuple[Deployment, ...]:
    """LiteLLM's `mock_response` on any model, for keys whose metadata allows it
    (`allow_mock_response: true`): the mock provider answers in place of the model's upstream,
    after the model's access checks, and is accounted like any answer
    (docs/migrating-from-litellm.md)."""
    mock = adapter_get("mock")
    if mock is None or (endpoint is not None and endpoint not in mock.endpoints):
        return candidates
    return (dataclasses.replace(candidates[0], provider="mock"),)
