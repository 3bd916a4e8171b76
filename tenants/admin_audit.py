"""Read-only Django admin for the audit log, with CSV and JSON export of the selected events.

Imported from tenants/admin.py; registering here keeps the audit log's admin next to its owner.
Rows are shown through ``audit_event_list`` so the admin sees what the principal may see.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from tenants.audit import audit_event_list, audit_events_export
from tenants.models import AuditEvent
from tenants.selectors import principal_for_user


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = [
        "occurred_at",
        "actor",
        "surface",
        "action",
        "target_type",
        "target_id",
        "organization",
        "ip_address",
    ]
    list_filter = ["surface", "action", "target_type"]
    search_fields = ["actor", "action", "target_id", "request_id"]
    date_hierarchy = "occurred_at"
    list_select_related = ["organization"]
    actions = ["export_csv", "export_json"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditEvent]:
        principal = principal_for_user(user=request.user)
        return audit_event_list(principal=principal).select_related("organization")

    # Role-managed like the other Ogem admins: proxy admins, and org owners/admins for their orgs.
    ogem_scoped = True

    def _may_read(self, request: HttpRequest) -> bool:
        user = request.user
        if not user.is_active:
            return False
        return user.is_superuser or bool(principal_for_user(user=user).admin_org_ids())

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._may_read(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_read(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _export(self, queryset: QuerySet[AuditEvent], fmt: str, content_type: str) -> HttpResponse:
        response = HttpResponse(
            audit_events_export(events=queryset, fmt=fmt), content_type=content_type
        )
        response["Content-Disposition"] = f'attachment; filename="ogem-audit.{fmt}"'
        return response

    @admin.action(description="Export selected events as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> HttpResponse:
        return self._export(queryset, "csv", "text/csv")

    @admin.action(description="Export selected events as JSON")
    def export_json(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> HttpResponse:
        return self._export(queryset, "json", "application/json")
