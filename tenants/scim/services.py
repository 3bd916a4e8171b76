"""SCIM writes: tokens, Users (organization members) and Groups (teams), each one audited.

A PATCH is applied to the resource's writable representation and the result is then written with
the same code as a PUT, so both verbs share one set of rules.

A user can belong to several organizations, and the User row is shared between them. An
organization's IdP therefore changes the user's profile (userName, name, email) only while that
organization is the user's only one; otherwise the profile is left as it is and only the
organization's own SCIM state (externalId, emails, active) changes. Creating a user links an
existing account of that userName only when no other organization (nor an operator) holds it:
sharing a person between organizations is a proxy admin's decision, never an IdP's.
"""

from __future__ import annotations

import copy
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from ogem_site.hashing import secret_generate
from tenants.audit import audit_record
from tenants.dependents import tenant_member_removed, tenant_team_removed
from tenants.models import Membership, Organization, Role, ScimToken, ScimUser, Team, User
from tenants.scim.errors import ScimError, scim_invalid_value
from tenants.scim.filters import (
    Compare,
    PatchPath,
    filter_matches,
    lookup,
    patch_path_parse,
)
from tenants.scim.schemas import (
    GROUP_ATTRIBUTES,
    PATCH_OP_SCHEMA,
    USER_ATTRIBUTES,
    attribute_definition,
)
from tenants.scim.selectors import (
    CASE_EXACT,
    SCIM_TOKEN_PREFIX,
    scim_group_get,
    scim_group_representation,
    scim_state,
    scim_user_get,
    scim_user_queryset,
    scim_user_representation,
)

_EXTERNAL_ID = {
    "name": "externalId",
    "type": "string",
    "multiValued": False,
    "mutability": "readWrite",
}
_READ_ONLY_KEYS = frozenset({"id", "meta", "schemas"})
_BOOLEAN_STRINGS = {"true": True, "false": False}


# Tokens


def scim_token_create(*, organization: Organization, name: str) -> tuple[ScimToken, str]:
    """Create a SCIM bearer token for an organization. The secret is returned this once."""
    new = secret_generate(kind_prefix=SCIM_TOKEN_PREFIX)
    token = ScimToken.objects.create(
        organization=organization,
        name=name,
        prefix=new.prefix,
        digest=new.digest,
        pepper_id=new.pepper_id,
    )
    audit_record(
        action="scim_token.create",
        target=token,
        organization_id=organization.pk,
        after={"name": name, "prefix": token.prefix},
    )
    return token, new.secret


def scim_token_revoke(*, token: ScimToken) -> ScimToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(
            action="scim_token.revoke",
            target=token,
            organization_id=token.organization_id,
            before={"revoked_at": None},
            after={"revoked_at": token.revoked_at},
        )
    return token


# Documents: canonical attribute names, PATCH


