"""Declarative CRUD and isolation tests for one /api/v1 resource (NetBox style).

A subclass names the resource, how to find tenant A's and B's object, payloads, and the status
each role gets on A's object. Every non-master caller belongs to A: on B's objects they must get
404 for retrieve, update and delete, never see them in a list, and get 404 when creating an object
that points into B.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from tests.api.conftest import ROLES, Tenant, World, ids

NON_MASTER = [role for role in ROLES if role != "master"]


class ResourceTests:
    path: ClassVar[str]
    # role → expected status on tenant A's object (or on creating in A)
    retrieve: ClassVar[dict[str, int]]
    create: ClassVar[dict[str, int]]
    update: ClassVar[dict[str, int]]
    delete: ClassVar[dict[str, int]]

    def obj(self, tenant: Tenant) -> Any:
        raise NotImplementedError

    def create_payload(self, tenant: Tenant) -> dict[str, Any]:
        raise NotImplementedError

    def update_payload(self, tenant: Tenant) -> dict[str, Any]:
        raise NotImplementedError

    def url(self, pk: int | None = None) -> str:
        return f"/api/v1/{self.path}" if pk is None else f"/api/v1/{self.path}/{pk}"

    @pytest.mark.parametrize("role", ROLES)
    def test_list_shows_own_objects_and_never_the_other_tenant(
        self, world: World, role: str
    ) -> None:
        response = world.clients[role].get(self.url())
        assert response.status_code == 200
        listed = ids(response)
        assert (self.obj(world.a).pk in listed) == (self.retrieve[role] == 200)
        assert (self.obj(world.b).pk in listed) == (role == "master")

    @pytest.mark.parametrize("role", ROLES)
    def test_retrieve(self, world: World, role: str) -> None:
        response = world.clients[role].get(self.url(self.obj(world.a).pk))
        assert response.status_code == self.retrieve[role], response.content
        if response.status_code == 200:
            assert response.json()["id"] == self.obj(world.a).pk

    @pytest.mark.parametrize("role", ROLES)
    def test_create(self, world: World, role: str) -> None:
        response = world.clients[role].post(self.url(), self.create_payload(world.a), format="json")
        assert response.status_code == self.create[role], response.content
        if response.status_code == 201:
            created = response.json()["id"]
            assert created in ids(world.clients["master"].get(self.url(), {"limit": 1000}))

    @pytest.mark.parametrize("role", ROLES)
    def test_update(self, world: World, role: str) -> None:
        payload = self.update_payload(world.a)
        response = world.clients[role].patch(self.url(self.obj(world.a).pk), payload, format="json")
        assert response.status_code == self.update[role], response.content
        body = world.clients["master"].get(self.url(self.obj(world.a).pk)).json()
        changed = all(body[name] == value for name, value in payload.items())
        assert changed == (self.update[role] == 200)

    @pytest.mark.parametrize("role", ROLES)
    def test_delete(self, world: World, role: str) -> None:
        pk = self.obj(world.a).pk
        response = world.clients[role].delete(self.url(pk))
        assert response.status_code == self.delete[role], response.content
        still_there = world.clients["master"].get(self.url(pk)).status_code == 200
        assert still_there == (self.delete[role] != 204)

    @pytest.mark.parametrize("role", NON_MASTER)
    def test_other_tenant_objects_are_not_found(self, world: World, role: str) -> None:
        client = world.clients[role]
        pk = self.obj(world.b).pk
        assert client.get(self.url(pk)).status_code == 404
        assert (
            client.patch(self.url(pk), self.update_payload(world.b), format="json").status_code
            == 404
        )
        assert (
            client.put(self.url(pk), self.create_payload(world.b), format="json").status_code == 404
        )
        assert client.delete(self.url(pk)).status_code == 404
        assert world.clients["master"].get(self.url(pk)).status_code == 200

    @pytest.mark.parametrize("role", NON_MASTER)
    def test_cannot_create_in_the_other_tenant(self, world: World, role: str) -> None:
        before = world.clients["master"].get(self.url(), {"limit": 1000}).json()["count"]
        response = world.clients[role].post(self.url(), self.create_payload(world.b), format="json")
        assert response.status_code == self.foreign_create_status, response.content
        after = world.clients["master"].get(self.url(), {"limit": 1000}).json()["count"]
        assert after == before

    foreign_create_status: ClassVar[int] = 404

    def test_master_creates_in_any_tenant(self, world: World) -> None:
        response = world.clients["master"].post(
            self.url(), self.create_payload(world.b), format="json"
        )
        assert response.status_code == 201, response.content
