"""Who may do what to a virtual key: one rule for the management API, admin and portal.

Whoever administers a key's scope (its team's admins; for a key without a team, its
organization's owners and admins; proxy admins) creates it, changes any of its settings, rotates,
revokes and deletes it. Its holder (the user it belongs to, with a role above viewer in its
organization) may rename, rotate, revoke and delete it, never change what bounds it. Members
create keys for themselves in their teams and may restrict them then. Viewers write nothing.
See docs/roles.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from keys.models import VirtualKey
from tenants.catalog import models_outside_message, models_unknown_message
from tenants.models import Organization, Team
from tenants.principals import Principal
from tenants.selectors import (
    principal_can_create_own_key,
    principal_user_id,
    principal_writes_in,
)

# The settings of a key that are its own fields (in the order forms show them), and those of
# its key budget.
KEY_FIELDS = (
    "name",
    "user",
    "allowed_models",
    "expires_at",
    "metadata",
    "tags",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
    "endpoint_limits",
)
KEY_BUDGET_SETTINGS = ("max_budget", "soft_budget", "budget_duration")
KEY_SETTINGS = frozenset(KEY_FIELDS + KEY_BUDGET_SETTINGS)
# What a holder changes on their key: the rest (models, budget, limits, expiry, routing and
# per-model limits in metadata, tags, owner) bounds what the key may do, and is the admins'.
KEY_HOLDER_SETTINGS = frozenset({"name"})
# What a member gives a key they create: restrictions only narrow a new key (which starts
# unrestricted under its team's and organization's limits). Metadata and tags carry routing
# settings such as the queue priority, which are the team admins' to give.
KEY_MEMBER_CREATE_SETTINGS = KEY_SETTINGS - {"user", "metadata", "tags"}


def key_scope_administered(
    *, principal: Principal, team_id: int | None, organization_id: int | None
) -> bool:
    """Whether the principal administers the keys of this team (of this organization when the
    key has no team)."""
    return principal.is_team_admin(team_id, organization_id)


def key_held(*, principal: Principal, key: VirtualKey) -> bool:
    """Whether the key is the principal's own and their role lets them write (no viewer)."""
    user_id = principal_user_id(principal=principal)
    if user_id is None or key.user_id != user_id:
        return False
    return principal_writes_in(principal=principal, organization_id=key.organization_id)


def key_settings_changeable(*, principal: Principal, key: VirtualKey) -> frozenset[str]:
    """The settings of ``key`` the principal may change (names as in KEY_SETTINGS)."""
    if key_scope_administered(
        principal=principal, team_id=key.team_id, organization_id=key.organization_id
    ):
        return KEY_SETTINGS
    if key_held(principal=principal, key=key):
        return KEY_HOLDER_SETTINGS
    return frozenset()


def key_change_allowed(*, principal: Principal, key: VirtualKey) -> bool:
    """Whether the principal may rotate, revoke or delete the key (and change some setting)."""
    return bool(key_settings_changeable(principal=principal, key=key))


# A key issued to a user acts as that user on /api/v1 only if they made it themselves or a proxy
# admin did (keys.authentication.key_grants_management), which it reads from ``created_by``.
KEY_ISSUER_MISSING = "This sign-in has no user to record as issuer: it gives keys no owner."


def key_issuer_missing(*, principal: Principal) -> bool:
    """Whether the principal cannot be recorded as the issuer of a key it gives to a user: an
    identity provider token (no user row) would look like the master key, whose keys act as
    their owner on /api/v1."""
    return principal_user_id(principal=principal) is None and not principal.is_proxy_admin


def key_create_refusal(
    *,
    principal: Principal,
    team: Team | None,
    organization: Organization | None,
    user: Any,
    settings: Iterable[str],
) -> str | None:
    """Why the principal may not create this key, or None when they may.

    ``settings`` names the settings given a value beyond the default. When the caller does not
    administer the team, the key is theirs: ``user`` must be None or the caller.
    """
    if team is not None:
        organization = team.organization
    if user is not None and key_issuer_missing(principal=principal):
        return KEY_ISSUER_MISSING
    if key_scope_administered(
        principal=principal,
        team_id=team.pk if team is not None else None,
        organization_id=organization.pk if organization is not None else None,
    ):
        return None
    if team is None:
        return "Only organization admins create keys outside a team."
    if not principal_can_create_own_key(principal=principal, team=team):
        return "You cannot create keys in this team."
    caller_id = principal_user_id(principal=principal)
    if caller_id is None:
        return "Members create keys for themselves, and this sign-in has no user to own one."
    if user is not None and getattr(user, "pk", None) != caller_id:
        return "Members create keys for themselves only."
    refused = sorted(set(settings) - KEY_MEMBER_CREATE_SETTINGS - {"user"})
    if refused:
        return f"Only the team's admins set {', '.join(refused)}."
    return None


def key_models_problem(
    *, models: Iterable[str], team: Team | None, organization: Organization | None
) -> str | None:
    """Why a key's `models` are refused (a name nothing serves, or a model outside its team's or
    organization's allow-list), or None. An empty list is every model its team and organization
    allow, bounded on /v1."""
    models = list(models)
    if not models:
        return None
    organization_id = organization.pk if organization is not None else None
    return models_unknown_message(
        entries=models, organization_id=organization_id
    ) or models_outside_message(
        entries=models,
        bounds=[
            ("organization", organization.allowed_models if organization is not None else []),
            ("team", team.allowed_models if team is not None else []),
        ],
        organization_id=organization_id,
    )