def _definitions(attributes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [*attributes, _EXTERNAL_ID]


def _normalize_value(definition: dict[str, Any], value: Any) -> Any:
    subs = definition.get("subAttributes")
    if not subs:
        return value
    if definition.get("multiValued"):
        items = value if isinstance(value, list) else [value]
        return [_normalize_complex(subs, item) for item in items if item is not None]
    return _normalize_complex(subs, value)


def _normalize_complex(subs: list[dict[str, Any]], value: Any) -> Any:
    if not isinstance(value, dict):
        raise scim_invalid_value(f"expected an object, got {value!r}")
    names = {sub["name"].lower(): sub["name"] for sub in subs}
    return {names[k.lower()]: v for k, v in value.items() if k.lower() in names}


def _normalize(document: Any, attributes: list[dict[str, Any]]) -> dict[str, Any]:
    """Keep the attributes the schema defines, spelled as it spells them; drop everything else.

    Unknown attributes (such as extension schemas this server does not implement) are ignored, as
    IdPs send them whether or not they are advertised.
    """
    if not isinstance(document, dict):
        raise ScimError(400, "the request body must be a JSON object", scim_type="invalidSyntax")
    normalized: dict[str, Any] = {}
    for key, value in document.items():
        name = key
        if name.lower().startswith("urn:ietf:params:scim:schemas:core:2.0:"):
            name = name.rsplit(":", 1)[1]
        definition = attribute_definition(_definitions(attributes), name)
        if definition is None or definition["mutability"] == "readOnly" or value is None:
            continue
        normalized[definition["name"]] = _normalize_value(definition, value)
    return normalized


def _writable(resource: dict[str, Any], attributes: list[dict[str, Any]]) -> dict[str, Any]:
    return _normalize(copy.deepcopy(resource), attributes)


def _matching(items: list[Any], path: PatchPath) -> list[dict[str, Any]]:
    assert path.value_filter is not None
    return [
        item
        for item in items
        if isinstance(item, dict) and filter_matches(path.value_filter, item, case_exact=CASE_EXACT)
    ]


def _item_key(item: Any) -> Any:
    value = lookup(item, "value") if isinstance(item, dict) else item
    return value.lower() if isinstance(value, str) else value


def _patch_set(
    document: dict[str, Any], path: PatchPath, definition: dict[str, Any], value: Any, op: str
) -> None:
    name = definition["name"]
    multi = definition.get("multiValued", False)
    if path.value_filter is not None:
        items = document.get(name) or []
        targets = _matching(items, path)
        if not targets:
            seed = path.value_filter
            if op == "add" and path.sub and isinstance(seed, Compare) and seed.op == "eq":
                # `emails[type eq "work"].value` with no work address yet adds one.
                subs = {s["name"].lower(): s["name"] for s in definition.get("subAttributes", [])}
                item = {subs.get(str(seed.path), str(seed.path)): seed.value}
                items.append(item)
                document[name] = items
                targets = [item]
            else:
                raise ScimError(400, "no value matches the path filter", scim_type="noTarget")
        for target in targets:
            if path.sub:
                sub_def = attribute_definition(definition.get("subAttributes", []), path.sub)
                if sub_def is None:
                    raise ScimError(400, f"unknown attribute {path.sub!r}", scim_type="invalidPath")
                target[sub_def["name"]] = value
            elif isinstance(value, dict):
                target.update(_normalize_complex(definition["subAttributes"], value))
            else:
                raise scim_invalid_value("a filtered path takes an object value")
        return
    if path.sub:
        sub_def = attribute_definition(definition.get("subAttributes", []), path.sub)
        if sub_def is None:
            raise ScimError(400, f"unknown attribute {path.sub!r}", scim_type="invalidPath")
        if multi:
            for item in document.get(name) or []:
                item[sub_def["name"]] = value
        else:
            document.setdefault(name, {})[sub_def["name"]] = value
        return
    normalized = _normalize_value(definition, value)
    if multi:
        if op == "replace":
            document[name] = normalized
        else:
            existing = document.get(name) or []
            seen = {_item_key(item) for item in existing}
            document[name] = existing + [i for i in normalized if _item_key(i) not in seen]
    elif definition.get("subAttributes"):
        # RFC 7644 §3.5.2.1/3: sub-attributes not given are left unchanged, for add and replace.
        document[name] = {**(document.get(name) or {}), **normalized}
    else:
        document[name] = normalized


def _patch_remove(
    document: dict[str, Any], path: PatchPath, definition: dict[str, Any], value: Any
) -> None:
    name = definition["name"]
    if path.value_filter is not None:
        items = document.get(name) or []
        targets = _matching(items, path)
        if path.sub:
            for target in targets:
                for key in [k for k in target if k.lower() == path.sub]:
                    target.pop(key)
        else:
            document[name] = [item for item in items if item not in targets]
        return
    if path.sub:
        current = document.get(name)
        for item in current if isinstance(current, list) else [current]:
            if isinstance(item, dict):
                for key in [k for k in item if k.lower() == path.sub]:
                    item.pop(key)
        return
    if definition.get("multiValued") and value is not None:
        # Azure AD style: `remove members` with the values to remove.
        doomed = {_item_key(item) for item in (value if isinstance(value, list) else [value])}
        document[name] = [
            item for item in document.get(name) or [] if _item_key(item) not in doomed
        ]
        return
    document.pop(name, None)


def _patch_apply(
    document: dict[str, Any], body: Any, attributes: list[dict[str, Any]]
) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ScimError(400, "the request body must be a JSON object", scim_type="invalidSyntax")
    schemas = body.get("schemas")
    if schemas is not None and PATCH_OP_SCHEMA not in schemas:
        raise ScimError(400, f"schemas must contain {PATCH_OP_SCHEMA}", scim_type="invalidSyntax")
    operations = lookup(body, "operations")
    if not isinstance(operations, list) or not operations:
        raise ScimError(400, "Operations must be a non-empty list", scim_type="invalidSyntax")
    definitions = _definitions(attributes)
    for operation in operations:
        if not isinstance(operation, dict):
            raise ScimError(400, "each operation must be an object", scim_type="invalidSyntax")
        op = str(lookup(operation, "op") or "").lower()
        raw_path = lookup(operation, "path")
        value = lookup(operation, "value")
        if op not in {"add", "remove", "replace"}:
            raise ScimError(400, f"unknown op {op!r}", scim_type="invalidSyntax")
        if not raw_path:
            if op == "remove":
                raise ScimError(400, "remove needs a path", scim_type="noTarget")
            if not isinstance(value, dict):
                raise ScimError(
                    400, f"{op} without a path takes an object", scim_type="invalidSyntax"
                )
            for key, item in value.items():
                definition = attribute_definition(definitions, key.rsplit(":", 1)[-1])
                if definition is None or definition["mutability"] == "readOnly":
                    continue
                path = patch_path_parse(definition["name"])
                _patch_set(document, path, definition, item, op)
            continue
        path = patch_path_parse(str(raw_path))
        definition = attribute_definition(definitions, path.attr)
        if definition is None:
            if path.attr in _READ_ONLY_KEYS:
                raise ScimError(400, f"{path.attr} is read-only", scim_type="mutability")
            raise ScimError(400, f"unknown attribute {raw_path!r}", scim_type="invalidPath")
        if definition["mutability"] == "readOnly":
            raise ScimError(400, f"{definition['name']} is read-only", scim_type="mutability")
        if op == "remove":
            _patch_remove(document, path, definition, value)
        else:
            if value is None:
                raise ScimError(400, f"{op} needs a value", scim_type="invalidValue")
            _patch_set(document, path, definition, value, op)
    return document


# Users


def _string(value: Any, name: str, *, required: bool = False) -> str:
    if value is None or value == "":
        if required:
            raise scim_invalid_value(f"{name} is required")
        return ""
    if not isinstance(value, str):
        raise scim_invalid_value(f"{name} must be a string")
    return value


def _boolean(value: Any, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _BOOLEAN_STRINGS:
        return _BOOLEAN_STRINGS[value.lower()]  # Azure AD sends "True" / "False"
    raise scim_invalid_value(f"{name} must be a boolean")


def _emails(value: Any) -> list[dict[str, Any]]:
    emails: list[dict[str, Any]] = []
    for item in value or []:
        address = _string(item.get("value"), "emails.value", required=True)
        email: dict[str, Any] = {"value": address}
        if item.get("type") is not None:
            email["type"] = _string(item["type"], "emails.type")
        primary = _boolean(item.get("primary"), "emails.primary")
        if primary is not None:
            email["primary"] = primary
        emails.append(email)
    if sum(1 for email in emails if email.get("primary")) > 1:
        raise scim_invalid_value("at most one email may be primary")
    return emails


def _profile_writable(*, user: User, organization: Organization) -> bool:
    if user.is_superuser or user.is_staff:
        return False
    elsewhere = Membership.objects.filter(user=user).exclude(organization=organization).exists()
    scim_elsewhere = ScimUser.objects.filter(user=user).exclude(organization=organization).exists()
    return not (elsewhere or scim_elsewhere)


def _username_taken(*, username: str, exclude_pk: int | None) -> bool:
    return User.objects.filter(username__iexact=username).exclude(pk=exclude_pk).exists()


def _user_snapshot(*, user: User, state: ScimUser | None) -> dict[str, Any]:
    return {
        "userName": user.username,
        "givenName": user.first_name,
        "familyName": user.last_name,
        "displayName": user.display_name,
        "email": user.email,
        "externalId": state.external_id if state else "",
        "active": None if state is None else state.active,
        "emails": state.emails if state else [],
    }


def _user_deactivate(*, organization: Organization, user: User, state: ScimUser) -> None:
    """Suspend every membership in the organization and revoke the user's keys there."""
    memberships = list(Membership.objects.filter(user=user, organization=organization))
    state.suspended_memberships = [{"team": m.team_id, "role": m.role} for m in memberships] + list(
        state.suspended_memberships
    )
    Membership.objects.filter(pk__in=[m.pk for m in memberships]).delete()
    tenant_member_removed(user=user, organization=organization, audit_reason="scim deactivation")


def _user_reactivate(*, organization: Organization, user: User, state: ScimUser) -> None:
    team_ids = set(Team.objects.filter(organization=organization).values_list("pk", flat=True))
    restored = [
        item
        for item in state.suspended_memberships
        if item.get("team") is None or item.get("team") in team_ids
    ]
    if not any(item.get("team") is None for item in restored):
        restored.append({"team": None, "role": Role.MEMBER})
    for item in restored:
        Membership.objects.get_or_create(
            user=user,
            organization=organization,
            team_id=item.get("team"),
            defaults={"role": item.get("role") or Role.MEMBER},
        )
    state.suspended_memberships = []


def _user_write(
    *, organization: Organization, user: User, state: ScimUser, document: dict[str, Any]
) -> None:
    """Write a full user document (replace semantics: an absent attribute is cleared)."""
    username = _string(document.get("userName"), "userName", required=True)
    name = document.get("name") or {}
    emails = _emails(document.get("emails"))
    active = _boolean(document.get("active"), "active")
    external_id = _string(document.get("externalId"), "externalId")
    if _profile_writable(user=user, organization=organization):
        if username != user.username and _username_taken(username=username, exclude_pk=user.pk):
            raise ScimError(409, f"userName {username!r} is taken", scim_type="uniqueness")
        primary = next((e for e in emails if e.get("primary")), emails[0] if emails else None)
        user.username = username
        user.first_name = _string(name.get("givenName"), "name.givenName")[:150]
        user.last_name = _string(name.get("familyName"), "name.familyName")[:150]
        user.display_name = _string(document.get("displayName"), "displayName")[:200]
        user.email = primary["value"] if primary else ""
        user.save()
    was_active = state.active is not False
    state.external_id = external_id
    state.emails = emails
    state.active = active
    if was_active and active is False:
        _user_deactivate(organization=organization, user=user, state=state)
    elif not was_active and active is not False:
        _user_reactivate(organization=organization, user=user, state=state)
    state.save()


def _state_for(*, organization: Organization, user: User) -> ScimUser:
    state = scim_state(user=user)
    if state is None:
        state, _ = ScimUser.objects.get_or_create(
            organization=organization,
            user=user,
            defaults={"emails": [{"value": user.email, "primary": True}] if user.email else []},
        )
    return state


def _reload_user(*, organization: Organization, user_id: int) -> User:
    return scim_user_get(organization=organization, user_id=str(user_id))


@transaction.atomic
def scim_user_create(*, organization: Organization, document: Any) -> User:
    data = _normalize(document, USER_ATTRIBUTES)
    username = _string(data.get("userName"), "userName", required=True)
    existing = User.objects.filter(username__iexact=username).first()
    if existing is not None:
        if scim_user_queryset(organization=organization).filter(pk=existing.pk).exists():
            raise ScimError(409, f"userName {username!r} already exists", scim_type="uniqueness")
        if not _profile_writable(user=existing, organization=organization):
            # A userName is no proof of identity: an account another organization (or an
            # operator) holds is never linked, or its profile would be this IdP's to read.
            raise ScimError(409, f"userName {username!r} is taken", scim_type="uniqueness")
        user = existing
        if not user.is_active:
            user.is_active = True
            user.save(update_fields=["is_active"])
    else:
        user = User(username=username)
        user.set_unusable_password()
        try:
            with transaction.atomic():
                user.save()
        except IntegrityError as exc:
            raise ScimError(
                409, f"userName {username!r} already exists", scim_type="uniqueness"
            ) from exc
    state = ScimUser.objects.create(organization=organization, user=user, active=None)
    Membership.objects.get_or_create(
        user=user, organization=organization, team=None, defaults={"role": Role.MEMBER}
    )
    _user_write(organization=organization, user=user, state=state, document=data)
    audit_record(
        action="scim.user.create",
        target=user,
        organization_id=organization.pk,
        after=_user_snapshot(user=user, state=state),
    )
    return _reload_user(organization=organization, user_id=user.pk)


@transaction.atomic
def scim_user_replace(*, organization: Organization, user: User, document: Any) -> User:
    data = _normalize(document, USER_ATTRIBUTES)
    state = _state_for(organization=organization, user=user)
    before = _user_snapshot(user=user, state=state)
    if "active" not in data and state.active is not None:
        # A PUT that omits `active` must not silently reactivate a deactivated user.
        data["active"] = state.active
    _user_write(organization=organization, user=user, state=state, document=data)
    audit_record(
        action="scim.user.replace",
        target=user,
        organization_id=organization.pk,
        before=before,
        after=_user_snapshot(user=user, state=state),
    )
    return _reload_user(organization=organization, user_id=user.pk)


@transaction.atomic
def scim_user_patch(*, organization: Organization, user: User, body: Any, base_url: str) -> User:
    state = _state_for(organization=organization, user=user)
    before = _user_snapshot(user=user, state=state)
    current = scim_user_representation(
        user=_reload_user(organization=organization, user_id=user.pk), base_url=base_url
    )
    document = _patch_apply(_writable(current, USER_ATTRIBUTES), body, USER_ATTRIBUTES)
    _user_write(organization=organization, user=user, state=state, document=document)
    audit_record(
        action="scim.user.patch",
        target=user,
        organization_id=organization.pk,
        before=before,
        after=_user_snapshot(user=user, state=state),
    )
    return _reload_user(organization=organization, user_id=user.pk)


@transaction.atomic
def scim_user_delete(*, organization: Organization, user: User) -> None:
    """Remove the user from the organization: memberships, keys there and SCIM state."""
    state = scim_state(user=user)
    before = _user_snapshot(user=user, state=state)
    tenant_member_removed(user=user, organization=organization, audit_reason=None)
    Membership.objects.filter(user=user, organization=organization).delete()
    ScimUser.objects.filter(user=user, organization=organization).delete()
    orphaned = not (
        Membership.objects.filter(user=user).exists() or ScimUser.objects.filter(user=user).exists()
    )
    if orphaned and not (user.is_staff or user.is_superuser) and user.is_active:
        # Kept, not deleted, so spend and audit history still name the user.
        user.is_active = False
        user.save(update_fields=["is_active"])
    audit_record(
        action="scim.user.delete",
        target=user,
        organization_id=organization.pk,
        before=before,
    )


# Groups


def _team_slug(*, organization: Organization, name: str) -> str:
    base = slugify(name)[:80] or "team"
    slug, suffix = base, 2
    while Team.objects.filter(organization=organization, slug=slug).exists():
        slug = f"{base}-{suffix}"
        suffix += 1
    return slug


def _member_ids(*, organization: Organization, members: Any) -> list[int]:
    ids: list[int] = []
    for member in members or []:
        value = member.get("value") if isinstance(member, dict) else None
        if not isinstance(value, str | int) or not str(value).isdigit():
            raise scim_invalid_value(f"invalid member value {value!r}")
        ids.append(int(value))
    known = set(
        scim_user_queryset(organization=organization)
        .filter(pk__in=ids)
        .values_list("pk", flat=True)
    )
    unknown = [str(pk) for pk in ids if pk not in known]
    if unknown:
        raise scim_invalid_value(f"no such users in this organization: {', '.join(unknown)}")
    return list(dict.fromkeys(ids))


def _group_members_set(*, organization: Organization, team: Team, user_ids: list[int]) -> None:
    wanted = set(user_ids)
    Membership.objects.filter(team=team).exclude(user_id__in=wanted).delete()
    present = set(Membership.objects.filter(team=team).values_list("user_id", flat=True))
    suspended = {
        state.user_id: state
        for state in ScimUser.objects.filter(organization=organization, active=False)
    }
    for state in suspended.values():
        # A deactivated user's team memberships wait in its SCIM state until reactivation.
        entries = [e for e in state.suspended_memberships if e.get("team") != team.pk]
        if state.user_id in wanted:
            entries.append({"team": team.pk, "role": Role.MEMBER})
        if entries != state.suspended_memberships:
            state.suspended_memberships = entries
            state.save(update_fields=["suspended_memberships", "updated_at"])
    for user_id in wanted - present - set(suspended):
        Membership.objects.create(
            user_id=user_id, organization=organization, team=team, role=Role.MEMBER
        )


def _group_snapshot(*, team: Team) -> dict[str, Any]:
    return {
        "displayName": team.name,
        "externalId": team.external_id,
        "members": sorted(Membership.objects.filter(team=team).values_list("user_id", flat=True)),
    }


def _group_write(*, organization: Organization, team: Team, document: dict[str, Any]) -> None:
    team.name = _string(document.get("displayName"), "displayName", required=True)[:200]
    team.external_id = _string(document.get("externalId"), "externalId")[:255]
    user_ids = _member_ids(organization=organization, members=document.get("members"))
    team.save()
    _group_members_set(organization=organization, team=team, user_ids=user_ids)


def _reload_group(*, organization: Organization, team_id: int) -> Team:
    return scim_group_get(organization=organization, group_id=str(team_id))


@transaction.atomic
def scim_group_create(*, organization: Organization, document: Any) -> Team:
    data = _normalize(document, GROUP_ATTRIBUTES)
    name = _string(data.get("displayName"), "displayName", required=True)
    team = Team(
        organization=organization,
        name=name[:200],
        slug=_team_slug(organization=organization, name=name),
    )
    _group_write(organization=organization, team=team, document=data)
    audit_record(
        action="scim.group.create",
        target=team,
        organization_id=organization.pk,
        after=_group_snapshot(team=team),
    )
    return _reload_group(organization=organization, team_id=team.pk)


@transaction.atomic
def scim_group_replace(*, organization: Organization, team: Team, document: Any) -> Team:
    data = _normalize(document, GROUP_ATTRIBUTES)
    before = _group_snapshot(team=team)
    _group_write(organization=organization, team=team, document=data)
    audit_record(
        action="scim.group.replace",
        target=team,
        organization_id=organization.pk,
        before=before,
        after=_group_snapshot(team=team),
    )
    return _reload_group(organization=organization, team_id=team.pk)


@transaction.atomic
def scim_group_patch(*, organization: Organization, team: Team, body: Any, base_url: str) -> Team:
    before = _group_snapshot(team=team)
    current = scim_group_representation(team=team, base_url=base_url)
    document = _patch_apply(_writable(current, GROUP_ATTRIBUTES), body, GROUP_ATTRIBUTES)
    _group_write(organization=organization, team=team, document=document)
    audit_record(
        action="scim.group.patch",
        target=team,
        organization_id=organization.pk,
        before=before,
        after=_group_snapshot(team=team),
    )
    return _reload_group(organization=organization, team_id=team.pk)


@transaction.atomic
def scim_group_delete(*, organization: Organization, team: Team) -> None:
    before = _group_snapshot(team=team)
    # The team's keys go with it; revoking first tells every /v1 worker to drop them from cache.
    tenant_team_removed(team=team)
    team_id = team.pk
    team.delete()
    audit_record(
        action="scim.group.delete",
        target_type="team",
        target_id=team_id,
        organization_id=organization.pk,
        before=before,
    )
