"""/team/*, /user/*, /organization/* over /api/v1's teams, users, organizations, memberships
and budgets. LiteLLM's `team_id` and `organization_id` are Ogem's ids (a team created with its
own `team_id` keeps it as its slug, which every lookup accepts); its `user_id` is the username."""

from __future__ import annotations

import re
import secrets
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from tenants.audit import (
    audit_actor,
    audit_actor_name,
    audit_client_ip,
    audit_record,
    audit_snapshot,
)
from tenants.models import AuditSurface, Role
from tenants.rest.base import request_principal
from tenants.selectors import organization_list, principal_user_id, team_list, user_list
from tenants.services import TenancyError, end_customer_create

from .base import LiteLLMError, LiteLLMView, answer_or_raise, user_by_litellm_id
from .budgets import template_values
from .dispatch import resource_call
from .keys import budget_duration_to_ogem, key_to_litellm, money, usernames

# What a LiteLLM budget sets, on Ogem's budget of the same scope.
_BUDGET_FIELDS = ("max_budget", "soft_budget", "budget_duration", "tpm_limit", "rpm_limit")
# LiteLLM's team roles, and its organization roles, as Ogem's membership roles.
_TEAM_ROLES = {"admin": Role.TEAM_ADMIN, "user": Role.MEMBER}
_ORG_ROLES = {
    "org_admin": Role.ORG_ADMIN,
    "internal_user": Role.MEMBER,
    "internal_user_viewer": Role.VIEWER,
}
_SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,100}$")


def _budget_set(request: Request, *, scope: str, target: Any, body: dict[str, Any]) -> None:
    """Give the entity the budget and limits the LiteLLM body names (create or change), with
    its `budget_id`'s limits where the body does not set them."""
    body = template_values(body)
    wanted = {name: body[name] for name in _BUDGET_FIELDS if name in body}
    if "budget_duration" in wanted:
        wanted["budget_duration"] = budget_duration_to_ogem(wanted["budget_duration"])
    if not wanted:
        return
    found = answer_or_raise(
        resource_call(
            request,
            resource="budgets",
            method="GET",
            query={"scope": scope, scope: target, "limit": 1000},
        )
    )
    rows = [row for row in found["results"] if row.get(scope) == target]
    if rows:
        budget_id = rows[0]["id"]
        answer_or_raise(
            resource_call(request, resource="budgets", method="PATCH", pk=budget_id, body=wanted)
        )
    else:
        answer_or_raise(
            resource_call(
                request,
                resource="budgets",
                method="POST",
                body={"scope": scope, scope: target, **wanted},
            )
        )


def _budget_of(request: Request, *, scope: str, target: Any) -> dict[str, Any]:
    found = resource_call(
        request,
        resource="budgets",
        method="GET",
        query={"scope": scope, scope: target, "limit": 1000},
    )
    # The row of this very entity (the end customer filter is not one /api/v1/budgets has).
    rows = [row for row in found.data["results"] if row.get(scope) == target] if found.ok else []
    budget = rows[0] if rows else {}
    return {
        "max_budget": money(budget.get("max_budget")),
        "soft_budget": money(budget.get("soft_budget")),
        "budget_duration": budget.get("budget_duration") or None,
        "spend": money(budget.get("spend")) or 0.0,
        "tpm_limit": budget.get("tpm_limit"),
        "rpm_limit": budget.get("rpm_limit"),
        "budget_reset_at": budget.get("reset_at"),
    }


def _team_pk(request: Request, team_id: Any) -> int:
    """The team a LiteLLM `team_id` names (id or slug), among those the caller sees."""
    if team_id in (None, ""):
        raise LiteLLMError("team_id is required.")
    teams = team_list(principal=request_principal(request))
    value = str(team_id)
    found = teams.filter(pk=int(value)) if value.isdigit() else teams.filter(slug=value)
    pks = list(found.values_list("pk", flat=True)[:2])
    if len(pks) != 1:
        raise LiteLLMError(f"Team not found: {team_id}", status=404)
    return pks[0]


