"""Files on /api/v1: list, retrieve and delete the files of the tenants the caller may read.

A proxy admin sees every file; an organization's or team's admin (and its viewers) see that
tenant's files only; anyone sees the files their own keys uploaded. Deleting takes an admin of
the file's team or organization. Uploading is /v1/files' job.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from files.models import File
from files.selectors import file_list
from files.services import file_delete
from tenants.rest.base import ScopedViewSet


class FileSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="file_id", read_only=True)

    class Meta:
        model = File
        fields = [
            "id",
            "organization",
            "team",
            "key",
            "filename",
            "purpose",
            "bytes",
            "created_at",
            "expires_at",
            "batch_summary",
        ]
        read_only_fields = fields


class FileViewSet(ScopedViewSet):
    """`GET /api/v1/files` (filters: organization, team, key, purpose), `GET` and `DELETE`
    `/api/v1/files/{file-id}`."""

    selector = staticmethod(file_list)
    serializer_class = FileSerializer
    http_method_names = ["get", "delete", "head", "options"]
    lookup_field = "file_id"
    lookup_value_regex = r"file-[A-Za-z0-9]+"
    filter_params = {
        "organization": "organization_id",
        "team": "team_id",
        "key": "key_id",
        "purpose": "purpose",
    }
    search_fields = ["filename", "file_id"]
    ordering_fields = ["created_at", "bytes", "filename"]
    ordering = ["-created_at", "-pk"]

    def check_change(self, instance: File) -> None:
        if not self.principal.is_team_admin(instance.team_id, instance.organization_id):
            self.deny()

    def perform_service_destroy(self, instance: Any) -> None:
        file_delete(file=instance)
