"""The catalog of served models the control plane checks allow-lists against (tenants/catalog.py).

Built on demand, at write time only (never on /v1): the registry's snapshot (configuration file
and database deployments, as last loaded) plus the database's enabled rows as they are now, so a
deployment added a moment ago counts before the hot reload picks it up.
"""

from __future__ import annotations

from django.db.models import Q

from gateway.config import config_current
from gateway.models import ModelDeployment
from gateway.registry import registry_get
from tenants.catalog import ModelCatalog


def provider_names() -> list[str]:
    """The providers that have an adapter."""
    # Imported here: it loads every adapter, which manage.py and Celery processes need not.
    from providers.registry import ADAPTERS

    return list(ADAPTERS)


def model_catalog_build(organization_id: int | None) -> ModelCatalog:
    """What an organization's keys can reach (None: the shared deployments only)."""
    names: set[str] = set()
    groups: dict[str, set[str]] = {}

    def add(model_name: str, access_groups: list[str] | tuple[str, ...]) -> None:
        names.add(model_name)
        for group in access_groups or ():
            groups.setdefault(str(group), set()).add(model_name)

    for deployment in registry_get().by_id.values():
        if deployment.organization_id is None or deployment.organization_id == organization_id:
            add(deployment.model_name, deployment.access_groups)
    rows = ModelDeployment.objects.filter(enabled=True).filter(
        Q(organization__isnull=True) | Q(organization_id=organization_id)
    )
    for model_name, access_groups in rows.values_list("model_name", "access_groups"):
        add(model_name, access_groups if isinstance(access_groups, list) else [])
    for alias, target in config_current().router.model_group_alias.items():
        if target in names:
            names.add(alias)
    return ModelCatalog(
        models=frozenset(names),
        groups={group: frozenset(models) for group, models in groups.items()},
    )