def _org_pk(request: Request, organization_id: Any) -> int:
    organizations = organization_list(principal=request_principal(request))
    value = str(organization_id)
    found = (
        organizations.filter(pk=int(value)) if value.isdigit() else organizations.filter(slug=value)
    )
    pk = found.values_list("pk", flat=True).first()
    if pk is None:
        raise LiteLLMError(f"Organization not found: {organization_id}", status=404)
    return pk


def _team_to_litellm(request: Request, team: dict[str, Any]) -> dict[str, Any]:
    members = answer_or_raise(
        resource_call(
            request,
            resource="memberships",
            method="GET",
            query={"team": team["id"], "limit": 1000},
        )
    )["results"]
    names = usernames(request, {row["user"] for row in members})
    return {
        "team_id": str(team["id"]),
        "team_alias": team["name"],
        "organization_id": str(team["organization"]),
        "models": team.get("models", []),
        "metadata": team.get("metadata") or {},
        "members_with_roles": [
            {
                "user_id": names.get(row["user"], str(row["user"])),
                "role": "admin" if row["role"] == Role.TEAM_ADMIN else "user",
            }
            for row in members
        ],
        **_budget_of(request, scope="team", target=team["id"]),
        "created_at": team.get("created_at"),
        "updated_at": team.get("updated_at"),
    }


def _member_entries(body: dict[str, Any]) -> list[dict[str, Any]]:
    member = body.get("member")
    entries = member if isinstance(member, list) else [member]
    if not entries or not all(isinstance(entry, dict) for entry in entries):
        raise LiteLLMError("member must be an object or a list of objects with user_id.")
    return entries


def _user_pk(request: Request, entry: dict[str, Any]) -> int:
    principal = request_principal(request)
    if entry.get("user_id") is not None:
        return user_by_litellm_id(principal=principal, user_id=entry["user_id"]).pk
    if entry.get("user_email"):
        found = user_list(principal=principal).filter(email=entry["user_email"]).first()
        if found is not None:
            return found.pk
        raise LiteLLMError(f"User not found: {entry['user_email']}", status=404)
    raise LiteLLMError("Each member needs a user_id or user_email.")


def _membership_pk(request: Request, *, team: int, user: int) -> int:
    found = answer_or_raise(
        resource_call(
            request, resource="memberships", method="GET", query={"team": team, "user": user}
        )
    )["results"]
    if not found:
        raise LiteLLMError("The user is not a member of this team.", status=404)
    return found[0]["id"]


