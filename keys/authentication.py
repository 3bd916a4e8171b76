"""DRF authentication for the management API: the master key or a user's virtual key.

The same order as on /v1 (gateway/auth.py): the master key, then an identity provider's token
(left to tenants.authentication.OIDCAuthentication, next in REST_FRAMEWORK's classes), then keys.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from keys.models import VirtualKey
from keys.selectors import key_authenticate
from ogem_site.hashing import KEY_PREFIX, master_key_matches
from tenants.oidc import oidc_bearer_claimed
from tenants.selectors import principal_for_user, proxy_admin_principal


def key_grants_management(*, key: VirtualKey) -> bool:
    """Whether a user's key may act as that user on /api/v1.

    Only keys the user made themselves, or that a proxy admin (or the master key: no creator)
    issued. A key an org or team admin made for someone must not let its holder act with that
    user's rights, which may reach other organizations.
    """
    if key.created_by_id is None or key.created_by_id == key.user_id:
        return True
    return type(key.user).objects.filter(pk=key.created_by_id, is_superuser=True).exists()


class ManagementKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):  # type: ignore[no-untyped-def]
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        token = token.strip()
        if master_key_matches(token):
            principal = proxy_admin_principal()
            return (principal.user, principal)
        if not token.startswith(KEY_PREFIX) and oidc_bearer_claimed(token=token):
            return None  # an identity provider's token: OIDCAuthentication verifies it
        key = key_authenticate(secret=token)
        if key is None or (key.user is not None and not key.user.is_active):
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired key.")
        if key.user is None:
            raise exceptions.PermissionDenied("This key belongs to no user: it serves /v1 only.")
        if not key_grants_management(key=key):
            raise exceptions.PermissionDenied(
                "This key was issued to its user by someone else: it serves /v1 only."
            )

        return (key.user, principal_for_user(user=key.user, via_key=key))

    def authenticate_header(self, request) -> str:  # type: ignore[no-untyped-def]
        return 'Bearer realm="ogem"'


class ManagementKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents the bearer key in the OpenAPI schema of /api/v1."""

    target_class = "keys.authentication.ManagementKeyAuthentication"
    name = "bearerKey"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The master key, or the virtual key of a user (sk-...).",
        }
