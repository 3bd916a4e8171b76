"""Django admin for proxy admins and, scoped to what they run, org owners/admins and team admins.

Access to Ogem's models is decided by roles (memberships), never by ``is_staff`` or Django's
model permissions: the site lets in whoever administers something, and each Ogem ModelAdmin
(``tenants.admin_scope.ScopedAdminMixin``) scopes pages, choices and writes to the caller's
Principal.
Every other registered admin (Django's users/groups, sites, allauth, ...) stays superuser-only.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest
from django.urls import URLPattern, URLResolver, path

from tenants.admin_scope import ScopedAdminMixin
from tenants.models import ORG_WIDE_ROLES, Membership, Role


def admin_user_allowed(*, user: Any) -> bool:
    """A proxy admin, or an active user who owns/administers an organization or a team."""

    if not getattr(user, "is_active", False) or not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser:
        return True
    return Membership.objects.filter(
        user=user, role__in=[*ORG_WIDE_ROLES, Role.TEAM_ADMIN]
    ).exists()


class OgemAdminAuthenticationForm(AdminAuthenticationForm):
    def confirm_login_allowed(self, user: Any) -> None:
        if not admin_user_allowed(user=user):
            raise ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )


def _is_scoped(model_admin: Any) -> bool:
    return isinstance(model_admin, ScopedAdminMixin) or getattr(model_admin, "ogem_scoped", False)


# Ogem's own apps lead the admin index and sidebar, in the order of their layers; Django's and
# third parties' (auth, sites, allauth, ...) follow, alphabetically as Django lists them.
OGEM_APPS = ("tenants", "keys", "billing", "gateway", "files")


class OgemAdminSite(AdminSite):
    site_header = "Ogem administration"
    site_title = "Ogem admin"
    index_title = "Gateway administration"
    login_form = OgemAdminAuthenticationForm
    index_template = "admin/ogem/index.html"

    def get_urls(self) -> list[URLResolver | URLPattern]:
        # Imported on use (here and in index): billing.admin registers its pages with admin.site,
        # which is this module's site: imported at load, it would run before the site exists.
        from billing.admin import analytics_dashboard_view, spend_dashboard_view

        spend = path("spend/", self.admin_view(spend_dashboard_view), name="spend_dashboard")
        analytics = path(
            "analytics/", self.admin_view(analytics_dashboard_view), name="analytics_dashboard"
        )
        return [spend, analytics, *super().get_urls()]

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        from billing.admin import unpriced_warning_add

        # Read from the database: the gateway workers that priced the requests are elsewhere.
        unpriced_warning_add(request)
        return super().index(request, extra_context)

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[Any]:
        apps = super().get_app_list(request, app_label)
        rank = {label: index for index, label in enumerate(OGEM_APPS)}
        # sorted() is stable: the apps after Ogem's keep Django's alphabetical order.
        return sorted(apps, key=lambda app: rank.get(app["app_label"], len(rank)))

    def has_permission(self, request: HttpRequest) -> bool:
        return admin_user_allowed(user=request.user)

    def admin_view(self, view: Any, cacheable: bool = False) -> Any:
        inner = super().admin_view(view, cacheable)
        model_admin = getattr(view, "__self__", None)
        if model_admin is None or model_admin is self or _is_scoped(model_admin):
            return inner

        # Admins outside Ogem's role model (auth, sites, allauth...) are the proxy admin's alone.
        def superuser_only(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if request.user.is_active and request.user.is_superuser:
                return inner(request, *args, **kwargs)
            if not self.has_permission(request):
                return inner(request, *args, **kwargs)  # the login redirect
            raise PermissionDenied

        return superuser_only

    def _build_app_dict(self, request: HttpRequest, label: str | None = None) -> Any:
        app_dict = super()._build_app_dict(request, label)
        if request.user.is_superuser or not app_dict:
            return app_dict
        apps = [app_dict] if label else list(app_dict.values())
        for app in apps:
            app["models"] = [
                entry for entry in app["models"] if _is_scoped(self._registry[entry["model"]])
            ]
        if label:
            return app_dict if app_dict["models"] else {}
        return {name: app for name, app in app_dict.items() if app["models"]}
