"""Assistants, threads and runs on the management API (/api/v1/assistants, /api/v1/threads,
/api/v1/assistant-runs): read-only lists per tenant; org and team admins (and members, for their
own keys' objects) see their own only."""

from __future__ import annotations

from rest_framework import mixins, serializers

from assistants.models import Assistant, Run, Thread
from assistants.selectors import assistant_list, run_list, thread_list
from tenants.rest.base import ScopedViewSet

_OWNER = ["organization", "team", "key", "created_at", "metadata"]


class AssistantSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="assistant_id", read_only=True)

    class Meta:
        model = Assistant
        fields = ["id", "name", "model", "instructions", "tools", "tool_resources", *_OWNER]
        read_only_fields = fields


class ThreadSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="thread_id", read_only=True)

    class Meta:
        model = Thread
        fields = ["id", "tool_resources", *_OWNER]
        read_only_fields = fields


class RunSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="run_id", read_only=True)
    thread_id = serializers.CharField(source="thread.thread_id", read_only=True)

    class Meta:
        model = Run
        fields = [
            "id",
            "thread_id",
            "assistant_id",
            "model",
            "status",
            "usage",
            "last_error",
            "started_at",
            "completed_at",
            "failed_at",
            "cancelled_at",
            *_OWNER,
        ]
        read_only_fields = fields


class _ReadOnly(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    filter_params = {"organization": "organization_id", "team": "team_id", "key": "key_id"}
    ordering = ["-created_at", "-pk"]
    ordering_fields = ["created_at"]
    lookup_url_kwarg = "pk"


class AssistantViewSet(_ReadOnly):
    """GET /api/v1/assistants (filters: organization, team, key) and /api/v1/assistants/{id}."""

    selector = staticmethod(assistant_list)
    serializer_class = AssistantSerializer
    search_fields = ["assistant_id", "name", "model"]
    lookup_field = "assistant_id"
    lookup_value_regex = r"asst_[0-9a-f]{1,60}"


class ThreadViewSet(_ReadOnly):
    """GET /api/v1/threads and /api/v1/threads/{id}."""

    selector = staticmethod(thread_list)
    serializer_class = ThreadSerializer
    search_fields = ["thread_id"]
    lookup_field = "thread_id"
    lookup_value_regex = r"thread_[0-9a-f]{1,60}"


class RunViewSet(_ReadOnly):
    """GET /api/v1/assistant-runs (filters also: status) and /api/v1/assistant-runs/{id}."""

    selector = staticmethod(run_list)
    serializer_class = RunSerializer
    filter_params = {**_ReadOnly.filter_params, "status": "status"}
    search_fields = ["run_id", "assistant_id", "model"]
    ordering_fields = ["created_at", "status"]
    lookup_field = "run_id"
    lookup_value_regex = r"run_[0-9a-f]{1,60}"
