"""SAML 2.0 sign-in per organization (allauth's saml provider) against an IdP built in the test.

The IdP is the test itself: it generates its signing key and certificate, reads the SP's
AuthnRequest from the redirect, and posts back a Response signed with xmlsec (python3-saml).
"""

from __future__ import annotations

import base64
import re
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from allauth.socialaccount.models import SocialApp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.contrib.sites.models import Site
from django.http import HttpResponse
from django.test import Client
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from tenants.models import Membership, Organization, OrganizationIdentityProvider, Role, User
from tests.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

IDP_ENTITY = "https://idp.example.com/metadata"
SP = "http://testserver/accounts/saml/acme"


@dataclass
class SigningKey:
    key_pem: str
    cert_pem: str


def _signing_key() -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.example.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return SigningKey(key_pem, cert.public_bytes(serialization.Encoding.PEM).decode())


def _saml_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _response(*, request_id: str, key: SigningKey, email: str, audience: str) -> str:
    """A signed SAML Response, base64-encoded for the HTTP-POST binding."""
    now = datetime.now(UTC)
    issued, later = _saml_time(now), _saml_time(now + timedelta(minutes=5))
    before = _saml_time(now - timedelta(minutes=1))
    acs = f"{SP}/acs/"
    xml = (
        '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        f'ID="_{uuid.uuid4().hex}" Version="2.0" IssueInstant="{issued}" '
        f'Destination="{acs}" InResponseTo="{request_id}">'
        f"<saml:Issuer>{IDP_ENTITY}</saml:Issuer>"
        '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>'
        "</samlp:Status>"
        f'<saml:Assertion ID="_{uuid.uuid4().hex}" Version="2.0" IssueInstant="{issued}">'
        f"<saml:Issuer>{IDP_ENTITY}</saml:Issuer>"
        "<saml:Subject>"
        '<saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">'
        f"{email}</saml:NameID>"
        '<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
        f'<saml:SubjectConfirmationData NotOnOrAfter="{later}" Recipient="{acs}" '
        f'InResponseTo="{request_id}"/>'
        "</saml:SubjectConfirmation></saml:Subject>"
        f'<saml:Conditions NotBefore="{before}" NotOnOrAfter="{later}">'
        f"<saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience>"
        "</saml:AudienceRestriction></saml:Conditions>"
        f'<saml:AuthnStatement AuthnInstant="{issued}" SessionIndex="_session">'
        "<saml:AuthnContext><saml:AuthnContextClassRef>"
        "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"
        "</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>"
        "<saml:AttributeStatement>"
        f'<saml:Attribute Name="uid"><saml:AttributeValue>{email}</saml:AttributeValue>'
        "</saml:Attribute>"
        f'<saml:Attribute Name="email"><saml:AttributeValue>{email}</saml:AttributeValue>'
        "</saml:Attribute>"
        "</saml:AttributeStatement></saml:Assertion></samlp:Response>"
    )
    signed = OneLogin_Saml2_Utils.add_sign(
        xml,
        key.key_pem,
        key.cert_pem,
        sign_algorithm=OneLogin_Saml2_Constants.RSA_SHA256,
        digest_algorithm=OneLogin_Saml2_Constants.SHA256,
    )
    return base64.b64encode(signed if isinstance(signed, bytes) else signed.encode()).decode()


@pytest.fixture
def idp_key() -> SigningKey:
    return _signing_key()


@pytest.fixture
def acme(idp_key: SigningKey) -> Organization:
    """Organization "acme" whose people sign in through its SAML IdP, joining as members."""
    organization = OrganizationFactory(name="Acme", slug="acme")
    app = SocialApp.objects.create(
        provider="saml",
        provider_id="acme-saml",
        name="Acme SAML",
        client_id="acme",
        settings={
            "idp": {
                "entity_id": IDP_ENTITY,
                "sso_url": "https://idp.example.com/sso",
                "x509cert": idp_key.cert_pem,
            },
            "attribute_mapping": {"uid": "uid", "email": "email"},
            # The test client's host, "testserver", has no dot.
            "advanced": {"allow_single_label_domains": True},
        },
    )
    app.sites.add(Site.objects.get_current())
    OrganizationIdentityProvider.objects.create(
        organization=organization, social_app=app, domains=["acme.test"], default_role=Role.MEMBER
    )
    return organization


