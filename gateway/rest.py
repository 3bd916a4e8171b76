"""Model deployments on /api/v1/models. Credentials are written as references, never read back."""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway.deployments import deployment_problems
from gateway.models import ModelDeployment
from tenants.models import Organization
from tenants.principals import Principal
from tenants.rest.base import ScopedRelatedField, ScopedViewSet, request_principal
from tenants.selectors import organization_list

# A credential is given as where to find it, so the database never holds a provider secret.
_CREDENTIAL_REF = re.compile(r"^(os\.environ/[A-Za-z_][A-Za-z0-9_]*|file:///\S+|secret://\S+)$")
# Parameter names whose values are treated as secrets and never returned.
_SECRET_PARAM = re.compile(r"(key|secret|token|password|credential)", re.IGNORECASE)
_REDACTED = "********"


def deployment_list(*, principal: Principal) -> QuerySet[ModelDeployment]:
    """Shared deployments plus those of the caller's organizations."""
    deployments = ModelDeployment.objects.select_related("organization")
    if principal.is_proxy_admin:
        return deployments
    return deployments.filter(
        Q(organization__isnull=True) | Q(organization_id__in=principal.visible_org_ids())
    )


class ModelDeploymentSerializer(serializers.ModelSerializer):
    organization = ScopedRelatedField(
        selector=organization_list,
        queryset=Organization.objects.all(),
        required=False,
        allow_null=True,
        help_text="Empty: shared by every organization (proxy admins only).",
    )
    credential_ref = serializers.CharField(
        max_length=300,
        required=False,
        allow_blank=True,
        write_only=True,
        help_text="os.environ/NAME, file:///path or secret://... (never the secret itself).",
    )
    has_credential = serializers.SerializerMethodField()

    class Meta:
        model = ModelDeployment
        fields = [
            "id",
            "model_name",
            "provider",
            "upstream_model",
            "api_base",
            "api_version",
            "credential_ref",
            "has_credential",
            "organization",
            "access_groups",
            "region",
            "weight",
            "priority",
            "tags",
            "rpm",
            "tpm",
            "connect_timeout",
            "first_byte_timeout",
            "total_timeout",
            "params",
            "enabled",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def get_has_credential(self, deployment: ModelDeployment) -> bool:
        return bool(deployment.credential_ref)

    def to_representation(self, instance: ModelDeployment) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["params"] = _redact(data.get("params") or {})
        return data

    def validate_credential_ref(self, value: str) -> str:
        if value and not _CREDENTIAL_REF.match(value):
            raise serializers.ValidationError(
                "Give a reference (os.environ/NAME, file:///path or secret://...), not a secret."
            )
        return value

    def validate_params(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("params must be an object.")
        if self.instance is not None:
            # A client that sends back what it read keeps the secrets it could not see.
            current = self.instance.params or {}
            value = {
                name: current.get(name) if item == _REDACTED and name in current else item
                for name, item in value.items()
            }
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None and "organization" in attrs:
            current = self.instance.organization_id
            wanted = attrs["organization"].pk if attrs["organization"] else None
            if wanted != current:
                raise serializers.ValidationError(
                    {"organization": ["A deployment cannot move between organizations."]}
                )
            attrs.pop("organization")
        return attrs


def _redact(params: dict[str, Any]) -> dict[str, Any]:
    return {
        name: (_REDACTED if _SECRET_PARAM.search(name) and value else value)
        for name, value in params.items()
    }


class ModelDeploymentViewSet(ScopedViewSet):
    """Proxy admins manage shared deployments; org admins manage their organization's."""

    selector = staticmethod(deployment_list)
    serializer_class = ModelDeploymentSerializer
    filter_params = {
        "model_name": "model_name",
        "provider": "provider",
        "organization": "organization_id",
        "enabled": "enabled",
    }
    search_fields = ["model_name", "upstream_model", "provider"]
    ordering_fields = ["model_name", "priority", "created_at"]
    ordering = ["model_name", "priority", "id"]

    def _may_manage(self, organization_id: int | None) -> bool:
        if organization_id is None:
            return self.principal.is_proxy_admin
        return self.principal.is_org_admin(organization_id)

    def check_create(self, data: dict[str, Any]) -> None:
        organization = data.get("organization")
        if not self._may_manage(organization.pk if organization else None):
            self.deny()

    def check_change(self, instance: ModelDeployment) -> None:
        if not self._may_manage(instance.organization_id):
            self.deny()

    def _refuse_problems(
        self, data: dict[str, Any], *, instance: ModelDeployment | None = None
    ) -> None:
        problems = deployment_problems(
            organization=instance.organization if instance else data.get("organization"),
            operator=self.principal.is_proxy_admin,
            api_base=data.get("api_base"),
            params=data.get("params"),
            current_params=instance.params if instance else None,
        )
        if problems:
            raise serializers.ValidationError(problems)

    def perform_service_create(self, data: dict[str, Any]) -> ModelDeployment:
        self._refuse_problems(data)
        # Deployments have no service module yet: a plain row insert is all there is to do.
        return ModelDeployment.objects.create(**data)

    def perform_service_update(
        self, instance: ModelDeployment, data: dict[str, Any]
    ) -> ModelDeployment:
        self._refuse_problems(data, instance=instance)
        for name, value in data.items():
            setattr(instance, name, value)
        instance.save()
        return instance

    def perform_service_destroy(self, instance: ModelDeployment) -> None:
        instance.delete()


class RoutingStatusView(APIView):
    """Model groups, their strategy and fallbacks, and every deployment's circuit state.

    Proxy admins see every group; organization admins see shared deployments and their
    organizations' own; anyone else is refused.
    """

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        from gateway.health import routing_status

        principal = request_principal(request)
        if principal.is_proxy_admin:
            return Response(routing_status(organization_ids=None))
        organizations = principal.admin_org_ids()
        if not organizations:
            raise exceptions.PermissionDenied(
                "Routing status is for proxy and organization admins."
            )
        return Response(routing_status(organization_ids=organizations))
