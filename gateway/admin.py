"""Admin for model deployments. Credentials are references (os.environ/NAME...), never secrets."""

from __future__ import annotations

from django.contrib import admin
from django.db import models

from gateway.models import ModelDeployment
from gateway.rest import deployment_list
from tenants.admin import ScopedAdminMixin


@admin.register(ModelDeployment)
class ModelDeploymentAdmin(ScopedAdminMixin, admin.ModelAdmin):
    selector = staticmethod(deployment_list)
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
