"""Bad input on /api/v1 answers DRF 400s, never 500 (found by schemathesis, issue 14 point 15)."""

from __future__ import annotations

import pytest
from django.db import connection
from rest_framework.test import APIClient

from tests.api.conftest import World, bearer_client, ids
from tests.factories import OrganizationFactory, TeamFactory

LONG_LIMIT = "1" * 40


@pytest.fixture
def master(db: None, master_key: str) -> APIClient:
    return bearer_client(master_key)


@pytest.mark.parametrize("metadata", [5, -6.9e16, True, "x", [1, 2]])
def test_organization_metadata_must_be_an_object(master: APIClient, metadata: object) -> None:
    response = master.post(
        "/api/v1/organizations", {"name": "Acme", "metadata": metadata}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"metadata": ["Must be a JSON object."]}


def test_team_metadata_must_be_an_object(master: APIClient) -> None:
    organization = OrganizationFactory()
    payload = {"organization": organization.pk, "name": "T", "metadata": [1]}
    response = master.post("/api/v1/teams", payload, format="json")
    assert response.status_code == 400
    assert response.json() == {"metadata": ["Must be a JSON object."]}
    team = TeamFactory(organization=organization)
    response = master.patch(f"/api/v1/teams/{team.pk}", {"metadata": "x"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"metadata": ["Must be a JSON object."]}


def test_metadata_with_a_nul_character_is_refused(master: APIClient) -> None:
    for metadata in ({"note": "a\x00b"}, {"a\x00": 1}, {"deep": [{"x": ["\x00"]}]}):
        response = master.post(
            "/api/v1/organizations", {"name": "Acme", "metadata": metadata}, format="json"
        )
        assert response.status_code == 400
        assert response.json() == {"metadata": ["Null characters are not allowed."]}
    created = master.post(
        "/api/v1/organizations", {"name": "Acme", "metadata": {"a": {"b": [1]}}}, format="json"
    )
    assert created.status_code == 201
    assert created.json()["metadata"] == {"a": {"b": [1]}}


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/teams", {"slug": "a\x00b"}, "slug"),
        ("/api/v1/organizations", {"slug": "\x00"}, "slug"),
        ("/api/v1/budgets", {"scope": "team\x00"}, "scope"),
    ],
)
def test_nul_characters_in_filters_are_refused(
    world: World, path: str, params: dict[str, str], field: str
) -> None:
    response = world.clients["master"].get(path, params)
    assert response.status_code == 400
    assert response.json() == {field: ["Null characters are not allowed."]}


def test_a_limit_beyond_any_integer_is_capped(world: World) -> None:
    response = world.clients["master"].get("/api/v1/teams", {"limit": LONG_LIMIT})
    assert response.status_code == 200
    assert ids(response) == {
        world.a.team.pk,
        world.a.other_team.pk,
        world.b.team.pk,
        world.b.other_team.pk,
    }
    assert response.json()["next"] is None
    big_offset = world.clients["master"].get("/api/v1/keys", {"offset": LONG_LIMIT, "limit": 5})
    assert big_offset.status_code == 200
    assert big_offset.json()["results"] == []


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL refuses NUL in jsonb; SQLite stores it"
)
def test_a_value_the_database_refuses_is_a_400(world: World) -> None:
    # Keys validate their metadata's type; PostgreSQL refuses the NUL inside (a DataError).
    payload = {"name": "k", "team": world.a.team.pk, "metadata": {"x": "\x00"}}
    response = world.clients["master"].post("/api/v1/keys", payload, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": ["A value is invalid for its field."]}
