from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib import admin
from django.test import Client, RequestFactory

from tenants.audit import (
    REDACTED,
    audit_actor,
    audit_actor_current,
    audit_actor_name,
    audit_client_ip,
    audit_event_list,
    audit_events_export,
    audit_record,
    audit_snapshot,
)
from tenants.models import AuditEvent, AuditSurface, Role, ScimToken
from tenants.principals import MasterKeyUser
from tenants.selectors import principal_for_user, proxy_admin_principal
from tests.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory
from tests.scim.conftest import make_scim_client, patch_body

pytestmark = pytest.mark.django_db


def test_record_uses_the_current_actor() -> None:
    organization = OrganizationFactory()
    team = TeamFactory(organization=organization, name="Ops")
    user = UserFactory()

    with audit_actor(
        actor=audit_actor_name(user=user),
        surface=AuditSurface.API,
        user_id=user.pk,
        ip_address="203.0.113.9",
        request_id="req-1",
    ):
        event = audit_record(
            action="team.update",
            target=team,
            organization_id=organization.pk,
            before={"name": "Old"},
            after={"name": "Ops"},
        )
    outside = audit_record(action="team.delete", target_type="team", target_id=team.pk)

    event.refresh_from_db()
    assert (event.actor, event.actor_user, event.surface, event.ip_address, event.request_id) == (
        f"user:{user.pk}",
        user,
        "api",
        "203.0.113.9",
        "req-1",
    )
    assert (event.action, event.target_type, event.target_id, event.organization) == (
        "team.update",
        "team",
        str(team.pk),
        organization,
    )
    assert (event.before, event.after) == ({"name": "Old"}, {"name": "Ops"})
    assert (outside.actor, outside.surface, outside.target_id) == ("system", "system", str(team.pk))
    assert audit_actor_current().actor == "system"


def test_actor_names() -> None:
    assert audit_actor_name(user=MasterKeyUser()) == "master-key"
    assert audit_actor_name(scim_token_prefix="AbCd1234") == "scim:AbCd1234"
    assert audit_actor_name() == "system"


def test_secrets_never_reach_the_log() -> None:
    token = ScimToken.objects.create(
        organization=OrganizationFactory(), prefix="p1", digest="d" * 64, pepper_id=1
    )
    snapshot = audit_snapshot(token)
    assert snapshot["digest"] == REDACTED
    assert snapshot["prefix"] == "p1"

    event = audit_record(
        action="provider.update",
        target_type="provider",
        target_id="openai",
        after={"api_key": "sk-live-123", "nested": {"client_secret": "s", "password": "p"}, "n": 1},
    )
    event.refresh_from_db()
    assert event.after == {
        "api_key": REDACTED,
        "nested": {"client_secret": REDACTED, "password": REDACTED},
        "n": 1,
    }


def test_client_ip_honours_only_the_configured_proxy_header(settings) -> None:  # type: ignore[no-untyped-def]
    factory = RequestFactory()
    request = factory.get(
        "/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="198.51.100.7, 203.0.113.20"
    )
    settings.OGEM_TRUSTED_PROXY_HEADER = ""
    assert audit_client_ip(request=request) == "10.0.0.5"  # a client can forge the header

    settings.OGEM_TRUSTED_PROXY_HEADER = "X-Forwarded-For"
    assert audit_client_ip(request=request) == "203.0.113.20"  # what our proxy appended
    garbage = factory.get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="not-an-ip")
    assert audit_client_ip(request=garbage) == "10.0.0.5"


def test_scim_writes_are_audited(settings) -> None:  # type: ignore[no-untyped-def]
    settings.OGEM_TRUSTED_PROXY_HEADER = "X-Real-IP"
    scim = make_scim_client()
    AuditEvent.objects.all().delete()
    scim.client = Client(HTTP_X_REAL_IP="198.51.100.23")

    user_id = scim.post("Users", {"userName": "alice", "displayName": "Alice"}).body["id"]
    scim.patch(f"Users/{user_id}", patch_body({"op": "replace", "path": "active", "value": False}))
    group_id = scim.post("Groups", {"displayName": "Ops"}).body["id"]
    scim.delete(f"Groups/{group_id}")

    events = list(AuditEvent.objects.order_by("id"))
    assert [e.action for e in events] == [
        "scim.user.create",
        "scim.user.patch",
        "scim.group.create",
        "scim.group.delete",
    ]
    for event in events:
        assert event.actor == f"scim:{scim.token.prefix}"
        assert event.surface == "scim"
        assert event.organization == scim.organization
        assert event.ip_address == "198.51.100.23"
    assert events[0].before is None
    assert events[0].after == {
        "userName": "alice",
        "givenName": "",
        "familyName": "",
        "displayName": "Alice",
        "email": "",
        "externalId": "",
        "active": None,
        "emails": [],
    }
    assert (events[1].before["active"], events[1].after["active"]) == (None, False)
    assert events[3].target_id == group_id
    assert events[3].before == {"displayName": "Ops", "externalId": "", "members": []}
    assert events[3].after is None


