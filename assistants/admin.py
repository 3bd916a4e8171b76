"""Assistants, threads and runs in admin, read-only; org and team admins see their own (the
management API's selectors), and may cancel the runs they administer. Assistants and threads
show their tenant's stored objects against OGEM_ASSISTANTS_MAX_OBJECTS."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from assistants.models import Assistant, Run, Thread
from assistants.selectors import (
    RUN_ENDED,
    assistant_list,
    run_list,
    tenant_objects_count,
    thread_list,
)
from assistants.services import run_cancel
from tenants.admin_scope import ScopedAdminMixin, request_principal


class _ReadOnlyAdmin(ScopedAdminMixin, admin.ModelAdmin):
    scoped_access = "team"
    scoped_read_only = True
    scoped_can_add = False
    scoped_can_delete = False
    list_select_related = ["organization", "team", "key"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        principal = request_principal(request)
        if not principal.is_proxy_admin and not self.scoped_user(request):
            return self.model.objects.none()
        return self.selector(principal=principal)  # type: ignore[attr-defined]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields] + ["tenant_storage"]

    @admin.display(description="Tenant storage (objects used / limit)")
    def tenant_storage(self, obj: Assistant | Thread) -> str:
        used = tenant_objects_count(organization_id=obj.organization_id, key_id=obj.key_id)
        limit = settings.OGEM_ASSISTANTS_MAX_OBJECTS
        return f"{used:,} / {limit:,} ({100 * used / limit if limit else 100:.1f}%)"

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Assistant)
class AssistantAdmin(_ReadOnlyAdmin):
    selector = staticmethod(assistant_list)
    list_display = [
        "assistant_id",
        "name",
        "model",
        "organization",
        "team",
        "tenant_storage",
        "created_at",
    ]
    search_fields = ["assistant_id", "name", "model"]


@admin.register(Thread)
class ThreadAdmin(_ReadOnlyAdmin):
    selector = staticmethod(thread_list)
    list_display = ["thread_id", "organization", "team", "tenant_storage", "created_at"]
    search_fields = ["thread_id"]


@admin.register(Run)
class RunAdmin(_ReadOnlyAdmin):
    selector = staticmethod(run_list)
    list_display = [
        "run_id",
        "status",
        "assistant_id",
        "model",
        "organization",
        "team",
        "tokens",
        "created_at",
    ]
    list_filter = ["status"]
    list_select_related = ["organization", "team", "key", "thread"]
    search_fields = ["run_id", "assistant_id", "model"]
    actions = ["cancel_runs"]

    @admin.display(description="tokens")
    def tokens(self, run: Run) -> int:
        return int((run.usage or {}).get("total_tokens") or 0)

    @admin.action(description="Cancel the selected runs")
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        runs = [
            run
            for run in self.writable_or_deny(request, queryset)
            if run.status not in RUN_ENDED and run.status != Run.Status.CANCELLING
        ]
        for run in runs:
            run_cancel(run=run)
        self.message_user(request, f"{len(runs)} run(s) cancelled.", messages.SUCCESS)
