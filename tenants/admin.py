"""Django admin for the people who run organizations: orgs, teams, users, memberships.

Proxy admins (superusers) see everything; org owners/admins see and run their organizations
only (``ScopedAdminMixin``): every ModelAdmin reads through the same selectors as the REST API,
limits foreign-key choices to the caller's organizations and audits each write (surface "admin").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from keys.services import key_cache_forget
from tenants.audit import (
    audit_actor,
    audit_actor_name,
    audit_client_ip,
    audit_record,
    audit_snapshot,
)
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
    principal_can_grant,
    principal_for_user,
    team_list,
    user_list,
)

# Never copied into the audit log (audit_record redacts secrets again; these are digests).
_AUDIT_EXCLUDE = ("password", "digest", "previous_digest", "pepper_id", "previous_pepper_id")


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


def organization_id_of(obj: Any) -> int | None:
    """The organization an object belongs to (itself for an organization)."""
    if isinstance(obj, Organization):
        return obj.pk
    organization_id = getattr(obj, "organization_id", None)
    # Budgets and logs belong to their target's organization.
    for related in ("team", "key", "end_customer"):
        if organization_id is None and getattr(obj, f"{related}_id", None) is not None:
            organization_id = getattr(obj, related).organization_id
    return organization_id


class ScopedAdminMixin:
    """Admin pages scoped to the caller's Principal (the same selectors as the REST API).

    Proxy admins may do everything. ``scoped_access`` opens a page to others: ``"org"`` to org
    owners/admins, ``"team"`` to team admins too; ``None`` keeps it proxy-admin only. Scoped
    callers read what the selector gives them and write only objects of organizations (or teams)
    they administer; ``scoped_read_only`` makes the page read-only for them.
    """

    selector: Callable[..., QuerySet] | None = None
    scoped_access: str | None = None
    scoped_read_only: bool = False
    scoped_can_add: bool = True
    scoped_can_delete: bool = True

    def _is_proxy_admin(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and user.is_superuser)

    def scoped_user(self, request: HttpRequest) -> bool:
        """Whether a caller who is not a proxy admin may use this page at all."""
        if self.scoped_access is None or not request.user.is_active:
            return False
        principal = request_principal(request)
        if principal.admin_org_ids():
            return True
        return self.scoped_access == "team" and bool(principal.admin_team_ids())

    def scoped_writable(self, principal: Principal, obj: Any) -> bool:
        team_id = getattr(obj, "team_id", None)
        if self.scoped_access == "team" and team_id is not None:
            return principal.is_team_admin(team_id, organization_id_of(obj))
        return principal.is_org_admin(organization_id_of(obj))

    def scoped_queryset(self, principal: Principal, queryset: QuerySet) -> QuerySet:
        """Rows for pages without a selector: those of the organizations the caller runs."""
        return queryset.filter(organization_id__in=principal.admin_org_ids())

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        principal = request_principal(request)
        if principal.is_proxy_admin:
            return queryset
        if not self.scoped_user(request):
            return queryset.none()
        if self.selector is None:
            return self.scoped_queryset(principal, queryset)
        return queryset.filter(pk__in=self.selector(principal=principal).values("pk"))

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        # Another organization's object is not found (404), never "exists but forbidden".
        obj = super().get_object(request, object_id, from_field)  # type: ignore[misc]
        if obj is None:
            raise Http404("No such object.")
        request._ogem_audit_before = audit_snapshot(obj, exclude=_AUDIT_EXCLUDE)
        return obj

    def writable_or_deny(self, request: HttpRequest, objects: Any) -> list[Any]:
        """The objects of an action, all administered by the caller, or PermissionDenied."""
        objects = list(objects)
        principal = request_principal(request)
        if not principal.is_proxy_admin and not all(
            self.scoped_writable(principal, obj) for obj in objects
        ):
            raise PermissionDenied
        return objects

    # Choices and validation: nothing outside the caller's organizations can be picked.

    def get_list_filter(self, request: HttpRequest) -> Sequence[Any]:
        """List filters on a relation offer the caller's own objects only (see below)."""
        return [
            (item, ScopedRelatedFieldListFilter) if self._is_relation(item) else item
            for item in super().get_list_filter(request)  # type: ignore[misc]
        ]

    def _is_relation(self, item: Any) -> bool:
        if not isinstance(item, str):
            return False  # a filter class, or (field, class): chosen on purpose
        return bool(get_fields_from_path(self.model, item)[-1].is_relation)  # type: ignore[attr-defined]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        principal = request_principal(request)
        if not principal.is_proxy_admin:
            kwargs["queryset"] = admin_choices(
                principal=principal, model=db_field.related_model, team_admin=self._team_level()
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def _team_level(self) -> bool:
        return self.scoped_access == "team"

    def scope_errors(
        self, principal: Principal, data: dict[str, Any], instance: Any
    ) -> list[tuple[str | None, str]]:
        """Why the caller may not save this (field, message); empty when they may."""
        if not hasattr(self.model, "organization_id") and not hasattr(self.model, "team_id"):  # type: ignore[attr-defined]
            return []
        team = data.get("team", getattr(instance, "team", None))
        organization = data.get("organization", getattr(instance, "organization", None))
        if organization is None and team is not None:
            organization = team.organization
        mismatch = team is not None and organization is not None
        if mismatch and team.organization_id != organization.pk:
            return [("team", "The team belongs to another organization.")]
        if team is not None and self._team_level():
            if not principal.is_team_admin(team.pk, team.organization_id):
                return [("team", "You do not administer this team.")]
            return []
        if organization is None or not principal.is_org_admin(organization.pk):
            return [(None, "Choose an organization you administer.")]
        return []

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):  # type: ignore[no-untyped-def]
        form = super().get_form(request, obj, change=change, **kwargs)  # type: ignore[misc]
        principal = request_principal(request)
        if principal.is_proxy_admin:
            return form
        model_admin = self

        class ScopedForm(form):  # type: ignore[valid-type, misc]
            def clean(inner) -> dict[str, Any]:
                data = super().clean()
                for field, message in model_admin.scope_errors(principal, data, inner.instance):
                    inner.add_error(field if field in inner.fields else None, message)
                return data

        return ScopedForm

    # Every write through admin is audited with surface "admin".

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with _audit_as(request):
            return super().changeform_view(request, *args, **kwargs)  # type: ignore[misc]

    def changelist_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with _audit_as(request):
            return super().changelist_view(request, *args, **kwargs)  # type: ignore[misc]

    def delete_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with _audit_as(request):
            return super().delete_view(request, *args, **kwargs)  # type: ignore[misc]

    def _audit(self, request: HttpRequest, obj: Any, verb: str, *, before: Any, after: Any) -> None:
        audit_record(
            action=f"{obj._meta.model_name}.{verb}",
            target=obj,
            organization_id=organization_id_of(obj),
            before=before,
            after=after,
        )

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        self._audit(
            request, obj, "create", before=None, after=audit_snapshot(obj, exclude=_AUDIT_EXCLUDE)
        )
        return super().log_addition(request, obj, message)  # type: ignore[misc]

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        before = getattr(request, "_ogem_audit_before", None)
        after = audit_snapshot(obj, exclude=_AUDIT_EXCLUDE)
        if before != after:  # a save without changes is no event
            self._audit(request, obj, "update", before=before, after=after)
        return super().log_change(request, obj, message)  # type: ignore[misc]

    def log_deletions(self, request: HttpRequest, queryset: QuerySet) -> Any:
        for obj in queryset:
            self._audit(
                request,
                obj,
                "delete",
                before=audit_snapshot(obj, exclude=_AUDIT_EXCLUDE),
                after=None,
            )
        return super().log_deletions(request, queryset)  # type: ignore[misc]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._is_proxy_admin(request) or self.scoped_user(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_proxy_admin(request) or self.scoped_user(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        if self._is_proxy_admin(request):
            return True
        return self.scoped_can_add and self._scoped_writer(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if self._is_proxy_admin(request):
            return True
        if not self._scoped_writer(request):
            return False
        return obj is None or self.scoped_writable(request_principal(request), obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if self._is_proxy_admin(request):
            return True
        if not self.scoped_can_delete or not self._scoped_writer(request):
            return False
        return obj is None or self.scoped_writable(request_principal(request), obj)

    def _scoped_writer(self, request: HttpRequest) -> bool:
        return not self.scoped_read_only and self.scoped_user(request)


def admin_choices(*, principal: Principal, model: type, team_admin: bool) -> QuerySet:
    """What a scoped admin may pick for a foreign key to ``model``: their organizations' rows."""
    from gateway.models import ModelDeployment
    from keys.models import VirtualKey

    org_ids = principal.admin_org_ids()
    team_ids = principal.admin_team_ids() if team_admin else set()
    team_org_ids = {principal.team_orgs[team] for team in team_ids}
    if model is Organization:
        return Organization.objects.filter(pk__in=org_ids | team_org_ids)
    if model is Team:
        return Team.objects.filter(Q(organization_id__in=org_ids) | Q(pk__in=team_ids))
    if model is User:
        return user_list(principal=principal)
    if model is EndCustomer:
        return EndCustomer.objects.filter(organization_id__in=org_ids)
    if model is VirtualKey:
        return VirtualKey.objects.filter(Q(organization_id__in=org_ids) | Q(team_id__in=team_ids))
    if model is ModelDeployment:
        return ModelDeployment.objects.filter(organization_id__in=org_ids)
    return model._default_manager.none()


class ScopedRelatedFieldListFilter(admin.RelatedFieldListFilter):
    """A list filter on a relation whose choices are the caller's (``admin_choices``): Django's
    own lists every row of the related model, other tenants' names included."""

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> Any:
        principal = request_principal(request)
        if principal.is_proxy_admin:
            return super().field_choices(field, request, model_admin)
        choices = admin_choices(
            principal=principal, model=field.related_model, team_admin=model_admin._team_level()
        )
        return field.get_choices(
            include_blank=False,
            limit_choices_to={"pk__in": choices.values("pk")},
            ordering=self.field_admin_ordering(field, request, model_admin),
        )


class ScopedInlineMixin:
    """Inlines: read-only and scoped for org admins; proxy admins edit them as before."""

    selector: Callable[..., QuerySet] | None = None

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        principal = request_principal(request)
        if principal.is_proxy_admin or self.selector is None:
            return queryset if principal.is_proxy_admin else queryset.none()
        return queryset.filter(pk__in=self.selector(principal=principal).values("pk"))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)


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


class KeyCacheForgetMixin:
    """Admin of a tenant whose keys' cached callers carry its routing settings: a change pushes
    the invalidation of its keys to every worker, a deletion too (its keys go with it)."""

    key_cache_scope: str  # the keyword of key_cache_forget: "organization" or "team"

    def _keys_forget(self, obj: Any) -> None:
        key_cache_forget(**{self.key_cache_scope: obj})

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)  # type: ignore[misc]
        if change:
            self._keys_forget(obj)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self._keys_forget(obj)
        super().delete_model(request, obj)  # type: ignore[misc]

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for item in queryset:
            self._keys_forget(item)
        super().delete_queryset(request, queryset)  # type: ignore[misc]


@admin.register(Organization)
class OrganizationAdmin(KeyCacheForgetMixin, ScopedAdminMixin, admin.ModelAdmin):
    key_cache_scope = "organization"
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
        # The slug is what IdP tokens' organization claims name, and upstream_networks open the
        # operator's network to the organization's deployments: only proxy admins change them.
        readonly = list(super().get_readonly_fields(request, obj))
        if self._is_proxy_admin(request):
            return readonly
        return [*readonly, "slug", "upstream_networks"]

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
class TeamAdmin(KeyCacheForgetMixin, ScopedAdminMixin, admin.ModelAdmin):
    key_cache_scope = "team"
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

    def get_inlines(self, request: HttpRequest, obj: Team | None) -> list[type]:
        # Keys are listed, not created, inline: a new key's secret needs its own page.
        from keys.admin import TeamKeyInline

        return [TeamMembershipInline, TeamKeyInline]


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


import tenants.admin_audit  # noqa: E402, F401  registers the read-only audit log admin
from tenants.portal import admin as _portal_admin  # noqa: E402, F401  registers org IdPs
