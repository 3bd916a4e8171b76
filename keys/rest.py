"""Virtual keys on /api/v1: create (secret shown once), list, update, revoke, rotate, delete."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from keys.budgets import USD, BudgetDuration, usd_str
from keys.debug import debug_until_problem
from keys.limits import endpoint_limits_problem
from keys.models import VirtualKey
from keys.permissions import (
    KEY_SETTINGS,
    key_change_allowed,
    key_create_refusal,
    key_models_problem,
    key_scope_administered,
)
from keys.selectors import key_list, key_spend_attach, key_status
from keys.services import key_change, key_create, key_delete, key_revoke, key_rotate
from tenants.audit import audit_snapshot
from tenants.catalog import guardrails_foreign_message
from tenants.models import Organization, Team, User
from tenants.rest.base import JSONObjectField, ScopedRelatedField, ScopedViewSet, request_user
from tenants.selectors import organization_list, team_list, user_list

# Values that give a new key no setting (it keeps the default).
_UNSET = (None, "", [], {})
# Durations as the contract names them; null (or "") means the budget never resets.
_DURATIONS = [value for value in BudgetDuration.values if value]


class KeyListSerializer(serializers.ListSerializer):
    """Keys' spend read once for the whole page, not once per key."""

    def to_representation(self, data: Any) -> list[Any]:
        keys = list(data.all() if hasattr(data, "all") else data)
        return super().to_representation(key_spend_attach(keys=keys))


