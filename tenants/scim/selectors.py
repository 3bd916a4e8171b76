"""SCIM reads: token authentication, and Users and Groups as their SCIM representations.

Everything is scoped to one organization: its Users are the users with a membership (or SCIM
state) there, its Groups are its teams. Anything outside it answers 404, never 403.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, Q, QuerySet

from ogem_site.hashing import secret_matches, secret_prefix
from tenants.models import Membership, Organization, ScimToken, ScimUser, Team, User
from tenants.scim.errors import ScimError, scim_not_found
from tenants.scim.filters import (
    AttrPath,
    Compare,
    Filter,
    attr_path_parse,
    filter_matches,
    filter_parse,
)
from tenants.scim.schemas import GROUP_SCHEMA, LIST_RESPONSE_SCHEMA, MAX_RESULTS, USER_SCHEMA

SCIM_TOKEN_PREFIX = "scim-"
CASE_EXACT = frozenset({"id", "externalid", "members.value", "groups.value"})
# Returned whatever `attributes` or `excludedAttributes` say (RFC 7643 §7, returned "always").
_ALWAYS_RETURNED = frozenset({"id", "schemas"})


def scim_token_authenticate(*, secret: str) -> ScimToken | None:
    """The live token for a secret, else None."""
    prefix = secret_prefix(secret, kind_prefix=SCIM_TOKEN_PREFIX)
    if prefix is None:
        return None
    token = (
        ScimToken.objects.select_related("organization")
        .filter(prefix=prefix, revoked_at__isnull=True)
        .first()
    )
    if token is None:
        return None
    if not secret_matches(secret=secret, digest=token.digest, pepper_id=token.pepper_id):
        return None
    return token


def _iso(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z")


def scim_user_queryset(*, organization: Organization) -> QuerySet[User]:
    ids = Membership.objects.filter(organization=organization).values("user_id")
    scim_ids = ScimUser.objects.filter(organization=organization).values("user_id")
    return (
        User.objects.filter(Q(pk__in=ids) | Q(pk__in=scim_ids))
        .prefetch_related(
            Prefetch(
                "scim_users",
                queryset=ScimUser.objects.filter(organization=organization),
                to_attr="org_scim",
            ),
            Prefetch(
                "memberships",
                queryset=Membership.objects.filter(
                    organization=organization, team__isnull=False
                ).select_related("team"),
                to_attr="org_team_memberships",
            ),
        )
        .order_by("pk")
    )


def scim_user_get(*, organization: Organization, user_id: str) -> User:
    if not user_id.isdigit():
        raise scim_not_found("User", user_id)
    user = scim_user_queryset(organization=organization).filter(pk=int(user_id)).first()
    if user is None:
        raise scim_not_found("User", user_id)
    return user


def scim_state(*, user: User) -> ScimUser | None:
    """The prefetched SCIM row of a user from scim_user_queryset."""
    rows = getattr(user, "org_scim", [])
    return rows[0] if rows else None


def scim_user_representation(*, user: User, base_url: str) -> dict[str, Any]:
    state = scim_state(user=user)
    location = f"{base_url}Users/{user.pk}"
    resource: dict[str, Any] = {"schemas": [USER_SCHEMA], "id": str(user.pk)}
    if state and state.external_id:
        resource["externalId"] = state.external_id
    resource["userName"] = user.username
    name = {
        key: value
        for key, value in (("givenName", user.first_name), ("familyName", user.last_name))
        if value
    }
    if name:
        resource["name"] = name
    if user.display_name:
        resource["displayName"] = user.display_name
    if state is not None:
        emails = state.emails
    else:
        emails = [{"value": user.email, "primary": True}] if user.email else []
    if emails:
        resource["emails"] = emails
    active = True if state is None else state.active
    if active is not None:
        resource["active"] = active
    teams = sorted(
        {m.team_id: m.team for m in getattr(user, "org_team_memberships", [])}.values(),
        key=lambda team: team.pk,
    )
    if teams:
        resource["groups"] = [
            {"value": str(team.pk), "$ref": f"{base_url}Groups/{team.pk}", "display": team.name}
            for team in teams
        ]
    created = state.created_at if state else user.date_joined
    modified = state.updated_at if state else user.date_joined
    resource["meta"] = {
        "resourceType": "User",
        "created": _iso(created),
        "lastModified": _iso(max(created, modified)),
        "location": location,
    }
    return resource


def scim_group_queryset(*, organization: Organization) -> QuerySet[Team]:
    return (
        Team.objects.filter(organization=organization)
        .prefetch_related(
            Prefetch(
                "memberships",
                queryset=Membership.objects.order_by("user_id"),
                to_attr="member_rows",
            )
        )
        .order_by("pk")
    )


def scim_group_get(*, organization: Organization, group_id: str) -> Team:
    if not group_id.isdigit():
        raise scim_not_found("Group", group_id)
    team = scim_group_queryset(organization=organization).filter(pk=int(group_id)).first()
    if team is None:
        raise scim_not_found("Group", group_id)
    return team


def scim_group_representation(*, team: Team, base_url: str) -> dict[str, Any]:
    resource: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "id": str(team.pk)}
    if team.external_id:
        resource["externalId"] = team.external_id
    resource["displayName"] = team.name
    user_ids = sorted({row.user_id for row in getattr(team, "member_rows", [])})
    if user_ids:
        resource["members"] = [
            {"value": str(user_id), "$ref": f"{base_url}Users/{user_id}", "type": "User"}
            for user_id in user_ids
        ]
    resource["meta"] = {
        "resourceType": "Group",
        "created": _iso(team.created_at),
        "lastModified": _iso(team.updated_at),
        "location": f"{base_url}Groups/{team.pk}",
    }
    return resource


def _narrowing(expr: Filter | None, fields: dict[str, str]) -> Q:
    """A database pre-filter for `attr eq "value"` lookups; the exact filter still runs after.

    Only attributes stored in one column are narrowed; anything else (such as secondary email
    addresses, kept in the SCIM state) is matched on the representation alone.
    """
    if not (isinstance(expr, Compare) and expr.op == "eq" and isinstance(expr.value, str)):
        return Q()
    path = str(expr.path)
    if path == "id":
        return Q(pk=int(expr.value)) if expr.value.isdigit() else Q(pk__in=[])
    field = fields.get(path)
    return Q(**{field: expr.value}) if field else Q()


def _paginate(
    resources: list[dict[str, Any]], *, start_index: int, count: int | None
) -> dict[str, Any]:
    start = max(start_index, 1)
    size = MAX_RESULTS if count is None else max(0, min(count, MAX_RESULTS))
    page = resources[start - 1 : start - 1 + size]
    return {
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": len(resources),
        "itemsPerPage": len(page),
        "startIndex": start,
        "Resources": page,
    }


def _matching(resources: list[dict[str, Any]], expr: Filter | None) -> list[dict[str, Any]]:
    if expr is None:
        return resources
    return [r for r in resources if filter_matches(expr, r, case_exact=CASE_EXACT)]


def _user_resources(
    *, organization: Organization, base_url: str, expr: Filter | None
) -> list[dict[str, Any]]:
    users = scim_user_queryset(organization=organization).filter(
        _narrowing(expr, {"username": "username__iexact"})
    )
    return _matching(
        [scim_user_representation(user=user, base_url=base_url) for user in users], expr
    )


def _group_resources(
    *, organization: Organization, base_url: str, expr: Filter | None
) -> list[dict[str, Any]]:
    teams = scim_group_queryset(organization=organization).filter(
        _narrowing(expr, {"displayname": "name__iexact", "externalid": "external_id"})
    )
    return _matching(
        [scim_group_representation(team=team, base_url=base_url) for team in teams], expr
    )


def scim_user_list(
    *,
    organization: Organization,
    base_url: str,
    filter_text: str | None = None,
    start_index: int = 1,
    count: int | None = None,
) -> dict[str, Any]:
    """A ListResponse of the organization's users, filtered and paginated (ordered by id)."""
    expr = filter_parse(filter_text) if filter_text else None
    resources = _user_resources(organization=organization, base_url=base_url, expr=expr)
    return _paginate(resources, start_index=start_index, count=count)


