"""Admin for model deployments and named credentials; secrets are write-only (admin_forms)."""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import ForeignKey, QuerySet
from django.forms import ModelChoiceField
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.html import format_html

from gateway.admin_forms import (
    SECRET_LABELS,
    CredentialForm,
    GuardrailDefinitionForm,
    ModelDeploymentForm,
)
from gateway.config import config_current
from gateway.model_health import deployments_health_check, health_deployments_visible
from gateway.models import (
    Credential,
    DebugCapture,
    GuardrailDefinition,
    ModelDeployment,
    ResponseCacheOrganization,
    SemanticCacheEntry,
    StoredCompletion,
    StoredResponse,
)
from gateway.selectors import (
    SOURCE_CONFIG,
    config_deployment_list,
    config_deployment_shown,
    credential_list,
    debug_capture_list,
    deployment_list,
    guardrail_definition_list,
    response_cache_namespaces,
)
from gateway.services import (
    CachePurgeError,
    credential_save,
    deployment_update,
    guardrail_definition_save,
    response_cache_purge,
    semantic_cache_entries_delete,
)
from tenants.admin_scope import ReadOnlyAdminMixin, ScopedAdminMixin, request_principal
from tenants.principals import Principal
from tenants.selectors import organization_list


@admin.register(ModelDeployment)
class ModelDeploymentAdmin(ScopedAdminMixin, admin.ModelAdmin):
    selector = staticmethod(deployment_list)
    # Org admins read shared deployments and manage their organization's own.
    scoped_access = "org"

    def scoped_choices(
        self, *, principal: Principal, team_admin: bool
    ) -> QuerySet[ModelDeployment]:
        return ModelDeployment.objects.filter(organization_id__in=principal.admin_org_ids())

    form = ModelDeploymentForm
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
        ("Upstream", {"fields": ("api_base", "api_version", "region", "params")}),
        (
            "Credential (one of)",
            {"fields": ("api_key", "clear_api_key", "credential", "credential_ref")},
        ),
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

    def formfield_for_foreignkey(
        self, db_field: ForeignKey, request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        if db_field.name == "credential":
            kwargs["queryset"] = credential_list(principal=request_principal(request))
            return db_field.formfield(**kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(
        self, request: HttpRequest, obj: ModelDeployment, form: ModelDeploymentForm, change: bool
    ) -> None:
        params, api_key = form.secret_changes()
        deployment_update(
            deployment=obj,
            data={"credential_ref": obj.credential_ref, "credential": obj.credential},
            params=params,
            api_key=api_key,
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The database's rows, after the deployments of the configuration file (or the built-in
        mock models), which are listed read-only: they change only with the file."""
        principal = request_principal(request)
        shown = [
            config_deployment_shown(deployment)
            for deployment in config_deployment_list(principal=principal)
        ]
        ids = {item["organization"] for item in shown if item["organization"] is not None}
        names = dict(
            organization_list(principal=principal).filter(pk__in=ids).values_list("pk", "name")
        )
        for item in shown:
            item["organization_name"] = names.get(item["organization"], "")
        source = config_current().source
        if any(item["source"] == SOURCE_CONFIG for item in shown):
            origin = f"the configuration file {source}" if source else "the configuration"
            note = (
                "These come from OGEM_CONFIG and cannot be edited here: change the file, which "
                "is reloaded within seconds. A database deployment of the same model name joins "
                "the same model group."
            )
        else:
            origin = "the built-in offline models"
            note = (
                "OGEM_CONFIG is unset, so Ogem serves these offline mock models. They cannot be "
                "edited here: set OGEM_CONFIG to a configuration file, or add deployments below."
            )
        context = {
            **(extra_context or {}),
            "config_deployments": shown,
            "config_origin": origin,
            "config_note": note,
        }
        return super().changelist_view(request, extra_context=context)

    def get_urls(self) -> list[URLPattern]:
        routing = path(
            "routing/",
            self.admin_site.admin_view(self.routing_view),
            name="gateway_modeldeployment_routing",
        )
        return [routing, *super().get_urls()]

    def routing_view(self, request: HttpRequest) -> HttpResponse:
        """Every model group's strategy, fallbacks and circuit states (config and database)."""
        # Imported on use: gateway.health loads every adapter and the Redis client (about
        # 0.5 s), which every process would pay at start (admin and API modules load in all).
        from gateway.health import routing_status

        if not self.has_view_permission(request):
            raise PermissionDenied
        principal = request_principal(request)
        status = routing_status(
            organization_ids=None if principal.is_proxy_admin else principal.visible_org_ids()
        )
        health = None
        if request.GET.get("check"):
            # On demand only: each check is a small real request to every deployment.
            health = async_to_sync(deployments_health_check)(
                deployments=health_deployments_visible(
                    organization_ids=None if principal.is_proxy_admin else principal.admin_org_ids()
                )
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "Routing and circuit state",
            "opts": self.model._meta,
            "status": status,
            "health": health,
        }
        return TemplateResponse(request, "admin/gateway/routing_status.html", context)


@admin.register(GuardrailDefinition)
class GuardrailDefinitionAdmin(ScopedAdminMixin, admin.ModelAdmin):
    """Guardrails defined here rather than in the configuration file (docs/guardrails.md): merged
    with the file's at reload, within seconds, in every worker. Org admins manage their
    organization's own, which only its organizations, teams, keys and requests can use."""

    selector = staticmethod(guardrail_definition_list)
    scoped_access = "org"
    form = GuardrailDefinitionForm
    list_display = ["name", "kind", "modes", "action", "default_on", "organization", "enabled"]
    list_filter = ["enabled", "kind", "action", "default_on", "organization"]
    list_select_related = ["organization"]
    search_fields = ["name", "kind"]
    autocomplete_fields = ["organization"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = (
        (None, {"fields": ("name", "kind", "organization", "enabled")}),
        ("Behaviour", {"fields": ("modes", "action", "default_on", "enforced", "requestable")}),
        ("Checks", {"fields": ("options", "restore", "fail_open", "timeout", "model_groups")}),
        (
            "Secrets (stored encrypted, never shown)",
            {"fields": (*SECRET_LABELS, "clear_secrets")},
        ),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    def save_model(
        self,
        request: HttpRequest,
        obj: GuardrailDefinition,
        form: GuardrailDefinitionForm,
        change: bool,
    ) -> None:
        secrets, clear = form.secret_changes()
        guardrail_definition_save(definition=obj, secrets=secrets, clear=clear)


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    """Named credentials are the operator's: this page is for proxy admins only."""

    form = CredentialForm
    list_display = ["name", "description", "has_reference", "granted_to"]
    search_fields = ["name", "description"]
    filter_horizontal = ["organizations"]
    readonly_fields = ["created_at", "updated_at"]
    fields = [
        "name",
        "description",
        "reference",
        "value",
        "clear_value",
        "organizations",
        "created_at",
        "updated_at",
    ]

    @admin.display(description="Reference", boolean=True)
    def has_reference(self, credential: Credential) -> bool:
        return bool(credential.reference)

    @admin.display(description="Granted to")
    def granted_to(self, credential: Credential) -> str:
        return ", ".join(org.slug for org in credential.organizations.all())

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("organizations")

    def save_model(
        self, request: HttpRequest, obj: Credential, form: CredentialForm, change: bool
    ) -> None:
        value = form.cleaned_data.get("value")
        credential_save(
            credential=obj, value="" if form.cleaned_data.get("clear_value") else value or None
        )


@admin.register(StoredCompletion)
class StoredCompletionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Stored chat completions (`store: true`) hold tenants' prompts and answers: the operator
    may read them here, and only the operator (tenants use /v1's own routes); nobody edits them."""

    list_display = ["completion_id", "created_at", "model", "organization", "team", "key"]
    list_filter = ["model"]
    list_select_related = ["organization", "team", "key"]
    search_fields = ["completion_id", "model", "request_model"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(DebugCapture)
class DebugCaptureAdmin(ReadOnlyAdminMixin, ScopedAdminMixin, admin.ModelAdmin):
    """Request-debugging captures (docs/debugging.md): read-only; each organization's admins
    see their own, until the capture expires; the proxy admin's own captures are theirs only."""

    selector = staticmethod(debug_capture_list)
    scoped_access = "org"
    list_display = [
        "created_at",
        "request_id",
        "reason",
        "endpoint",
        "model",
        "deployment",
        "status_code",
        "stream",
        "organization_id",
        "team_id",
        "key_id",
        "expires_at",
    ]
    list_filter = ["reason", "endpoint", "status_code", "stream"]
    search_fields = ["request_id", "model", "deployment"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    exclude = ["request_body", "response_body", "request_headers"]
    readonly_fields = [
        "request_id",
        "reason",
        "endpoint",
        "model",
        "deployment",
        "status_code",
        "stream",
        "organization_id",
        "team_id",
        "key_id",
        "created_at",
        "expires_at",
        "truncated",
        "headers_shown",
        "request_shown",
        "response_shown",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Expired captures are gone for everyone, the proxy admin too, before the purge runs.
        return (
            super()
            .get_queryset(request)
            .filter(pk__in=debug_capture_list(principal=request_principal(request)).values("pk"))
        )

    @admin.display(description="request headers")
    def headers_shown(self, obj: DebugCapture) -> str:
        return format_html("<pre>{}</pre>", _pretty(obj.request_headers))

    @admin.display(description="request body")
    def request_shown(self, obj: DebugCapture) -> str:
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", _pretty(obj.request_body))

    @admin.display(description="response body")
    def response_shown(self, obj: DebugCapture) -> str:
        return format_html(
            "<pre style='white-space: pre-wrap'>{}</pre>", _pretty(obj.response_body)
        )


def _pretty(value: Any) -> str:
    """JSON indented for reading; anything else (an SSE stream, a cut body) as it is."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, ensure_ascii=False)


@admin.register(SemanticCacheEntry)
class SemanticCacheEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The response cache's semantic entries (docs/caching.md): tenants' prompts' embeddings and
    answers, for the operator only. Deleting goes through the service, so that every worker drops
    them from its index; a tenant's whole scope is purged with DELETE /api/v1/cache."""

    list_display = ["label", "scope", "namespace", "model", "created_at", "expires_at"]
    list_filter = ["model", "namespace"]
    search_fields = ["scope", "namespace", "model"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = [*list_display[:4], "organization_id", "partition", "created_at", "expires_at"]
    readonly_fields = fields
    actions = ["delete_entries"]

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if not request.user.is_superuser:  # the operator's: deleting tenants' entries
            actions.pop("delete_entries", None)
        return actions

    @admin.action(description="Delete the selected entries (every worker forgets them)")
    def delete_entries(self, request: HttpRequest, queryset: Any) -> None:
        labels = list(queryset.values_list("label", flat=True))
        deleted = semantic_cache_entries_delete(labels=labels)
        self.message_user(request, f"{deleted} semantic cache entries deleted.")


class CachePurgeActionForm(ActionForm):
    namespace = forms.CharField(
        required=False,
        max_length=64,
        help_text="Only this namespace (“-”: the default one); empty: every namespace.",
    )


@admin.register(ResponseCacheOrganization)
class ResponseCacheAdmin(ReadOnlyAdminMixin, ScopedAdminMixin, admin.ModelAdmin):
    """The response cache of each organization (docs/caching.md): its namespaces with their
    entries in Redis and in the semantic tier, and a purge of every tier, like
    DELETE /api/v1/cache. Organization admins see and purge their own organizations'."""

    selector = staticmethod(organization_list)
    scoped_access = "org"
    scoped_can_add = False
    scoped_can_delete = False
    list_display = ["name", "namespaces"]
    search_fields = ["name", "slug"]
    fields = ["name", "namespaces"]
    readonly_fields = fields
    actions = ["purge"]
    action_form = CachePurgeActionForm

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_active and (request.user.is_superuser or self.scoped_user(request))

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # The purge is an action of the page (not a model permission: nobody edits the rows).
        return {
            name: entry
            for name, entry in super().get_actions(request).items()
            if name != "delete_selected"
        }

    @admin.display(description="namespaces (entries: Redis / semantic)")
    def namespaces(self, obj: ResponseCacheOrganization) -> str:
        spaces = response_cache_namespaces(organization_id=obj.pk)
        if not spaces:
            return "—"
        return "; ".join(
            f"{name}: {counts['exact']} / {counts['semantic']}" for name, counts in spaces.items()
        )

    @admin.action(description="Purge the response cache (every tier) of the selected organizations")
    def purge(self, request: HttpRequest, queryset: Any) -> None:
        from gateway.cache import cache_namespace_valid  # the /v1 pipeline's: loaded on use

        organizations = self.writable_or_deny(request, queryset)
        namespace = (request.POST.get("namespace") or "").strip() or None
        if namespace is not None and not cache_namespace_valid(namespace):
            self.message_user(
                request, "A namespace is 1 to 64 letters, digits, `_`, `.` or `-`.", messages.ERROR
            )
            return
        deleted = 0
        try:
            for organization in organizations:
                deleted += response_cache_purge(
                    organization_id=organization.pk, namespace=namespace
                )
        except CachePurgeError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        where = f"namespace {namespace}" if namespace else "every namespace"
        self.message_user(request, f"{deleted} response cache entries purged ({where}).")


@admin.register(StoredResponse)
class StoredResponseAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Responses API responses (`/v1/responses`), tenants' conversations: for the operator's eyes
    only, as stored completions; nobody edits them."""

    list_display = [
        "response_id",
        "created_at",
        "model",
        "status",
        "background",
        "deployment_id",
        "organization",
        "team",
        "key",
    ]
    list_filter = ["status", "background", "model"]
    list_select_related = ["organization", "team", "key"]
    search_fields = ["response_id", "model", "previous_response_id"]
    date_hierarchy = "created_at"
    show_full_result_count = False
