"""Reads for model deployments and named credentials (API and admin call these)."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.db.models.fields.json import KeyTextTransform

from gateway.context import Caller
from gateway.models import Credential, ModelDeployment, StoredCompletion
from tenants.principals import Principal


def deployment_list(*, principal: Principal) -> QuerySet[ModelDeployment]:
    """Shared deployments plus those of the caller's organizations."""
    deployments = ModelDeployment.objects.select_related("organization", "credential")
    if principal.is_proxy_admin:
        return deployments
    return deployments.filter(
        Q(organization__isnull=True) | Q(organization_id__in=principal.visible_org_ids())
    )


def credential_list(*, principal: Principal) -> QuerySet[Credential]:
    """Every credential for proxy admins; those granted to the caller's organizations otherwise."""
    if principal.is_proxy_admin:
        return Credential.objects.all()
    return Credential.objects.filter(organizations__in=principal.admin_org_ids()).distinct()


def credential_get(*, name: str) -> Credential | None:
    """The credential of that name, granted or not (whether a deployment may use it is
    gateway.credentials.credential_problem's question)."""
    return Credential.objects.filter(name=name).first()


# ---- Stored chat completions --------------------------------------------------------------------


def stored_completions_visible(*, caller: Caller) -> QuerySet[StoredCompletion]:
    """The stored completions a /v1 caller may see: a team's key, its team's; an organization's
    key (no team), its whole organization's; the master key, all; any other key, its own."""
    stored = StoredCompletion.objects.all()
    if caller.is_master:
        return stored
    if caller.team_id is not None:
        return stored.filter(organization_id=caller.organization_id, team_id=caller.team_id)
    if caller.organization_id is not None:
        return stored.filter(organization_id=caller.organization_id)
    if caller.key_id is not None:
        return stored.filter(organization__isnull=True, key_id=caller.key_id)
    return stored.none()


def stored_completion_get(*, caller: Caller, completion_id: str) -> StoredCompletion | None:
    return stored_completions_visible(caller=caller).filter(completion_id=completion_id).first()


def stored_completion_page(
    *,
    caller: Caller,
    model: str | None,
    metadata: dict[str, str],
    after: StoredCompletion | None,
    limit: int,
    descending: bool,
) -> tuple[list[StoredCompletion], bool]:
    """One page of the caller's stored completions in creation order, after the cursor row;
    and whether more follow. `model` matches the answer's model or the name asked for."""
    stored = stored_completions_visible(caller=caller)
    if model:
        stored = stored.filter(Q(model=model) | Q(request_model=model))
    for number, (key, value) in enumerate(sorted(metadata.items())):
        # KeyTextTransform takes the key literally (a `__` in it is no lookup), on any database.
        name = f"metadata_{number}"
        stored = stored.alias(**{name: KeyTextTransform(key, "metadata")}).filter(**{name: value})
    if after is not None:
        moment, pk = after.created_at, after.pk
        if descending:
            stored = stored.filter(Q(created_at__lt=moment) | Q(created_at=moment, pk__lt=pk))
        else:
            stored = stored.filter(Q(created_at__gt=moment) | Q(created_at=moment, pk__gt=pk))
    order = ["-created_at", "-pk"] if descending else ["created_at", "pk"]
    rows = list(stored.order_by(*order)[: limit + 1])
    return rows[:limit], len(rows) > limit
