"""Django admin for the people who run organizations: orgs, teams, users, memberships.

Only proxy admins (superusers) use admin for now. Every ModelAdmin reads through the same
selectors as the REST API (``ScopedAdminMixin.selector``), so opening admin to org admins later
is a change of the permission methods, not of the querysets.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from tenants.audit import audit_actor, audit_actor_name, audit_client_ip
from tenants.models import (
    AuditSurface,
    EndCustomer,
    Membership,
    Organization,
    ScimToken,
    Team,
    User,
)
from tenants.principals import Principal
from tenants.scim.services import scim_token_create, scim_token_revoke
from tenants.selectors import (
    end_customer_list,
    membership_list,
    organization_list,
    principal_for_user,
    team_list,
    user_list,
)


def request_principal(request: HttpRequest) -> Principal:
    cached = getattr(request, "_ogem_principal", None)
    if cached is None:
        cached = principal_for_user(user=request.user)
        request._ogem_principal = cached
    return cached


def _audit_as(request: HttpRequest) -> AbstractContextManager[Any]:
    """Services called from admin record the signed-in user as the actor."""
    return audit_actor(
        actor=audit_actor_name(user=request.user),
        surface=AuditSurface.ADMIN,
        user_id=request.user.pk,
        ip_address=audit_client_ip(request=request),
    )


class ScopedAdminMixin:
    """Proxy admins only; querysets come from the selector of the caller's Principal."""

    selector: Callable[..., QuerySet] | None = None

    def _is_proxy_admin(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and user.is_superuser)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        principal = request_principal(request)
        if self.selector is None or principal.is_proxy_admin:
            return queryset
        return queryset.filter(pk__in=self.selector(principal=principal).values("pk"))

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with _audit_as(request):
            return super().changeform_view(request, *args, **kwargs)  # type: ignore[misc]

    def changelist_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with _audit_as(request):
            return super().changelist_view(request, *args, **kwargs)  # type: ignore[misc]

    def delete_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with _audit_as(request):
            return super().delete_view(request, *args, **kwargs)  # type: ignore[misc]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._is_proxy_admin(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_proxy_admin(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return self._is_proxy_admin(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_proxy_admin(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_proxy_admin(request)


def render_secrets(
    request: HttpRequest, *, title: str, secrets: list[tuple[str, str]], back_url: str
) -> TemplateResponse:
    """A page that shows new secrets once. Nothing is stored: reloading it shows nothing new."""
    response = TemplateResponse(
        request,
        "admin/ogem/secret_once.html",
        {
            **admin.site.each_context(request),
            "title": title,
            "secrets": secrets,
            "back_url": back_url,
        },
    )
    response["Cache-Control"] = "no-store"
    return response


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user", "team"]
    fields = ["user", "team", "role", "created_at"]
    readonly_fields = ["created_at"]


class TeamMembershipInline(MembershipInline):
    fields = ["user", "organization", "role", "created_at"]
    autocomplete_fields = ["user", "organization"]


class UserMembershipInline(MembershipInline):
    fields = ["organization", "team", "role", "created_at"]
    autocomplete_fields = ["organization", "team"]


class TeamInline(admin.TabularInline):
    model = Team
    extra = 0
    fields = ["name", "slug", "external_id", "created_at"]
    readonly_fields = ["created_at"]
    show_change_link = True


@admin.register(Organization)
class OrganizationAdmin(ScopedAdminMixin, admin.ModelAdmin):
    selector = staticmethod(organization_list)
    list_display = ["name", "slug", "team_count", "member_count", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]
    date_hierarchy = "created_at"
    inlines = [TeamInline, MembershipInline]
    actions = ["issue_scim_token"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Organization]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                _teams=Count("teams", distinct=True),
                _members=Count("memberships__user", distinct=True),
            )
        )

    @admin.display(description="Teams", ordering="_teams")
    def team_count(self, organization: Organization) -> int:
        return organization._teams

    @admin.display(description="Members", ordering="_members")
    def member_count(self, organization: Organization) -> int:
        return organization._members

    @admin.action(description="Issue a SCIM token (shown once)")
    def issue_scim_token(
        self, request: HttpRequest, queryset: QuerySet[Organization]
    ) -> TemplateResponse:
        secrets = []
        for organization in queryset:
            _, secret = scim_token_create(organization=organization, name="issued in admin")
            secrets.append((organization.name, secret))
        return render_secrets(
            request,
            title="New SCIM tokens",
            secrets=secrets,
            back_url=request.get_full_path(),
        )


@admin.register(Team)
class TeamAdmin(ScopedAdminMixin, admin.ModelAdmin):
    selector = staticmethod(team_list)
    list_display = ["name", "organization", "slug", "external_id", "created_at"]
    list_filter = ["organization"]
    list_select_related = ["organization"]
    search_fields = ["name", "slug", "organization__name", "external_id"]
    autocomplete_fields = ["organization"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]

    def get_inlines(self, request: HttpRequest, obj: Team | None) -> list[type]:
        # Keys are listed, not created, inline: a new key's secret needs its own page.
        from keys.admin import TeamKeyInline

        return [TeamMembershipInline, TeamKeyInline]


@admin.register(User)
class UserAdmin(ScopedAdminMixin, DjangoUserAdmin):
    selector = staticmethod(user_list)
    list_display = ["username", "email", "display_name", "is_active", "is_superuser", "last_login"]
    list_filter = ["is_active", "is_superuser", "memberships__organization"]
    search_fields = ["username", "email", "display_name", "first_name", "last_name"]
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        ("Ogem", {"fields": ("display_name",)}),
    )
    inlines = [UserMembershipInline]


@admin.register(Membership)
class MembershipAdmin(ScopedAdminMixin, admin.ModelAdmin):
    selector = staticmethod(membership_list)
    list_display = ["user", "organization", "team", "role", "created_at"]
    list_filter = ["role", "organization"]
    list_select_related = ["user", "organization", "team"]
    search_fields = ["user__username", "user__email", "organization__name", "team__name"]
    autocomplete_fields = ["user", "organization", "team"]
    readonly_fields = ["created_at"]


@admin.register(EndCustomer)
class EndCustomerAdmin(ScopedAdminMixin, admin.ModelAdmin):
    selector = staticmethod(end_customer_list)
    list_display = ["external_id", "alias", "organization", "blocked", "created_at"]
    list_filter = ["blocked", "organization"]
    search_fields = ["external_id", "alias"]
    autocomplete_fields = ["organization"]
    readonly_fields = ["created_at"]


@admin.register(ScimToken)
class ScimTokenAdmin(ScopedAdminMixin, admin.ModelAdmin):
    """Tokens are issued from the organization list (action) so the secret can be shown once."""

    list_display = ["organization", "name", "token_prefix", "revoked_at", "created_at"]
    list_filter = ["organization"]
    search_fields = ["organization__name", "name", "prefix"]
    fields = ["organization", "name", "token_prefix", "revoked_at", "created_at"]
    readonly_fields = ["organization", "token_prefix", "revoked_at", "created_at"]
    actions = ["revoke_tokens"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    @admin.display(description="Token")
    def token_prefix(self, token: ScimToken) -> str:
        return f"scim-{token.prefix}…"

    @admin.action(description="Revoke selected SCIM tokens")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ScimToken]) -> None:
        for token in queryset:
            scim_token_revoke(token=token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).", messages.SUCCESS)


import tenants.admin_audit  # noqa: E402, F401  registers the read-only audit log admin
