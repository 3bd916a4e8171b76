"""Secrets in admin (issue 14, findings 1 and 16): an organization's admin cannot point a
deployment at a server secret; keys, secret params and IdP client secrets are write-only, stored
encrypted and never rendered back."""

from __future__ import annotations

import pytest
from allauth.socialaccount.models import SocialApp
from django.test import Client
from django.test.client import RequestFactory

from gateway.models import Credential, ModelDeployment
from gateway.services import credential_save, deployment_create
from ogem_site.crypto import secret_decrypt, secrets_decrypt
from tenants.models import Organization, Role, User
from tenants.portal.adapters import PortalSocialAccountAdapter
from tests.admin.forms import deployment_form
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

ADD = "/admin/gateway/modeldeployment/add/"
REFUSED = (
    "An organization&#x27;s deployment cannot use an os.environ/, file:// or secret:// reference"
)


def _client(user: User) -> Client:
    user.save(update_fields=["password"])  # the factory sets it after saving
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def root() -> Client:
    return _client(UserFactory(username="root", is_superuser=True, is_staff=True))


@pytest.fixture
def organization() -> Organization:
    return OrganizationFactory(slug="acme")


@pytest.fixture
def org_admin(organization: Organization) -> Client:
    user = UserFactory(username="acme-admin")
    MembershipFactory(user=user, organization=organization, team=None, role=Role.ORG_ADMIN)
    return _client(user)


@pytest.mark.parametrize(
    "reference",
    ["os.environ/OGEM_MASTER_KEY", "secret://env/OGEM_MASTER_KEY", "file:///etc/hostname"],
)
def test_org_admin_cannot_reference_a_server_secret(
    org_admin: Client, root: Client, organization: Organization, reference: str
) -> None:
    refused = org_admin.post(
        ADD, deployment_form(organization=organization.pk, credential_ref=reference)
    )
    assert refused.status_code == 200
    assert REFUSED in refused.content.decode()
    assert not ModelDeployment.objects.exists()

    shared = root.post(ADD, deployment_form(credential_ref=reference))
    assert shared.status_code == 302
    assert ModelDeployment.objects.get().credential_ref == reference


def test_org_admin_picks_only_granted_credentials(
    org_admin: Client, organization: Organization
) -> None:
    granted = credential_save(credential=Credential(name="granted"), value="sk-granted")
    granted.organizations.add(organization)
    other = credential_save(credential=Credential(name="other"), value="sk-other")
    page = org_admin.get(ADD).content.decode()
    assert f'<option value="{granted.pk}">granted</option>' in page
    assert ">other</option>" not in page
    refused = org_admin.post(
        ADD, deployment_form(organization=organization.pk, credential=other.pk)
    )
    assert "Select a valid choice" in refused.content.decode()
    created = org_admin.post(
        ADD, deployment_form(organization=organization.pk, credential=granted.pk)
    )
    assert created.status_code == 302
    assert ModelDeployment.objects.get().credential == granted
    # Named credentials themselves are the operator's.
    assert org_admin.get("/admin/gateway/credential/").status_code == 403


def test_deployment_secrets_are_write_only(
    org_admin: Client, root: Client, organization: Organization
) -> None:
    created = org_admin.post(
        ADD,
        deployment_form(
            organization=organization.pk,
            api_key="sk-admin-plaintext-1",
            params='{"azure_ad_token": "tok-plaintext-2", "temperature": 0.5}',
        ),
    )
    assert created.status_code == 302
    row = ModelDeployment.objects.filter(model_name="exfil").values().get()
    assert "plaintext" not in str(row)
    assert secrets_decrypt(row["encrypted_secrets"]) == {
        "api_key": "sk-admin-plaintext-1",
        "azure_ad_token": "tok-plaintext-2",
    }
    change = f"/admin/gateway/modeldeployment/{row['id']}/change/"
    for client in (org_admin, root):
        page = client.get(change).content.decode()
        assert "plaintext" not in page
        assert "Set: leave empty to keep it" in page
        assert "&quot;azure_ad_token&quot;: &quot;********&quot;" in page

    # Saving the page as shown keeps both secrets.
    kept = org_admin.post(
        change,
        deployment_form(
            organization=organization.pk,
            params='{"azure_ad_token": "********", "temperature": 1}',
        ),
    )
    assert kept.status_code == 302
    stored = ModelDeployment.objects.get(pk=row["id"])
    assert stored.params == {"temperature": 1}
    assert secrets_decrypt(stored.encrypted_secrets) == {
        "api_key": "sk-admin-plaintext-1",
        "azure_ad_token": "tok-plaintext-2",
    }


def test_named_credential_value_is_write_only(root: Client) -> None:
    created = root.post(
        "/admin/gateway/credential/add/",
        {"name": "vendor", "description": "", "reference": "", "value": "sk-vendor-plaintext"},
    )
    assert created.status_code == 302
    credential = Credential.objects.get(name="vendor")
    assert "plaintext" not in credential.encrypted_value
    assert secret_decrypt(credential.encrypted_value) == "sk-vendor-plaintext"
    page = root.get(f"/admin/gateway/credential/{credential.pk}/change/").content.decode()
    assert "plaintext" not in page
    assert "Set: leave empty to keep it" in page


def test_oidc_client_secret_is_encrypted_and_write_only(root: Client) -> None:
    created = root.post(
        "/admin/socialaccount/socialapp/add/",
        {
            "provider": "openid_connect",
            "provider_id": "acme",
            "name": "Acme Okta",
            "client_id": "ogem",
            "secret": "oidc-client-plaintext",
            "key": "",
            "settings": '{"server_url": "https://idp.example"}',
            "sites": ["1"],
        },
    )
    assert created.status_code == 302
    app = SocialApp.objects.get(provider_id="acme")
    assert "plaintext" not in app.secret
    assert secret_decrypt(app.secret) == "oidc-client-plaintext"
    change = f"/admin/socialaccount/socialapp/{app.pk}/change/"
    page = root.get(change).content.decode()
    assert "plaintext" not in page
    assert "Set: leave empty to keep it" in page

    renamed = root.post(
        change,
        {
            "provider": "openid_connect",
            "provider_id": "acme",
            "name": "Acme SSO",
            "client_id": "ogem",
            "secret": "",
            "key": "",
            "settings": '{"server_url": "https://idp.example"}',
            "sites": ["1"],
        },
    )
    assert renamed.status_code == 302
    app.refresh_from_db()
    assert secret_decrypt(app.secret) == "oidc-client-plaintext"
    # allauth is handed the secret in clear, in memory, for a sign-in.
    (listed,) = PortalSocialAccountAdapter().list_apps(RequestFactory().get("/"), provider="acme")
    assert listed.secret == "oidc-client-plaintext"
    app.refresh_from_db()
    assert "plaintext" not in app.secret


def test_an_own_key_replaces_a_shared_reference_written_earlier(root: Client) -> None:
    deployment = deployment_create(
        data={
            "model_name": "m",
            "provider": "openai",
            "upstream_model": "m",
            "credential_ref": "os.environ/X",
        }
    )
    changed = root.post(
        f"/admin/gateway/modeldeployment/{deployment.pk}/change/",
        deployment_form(model_name="m", provider="openai", api_key="sk-new"),
    )
    assert changed.status_code == 302
    deployment.refresh_from_db()
    assert deployment.credential_ref == ""
    assert secrets_decrypt(deployment.encrypted_secrets) == {"api_key": "sk-new"}