def _team_body(body: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if body.get("team_alias") is not None:
        data["name"] = body["team_alias"]
    for name in ("models", "metadata"):
        if name in body and body[name] is not None:
            data[name] = body[name]
    return data


class TeamNewView(LiteLLMView):
    def post(self, request: Request) -> Response:
        body = self.body()
        data = _team_body(body)
        data.setdefault("name", body.get("team_id") or "team")
        organization = body.get("organization_id")
        if organization is None:
            # Ogem's teams live in an organization: the caller's own when it administers one.
            admin_orgs = sorted(self.principal.admin_org_ids())
            if len(admin_orgs) != 1:
                raise LiteLLMError(
                    "organization_id is required: every Ogem team belongs to an organization."
                )
            organization = admin_orgs[0]
        data["organization"] = _org_pk(request, organization)
        if body.get("team_id"):
            if not _SLUG.match(str(body["team_id"])):
                raise LiteLLMError("team_id may hold letters, digits, '-' and '_' only.")
            data["slug"] = str(body["team_id"])
        team = answer_or_raise(resource_call(request, resource="teams", method="POST", body=data))
        _budget_set(request, scope="team", target=team["id"], body=body)
        for entry in body.get("members_with_roles") or []:
            _member_add(request, team=team["id"], entry=entry)
        return Response(_team_to_litellm(request, team))


def _member_add(request: Request, *, team: int, entry: dict[str, Any]) -> None:
    role = _TEAM_ROLES.get(entry.get("role") or "user")
    if role is None:
        raise LiteLLMError("A team member's role is admin or user.")
    answer_or_raise(
        resource_call(
            request,
            resource="memberships",
            method="POST",
            body={"user": _user_pk(request, entry), "team": team, "role": role},
        )
    )


class TeamInfoView(LiteLLMView):
    def get(self, request: Request) -> Response:
        team_id = _team_pk(request, request.query_params.get("team_id"))
        team = answer_or_raise(resource_call(request, resource="teams", method="GET", pk=team_id))
        keys = answer_or_raise(
            resource_call(
                request, resource="keys", method="GET", query={"team": team_id, "limit": 1000}
            )
        )["results"]
        names = usernames(request, {row["user"] for row in keys if row.get("user") is not None})
        return Response(
            {
                "team_id": str(team_id),
                "team_info": _team_to_litellm(request, team),
                "keys": [key_to_litellm(row, names=names) for row in keys],
            }
        )


class TeamListView(LiteLLMView):
    def get(self, request: Request) -> Response:
        query: dict[str, Any] = {"limit": 1000}
        if request.query_params.get("organization_id"):
            query["organization"] = _org_pk(request, request.query_params["organization_id"])
        teams = answer_or_raise(resource_call(request, resource="teams", method="GET", query=query))
        return Response([_team_to_litellm(request, team) for team in teams["results"]])


class TeamUpdateView(LiteLLMView):
    def post(self, request: Request) -> Response:
        body = self.body()
        team_id = _team_pk(request, body.get("team_id"))
        data = _team_body(body)
        team = answer_or_raise(
            resource_call(request, resource="teams", method="PATCH", pk=team_id, body=data)
        )
        _budget_set(request, scope="team", target=team_id, body=body)
        return Response(_team_to_litellm(request, team))


class TeamDeleteView(LiteLLMView):
    def post(self, request: Request) -> Response:
        named = self.body().get("team_ids")
        if not isinstance(named, list) or not named:
            raise LiteLLMError("team_ids must be a non-empty list.")
        teams = [_team_pk(request, team_id) for team_id in named]
        for team_id in teams:
            answer_or_raise(resource_call(request, resource="teams", method="DELETE", pk=team_id))
        return Response({"deleted_teams": named})


class TeamMemberAddView(LiteLLMView):
    def post(self, request: Request) -> Response:
        body = self.body()
        team_id = _team_pk(request, body.get("team_id"))
        for entry in _member_entries(body):
            _member_add(request, team=team_id, entry=entry)
        team = answer_or_raise(resource_call(request, resource="teams", method="GET", pk=team_id))
        return Response(_team_to_litellm(request, team))


class TeamMemberUpdateView(LiteLLMView):
    def post(self, request: Request) -> Response:
        body = self.body()
        team_id = _team_pk(request, body.get("team_id"))
        role = _TEAM_ROLES.get(body.get("role") or "")
        if role is None:
            raise LiteLLMError("role is admin or user.")
        membership = _membership_pk(request, team=team_id, user=_user_pk(request, body))
        answer_or_raise(
            resource_call(
                request, resource="memberships", method="PATCH", pk=membership, body={"role": role}
            )
        )
        return Response(
            {"team_id": str(team_id), "user_id": body.get("user_id"), "role": body["role"]}
        )


class TeamMemberDeleteView(LiteLLMView):
    def post(self, request: Request) -> Response:
        body = self.body()
        team_id = _team_pk(request, body.get("team_id"))
        membership = _membership_pk(request, team=team_id, user=_user_pk(request, body))
        answer_or_raise(
            resource_call(request, resource="memberships", method="DELETE", pk=membership)
        )
        team = answer_or_raise(resource_call(request, resource="teams", method="GET", pk=team_id))
        return Response(_team_to_litellm(request, team))


# Users


def _user_to_litellm(request: Request, user: dict[str, Any]) -> dict[str, Any]:
    memberships = answer_or_raise(
        resource_call(
            request, resource="memberships", method="GET", query={"user": user["id"], "limit": 1000}
        )
    )["results"]
    return {
        "user_id": user["username"],
        "user_email": user.get("email") or None,
        "user_alias": user.get("display_name") or None,
        "user_role": "proxy_admin" if user.get("is_proxy_admin") else "internal_user",
        "teams": sorted({str(row["team"]) for row in memberships if row.get("team")}),
        "organization_memberships": [
            {"organization_id": str(row["organization"]), "user_role": row["role"]}
            for row in memberships
            if not row.get("team")
        ],
        **_budget_of(request, scope="user", target=user["id"]),
        "created_at": user.get("date_joined"),
    }


def _user_pk_by_id(request: Request, user_id: Any) -> int:
    if user_id in (None, ""):
        raise LiteLLMError("user_id is required.")
    return user_by_litellm_id(principal=request_principal(request), user_id=user_id).pk


class UserNewView(LiteLLMView):
    def post(self, request: Request) -> Response:
        body = self.body()
        role = body.get("user_role") or "internal_user"
        data: dict[str, Any] = {
            "username": str(body.get("user_id") or f"user-{secrets.token_hex(6)}"),
            "email": body.get("user_email") or "",
            "display_name": body.get("user_alias") or "",
            "is_proxy_admin": role == "proxy_admin",
        }
        if role not in ("proxy_admin", *_ORG_ROLES):
            raise LiteLLMError(f"Unknown user_role {role!r}.")
        if body.get("organization_id") is not None:
            data["organization"] = _org_pk(request, body["organization_id"])
            data["role"] = _ORG_ROLES.get(role, Role.MEMBER)
        user = answer_or_raise(resource_call(request, resource="users", method="POST", body=data))
        _budget_set(request, scope="user", target=user["id"], body=body)
        for team in body.get("teams") or []:
            _member_add(request, team=_team_pk(request, team), entry={"user_id": user["username"]})
        return Response(_user_to_litellm(request, user))


class UserInfoView(LiteLLMView):
    def get(self, request: Request) -> Response:
        user_id = request.query_params.get("user_id")
        if not user_id:
            user_pk = self.principal.user.pk
            if user_pk is None:
                raise LiteLLMError("Give the user: /user/info?user_id=...")
        else:
            user_pk = _user_pk_by_id(request, user_id)
        user = answer_or_raise(resource_call(request, resource="users", method="GET", pk=user_pk))
        keys = answer_or_raise(
            resource_call(
                request, resource="keys", method="GET", query={"user": user_pk, "limit": 1000}
            )
        )["results"]
        names = {user_pk: user["username"]}
        return Response(
            {
                "user_id": user["username"],
                "user_info": _user_to_litellm(request, user),
                "keys": [key_to_litellm(row, names=names) for row in keys],
                "teams": _user_to_litellm(request, user)["teams"],
            }
        )


class UserUpdateView(LiteLLMView):
    def post(self, request: Request) -> Response:
        body = self.body()
        user_pk = _user_pk_by_id(request, body.get("user_id"))
        data: dict[str, Any] = {}
        if "user_email" in body:
            data["email"] = body["user_email"] or ""
        if "user_alias" in body:
            data["display_name"] = body["user_alias"] or ""
        if "user_role" in body:
            data["is_proxy_admin"] = body["user_role"] == "proxy_admin"
        user = answer_or_raise(
            resource_call(request, resource="users", method="PATCH", pk=user_pk, body=data)
        )
        _budget_set(request, scope="user", target=user_pk, body=body)
        return Response(_user_to_litellm(request, user))


class UserDeleteView(LiteLLMView):
    def post(self, request: Request) -> Response:
        named = self.body().get("user_ids")
        if not isinstance(named, list) or not named:
            raise LiteLLMError("user_ids must be a non-empty list.")
        users = [_user_pk_by_id(request, user_id) for user_id in named]
        for user_pk in users:
            answer_or_raise(resource_call(request, resource="users", method="DELETE", pk=user_pk))
        return Response({"deleted_users": named})


# Organizations


def _org_to_litellm(request: Request, organization: dict[str, Any]) -> dict[str, Any]:
    return {
        "organization_id": str(organization["id"]),
        "organization_alias": organization["name"],
        "models": organization.get("models", []),
        "metadata": organization.get("metadata") or {},
        **_budget_of(request, scope="organization", target=organization["id"]),
        "created_at": organization.get("created_at"),
        "updated_at": organization.get("updated_at"),
    }


class OrganizationNewView(LiteLLMView):
    def post(self, request: Request) -> Response:
        body = self.body()
        alias = body.get("organization_alias")
        if not alias:
            raise LiteLLMError("organization_alias is required.")
        data: dict[str, Any] = {"name": alias}
        for name in ("models", "metadata"):
            if body.get(name) is not None:
                data[name] = body[name]
        if body.get("organization_id"):
            if not _SLUG.match(str(body["organization_id"])):
                raise LiteLLMError("organization_id may hold letters, digits, '-' and '_' only.")
            data["slug"] = str(body["organization_id"])
        organization = answer_or_raise(
            resource_call(request, resource="organizations", method="POST", body=data)
        )
        _budget_set(request, scope="organization", target=organization["id"], body=body)
        return Response(_org_to_litellm(request, organization))


class OrganizationListView(LiteLLMView):
    def get(self, request: Request) -> Response:
        listed = answer_or_raise(
            resource_call(request, resource="organizations", method="GET", query={"limit": 1000})
        )
        return Response([_org_to_litellm(request, row) for row in listed["results"]])


class OrganizationMemberAddView(LiteLLMView):
    def post(self, request: Request) -> Response:
        body = self.body()
        organization = _org_pk(request, body.get("organization_id"))
        added = []
        for entry in _member_entries(body):
            role = _ORG_ROLES.get(entry.get("role") or "internal_user")
            if role is None:
                raise LiteLLMError(
                    "An organization member's role is org_admin, internal_user "
                    "or internal_user_viewer."
                )
            membership = answer_or_raise(
                resource_call(
                    request,
                    resource="memberships",
                    method="POST",
                    body={
                        "user": _user_pk(request, entry),
                        "organization": organization,
                        "role": role,
                    },
                )
            )
            added.append(
                {
                    "user_id": entry.get("user_id")
                    or usernames(request, {membership["user"]}).get(membership["user"]),
                    "organization_id": str(organization),
                    "user_role": entry.get("role") or "internal_user",
                }
            )
        return Response(
            {"organization_id": str(organization), "updated_organization_memberships": added}
        )


# End customers


class CustomerNewView(LiteLLMView):
    """LiteLLM's customers are Ogem's end customers, which belong to an organization: its
    admins register them (the organization named, or the one the caller administers)."""

    def post(self, request: Request) -> Response:
        body = self.body()
        principal = self.principal
        organization_id = body.get("organization_id")
        if organization_id is None:
            admin_orgs = sorted(principal.admin_org_ids())
            if len(admin_orgs) != 1:
                raise LiteLLMError(
                    "organization_id is required: every Ogem end customer belongs to an "
                    "organization."
                )
            organization_id = admin_orgs[0]
        organization = organization_list(principal=principal).get(
            pk=_org_pk(request, organization_id)
        )
        if not principal.is_org_admin(organization.pk):
            raise LiteLLMError("Only the organization's admins register customers.", status=403)
        with audit_actor(
            actor=audit_actor_name(user=principal.user),
            surface=AuditSurface.API,
            user_id=principal_user_id(principal=principal),
            ip_address=audit_client_ip(request=request),
        ):
            try:
                customer = end_customer_create(
                    organization=organization,
                    external_id=str(body.get("user_id") or ""),
                    alias=str(body.get("alias") or ""),
                    blocked=bool(body.get("blocked", False)),
                )
            except TenancyError as exc:
                raise LiteLLMError(str(exc)) from exc
            audit_record(
                action="create",
                target=customer,
                organization_id=organization.pk,
                before=None,
                after=audit_snapshot(customer),
            )
        _budget_set(request, scope="end_customer", target=customer.pk, body=body)
        return Response(
            {
                "user_id": customer.external_id,
                "alias": customer.alias or None,
                "blocked": customer.blocked,
                "organization_id": str(organization.pk),
                **_budget_of(request, scope="end_customer", target=customer.pk),
            }
        )
