"""Fine-tuning jobs on the management API (/api/v1/fine_tuning/jobs): read-only, each with its
status, fine-tuned model and cost; org and team admins (and members, for their own keys' jobs)
see their own only."""

from __future__ import annotations

from typing import Any

from rest_framework import mixins, serializers

from fine_tuning.models import FineTuningJob
from fine_tuning.selectors import job_list
from tenants.rest.base import ScopedViewSet


class FineTuningJobSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="job_id", read_only=True)
    cost = serializers.DecimalField(max_digits=18, decimal_places=8, read_only=True)

    class Meta:
        model = FineTuningJob
        fields = [
            "id",
            "organization",
            "team",
            "key",
            "provider",
            "model",
            "base_model",
            "status",
            "fine_tuned_model",
            "model_deleted",
            "training_file",
            "validation_file",
            "trained_tokens",
            "cost",
            "hyperparameters",
            "metadata",
            "error",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class FineTuningJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """GET /api/v1/fine_tuning/jobs (filters: organization, team, key, status, model) and
    /api/v1/fine_tuning/jobs/{id} (the job's `ftjob-...` id)."""

    selector = staticmethod(job_list)
    serializer_class = FineTuningJobSerializer
    filter_params = {
        "organization": "organization_id",
        "team": "team_id",
        "key": "key_id",
        "status": "status",
        "model": "model",
    }
    search_fields = ["job_id", "model", "fine_tuned_model"]
    ordering = ["-created_at", "-pk"]
    ordering_fields = ["created_at", "status", "cost"]
    lookup_field = "job_id"
    lookup_url_kwarg = "pk"
    lookup_value_regex = r"ftjob-[0-9a-f]{1,60}"

    def list(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        return ScopedViewSet.list(self, request, *args, **kwargs)

    def retrieve(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        return ScopedViewSet.retrieve(self, request, *args, **kwargs)
