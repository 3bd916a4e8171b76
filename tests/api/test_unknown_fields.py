"""/api/v1 refuses fields it does not have, naming each (and the field most likely meant),
instead of dropping them silently."""

from __future__ import annotations

from keys.models import VirtualKey
from tests.api.conftest import World


def test_unknown_fields_are_a_400_naming_each(world: World) -> None:
    client = world.clients["master"]
    before = VirtualKey.objects.count()
    response = client.post(
        "/api/v1/keys",
        {
            "name": "typo",
            "team": world.a.team.pk,
            "allowed_models": ["mock-chat"],
            "duration": "7d",
            "bogus_field": 1,
        },
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json() == {
        "allowed_models": ["Unknown field. Did you mean `models`?"],
        "duration": ["Unknown field. Did you mean `budget_duration`?"],
        "bogus_field": ["Unknown field."],
    }
    assert VirtualKey.objects.count() == before  # nothing created with every model allowed
    patched = client.patch(f"/api/v1/teams/{world.a.team.pk}", {"bogus_field": True}, format="json")
    assert patched.status_code == 400
    assert patched.json() == {"bogus_field": ["Unknown field."]}


def test_a_read_body_sent_back_is_accepted(world: World) -> None:
    client = world.clients["master"]
    team = client.get(f"/api/v1/teams/{world.a.team.pk}").json()
    response = client.put(f"/api/v1/teams/{world.a.team.pk}", team, format="json")
    assert response.status_code == 200, response.content
