"""Every change made through the management API leaves one audit event, secrets redacted."""

from __future__ import annotations

from tenants.models import AuditEvent, AuditSurface
from tests.api.conftest import World


def _events(**filters: object) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(surface=AuditSurface.API, **filters).order_by("id"))


def test_key_lifecycle_is_audited_with_actor_and_organization(world: World) -> None:
    client = world.clients["org_admin"]
    team = world.a.team
    created = client.post("/api/v1/keys", {"name": "ci", "team": team.pk}, format="json")
    assert created.status_code == 201
    key_id = created.json()["id"]
    secret = created.json()["key"]
    assert (
        client.patch(f"/api/v1/keys/{key_id}", {"name": "ci-2"}, format="json").status_code == 200
    )
    assert client.post(f"/api/v1/keys/{key_id}/rotate", {}, format="json").status_code == 200
    assert client.post(f"/api/v1/keys/{key_id}/revoke").status_code == 200
    assert client.delete(f"/api/v1/keys/{key_id}").status_code == 204

    events = _events(target_type="virtualkey", target_id=str(key_id))
    assert [event.action for event in events] == ["create", "update", "rotate", "revoke", "delete"]
    admin = world.users["org_admin"]
    assert {event.actor_user_id for event in events} == {admin.pk}
    assert {event.organization_id for event in events} == {world.a.organization.pk}
    assert events[1].before["name"] == "ci" and events[1].after["name"] == "ci-2"
    assert events[4].after is None and events[4].before["id"] == key_id
    stored = " ".join(str(event.before) + str(event.after) for event in events)
    assert secret not in stored
    assert world.a.team_key.digest not in stored


def test_budget_upsert_and_reset_are_audited(world: World) -> None:
    client = world.clients["master"]
    team = world.a.team
    body = {"scope": "team", "team": team.pk, "max_budget": "50"}
    assert client.post("/api/v1/budgets", body, format="json").status_code == 200
    budget_id = world.a.team_budget.pk
    assert client.post(f"/api/v1/budgets/{budget_id}/reset").status_code == 200
    events = _events(target_type="budget", target_id=str(budget_id))
    assert [event.action for event in events] == ["update", "reset"]
    assert {event.actor for event in events} == {"master-key"}
    assert {event.organization_id for event in events} == {world.a.organization.pk}
    # Money in the trail is fixed-point, as on the API: "0.00000000", not "0E-8".
    reset = events[1]
    assert (reset.before["spend"], reset.after["max_budget"]) == ("0.00000000", "50.00000000")