def scim_group_list(
    *,
    organization: Organization,
    base_url: str,
    filter_text: str | None = None,
    start_index: int = 1,
    count: int | None = None,
) -> dict[str, Any]:
    """A ListResponse of the organization's teams, filtered and paginated (ordered by id)."""
    expr = filter_parse(filter_text) if filter_text else None
    resources = _group_resources(organization=organization, base_url=base_url, expr=expr)
    return _paginate(resources, start_index=start_index, count=count)


def scim_search_all(
    *,
    organization: Organization,
    base_url: str,
    filter_text: str | None = None,
    start_index: int = 1,
    count: int | None = None,
) -> dict[str, Any]:
    """POST /.search at the root (RFC 7644 §3.4.3): users then teams, filtered together."""
    expr = filter_parse(filter_text) if filter_text else None
    resources = _user_resources(
        organization=organization, base_url=base_url, expr=expr
    ) + _group_resources(organization=organization, base_url=base_url, expr=expr)
    return _paginate(resources, start_index=start_index, count=count)


def _attribute_set(raw: str | list[str] | None) -> set[AttrPath]:
    if not raw:
        return set()
    items = raw if isinstance(raw, list) else raw.split(",")
    try:
        return {attr_path_parse(item.strip()) for item in items if item.strip()}
    except ScimError as exc:
        raise ScimError(400, exc.detail, scim_type="invalidValue") from exc


def scim_project(
    resource: dict[str, Any],
    *,
    attributes: str | list[str] | None = None,
    excluded: str | list[str] | None = None,
) -> dict[str, Any]:
    """Apply `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5) to one representation."""
    included_paths = _attribute_set(attributes)
    excluded_paths = _attribute_set(excluded)
    if not included_paths and not excluded_paths:
        return resource
    projected: dict[str, Any] = {}
    for key, value in resource.items():
        name = key.lower()
        if name in _ALWAYS_RETURNED:
            projected[key] = value
            continue
        if included_paths:
            wanted = {p.sub for p in included_paths if p.attr == name}
            if not wanted:
                continue
            if None in wanted or not isinstance(value, dict | list):
                projected[key] = value
            else:
                projected[key] = _keep_subattributes(value, {w for w in wanted if w})
        else:
            dropped = {p.sub for p in excluded_paths if p.attr == name}
            if None in dropped:
                continue
            projected[key] = (
                _drop_subattributes(value, {d for d in dropped if d}) if dropped else value
            )
    return projected


def _keep_subattributes(value: Any, names: set[str]) -> Any:
    if isinstance(value, list):
        return [_keep_subattributes(item, names) for item in value]
    return {k: v for k, v in value.items() if k.lower() in names}


def _drop_subattributes(value: Any, names: set[str]) -> Any:
    if isinstance(value, list):
        return [_drop_subattributes(item, names) for item in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k.lower() not in names}
    return value
