"""Batches on the management API (/api/v1/batches): read-only, each with its progress and cost;
org and team admins (and members, for their own keys' batches) see their own only."""

from __future__ import annotations

from typing import Any

from rest_framework import mixins, serializers

from batches.models import Batch
from batches.selectors import batch_list
from tenants.rest.base import ScopedViewSet


class BatchSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="batch_id", read_only=True)
    cost = serializers.DecimalField(max_digits=18, decimal_places=8, read_only=True)
    request_counts = serializers.SerializerMethodField()

    class Meta:
        model = Batch
        fields = [
            "id",
            "organization",
            "team",
            "key",
            "endpoint",
            "model",
            "mode",
            "input_file_id",
            "output_file_id",
            "error_file_id",
            "status",
            "request_counts",
            "cost",
            "input_tokens",
            "output_tokens",
            "total_tokens",
            "metadata",
            "errors",
            "created_at",
            "in_progress_at",
            "expires_at",
            "completed_at",
            "failed_at",
            "expired_at",
            "cancelled_at",
        ]
        read_only_fields = fields

    def get_request_counts(self, batch: Batch) -> dict[str, int]:
        return {
            "total": batch.request_total,
            "completed": batch.request_completed,
            "failed": batch.request_failed,
        }


class BatchViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """GET /api/v1/batches (filters: organization, team, key, status) and /api/v1/batches/{id}
    (the batch's `batch_...` id)."""

    selector = staticmethod(batch_list)
    serializer_class = BatchSerializer
    filter_params = {
        "organization": "organization_id",
        "team": "team_id",
        "key": "key_id",
        "status": "status",
    }
    search_fields = ["batch_id", "model"]
    ordering = ["-created_at", "-pk"]
    ordering_fields = ["created_at", "status"]
    lookup_field = "batch_id"
    lookup_url_kwarg = "pk"
    lookup_value_regex = r"batch_[0-9a-f]{1,60}"

    def list(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        return ScopedViewSet.list(self, request, *args, **kwargs)

    def retrieve(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        return ScopedViewSet.retrieve(self, request, *args, **kwargs)
