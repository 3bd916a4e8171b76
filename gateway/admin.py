"""Admin for model deployments. Credentials are references (os.environ/NAME...), never secrets."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from gateway.deployments import deployment_problems
from gateway.models import ModelDeployment
from gateway.rest import deployment_list
from tenants.admin import ScopedAdminMixin, request_principal


class ModelDeploymentForm(forms.ModelForm):
    operator = False  # set per request by ModelDeploymentAdmin.get_form

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        new = self.instance.pk is None
        moved = {"api_base", "organization"} & set(self.changed_data)
        problems = deployment_problems(
            organization=data.get("organization"),
            operator=self.operator,
            api_base=data.get("api_base") if new or moved else None,
            params=data.get("params") if isinstance(data.get("params"), dict) else None,
            current_params=None if new else self.instance.params,
        )
        for field, messages in problems.items():
            self.add_error(field if field in self.fields else None, messages)
        return data


@admin.register(ModelDeployment)
class ModelDeploymentAdmin(ScopedAdminMixin, admin.ModelAdmin):
    form = ModelDeploymentForm
    selector = staticmethod(deployment_list)
    # Org admins read shared deployments and manage their organization's own.
    scoped_access = "org"
    list_display = [
        "model_name",
        "provider",
        "upstream_model",
        "organization",
        "priority",
        "weight",
        "region",
        "enabled",
    ]
    list_filter = ["enabled", "provider", "organization", "region"]
    list_select_related = ["organization"]
    search_fields = ["model_name", "upstream_model", "provider", "api_base"]
    autocomplete_fields = ["organization"]
    readonly_fields = ["created_at", "updated_at"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fieldsets = (
        (None, {"fields": ("model_name", "provider", "upstream_model", "organization", "enabled")}),
        ("Upstream", {"fields": ("api_base", "api_version", "credential_ref", "region", "params")}),
        ("Routing", {"fields": ("access_groups", "tags", "priority", "weight", "rpm", "tpm")}),
        (
            "Timeouts (seconds)",
            {"fields": ("connect_timeout", "first_byte_timeout", "total_timeout")},
        ),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False,
                 **kwargs: Any) -> type[forms.ModelForm]:  # fmt: skip
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"operator": self._is_proxy_admin(request)})

    def get_urls(self) -> list[URLPattern]:
        routing = path(
            "routing/",
            self.admin_site.admin_view(self.routing_view),
            name="gateway_modeldeployment_routing",
        )
        return [routing, *super().get_urls()]

    def routing_view(self, request: HttpRequest) -> HttpResponse:
        """Every model group's strategy, fallbacks and circuit states (config and database)."""
        from gateway.health import routing_status

        if not self.has_view_permission(request):
            raise PermissionDenied
        principal = request_principal(request)
        status = routing_status(
            organization_ids=None if principal.is_proxy_admin else principal.visible_org_ids()
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Routing and circuit state",
            "opts": self.model._meta,
            "status": status,
        }
        return TemplateResponse(request, "admin/gateway/routing_status.html", context)
