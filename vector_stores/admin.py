"""Vector stores in admin: a tenant's admins see (and may delete) their own tenant's stores, the
proxy admin every store, each with its bytes and its tenant's total against the storage bound
(OGEM_VECTOR_STORES_MAX_BYTES); nobody adds or edits one here (that is /v1's)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from tenants.admin_scope import ScopedAdminMixin
from vector_stores.models import VectorStore, VectorStoreFile
from vector_stores.selectors import store_list, tenant_usage_bytes
from vector_stores.services import store_delete


class VectorStoreFileInline(admin.TabularInline):
    model = VectorStoreFile
    fields = ["file_id", "filename", "status", "usage_bytes", "last_error", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(VectorStore)
class VectorStoreAdmin(ScopedAdminMixin, admin.ModelAdmin):
    selector = staticmethod(store_list)
    scoped_access = "team"
    scoped_can_add = False
    list_display = [
        "store_id",
        "name",
        "backend",
        "usage_bytes",
        "tenant_storage",
        "organization",
        "team",
        "key",
        "created_at",
        "expires_at",
    ]
    list_filter = ["backend"]
    list_select_related = ["organization", "team", "key"]
    search_fields = ["store_id", "name"]
    readonly_fields = [field.name for field in VectorStore._meta.fields] + ["tenant_storage"]
    inlines = [VectorStoreFileInline]

    @admin.display(description="Tenant storage (used / limit)")
    def tenant_storage(self, obj: VectorStore) -> str:
        used = tenant_usage_bytes(store=obj)
        limit = settings.OGEM_VECTOR_STORES_MAX_BYTES
        return f"{used:,} / {limit:,} bytes ({100 * used / limit if limit else 100:.1f}%)"

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: VectorStore) -> None:
        store_delete(store=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[VectorStore]) -> None:
        for store in queryset:
            store_delete(store=store)
