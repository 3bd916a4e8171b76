"""Which Channels groups a portal page joins (ogem_site/portal/consumers.py): its user's own
organizations, teams and self, never another tenant's."""

from __future__ import annotations

import pytest

from tests.batches.test_live_updates import _tenants
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_the_groups_a_page_joins_are_its_users_own() -> None:
    from ogem_site.portal.consumers import live_groups_for_user
    from tenants.models import Role

    member, other, _, team = _tenants()
    # A team member sees the batches and usage of their own keys only.
    assert live_groups_for_user(user=member) == [f"portal.user.{member.pk}"]
    lead = UserFactory()
    MembershipFactory(user=lead, organization=team.organization, team=team, role=Role.TEAM_ADMIN)
    assert live_groups_for_user(user=lead) == [f"portal.team.{team.pk}", f"portal.user.{lead.pk}"]
    admin = UserFactory()
    MembershipFactory(user=admin, organization=team.organization, role=Role.ORG_ADMIN)
    assert live_groups_for_user(user=admin) == [
        f"portal.org.{team.organization_id}",
        f"portal.user.{admin.pk}",
    ]
    assert f"portal.org.{other.memberships.get().organization_id}" not in live_groups_for_user(
        user=admin
    )
