"""Batches in admin: status, progress and cost, read-only; org and team admins see their own
(the management API's selector), and may cancel what they administer."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from batches.models import Batch
from batches.selectors import batch_list
from batches.services import batch_cancel
from tenants.admin_scope import ScopedAdminMixin, request_principal


def batch_progress_percent(batch: Batch) -> int:
    if not batch.request_total:
        return 0
    done = batch.request_completed + batch.request_failed
    return min(100, round(100 * done / batch.request_total))


@admin.register(Batch)
class BatchAdmin(ScopedAdminMixin, admin.ModelAdmin):
    selector = staticmethod(batch_list)
    scoped_access = "team"
    scoped_read_only = True
    scoped_can_add = False
    scoped_can_delete = False

    list_display = [
        "batch_id",
        "status",
        "progress",
        "endpoint",
        "model",
        "mode",
        "organization",
        "team",
        "cost",
        "created_at",
    ]
    list_filter = ["status", "mode", "endpoint"]
    list_select_related = ["organization", "team", "key"]
    search_fields = ["batch_id", "input_file_id", "model"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["cancel_batches"]
    exclude = ["lease_owner"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Batch]:
        # The selector's rows carry their cost; it scopes them as the mixin would.
        principal = request_principal(request)
        if not principal.is_proxy_admin and not self.scoped_user(request):
            return Batch.objects.none()
        return batch_list(principal=principal)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in Batch._meta.fields if field.name != "lease_owner"]

    @admin.display(description="progress")
    def progress(self, batch: Batch) -> str:
        percent = batch_progress_percent(batch)
        return format_html(
            '<progress value="{}" max="100" title="{} of {}"></progress> {}%',
            percent,
            batch.request_completed + batch.request_failed,
            batch.request_total,
            percent,
        )

    @admin.display(description="cost (USD)")
    def cost(self, batch: Batch) -> Any:
        return getattr(batch, "cost", None)

    @admin.action(description="Cancel the selected batches")
    def cancel_batches(self, request: HttpRequest, queryset: QuerySet[Batch]) -> None:
        batches = self.writable_or_deny(request, queryset)
        for batch in batches:
            batch_cancel(batch=batch)
        self.message_user(request, f"{len(batches)} batch(es) asked to stop.", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
