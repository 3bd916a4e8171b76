from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from rest_framework import exceptions
from rest_framework.test import APIRequestFactory

from tenants.authentication import OIDCAuthentication
from tenants.models import Role
from tenants.oidc import (
    OIDCTokenError,
    oidc_principal,
    oidc_token_validate,
    oidc_token_validate_async,
)
from tests.factories import OrganizationFactory, TeamFactory
from tests.oidc.conftest import AUDIENCE, LocalIdP


def _refused(token: str, message: str) -> None:
    with pytest.raises(OIDCTokenError) as excinfo:
        oidc_token_validate(token=token)
    assert str(excinfo.value) == message


def test_valid_rs256_token_maps_claims(idp: LocalIdP) -> None:
    token = idp.token(
        ogem_org="acme", ogem_teams=["ml", "search"], ogem_role="gw-admins", email="a@acme.io"
    )

    claims = oidc_token_validate(token=token)

    assert claims.subject == "svc-billing"
    assert claims.issuer == idp.issuer
    assert claims.organization == "acme"
    assert claims.teams == ("ml", "search")
    assert claims.role == Role.ORG_ADMIN
    assert claims.email == "a@acme.io"
    assert idp.requests == ["/jwks.json"]


def test_valid_es256_token(idp: LocalIdP) -> None:
    idp.add_key("ec1", "ec")
    claims = oidc_token_validate(token=idp.token("ec1", ogem_org="acme"))
    assert claims.organization == "acme"
    assert claims.role == Role.MEMBER  # no role claim: the configured default


def test_jwks_is_cached_between_tokens(idp: LocalIdP) -> None:
    for subject in ("a", "b", "c"):
        assert oidc_token_validate(token=idp.token(sub=subject)).subject == subject
    assert idp.requests == ["/jwks.json"]


def test_expired_token_is_refused(idp: LocalIdP) -> None:
    now = int(time.time())
    _refused(idp.token(exp=now - 31, iat=now - 600, nbf=now - 600), "the token has expired")


def test_expiry_within_leeway_is_accepted(idp: LocalIdP) -> None:
    now = int(time.time())
    token = idp.token(exp=now - 10, iat=now - 600, nbf=now - 600)
    assert oidc_token_validate(token=token).subject == "svc-billing"


def test_token_without_expiry_is_refused(idp: LocalIdP) -> None:
    with pytest.raises(OIDCTokenError, match="exp"):
        oidc_token_validate(token=idp.token(exp=None))


def test_not_yet_valid_token_is_refused(idp: LocalIdP) -> None:
    _refused(idp.token(nbf=int(time.time()) + 120), "the token is not valid yet")


def test_wrong_audience_is_refused(idp: LocalIdP) -> None:
    _refused(idp.token(aud="another-api"), "the token is not meant for this audience")


def test_one_of_several_audiences_is_accepted(idp: LocalIdP) -> None:
    assert oidc_token_validate(token=idp.token(aud=["other", AUDIENCE])).subject == "svc-billing"


def test_wrong_issuer_is_refused(idp: LocalIdP) -> None:
    _refused(idp.token(iss="https://evil.example.com"), "the token comes from another issuer")


def test_bad_signature_is_refused(idp: LocalIdP) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _refused(idp.token("k1", signing_key=forger), "the token's signature does not verify")


def test_tampered_payload_is_refused(idp: LocalIdP) -> None:
    header, _, signature = idp.token(ogem_role="member").split(".")
    forged_payload = jwt.utils.base64url_encode(
        b'{"iss":"%s","aud":"%s","sub":"x","exp":9999999999,"ogem_role":"proxy_admin"}'
        % (idp.issuer.encode(), AUDIENCE.encode())
    ).decode()
    _refused(f"{header}.{forged_payload}.{signature}", "the token's signature does not verify")