def test_event_list_is_scoped() -> None:
    acme, globex = OrganizationFactory(), OrganizationFactory()
    in_acme = audit_record(action="a", target_type="t", organization_id=acme.pk)
    in_globex = audit_record(action="b", target_type="t", organization_id=globex.pk)
    global_event = audit_record(action="c", target_type="t")
    owner = MembershipFactory(organization=acme, role=Role.ORG_OWNER).user
    admin_user = MembershipFactory(organization=globex, role=Role.ORG_ADMIN).user
    member = MembershipFactory(organization=acme, role=Role.MEMBER).user

    assert list(audit_event_list(principal=proxy_admin_principal())) == [
        global_event,
        in_globex,
        in_acme,
    ]
    assert list(audit_event_list(principal=principal_for_user(user=owner))) == [in_acme]
    assert list(audit_event_list(principal=principal_for_user(user=admin_user))) == [in_globex]
    assert list(audit_event_list(principal=principal_for_user(user=member))) == []
    assert list(
        audit_event_list(principal=proxy_admin_principal(), organization_id=acme.pk, action="a")
    ) == [in_acme]


def test_export_csv_and_json() -> None:
    organization = OrganizationFactory()
    with audit_actor(actor="master-key", surface=AuditSurface.ADMIN, ip_address="127.0.0.1"):
        event = audit_record(
            action="team.create",
            target_type="team",
            target_id=5,
            organization_id=organization.pk,
            after={"name": "Ops"},
        )
    events = audit_event_list(principal=proxy_admin_principal())
    expected = {
        "id": event.pk,
        "occurred_at": event.occurred_at.isoformat(),
        "actor": "master-key",
        "surface": "admin",
        "action": "team.create",
        "target_type": "team",
        "target_id": "5",
        "organization_id": organization.pk,
        "ip_address": "127.0.0.1",
        "request_id": "",
        "before": None,
        "after": {"name": "Ops"},
    }

    assert json.loads(audit_events_export(events=events, fmt="json")) == [expected]
    rows = list(csv.DictReader(io.StringIO(audit_events_export(events=events, fmt="csv"))))
    assert rows == [
        {
            **{k: str(v) for k, v in expected.items()},
            "before": "null",
            "after": '{"name": "Ops"}',
        }
    ]
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        audit_events_export(events=events, fmt="xml")


def test_admin_is_read_only_and_exports() -> None:
    import tenants.admin_audit  # noqa: F401  (registers the ModelAdmin)

    acme = OrganizationFactory()
    mine = audit_record(action="team.create", target_type="team", organization_id=acme.pk)
    audit_record(action="team.create", target_type="team", organization_id=OrganizationFactory().pk)
    model_admin = admin.site._registry[AuditEvent]
    request = RequestFactory().get("/admin/")
    request.user = UserFactory(is_superuser=True, is_staff=True)
    assert model_admin.has_add_permission(request) is False
    assert model_admin.has_change_permission(request) is False
    assert model_admin.has_delete_permission(request) is False
    assert model_admin.get_queryset(request).count() == 2

    # The rows are the selector's: an org owner sees only their organization's events.
    request.user = MembershipFactory(organization=acme, role=Role.ORG_OWNER).user
    assert list(model_admin.get_queryset(request)) == [mine]

    response = model_admin.export_json(request, model_admin.get_queryset(request))
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == 'attachment; filename="ogem-audit.json"'
    assert [e["id"] for e in json.loads(response.content)] == [mine.pk]
    csv_response = model_admin.export_csv(request, model_admin.get_queryset(request))
    assert csv_response["Content-Type"] == "text/csv"
    assert csv_response.content.decode().splitlines()[0] == ",".join(
        [
            "id",
            "occurred_at",
            "actor",
            "surface",
            "action",
            "target_type",
            "target_id",
            "organization_id",
            "ip_address",
            "request_id",
            "before",
            "after",
        ]
    )
