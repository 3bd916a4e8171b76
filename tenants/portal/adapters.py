from __future__ import annotations

import logging
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings
from django.http import HttpRequest

from ogem_site.crypto import DecryptionError, secret_decrypt, secret_is_encrypted
from tenants.audit import audit_actor, audit_client_ip
from tenants.models import AuditSurface
from tenants.portal.selectors import identity_provider_for_app
from tenants.portal.services import identity_provider_membership_grant

logger = logging.getLogger("ogem.portal")


class PortalAccountAdapter(DefaultAccountAdapter):
    """Accounts come from admin, SCIM or SSO; self-service sign-up only when enabled."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return bool(settings.OGEM_PORTAL_SIGNUP)


class PortalSocialAccountAdapter(DefaultSocialAccountAdapter):
    """Signing in through an organization's IdP makes the person a member of it (just in time)."""

    def is_open_for_signup(self, request: HttpRequest, sociallogin: Any) -> bool:
        # The IdP vouches for the person; what they may reach comes from memberships.
        return True

    def list_apps(
        self, request: HttpRequest, provider: Any = None, client_id: Any = None
    ) -> list[Any]:
        # Client secrets are stored encrypted (tenants/portal/admin.py); allauth gets them clear,
        # in memory, for the sign-in at hand.
        apps = super().list_apps(request, provider=provider, client_id=client_id)
        for app in apps:
            if app.pk and secret_is_encrypted(app.secret):
                try:
                    app.secret = secret_decrypt(app.secret)
                except DecryptionError:
                    logger.error("the client secret of social app %s cannot be decrypted", app.pk)
                    app.secret = ""
        return apps

    def save_user(self, request: HttpRequest, sociallogin: Any, form: Any = None) -> Any:
        user = super().save_user(request, sociallogin, form)
        self._grant(request, sociallogin, user)
        return user

    def pre_social_login(self, request: HttpRequest, sociallogin: Any) -> None:
        super().pre_social_login(request, sociallogin)
        if sociallogin.is_existing:
            self._grant(request, sociallogin, sociallogin.user)

    def _grant(self, request: HttpRequest, sociallogin: Any, user: Any) -> None:
        app = getattr(sociallogin.provider, "app", None)
        provider_id = getattr(app, "provider_id", "") or ""
        if not provider_id:
            return
        identity_provider = identity_provider_for_app(provider_id=provider_id)
        if identity_provider is None:
            return
        with audit_actor(
            actor=f"sso:{provider_id}",
            surface=AuditSurface.PORTAL,
            user_id=user.pk,
            ip_address=audit_client_ip(request=request),
        ):
            identity_provider_membership_grant(identity_provider=identity_provider, user=user)
