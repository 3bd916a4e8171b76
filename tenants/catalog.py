"""The models and providers /v1 serves, for checking the names written into allow-lists.

Model allow-lists (an organization's, a team's, a key's `models`) and deployments' providers are
checked when they are written: a name nothing serves is a 400 naming it, not a list that quietly
refuses every request later. Only the gateway knows what is served (its registry: the
configuration file's deployments, the database's, model group aliases and access groups), and it
sits above tenants and keys (docs/architecture.md), so gateway/apps.py hands its lookup here at
startup, as tenants/dependents.py does the other way round. Without one (a process that never
loaded the gateway) nothing is checked.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ModelCatalog:
    """What one organization can reach: public model names and access groups."""

    models: frozenset[str] = frozenset()
    # access group -> the public model names of its deployments
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def expand(self, entry: str) -> frozenset[str] | None:
        """The model names an allow-list entry stands for; None when nothing serves it."""
        if entry in self.models:
            return frozenset({entry}) | self.groups.get(entry, frozenset())
        return self.groups.get(entry)


CatalogLookup = Callable[[int | None], ModelCatalog]

_lookup: CatalogLookup | None = None
_providers: Callable[[], Iterable[str]] | None = None


def model_catalog_set(*, lookup: CatalogLookup, providers: Callable[[], Iterable[str]]) -> None:
    """Called once by the gateway: the catalog of an organization (None: shared models only)
    and the provider names that have an adapter."""
    global _lookup, _providers
    _lookup = lookup
    _providers = providers


def model_catalog(*, organization_id: int | None) -> ModelCatalog | None:
    return _lookup(organization_id) if _lookup is not None else None


def provider_unknown_message(*, provider: str) -> str | None:
    """Why a provider name is refused, or None when an adapter serves it (or nobody can tell)."""
    if _providers is None:
        return None
    known = sorted(_providers())
    if provider in known:
        return None
    close = difflib.get_close_matches(provider, known, n=1, cutoff=0.6)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    return f"No provider is named `{provider}`.{hint}"


def models_unknown_message(*, entries: Iterable[str], organization_id: int | None) -> str | None:
    """Why an allow-list is refused (the names nothing serves), or None."""
    catalog = model_catalog(organization_id=organization_id)
    if catalog is None:
        return None
    unknown = [entry for entry in entries if catalog.expand(entry) is None]
    if not unknown:
        return None
    names = ", ".join(f"`{entry}`" for entry in unknown)
    known = sorted(catalog.models | set(catalog.groups))
    close = difflib.get_close_matches(unknown[0], known, n=1, cutoff=0.6)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    return f"No model or access group is named {names}.{hint}"


def models_outside_message(
    *,
    entries: Iterable[str],
    bounds: Iterable[tuple[str, Iterable[str]]],
    organization_id: int | None,
) -> str | None:
    """Why an allow-list is refused for reaching beyond an enclosing one, or None.

    ``bounds`` are (whose, allow-list) pairs such as ("team", [...]); an empty list bounds
    nothing. An entry fits when the bound names it, or when every model it stands for is named
    by the bound (directly or through one of the bound's access groups).
    """
    catalog = model_catalog(organization_id=organization_id) or ModelCatalog()
    entries = list(entries)
    for whose, bound in bounds:
        bound = list(bound)
        if not bound:
            continue
        reachable: set[str] = set()
        for item in bound:
            reachable |= catalog.expand(item) or {item}
        outside = [
            entry
            for entry in entries
            if entry not in bound and not (catalog.expand(entry) or {entry}) <= reachable
        ]
        if outside:
            names = ", ".join(f"`{entry}`" for entry in outside)
            return f"The {whose}'s models do not include {names}."
    return None


# Admin-defined guardrails of one organization (gateway.GuardrailDefinition) are attachable within
# that organization only. The gateway hands its lookup here, as it does the model catalog:
# names -> the owning organization's id, for the names that belong to one.
GuardrailOwners = Callable[[Iterable[str]], Mapping[str, int]]
GUARDRAIL_METADATA = ("guardrails", "guardrails_off", "guardrails_optional")

_guardrail_owners: GuardrailOwners | None = None


def guardrail_owners_set(*, lookup: GuardrailOwners) -> None:
    global _guardrail_owners
    _guardrail_owners = lookup


def guardrails_foreign_message(*, metadata: Any, organization_id: int | None) -> str | None:
    """Why a tenant's metadata is refused: it names another organization's guardrail (in
    `guardrails`, `guardrails_off` or `guardrails_optional`); None when it does not. The message
    does not tell another organization's guardrail from a name nobody defined."""
    if _guardrail_owners is None or not isinstance(metadata, dict):
        return None
    names: list[str] = []
    for field_name in GUARDRAIL_METADATA:
        value = metadata.get(field_name)
        if isinstance(value, list):
            names.extend(name for name in value if isinstance(name, str))
    if not names:
        return None
    owners = _guardrail_owners(names)
    foreign = [
        name
        for name in dict.fromkeys(names)
        if owners.get(name, organization_id) != organization_id
    ]
    if not foreign:
        return None
    listed = ", ".join(f"`{name}`" for name in foreign)
    return f"No guardrail named {listed} is available to this organization."
