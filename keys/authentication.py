"""DRF authentication for the management API: the master key or a user's virtual key."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from keys.hashing import master_key_matches
from keys.selectors import key_authenticate


class ManagementKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):  # type: ignore[no-untyped-def]
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        token = token.strip()
        if master_key_matches(token):
            from tenants.selectors import proxy_admin_principal

            principal = proxy_admin_principal()
            return (principal.user, principal)
        key = key_authenticate(secret=token)
        if key is None or key.user is None or not key.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired key.")
        from tenants.selectors import principal_for_user

        return (key.user, principal_for_user(user=key.user, via_key=key))

    def authenticate_header(self, request) -> str:  # type: ignore[no-untyped-def]
        return 'Bearer realm="ogem"'
