"""Fine-tuning jobs in admin: status, fine-tuned model and cost, read-only; org and team admins
see their own (the management API's selector), and may cancel what they administer."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from fine_tuning.models import FineTuningEvent, FineTuningJob
from fine_tuning.selectors import job_list
from fine_tuning.services import job_cancel
from gateway.errors import GatewayError
from tenants.admin_scope import ScopedAdminMixin, request_principal


class FineTuningEventInline(admin.TabularInline):
    model = FineTuningEvent
    fields = ["created_at", "level", "message"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-created_at", "-pk"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(FineTuningJob)
class FineTuningJobAdmin(ScopedAdminMixin, admin.ModelAdmin):
    selector = staticmethod(job_list)
    scoped_access = "team"
    scoped_read_only = True
    scoped_can_add = False
    scoped_can_delete = False

    list_display = [
        "job_id",
        "status",
        "model",
        "fine_tuned_model",
        "organization",
        "team",
        "trained_tokens",
        "cost",
        "created_at",
    ]
    list_filter = ["status", "provider"]
    list_select_related = ["organization", "team", "key"]
    search_fields = ["job_id", "model", "fine_tuned_model", "upstream_job_id"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["cancel_jobs"]
    inlines = [FineTuningEventInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[FineTuningJob]:
        principal = request_principal(request)
        if not principal.is_proxy_admin and not self.scoped_user(request):
            return FineTuningJob.objects.none()
        return job_list(principal=principal)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in FineTuningJob._meta.fields]

    @admin.action(description="Cancel the selected fine-tuning jobs")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[FineTuningJob]) -> None:
        jobs = self.writable_or_deny(request, queryset)
        cancelled = 0
        for job in jobs:
            try:
                job_cancel(job=job)
                cancelled += 1
            except GatewayError as exc:
                self.message_user(request, f"{job.job_id}: {exc.message}", messages.WARNING)
        self.message_user(request, f"{cancelled} job(s) cancelled.", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
