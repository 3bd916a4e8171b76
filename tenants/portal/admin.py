"""Admin for organization identity providers and their OIDC clients (allauth's Social apps).

A client secret is write-only: stored encrypted (ogem_site/crypto.py), shown as set / not set.
"""

from __future__ import annotations

from typing import Any

from allauth.socialaccount.admin import SocialAppAdmin, SocialAppForm
from allauth.socialaccount.models import SocialApp
from django import forms
from django.contrib import admin
from django.http import HttpRequest

from tenants.admin_scope import ScopedAdminMixin
from tenants.models import OrganizationIdentityProvider
from tenants.portal.services import SOCIAL_APP_SECRET_MAX, social_app_secret_set


class OrganizationIdentityProviderForm(forms.ModelForm):
    class Meta:
        model = OrganizationIdentityProvider
        fields = [
            "organization",
            "social_app",
            "domains",
            "default_role",
            "default_team",
            "enabled",
        ]
        help_texts = {
            "social_app": "An OpenID Connect social application (its provider ID names the "
            "callback /accounts/oidc/<provider ID>/login/callback/ to register at the IdP), or a "
            "SAML one (its client ID names the service provider: metadata at "
            "/accounts/saml/<client ID>/metadata/, assertions at /accounts/saml/<client ID>/acs/).",
            "domains": 'Email domains sent to this IdP by the sign-in page, e.g. ["acme.com"].',
        }

    def clean_domains(self) -> list[str]:
        domains = self.cleaned_data["domains"] or []
        if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
            raise forms.ValidationError('Give a list of domains, e.g. ["acme.com"].')
        cleaned = sorted({d.strip().lower().lstrip("@") for d in domains if d.strip()})
        taken = OrganizationIdentityProvider.objects.exclude(pk=self.instance.pk)
        for other in taken:
            clash = set(cleaned) & {d.lower() for d in other.domains}
            if clash:
                raise forms.ValidationError(
                    f"{', '.join(sorted(clash))} already signs in through "
                    f"{other.organization.name} ({other.social_app.name})."
                )
        return cleaned

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        team, organization = data.get("default_team"), data.get("organization")
        if (
            team is not None
            and organization is not None
            and team.organization_id != organization.pk
        ):
            self.add_error("default_team", "The team belongs to another organization.")
        provider = data.get("social_app")
        if provider is not None and provider.provider not in ("openid_connect", "saml"):
            self.add_error("social_app", "Only OpenID Connect and SAML applications are supported.")
        if provider is not None and not provider.provider_id:
            self.add_error("social_app", "Give the application a provider ID.")
        return data


@admin.register(OrganizationIdentityProvider)
class OrganizationIdentityProviderAdmin(ScopedAdminMixin, admin.ModelAdmin):
    form = OrganizationIdentityProviderForm
    list_display = ["organization", "social_app", "domain_list", "default_role", "enabled"]
    list_filter = ["enabled", "default_role", "organization"]
    search_fields = ["organization__name", "social_app__name", "social_app__provider_id"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["default_team"]
    readonly_fields = ["created_at"]
    fields = [
        "organization",
        "social_app",
        "domains",
        "default_role",
        "default_team",
        "enabled",
        "created_at",
    ]

    @admin.display(description="Email domains")
    def domain_list(self, provider: OrganizationIdentityProvider) -> str:
        return ", ".join(provider.domains)


class EncryptedSocialAppForm(SocialAppForm):
    secret = forms.CharField(
        label="Client secret",
        required=False,
        strip=True,
        max_length=SOCIAL_APP_SECRET_MAX,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    clear_secret = forms.BooleanField(label="Remove the client secret", required=False)

    class Meta(SocialAppForm.Meta):
        widgets = {
            name: widget for name, widget in SocialAppForm.Meta.widgets.items() if name != "secret"
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial["secret"] = ""
        self.fields["secret"].help_text = (
            "Set: leave empty to keep it, type a new one to replace it."
            if self.instance.secret
            else "Not set."
        )

    def new_secret(self) -> str | None:
        """None keeps the stored secret; "" removes it."""
        if self.cleaned_data.get("clear_secret"):
            return ""
        return self.cleaned_data.get("secret") or None


admin.site.unregister(SocialApp)


@admin.register(SocialApp)
class EncryptedSocialAppAdmin(SocialAppAdmin):
    form = EncryptedSocialAppForm

    def save_model(
        self, request: HttpRequest, obj: SocialApp, form: EncryptedSocialAppForm, change: bool
    ) -> None:
        # The form put what was typed (or nothing) in obj.secret: start again from the stored one.
        obj.secret = SocialApp.objects.get(pk=obj.pk).secret if change else ""
        social_app_secret_set(app=obj, secret=form.new_secret())
        super().save_model(request, obj, form, change)
