"""What every Ogem ModelAdmin shares: pages scoped to the caller's Principal.

Proxy admins (superusers) see everything; org owners/admins see and run their organizations
only (``ScopedAdminMixin``): every ModelAdmin reads through the same selectors as the REST API,
limits foreign-key choices to the caller's organizations and audits each write (surface "admin").
The admins of tenants (tenants/admin.py), keys, billing and gateway build on this module, which
imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from django.contrib import admin
from django.contrib.admin import AdminSite
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.admin.utils import get_fields_from_path
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from tenants.audit import (
    audit_actor,
    audit_actor_name,
    audit_client_ip,
    audit_record,
    audit_snapshot,
)
from tenants.models import (
    AuditSurface,
    Organization,
)
from tenants.principals import Principal
from tenants.selectors import (
    principal_for_user,
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


class ReadOnlyAdminMixin:
    """For rows that /v1, the router or Celery write (logs, captures, stored answers): shown,
    never added, changed or deleted in the admin. First among the bases, so that it overrides
    ScopedAdminMixin's permissions."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
                site=self.admin_site,  # type: ignore[attr-defined]
                principal=principal,
                model=db_field.related_model,
                team_admin=self._team_level(),
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


def admin_choices(
    *, site: AdminSite, principal: Principal, model: type, team_admin: bool
) -> QuerySet:
    """What a scoped admin may pick for a foreign key to ``model``: what that model's own admin
    page offers the caller (its ``scoped_choices``), nothing when it has none. Each app's admin
    answers for its own models, so this module knows none of theirs."""
    try:
        model_admin = site.get_model_admin(model)
    except NotRegistered:
        return model._default_manager.none()
    chooser = getattr(model_admin, "scoped_choices", None)
    if chooser is None:
        return model._default_manager.none()
    return chooser(principal=principal, team_admin=team_admin)


def admin_scope_ids(*, principal: Principal, team_admin: bool) -> tuple[set[int], set[int]]:
    """(organizations, teams) a scoped admin runs; teams only for team-level pages."""
    return principal.admin_org_ids(), principal.admin_team_ids() if team_admin else set()


class ScopedRelatedFieldListFilter(admin.RelatedFieldListFilter):
    """A list filter on a relation whose choices are the caller's (``admin_choices``): Django's
    own lists every row of the related model, other tenants' names included."""

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> Any:
        principal = request_principal(request)
        if principal.is_proxy_admin:
            return super().field_choices(field, request, model_admin)
        choices = admin_choices(
            site=model_admin.admin_site,
            principal=principal,
            model=field.related_model,
            team_admin=model_admin._team_level(),
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
