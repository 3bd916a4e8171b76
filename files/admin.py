"""Files in admin: a tenant's admins see (and may delete) their own tenant's files, the proxy
admin every file; nobody adds or edits one here (uploads are /v1's). Uploads in progress are
the proxy admin's to read."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from files.models import File, Upload
from files.selectors import file_list
from files.services import file_delete
from tenants.admin_scope import ReadOnlyAdminMixin, ScopedAdminMixin


@admin.register(File)
class FileAdmin(ScopedAdminMixin, admin.ModelAdmin):
    selector = staticmethod(file_list)
    scoped_access = "team"
    scoped_can_add = False
    list_display = [
        "file_id",
        "filename",
        "purpose",
        "bytes",
        "organization",
        "team",
        "key",
        "created_at",
        "expires_at",
    ]
    list_filter = ["purpose"]
    list_select_related = ["organization", "team", "key"]
    search_fields = ["file_id", "filename"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in File._meta.fields]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: File) -> None:
        file_delete(file=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[File]) -> None:
        for file in queryset:
            file_delete(file=file)


@admin.register(Upload)
class UploadAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["upload_id", "filename", "purpose", "bytes", "status", "created_at", "file"]
    list_filter = ["status", "purpose"]
    search_fields = ["upload_id", "filename"]
    readonly_fields = [field.name for field in Upload._meta.fields]
