"""Vector stores in admin: the proxy admin sees every store, an organization's admin only its
own; each shows its bytes and its tenant's total against OGEM_VECTOR_STORES_MAX_BYTES; nobody
adds or edits one there."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tenants.models import Role, Team
from tests.factories import MembershipFactory, TeamFactory, UserFactory
from vector_stores.models import VectorStore

pytestmark = pytest.mark.django_db


def _store(team: Team, usage: int) -> VectorStore:
    now = timezone.now()
    return VectorStore.objects.create(
        store_id=f"vs_{team.pk}_{usage}",
        organization_id=team.organization_id,
        team=team,
        name="kb",
        embedding_model="local-embed",
        usage_bytes=usage,
        created_at=now,
        last_active_at=now,
    )


def _client(**user: object) -> Client:
    account = UserFactory(**user)
    account.save(update_fields=["password"])
    client = Client()
    client.force_login(account)
    client.user = account  # type: ignore[attr-defined]
    return client


def test_pages_are_scoped_and_show_the_tenant_storage(settings) -> None:  # type: ignore[no-untyped-def]
    settings.OGEM_VECTOR_STORES_MAX_BYTES = 10_000
    mine, theirs = TeamFactory(), TeamFactory()
    own, _ = _store(mine, 1000), _store(mine, 1500)
    other = _store(theirs, 7)
    root = _client(is_superuser=True, is_staff=True)
    changelist = reverse("admin:vector_stores_vectorstore_changelist")
    page = root.get(changelist)
    assert page.status_code == 200
    assert len(page.context["cl"].result_list) == 3
    assert "2,500 / 10,000 bytes (25.0%)" in page.content.decode()
    assert root.get(reverse("admin:vector_stores_vectorstore_add")).status_code == 403
    change = root.get(reverse("admin:vector_stores_vectorstore_change", args=[own.pk]))
    assert change.status_code == 200 and "2,500 / 10,000 bytes" in change.content.decode()

    admin = _client()
    MembershipFactory(organization=mine.organization, user=admin.user, role=Role.ORG_ADMIN)  # type: ignore[attr-defined]
    scoped = admin.get(changelist)
    assert scoped.status_code == 200
    assert {s.store_id for s in scoped.context["cl"].result_list} == {
        own.store_id,
        f"vs_{mine.pk}_1500",
    }
    other_page = admin.get(reverse("admin:vector_stores_vectorstore_change", args=[other.pk]))
    assert other_page.status_code == 404