def _start(client: Client) -> str:
    """Discover the IdP by email, start the sign-in, and return the AuthnRequest's ID."""
    page = client.get("/sso/", {"email": "ann@acme.test", "next": "/keys/"})
    assert page.status_code == 200
    assert b'action="/accounts/saml/acme/login/"' in page.content
    redirect = client.post("/accounts/saml/acme/login/", {"next": "/keys/"})
    assert redirect.status_code == 302
    location = urlparse(redirect["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://idp.example.com/sso"
    encoded = parse_qs(location.query)["SAMLRequest"][0]
    authn_request = zlib.decompress(base64.b64decode(encoded), -15).decode()
    found = re.search(r'\bID="([^"]+)"', authn_request)
    assert found is not None
    return found.group(1)


def _post_response(client: Client, saml_response: str) -> HttpResponse:
    """Post the IdP's response to the ACS and return the finishing step's answer."""
    acs = client.post("/accounts/saml/acme/acs/", {"SAMLResponse": saml_response})
    assert acs.status_code == 302
    assert acs["Location"] == "/accounts/saml/acme/acs/finish/"
    return client.get(acs["Location"])


def test_saml_sign_in_joins_the_organization(acme: Organization, idp_key: SigningKey) -> None:
    client = Client(HTTP_HOST="testserver")
    request_id = _start(client)
    response = _response(
        request_id=request_id, key=idp_key, email="ann@acme.test", audience=f"{SP}/metadata/"
    )
    finish = _post_response(client, response)
    assert (finish.status_code, finish["Location"]) == (302, "/keys/")
    user = User.objects.get(email="ann@acme.test")
    assert list(Membership.objects.filter(user=user).values_list("organization", "role")) == [
        (acme.pk, Role.MEMBER)
    ]
    assert client.get("/keys/").status_code == 200  # signed in to the portal


@pytest.mark.parametrize(
    ("flaw", "status"),
    [("forged signature", 401), ("wrong audience", 401), ("replayed request id", 403)],
)
def test_flawed_responses_sign_nobody_in(
    acme: Organization, idp_key: SigningKey, flaw: str, status: int
) -> None:
    client = Client(HTTP_HOST="testserver")
    request_id = _start(client)
    key = _signing_key() if flaw == "forged signature" else idp_key
    audience = "https://other-sp.example.com/" if flaw == "wrong audience" else f"{SP}/metadata/"
    if flaw == "replayed request id":
        request_id = "_not-a-request-ogem-sent"
    finish = _post_response(
        client, _response(request_id=request_id, key=key, email="ann@acme.test", audience=audience)
    )
    assert finish.status_code == status
    assert not User.objects.filter(email="ann@acme.test").exists()
    assert "_auth_user_id" not in client.session


def test_saml_identity_provider_is_configured_in_admin() -> None:
    root = UserFactory(is_superuser=True)
    root.save(update_fields=["password"])
    organization = OrganizationFactory(slug="globex")
    app = SocialApp.objects.create(provider="saml", provider_id="globex-saml", client_id="globex")
    client = Client()
    client.force_login(root)
    response = client.post(
        "/admin/tenants/organizationidentityprovider/add/",
        {
            "organization": organization.pk,
            "social_app": app.pk,
            "domains": '["globex.test"]',
            "default_role": Role.MEMBER,
            "enabled": "on",
        },
    )
    assert response.status_code == 302
    assert OrganizationIdentityProvider.objects.get(social_app=app).organization == organization