def test_symmetric_and_unsigned_algorithms_are_refused(idp: LocalIdP) -> None:
    now = int(time.time())
    claims = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "x", "exp": now + 60}
    hs256 = jwt.encode(claims, "a-shared-secret-of-32-bytes-long!", algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")
    for token in (hs256, unsigned):
        _refused(token, "the token's algorithm must be one of RS256, ES256")
    assert idp.requests == []


def test_algorithm_must_match_key_type(idp: LocalIdP) -> None:
    idp.add_key("ec1", "ec")
    ec_signed_as_k1 = idp.token("k1", signing_key=idp.keys["ec1"], algorithm="ES256")
    _refused(ec_signed_as_k1, "the token's algorithm does not match its key")


def test_unknown_kid_refreshes_jwks_once_then_refuses(idp: LocalIdP) -> None:
    oidc_token_validate(token=idp.token("k1"))
    idp.add_key("rogue", publish=False)

    _refused(idp.token("rogue"), "the token is signed with an unknown key")
    assert idp.requests == ["/jwks.json", "/jwks.json"]

    # Within the refresh interval another unknown kid does not reach the IdP again.
    _refused(idp.token("rogue"), "the token is signed with an unknown key")
    assert idp.requests == ["/jwks.json", "/jwks.json"]


def test_rotated_key_is_found_by_one_refresh(idp: LocalIdP) -> None:
    oidc_token_validate(token=idp.token("k1"))
    idp.add_key("k2")

    assert oidc_token_validate(token=idp.token("k2", sub="rotated")).subject == "rotated"
    assert idp.requests == ["/jwks.json", "/jwks.json"]


def test_discovery_finds_the_jwks(idp: LocalIdP, settings) -> None:  # type: ignore[no-untyped-def]
    settings.OGEM_OIDC_JWKS_URL = ""
    assert oidc_token_validate(token=idp.token()).subject == "svc-billing"
    assert oidc_token_validate(token=idp.token()).subject == "svc-billing"
    assert idp.requests == ["/.well-known/openid-configuration", "/jwks.json"]


async def test_async_variant_validates_and_refuses(idp: LocalIdP) -> None:
    claims = await oidc_token_validate_async(token=idp.token(ogem_org="acme"))
    assert claims.organization == "acme"
    with pytest.raises(OIDCTokenError, match="the token comes from another issuer"):
        await oidc_token_validate_async(token=idp.token(iss="https://evil.example.com"))
    assert idp.requests == ["/jwks.json"]


def test_role_claim_mapping(idp: LocalIdP, settings) -> None:  # type: ignore[no-untyped-def]
    def role_for(value: object) -> str | None:
        return oidc_token_validate(token=idp.token(ogem_role=value)).role

    assert role_for("gw-leads") == Role.TEAM_ADMIN
    assert role_for("viewer") == Role.VIEWER  # Ogem's own role names map to themselves
    assert role_for(["gw-users", "gw-admins", "unrelated"]) == Role.ORG_ADMIN  # the strongest
    assert role_for("unrelated") == Role.MEMBER  # the default
    settings.OGEM_OIDC_DEFAULT_ROLE = ""
    assert role_for("unrelated") is None


def test_nested_claim_paths(idp: LocalIdP, settings) -> None:  # type: ignore[no-untyped-def]
    settings.OGEM_OIDC_ROLE_CLAIM = "realm_access.roles"
    settings.OGEM_OIDC_ORG_CLAIM = "tenant.slug"
    token = idp.token(realm_access={"roles": ["gw-leads"]}, tenant={"slug": "acme"})
    claims = oidc_token_validate(token=token)
    assert (claims.organization, claims.role) == ("acme", Role.TEAM_ADMIN)


@pytest.mark.django_db
def test_principal_from_claims(idp: LocalIdP) -> None:
    organization = OrganizationFactory(slug="acme")
    ml = TeamFactory(organization=organization, slug="ml")
    TeamFactory(organization=OrganizationFactory(slug="other"), slug="search")

    lead = oidc_principal(
        claims=oidc_token_validate(
            token=idp.token(ogem_org="acme", ogem_teams=["ml", "search"], ogem_role="gw-leads")
        )
    )
    assert lead.is_proxy_admin is False
    assert lead.org_roles == {organization.pk: Role.MEMBER}
    assert lead.team_roles == {ml.pk: Role.TEAM_ADMIN}  # "search" belongs to another org
    assert lead.user.username == "oidc:svc-billing"

    admin = oidc_principal(
        claims=oidc_token_validate(token=idp.token(ogem_org="acme", ogem_role="gw-admins"))
    )
    assert admin.org_roles == {organization.pk: Role.ORG_ADMIN}
    assert admin.is_org_admin(organization.pk) is True

    with pytest.raises(OIDCTokenError, match="the token's organization is unknown"):
        oidc_principal(claims=oidc_token_validate(token=idp.token(ogem_org="nope")))
    with pytest.raises(OIDCTokenError, match="the token names no organization"):
        oidc_principal(claims=oidc_token_validate(token=idp.token()))


@pytest.mark.django_db
def test_drf_authentication_class(idp: LocalIdP) -> None:
    organization = OrganizationFactory(slug="acme")
    factory = APIRequestFactory()
    auth = OIDCAuthentication()

    good = factory.get("/api/v1/x", HTTP_AUTHORIZATION=f"Bearer {idp.token(ogem_org='acme')}")
    user, principal = auth.authenticate(good)
    assert user.username == "oidc:svc-billing"
    assert principal.org_roles == {organization.pk: Role.MEMBER}

    # Virtual keys and other schemes are left to the other authentication classes.
    assert auth.authenticate(factory.get("/", HTTP_AUTHORIZATION="Bearer sk-abc")) is None
    assert auth.authenticate(factory.get("/", HTTP_AUTHORIZATION="Basic eyJ.a.b")) is None

    expired = idp.token(ogem_org="acme", exp=int(time.time()) - 120, iat=1, nbf=1)
    with pytest.raises(exceptions.AuthenticationFailed, match="the token has expired"):
        auth.authenticate(factory.get("/", HTTP_AUTHORIZATION=f"Bearer {expired}"))


def test_audience_is_required(idp: LocalIdP, settings) -> None:  # type: ignore[no-untyped-def]
    _refused(idp.token(aud=None), 'the token is invalid: Token is missing the "aud" claim')
    settings.OGEM_OIDC_AUDIENCE = ""
    _refused(idp.token(), "OGEM_OIDC_AUDIENCE must be set to accept identity provider tokens")


def test_disabled_without_issuer(idp: LocalIdP, settings) -> None:  # type: ignore[no-untyped-def]
    settings.OGEM_OIDC_ISSUER = ""
    token = idp.token()
    request = APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert OIDCAuthentication().authenticate(request) is None
    _refused(token, "identity provider tokens are not enabled")
