"""Admin list filters offer a scoped admin their own objects only (issue 14, finding 13).

Organization B's objects all carry "Borealis" in their names. An admin of organizations A and A2
(two, so that Django shows the organization filters) and a team admin of A sign in and read
every changelist open to them: no B name may appear, in the rows or in the filters.
"""

from __future__ import annotations

import pytest
from django.test import Client

from keys.services import key_create
from tenants.models import EndCustomer, Role, User
from tenants.scim.services import scim_token_create
from tests.factories import (
    MembershipFactory,
    ModelDeploymentFactory,
    OrganizationFactory,
    TeamFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

FOREIGN = "Borealis"
# Changelist → the filter query string that offers the caller's own organization A2 (or team).
CHANGELISTS = {
    "/admin/tenants/team/": "organization__id__exact={a2}",
    "/admin/tenants/user/": "memberships__organization__id__exact={a2}",
    "/admin/tenants/membership/": "organization__id__exact={a2}",
    "/admin/tenants/endcustomer/": "organization__id__exact={a2}",
    "/admin/tenants/scimtoken/": "organization__id__exact={a2}",
    "/admin/keys/virtualkey/": "team__id__exact={a2_team}",
    "/admin/gateway/modeldeployment/": "organization__id__exact={a2}",
}


def _tenant(name: str, slug: str) -> dict[str, object]:
    organization = OrganizationFactory(name=f"{name} Org", slug=slug)
    team = TeamFactory(organization=organization, name=f"{name} Team", slug=f"{slug}-team")
    user = UserFactory(username=f"{slug}-user")
    MembershipFactory(user=user, organization=organization, team=team, role=Role.MEMBER)
    EndCustomer.objects.create(organization=organization, external_id=f"{slug}-customer")
    scim_token_create(organization=organization, name=f"{name} token")
    key_create(name=f"{name} key", team=team)
    ModelDeploymentFactory(model_name=f"{slug}-model", organization=organization)
    return {"organization": organization, "team": team}


def _signed_in(user: User) -> Client:
    user.save(update_fields=["password"])  # the factory sets it after its own save
    client = Client()
    client.force_login(user)
    return client


def _admin(username: str, **membership: object) -> Client:
    user = UserFactory(username=username)
    MembershipFactory(user=user, **membership)
    return _signed_in(user)


@pytest.fixture
def tenants() -> dict[str, dict[str, object]]:
    # B first, so its rows come before A's wherever the admin would list every row.
    b = _tenant(FOREIGN, "borealis")
    a = _tenant("Aurora", "aurora")
    a2 = _tenant("Austral", "austral")
    return {"a": a, "a2": a2, "b": b}


@pytest.mark.parametrize("path", CHANGELISTS)
def test_org_admin_changelists_name_nothing_of_other_tenants(
    tenants: dict[str, dict[str, object]], path: str
) -> None:
    client = _admin("aurora-admin", organization=tenants["a"]["organization"], role="org_admin")
    MembershipFactory(
        user=User.objects.get(username="aurora-admin"),
        organization=tenants["a2"]["organization"],
        role=Role.ORG_ADMIN,
    )
    response = client.get(path)
    assert response.status_code == 200
    page = response.content.decode()
    assert FOREIGN not in page
    assert FOREIGN.lower() not in page
    own = CHANGELISTS[path].format(
        a2=tenants["a2"]["organization"].pk, a2_team=tenants["a2"]["team"].pk
    )
    assert f"?{own}" in page


def test_team_admin_key_filters_name_only_their_team(
    tenants: dict[str, dict[str, object]],
) -> None:
    a = tenants["a"]
    other = TeamFactory(organization=a["organization"], name="Sibling Team", slug="sibling")
    client = _admin(
        "aurora-lead", organization=a["organization"], team=a["team"], role="team_admin"
    )
    page = client.get("/admin/keys/virtualkey/").content.decode()
    assert FOREIGN not in page and FOREIGN.lower() not in page
    assert "Austral" not in page and "austral" not in page  # another of the organizations
    assert str(other) not in page  # a team of their organization they do not administer


def test_proxy_admin_filters_list_every_tenant(tenants: dict[str, dict[str, object]]) -> None:
    client = _signed_in(UserFactory(username="root", is_superuser=True))
    page = client.get("/admin/tenants/team/").content.decode()
    assert f"{FOREIGN} Org" in page and "Aurora Org" in page
