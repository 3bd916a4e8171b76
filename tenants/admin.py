"""Django admin for the people who run organizations: orgs, teams, users, memberships.

Scoped to the caller like every Ogem admin (tenants/admin_scope.py). Keys listed on a team's page
are added by keys/admin.py, the app that owns them.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

# Admins kept beside what they show; importing them registers them with the site.
import tenants.admin_audit
import tenants.portal.admin  # noqa: F401  organization identity providers
from tenants.admin_scope import (
    ScopedAdminMixin,
    ScopedInlineMixin,
    admin_scope_ids,
    render_secrets,
)
from tenants.catalog import (
    guardrails_foreign_message,
    models_outside_message,
    models_unknown_message,
)
from tenants.dependents import tenant_changed
from tenants.models import (
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
    principal_can_grant,
    team_list,
    user_list,
)


class MembershipInline(ScopedInlineMixin, admin.TabularInline):
    selector = staticmethod(membership_list)
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


class TeamInline(ScopedInlineMixin, admin.TabularInline):
    selector = staticmethod(team_list)
    model = Team
    extra = 0
    fields = ["name", "slug", "external_id", "created_at"]
    readonly_fields = ["created_at"]
    show_change_link = True


class OrganizationForm(forms.ModelForm):
    class Meta:
        model = Organization
        fields = "__all__"  # noqa: DJ007  the admin page chooses what it shows

    def clean_allowed_models(self) -> list[str]:
        value = self.cleaned_data.get("allowed_models") or []
        problem = _models_problem(value, organization_id=self.instance.pk)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def clean_metadata(self) -> Any:
        value = self.cleaned_data.get("metadata")
        problem = guardrails_foreign_message(metadata=value, organization_id=self.instance.pk)
        if problem:
            raise forms.ValidationError(problem)
        return value


class TeamForm(forms.ModelForm):
    class Meta:
        model = Team
        fields = "__all__"  # noqa: DJ007  the admin page chooses what it shows

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        organization = data.get("organization")
        models = data.get("allowed_models") or []
        if organization is not None and "allowed_models" in self.changed_data:
            problem = _models_problem(models, organization_id=organization.pk) or (
                models_outside_message(
                    entries=models,
                    bounds=[("organization", organization.allowed_models)],
                    organization_id=organization.pk,
                )
            )
            if problem:
                self.add_error("allowed_models", problem)
        if "metadata" in self.changed_data or "organization" in self.changed_data:
            problem = guardrails_foreign_message(
                metadata=data.get("metadata"),
                organization_id=organization.pk if organization is not None else None,
            )
            if problem:
                self.add_error("metadata", problem)
        return data


def _models_problem(value: Any, *, organization_id: int | None) -> str | None:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return 'Give a list of model names, e.g. ["gpt-4o", "claude"].'
    return models_unknown_message(entries=value, organization_id=organization_id)


class TenantChangedMixin:
    """Admin of a tenant whose keys' cached callers carry its routing settings: a change, or a
    deletion (its keys go with it), is announced to the apps built on it (tenants.dependents)."""

    tenant_scope: str  # the keyword of tenant_changed: "organization" or "team"

    def _changed(self, obj: Any) -> None:
        tenant_changed(**{self.tenant_scope: obj})

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)  # type: ignore[misc]
        if change:
            self._changed(obj)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self._changed(obj)
        super().delete_model(request, obj)  # type: ignore[misc]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for item in queryset:
            self._changed(item)
        super().delete_queryset(request, queryset)  # type: ignore[misc]


@admin.register(Organization)
class OrganizationAdmin(TenantChangedMixin, ScopedAdminMixin, admin.ModelAdmin):
    tenant_scope = "organization"
    form = OrganizationForm
    selector = staticmethod(organization_list)
    scoped_access = "org"
    scoped_can_add = False
    scoped_can_delete = False
    list_display = ["name", "slug", "team_count", "member_count", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]
    date_hierarchy = "created_at"
    inlines = [TeamInline, MembershipInline]
    actions = ["issue_scim_token"]
    # Links to the spend dashboard (the change page's filtered on the organization or team).
    change_list_template = "admin/ogem/change_list_spend.html"
    change_form_template = "admin/ogem/change_form_spend.html"

    def scoped_choices(self, *, principal: Principal, team_admin: bool) -> QuerySet[Organization]:
        org_ids, team_ids = admin_scope_ids(principal=principal, team_admin=team_admin)
        team_org_ids = {principal.team_orgs[team] for team in team_ids}
        return Organization.objects.filter(pk__in=org_ids | team_org_ids)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Organization]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                _teams=Count("teams", distinct=True),
                _members=Count("memberships__user", distinct=True),
            )
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The slug is what IdP tokens' organization claims name, upstream_networks open the
        # operator's network to the organization's deployments, and allowed_models bound every
        # key of the organization: only proxy admins change them.
        readonly = list(super().get_readonly_fields(request, obj))
        if self._is_proxy_admin(request):
            return readonly
        return [*readonly, "slug", "upstream_networks", "allowed_models"]

    def get_prepopulated_fields(self, request: HttpRequest, obj: Any = None) -> dict[str, Any]:
        return (
            super().get_prepopulated_fields(request, obj) if self._is_proxy_admin(request) else {}
        )

    @admin.display(description="Teams", ordering="_teams")
    def team_count(self, organization: Organization) -> int:
        return organization._teams

    @admin.display(description="Members", ordering="_members")
    def member_count(self, organization: Organization) -> int:
        return organization._members

    @admin.action(description="Issue a SCIM token (shown once)", permissions=["change"])
    def issue_scim_token(
        self, request: HttpRequest, queryset: QuerySet[Organization]
    ) -> TemplateResponse:
        secrets = []
        for organization in self.writable_or_deny(request, queryset):
            _, secret = scim_token_create(organization=organization, name="issued in admin")
            secrets.append((organization.name, secret))
        return render_secrets(
            request,
            title="New SCIM tokens",
            secrets=secrets,
            back_url=request.get_full_path(),
        )


@admin.register(Team)
class TeamAdmin(TenantChangedMixin, ScopedAdminMixin, admin.ModelAdmin):
    tenant_scope = "team"
    form = TeamForm
    selector = staticmethod(team_list)
    scoped_access = "org"
    list_display = ["name", "organization", "slug", "external_id", "created_at"]
    list_filter = ["organization"]
    list_select_related = ["organization"]
    search_fields = ["name", "slug", "organization__name", "external_id"]
    autocomplete_fields = ["organization"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]
    change_list_template = "admin/ogem/change_list_spend.html"
    change_form_template = "admin/ogem/change_form_spend.html"
    inlines = [TeamMembershipInline]  # keys/admin.py adds the team's keys

    def scoped_choices(self, *, principal: Principal, team_admin: bool) -> QuerySet[Team]:
        org_ids, team_ids = admin_scope_ids(principal=principal, team_admin=team_admin)
        return Team.objects.filter(Q(organization_id__in=org_ids) | Q(pk__in=team_ids))


@admin.register(User)
class UserAdmin(ScopedAdminMixin, DjangoUserAdmin):
    selector = staticmethod(user_list)
    # Org admins read their members here; roles are granted as memberships, never user flags.
    scoped_access = "org"
    scoped_read_only = True
    list_display = ["username", "email", "display_name", "is_active", "is_superuser", "last_login"]
    list_filter = ["is_active", "is_superuser", "memberships__organization"]
    search_fields = ["username", "email", "display_name", "first_name", "last_name"]
    fieldsets = (
        *DjangoUserAdmin.fieldsets,
        ("Ogem", {"fields": ("display_name",)}),
    )
    inlines = [UserMembershipInline]

    def scoped_choices(self, *, principal: Principal, team_admin: bool) -> QuerySet[User]:
        return user_list(principal=principal)


@admin.register(Membership)
class MembershipAdmin(ScopedAdminMixin, admin.ModelAdmin):
    selector = staticmethod(membership_list)
    scoped_access = "org"
    list_display = ["user", "organization", "team", "role", "created_at"]
    list_filter = ["role", "organization"]
    list_select_related = ["user", "organization", "team"]
    search_fields = ["user__username", "user__email", "organization__name", "team__name"]
    autocomplete_fields = ["user", "organization", "team"]
    readonly_fields = ["created_at"]

    def scope_errors(
        self, principal: Principal, data: dict[str, Any], instance: Any
    ) -> list[tuple[str | None, str]]:
        errors = super().scope_errors(principal, data, instance)
        organization = data.get("organization")
        if errors or organization is None:
            return errors
        # Nobody grants (or takes away) a role stronger than their own.
        roles = {data.get("role")}
        if instance.pk is not None:
            roles.add(instance.role)
        for role in roles - {None}:
            if not principal_can_grant(
                principal=principal, organization_id=organization.pk, role=role
            ):
                return [("role", "You may not grant or change this role.")]
        return []

    def scoped_writable(self, principal: Principal, obj: Any) -> bool:
        return principal_can_grant(
            principal=principal, organization_id=obj.organization_id, role=obj.role
        )


@admin.register(EndCustomer)
class EndCustomerAdmin(ScopedAdminMixin, admin.ModelAdmin):
    selector = staticmethod(end_customer_list)
    scoped_access = "org"
    list_display = ["external_id", "alias", "organization", "blocked", "created_at"]
    list_filter = ["blocked", "organization"]
    search_fields = ["external_id", "alias"]
    autocomplete_fields = ["organization"]
    readonly_fields = ["created_at"]

    def scoped_choices(self, *, principal: Principal, team_admin: bool) -> QuerySet[EndCustomer]:
        return EndCustomer.objects.filter(organization_id__in=principal.admin_org_ids())


@admin.register(ScimToken)
class ScimTokenAdmin(ScopedAdminMixin, admin.ModelAdmin):
    """Tokens are issued from the organization list (action) so the secret can be shown once."""

    scoped_access = "org"

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

    @admin.action(description="Revoke selected SCIM tokens", permissions=["change"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ScimToken]) -> None:
        tokens = self.writable_or_deny(request, queryset)
        for token in tokens:
            scim_token_revoke(token=token)
        self.message_user(request, f"Revoked {len(tokens)} token(s).", messages.SUCCESS)