class KeySerializer(serializers.ModelSerializer):
    organization = ScopedRelatedField(
        selector=organization_list,
        queryset=Organization.objects.all(),
        required=False,
        allow_null=True,
        help_text="Defaults to the team's organization.",
    )
    team = ScopedRelatedField(
        selector=team_list, queryset=Team.objects.all(), required=False, allow_null=True
    )
    user = ScopedRelatedField(
        selector=user_list,
        queryset=User.objects.all(),
        required=False,
        allow_null=True,
        help_text="The key's owner. Members may only create keys for themselves.",
    )
    models = serializers.ListField(
        source="allowed_models",
        child=serializers.CharField(max_length=200),
        required=False,
        help_text="Model names or access groups this key may use; empty means every model.",
    )
    # Money leaves as fixed-point strings ("0.00002706"); numbers and strings are accepted.
    max_budget = serializers.DecimalField(
        **USD, min_value=0, required=False, allow_null=True, coerce_to_string=True
    )
    soft_budget = serializers.DecimalField(
        **USD, min_value=0, required=False, allow_null=True, coerce_to_string=True
    )
    budget_duration = serializers.ChoiceField(
        choices=_DURATIONS, required=False, allow_null=True, allow_blank=True
    )
    spend = serializers.DecimalField(
        **USD,
        read_only=True,
        coerce_to_string=True,
        help_text="USD spent in the current budget period when the key's budget has a limit, "
        "else total_spend.",
    )
    total_spend = serializers.DecimalField(
        **USD,
        read_only=True,
        coerce_to_string=True,
        help_text="USD spent by the key since it was created (the request log), budget or not.",
    )
    budget_reset_at = serializers.DateTimeField(read_only=True, allow_null=True)
    endpoint_limits = JSONObjectField(
        required=False,
        help_text='Rate limits per /v1 endpoint, e.g. {"images/generations": {"rpm": 5}, '
        '"chat/completions": {"rpm": 100, "tpm": 20000}}; counted beside the key\'s own.',
    )
    key_prefix = serializers.CharField(source="display_prefix", read_only=True)
    status = serializers.SerializerMethodField()

    class Meta:
        model = VirtualKey
        fields = [
            "id",
            "name",
            "key_prefix",
            "status",
            "organization",
            "team",
            "user",
            "models",
            "max_budget",
            "soft_budget",
            "budget_duration",
            "spend",
            "total_spend",
            "budget_reset_at",
            "rpm_limit",
            "tpm_limit",
            "max_parallel_requests",
            "endpoint_limits",
            "expires_at",
            "revoked_at",
            "metadata",
            "tags",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "revoked_at", "created_by", "created_at", "updated_at"]
        list_serializer_class = KeyListSerializer

    def get_status(self, key: VirtualKey) -> str:
        return key_status(key=key)

    def to_representation(self, instance: VirtualKey) -> dict[str, Any]:
        if not hasattr(instance, "total_spend"):
            key_spend_attach(
                keys=[instance]
            )  # a list attaches them all at once (KeyListSerializer)
        data = super().to_representation(instance)
        # Budget values come from the selector's annotations (no query per key).
        data["max_budget"] = _usd(getattr(instance, "budget_max", None))
        data["soft_budget"] = _usd(getattr(instance, "budget_soft", None))
        data["budget_duration"] = getattr(instance, "budget_duration", None) or None
        return data

    def validate_tags(self, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
            raise serializers.ValidationError("Tags must be a list of strings.")
        return value

    def validate_endpoint_limits(self, value: Any) -> dict[str, Any]:
        problem = endpoint_limits_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate_metadata(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Metadata must be an object.")
        problem = debug_until_problem(value.get("debug_until"))
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None:
            # A key stays where it was created; create a new key to move it.
            for field in ("organization", "team"):
                attrs.pop(field, None)
            self._models_check(
                attrs, team=self.instance.team, organization=self.instance.organization
            )
            return attrs
        team = attrs.get("team")
        organization = attrs.get("organization")
        if team is not None:
            if organization is not None and organization.pk != team.organization_id:
                raise serializers.ValidationError(
                    {"team": ["The team belongs to another organization."]}
                )
            attrs["organization"] = organization = team.organization
        self._models_check(attrs, team=team, organization=organization)
        return attrs

    def _models_check(
        self, attrs: dict[str, Any], *, team: Team | None, organization: Organization | None
    ) -> None:
        if "metadata" in attrs:
            owner = organization or (team.organization if team is not None else None)
            problem = guardrails_foreign_message(
                metadata=attrs["metadata"], organization_id=owner.pk if owner else None
            )
            if problem:
                raise serializers.ValidationError({"metadata": [problem]})
        if "allowed_models" not in attrs:
            return
        problem = key_models_problem(
            models=attrs["allowed_models"], team=team, organization=organization
        )
        if problem:
            raise serializers.ValidationError({"models": [problem]})


class KeyCreatedSerializer(KeySerializer):
    key = serializers.CharField(read_only=True, help_text="The secret, shown this once.")

    class Meta(KeySerializer.Meta):
        fields = [*KeySerializer.Meta.fields, "key"]


class KeyRotateSerializer(serializers.Serializer):
    grace_period_seconds = serializers.IntegerField(
        min_value=0,
        max_value=30 * 24 * 3600,
        default=0,
        help_text="How long the previous secret keeps working.",
    )


def _usd(value: Any) -> str | None:
    return usd_str(value) if value is not None else None


@extend_schema(
    parameters=[
        OpenApiParameter("status", str, enum=["active", "revoked", "expired"], required=False)
    ]
)
class KeyViewSet(ScopedViewSet):
    """Keys the caller can see. Team admins manage their team's keys; owners manage their own."""

    selector = staticmethod(key_list)
    serializer_class = KeySerializer
    filter_params = {
        "organization": "organization_id",
        "team": "team_id",
        "user": "user_id",
        "prefix": "prefix",
    }
    search_fields = ["name", "prefix"]
    ordering_fields = ["created_at", "name", "expires_at"]
    ordering = ["-created_at"]

    def get_queryset(self) -> QuerySet[VirtualKey]:
        keys = super().get_queryset()
        wanted = self.request.query_params.get("status") if self.action == "list" else None
        now = timezone.now()
        if wanted == "active":
            return keys.filter(revoked_at__isnull=True).filter(
                Q(expires_at__isnull=True) | Q(expires_at__gt=now)
            )
        if wanted == "revoked":
            return keys.filter(revoked_at__isnull=False)
        if wanted == "expired":
            return keys.filter(revoked_at__isnull=True, expires_at__lte=now)
        return keys

    def check_create(self, data: dict[str, Any]) -> None:
        team: Team | None = data.get("team")
        organization: Organization | None = data.get("organization")
        principal = self.principal
        if team is None and organization is None and not principal.is_proxy_admin:
            raise serializers.ValidationError({"team": ["Give the team (or organization)."]})
        refusal = key_create_refusal(
            principal=principal,
            team=team,
            organization=organization,
            user=data.get("user"),
            settings=[name for name in KEY_SETTINGS if data.get(name) not in _UNSET],
        )
        if refusal is not None:
            self.deny(refusal)
        if not key_scope_administered(
            principal=principal,
            team_id=team.pk if team is not None else None,
            organization_id=organization.pk if organization is not None else None,
        ):
            data["user"] = principal.user  # a member's key is theirs

    def check_change(self, instance: VirtualKey) -> None:
        if not key_change_allowed(principal=self.principal, key=instance):
            self.deny()

    @extend_schema(responses={201: KeyCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def perform_service_create(self, data: dict[str, Any]) -> Any:
        issued = key_create(
            name=data["name"],
            organization=data.get("organization"),
            team=data.get("team"),
            user=data.get("user"),
            created_by=request_user(self.request),
            models=data.get("allowed_models"),
            expires_at=data.get("expires_at"),
            metadata=data.get("metadata"),
            tags=data.get("tags"),
            rpm_limit=data.get("rpm_limit"),
            tpm_limit=data.get("tpm_limit"),
            max_parallel_requests=data.get("max_parallel_requests"),
            endpoint_limits=data.get("endpoint_limits"),
            max_budget=data.get("max_budget"),
            soft_budget=data.get("soft_budget"),
            budget_duration=data.get("budget_duration") or None,
        )
        self._secret = issued.secret
        return issued.key

    def created_data(self, instance: VirtualKey) -> dict[str, Any]:
        return self._with_secret(instance, self._secret)

    def perform_service_update(self, instance: VirtualKey, data: dict[str, Any]) -> VirtualKey:
        return key_change(principal=self.principal, key=instance, changes=data)

    def perform_service_destroy(self, instance: VirtualKey) -> None:
        key_delete(key=instance)

    @extend_schema(request=None, responses=KeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        """Revoke the key: /v1 refuses it from now on."""
        key = self.get_object()
        self.check_change(key)
        before = audit_snapshot(key)
        key_revoke(key=key)
        self.audit(action="revoke", instance=key, before=before)
        return Response(
            KeySerializer(self.refetch(key), context=self.get_serializer_context()).data
        )

    @extend_schema(request=KeyRotateSerializer, responses=KeyCreatedSerializer)
    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, pk: str | None = None) -> Response:
        """Issue a new secret (returned once); the old one works for the grace period."""
        key = self.get_object()
        self.check_change(key)
        if key.revoked_at is not None:
            raise serializers.ValidationError({"detail": ["A revoked key cannot be rotated."]})
        options = KeyRotateSerializer(data=request.data)
        options.is_valid(raise_exception=True)
        grace = timedelta(seconds=options.validated_data["grace_period_seconds"])
        before = audit_snapshot(key)
        issued = key_rotate(key=key, grace_period=grace)
        self.audit(action="rotate", instance=issued.key, before=before)
        return Response(self._with_secret(issued.key, issued.secret))

    def _with_secret(self, key: VirtualKey, secret: str) -> dict[str, Any]:
        context = self.get_serializer_context()
        data = dict(KeyCreatedSerializer(self.refetch(key), context=context).data)
        data["key"] = secret
        return data
