"""The admin deployment form applies the same rules as /api/v1/models: an organization's
upstream stays outside the operator's network, operator-only params and the organization's
upstream_networks are for proxy admins, and no price is below zero (deployment params and
billing.ModelPrice alike)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from billing.models import ModelPrice
from gateway.models import ModelDeployment
from tenants.models import Organization, Role, User
from tests.admin.forms import deployment_form
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

ADD = "/admin/gateway/modeldeployment/add/"


def _signed_in(user: User) -> Client:
    user.save(update_fields=["password"])
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def organization() -> Organization:
    return OrganizationFactory(name="Org A", slug="org-a")


@pytest.fixture
def org_admin(organization: Organization) -> Client:
    user = UserFactory(username="org-admin", is_staff=True)
    MembershipFactory(user=user, organization=organization, role=Role.ORG_ADMIN)
    return _signed_in(user)


@pytest.fixture
def superuser() -> Client:
    return _signed_in(UserFactory(username="root", is_superuser=True, is_staff=True))


def _form(organization: Organization | None, api_base: str, params: str = "{}") -> dict[str, Any]:
    return deployment_form(
        model_name="tenant-model",
        organization=organization.pk if organization else "",
        api_base=api_base,
        params=params,
    )


def _errors(response: Any) -> dict[str, list[str]]:
    form = response.context["adminform"].form
    return {field: list(messages) for field, messages in form.errors.items()}


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://0.0.0.0:8080/v1", "0.0.0.0"),
        ("http://127.0.0.1:6379", "127.0.0.1"),
        ("http://localhost:6379", "localhost"),
        ("http://10.0.0.7/v1", "10.0.0.7"),
    ],
)
def test_an_org_admin_cannot_point_a_deployment_inside_the_network(
    org_admin: Client, superuser: Client, organization: Organization, url: str, host: str
) -> None:
    response = org_admin.post(ADD, _form(organization, url))
    assert response.status_code == 200  # the form again, with the error
    assert _errors(response) == {
        "api_base": [
            f"The host {host!r} resolves to a loopback, private, link-local or other non-public "
            "address, which an organization's deployment may not reach (a proxy admin can "
            "allow a network in the organization's upstream_networks)."
        ]
    }
    assert not ModelDeployment.objects.exists()
    # A proxy admin's shared deployment is the operator's own: not checked.
    shared = superuser.post(ADD, _form(None, url))
    assert shared.status_code == 302
    assert ModelDeployment.objects.get().api_base == url


def test_a_public_upstream_is_accepted(org_admin: Client, organization: Organization) -> None:
    response = org_admin.post(ADD, _form(organization, "https://93.184.215.14/v1"))
    assert response.status_code == 302
    assert ModelDeployment.objects.get().organization == organization


def test_operator_only_params_are_refused_from_an_org_admin(
    org_admin: Client, superuser: Client, organization: Organization
) -> None:
    params = '{"allow_private_urls": true}'
    response = org_admin.post(ADD, _form(organization, "https://93.184.215.14/v1", params))
    assert _errors(response) == {"params": ["allow_private_urls can only be set by a proxy admin."]}
    assert (
        superuser.post(ADD, _form(organization, "https://93.184.215.14/v1", params)).status_code
        == 302
    )
    assert ModelDeployment.objects.get().params == {"allow_private_urls": True}


def test_negative_prices_are_refused(
    org_admin: Client, superuser: Client, organization: Organization
) -> None:
    params = '{"input_cost_per_token": -1, "output_cost_per_token": 0.000002}'
    for client, owner in ((org_admin, organization), (superuser, None)):
        response = client.post(ADD, _form(owner, "https://93.184.215.14/v1", params))
        assert _errors(response) == {
            "params": ["input_cost_per_token must be a price of 0 or more, got -1"]
        }
    assert not ModelDeployment.objects.exists()


def test_upstream_networks_are_set_by_proxy_admins_only(
    org_admin: Client, superuser: Client, organization: Organization
) -> None:
    change = f"/admin/tenants/organization/{organization.pk}/change/"
    page = org_admin.get(change)
    assert page.status_code == 200
    assert b'name="upstream_networks"' not in page.content  # shown read-only
    form = superuser.get(change).context["adminform"].form
    data = {name: form[name].value() or "" for name in form.fields}
    data.update(
        {
            "upstream_networks": '["10.20.0.0/16"]',
            "teams-TOTAL_FORMS": "0",
            "teams-INITIAL_FORMS": "0",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        }
    )
    saved = superuser.post(change, data)
    assert saved.status_code == 302, _errors(saved)
    organization.refresh_from_db()
    assert organization.upstream_networks == ["10.20.0.0/16"]
    inside = org_admin.post(ADD, _form(organization, "http://10.20.3.4:8000/v1"))
    assert inside.status_code == 302
    assert ModelDeployment.objects.get().api_base == "http://10.20.3.4:8000/v1"


def test_model_prices_below_zero_are_refused(superuser: Client) -> None:
    response = superuser.post(
        "/admin/billing/modelprice/add/",
        {
            "model": "gpt-4o",
            "provider": "openai",
            "input_cost_per_token": "-0.000001",
            "output_cost_per_token": "0.000002",
            "cost_per_image": '{"1024x1024": -0.04}',
            "source": "",
        },
    )
    assert response.status_code == 200
    assert _errors(response) == {
        "input_cost_per_token": [
            "input_cost_per_token must be a price of 0 or more, got -0.000001"
        ],
        "cost_per_image": ["cost_per_image.1024x1024 must be a price of 0 or more, got -0.04"],
    }
    assert not ModelPrice.objects.exists()
