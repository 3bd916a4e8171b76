"""Model deployments on /api/v1/models. Credentials are written, never read back."""

from __future__ import annotations

import re
from typing import Any

from asgiref.sync import async_to_sync
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway.config.credentials import (
    API_KEY,
    REDACTED,
    deployment_params_shown,
    deployment_write_problem,
)
from gateway.config.provider_names import provider_canonical, provider_model_problem
from gateway.deployments import deployment_problems
from gateway.model_health import (
    CHECK_TIMEOUT_DEFAULT,
    CHECK_TIMEOUT_MAX,
    deployments_health_check,
    health_deployments_visible,
)
from gateway.models import Credential, ModelDeployment
from gateway.selectors import (
    SOURCE_BUILTIN,
    SOURCE_CONFIG,
    SOURCE_DATABASE,
    config_deployment_list,
    config_deployment_shown,
    credential_get,
    deployment_list,
)
from gateway.services import deployment_create, deployment_delete, deployment_update
from tenants.catalog import provider_unknown_message
from tenants.models import Organization
from tenants.rest.base import ScopedRelatedField, ScopedViewSet, request_principal
from tenants.selectors import organization_list

# A reference says where the operator keeps a secret; the secret itself goes in api_key.
_CREDENTIAL_REF = re.compile(r"^(os\.environ/[A-Za-z_][A-Za-z0-9_]*|file:///\S+|secret://\S+)$")


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
        help_text="os.environ/NAME, file:///path or secret://... (never the secret itself); "
        "shared deployments only.",
    )
    credential = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        allow_null=True,
        help_text="A named credential the operator granted to the deployment's organization.",
    )
    api_key = serializers.CharField(
        max_length=4096,
        required=False,
        allow_blank=True,
        write_only=True,
        style={"input_type": "password"},
        help_text="The upstream key itself: stored encrypted, never returned. Empty removes it.",
    )
    has_credential = serializers.SerializerMethodField()
    id = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="null for a deployment of the config file"
    )
    deployment_id = serializers.SerializerMethodField(
        help_text='The id routing uses: "db:<id>", "config:<model>#<n>" or "builtin:<model>".'
    )
    source = serializers.SerializerMethodField(
        help_text='"database" (editable here), "config" (the OGEM_CONFIG file: read-only, edit '
        'the file) or "builtin" (the offline mock models served when OGEM_CONFIG is unset).'
    )
    created_at = serializers.DateTimeField(read_only=True, allow_null=True)
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = ModelDeployment
        fields = [
            "id",
            "deployment_id",
            "source",
            "model_name",
            "provider",
            "upstream_model",
            "api_base",
            "api_version",
            "credential_ref",
            "credential",
            "api_key",
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

    def get_deployment_id(self, deployment: ModelDeployment) -> str:
        return f"db:{deployment.pk}"

    @extend_schema_field(
        {"type": "string", "enum": [SOURCE_DATABASE, SOURCE_CONFIG, SOURCE_BUILTIN]}
    )
    def get_source(self, deployment: ModelDeployment) -> str:
        return SOURCE_DATABASE

    def get_has_credential(self, deployment: ModelDeployment) -> bool:
        return bool(
            deployment.credential_ref
            or deployment.credential_id
            or API_KEY in deployment.encrypted_secrets
        )

    def to_representation(self, instance: ModelDeployment) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["credential"] = instance.credential.name if instance.credential_id else None
        data["params"] = deployment_params_shown(instance.params or {}, instance.encrypted_secrets)
        return data

    def validate_credential_ref(self, value: str) -> str:
        if value and not _CREDENTIAL_REF.match(value):
            raise serializers.ValidationError(
                "Give a reference (os.environ/NAME, file:///path or secret://...), not a secret."
            )
        return value

    def validate_provider(self, value: str) -> str:
        problem = provider_unknown_message(provider=value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate_params(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("params must be an object.")
        return value

    def validate_credential(self, value: str | None) -> Credential | None:
        if not value:
            return None
        credential = credential_get(name=value)
        if credential is None:
            raise serializers.ValidationError(f'No credential named "{value}" is granted to you.')
        return credential

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        organization = attrs.get("organization", getattr(self.instance, "organization", None))
        provider = attrs.get("provider", getattr(self.instance, "provider", ""))
        upstream = attrs.get("upstream_model", getattr(self.instance, "upstream_model", ""))
        unservable = provider_model_problem(
            provider=provider_canonical(provider), upstream_model=upstream
        )
        if unservable is not None:
            raise serializers.ValidationError(
                {"upstream_model": [f"{unservable[0].upper()}{unservable[1:]}."]}
            )
        problem = deployment_write_problem(
            deployment=self.instance,
            organization_id=organization.pk if organization else None,
            data=attrs,
            api_key=attrs.get(API_KEY, _params_api_key(attrs.get("params") or {})),
        )
        if problem is not None:
            raise serializers.ValidationError({problem[0]: [problem[1]]})
        if self.instance is not None and "organization" in attrs:
            current = self.instance.organization_id
            wanted = attrs["organization"].pk if attrs["organization"] else None
            if wanted != current:
                raise serializers.ValidationError(
                    {"organization": ["A deployment cannot move between organizations."]}
                )
            attrs.pop("organization")
        return attrs


def _params_api_key(params: dict[str, Any]) -> str | None:
    value = params.get(API_KEY)
    return None if value == REDACTED else value


class _Listing:
    """The configuration's deployments (already shown as dicts) and then the database's rows, as
    one sequence that the paginator counts and slices: rows are read a page at a time."""

    def __init__(self, head: list[dict[str, Any]], rows: QuerySet[ModelDeployment]) -> None:
        self.head = head
        self.rows = rows
        self._count: int | None = None

    def __len__(self) -> int:
        if self._count is None:
            self._count = len(self.head) + self.rows.count()
        return self._count

    def __getitem__(self, part: slice) -> list[dict[str, Any] | ModelDeployment]:
        start, stop = part.start or 0, part.stop if part.stop is not None else len(self)
        first = len(self.head)
        items: list[dict[str, Any] | ModelDeployment] = list(self.head[start:stop])
        if stop > first:
            items += list(self.rows[max(start - first, 0) : stop - first])
        return items


def _config_matches(shown: dict[str, Any], query: Any) -> bool:
    """The list's filters and search, applied to a configuration deployment."""
    for param in ("model_name", "provider"):
        value = query.get(param)
        if value and shown[param] != value:
            return False
    organization = query.get("organization")
    if organization:
        wanted = None if organization.lower() == "null" else organization
        current = shown["organization"]
        if (None if current is None else str(current)) != wanted:
            return False
    if query.get("enabled", "").lower() in ("false", "0"):
        return False
    search = query.get("search", "").lower()
    if search and not any(
        search in shown[field].lower() for field in ("model_name", "upstream_model", "provider")
    ):
        return False
    return True


class ModelDeploymentViewSet(ScopedViewSet):
    """Proxy admins manage shared deployments; org admins manage their organization's.

    The list also shows the deployments of the configuration file (or the built-in mock models)
    first, read-only, with `source` saying where each comes from; only database rows have an
    `id` to read, change or delete. `?source=database` (or `config`, `builtin`) lists one kind.
    """

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

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "source",
                str,
                enum=[SOURCE_DATABASE, SOURCE_CONFIG, SOURCE_BUILTIN],
                description="only the deployments from there",
            )
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        source = request.query_params.get("source") or None
        choices = (SOURCE_DATABASE, SOURCE_CONFIG, SOURCE_BUILTIN)
        if source is not None and source not in choices:
            raise exceptions.ValidationError({"source": [f"One of {', '.join(choices)}."]})
        rows = self.filter_queryset(self.get_queryset())
        if source not in (None, SOURCE_DATABASE):
            rows = rows.none()
        head = []
        if source != SOURCE_DATABASE:
            shown = map(config_deployment_shown, config_deployment_list(principal=self.principal))
            head = [
                item
                for item in shown
                if (source is None or item["source"] == source)
                and _config_matches(item, request.query_params)
            ]
        page = self.paginate_queryset(_Listing(head, rows))  # type: ignore[arg-type]
        assert page is not None  # the viewset always paginates
        database = [item for item in page if isinstance(item, ModelDeployment)]
        serialized = iter(self.get_serializer(database, many=True).data)
        results = [item if isinstance(item, dict) else next(serialized) for item in page]
        return self.get_paginated_response(results)

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
        fields = dict(data)
        return deployment_create(
            data=fields, params=fields.pop("params", None), api_key=fields.pop(API_KEY, None)
        )

    def perform_service_update(
        self, instance: ModelDeployment, data: dict[str, Any]
    ) -> ModelDeployment:
        self._refuse_problems(data, instance=instance)
        fields = dict(data)
        return deployment_update(
            deployment=instance,
            data=fields,
            params=fields.pop("params", None),
            api_key=fields.pop(API_KEY, None),
        )

    def perform_service_destroy(self, instance: ModelDeployment) -> None:
        deployment_delete(deployment=instance)


class RoutingStatusView(APIView):
    """Model groups, their strategy and fallbacks, and every deployment's circuit state.

    Proxy admins see every group; organization admins see shared deployments and their
    organizations' own; anyone else is refused.
    """

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        # Imported on use: gateway.health loads every adapter and the Redis client (about
        # 0.5 s), which every process would pay at start (admin and API modules load in all).
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


class ModelHealthView(APIView):
    """Health of every model now: one small real request to each deployment the caller may
    administer, concurrently, each within `timeout` seconds (default 10, at most 60); `model`
    checks one group. Proxy admins check every deployment; organization admins the shared ones
    and their organizations' own."""

    @extend_schema(
        parameters=[
            OpenApiParameter("model", str, description="check this model group only"),
            OpenApiParameter("timeout", float, description="seconds per deployment (max 60)"),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request: Request) -> Response:
        principal = request_principal(request)
        organizations: set[int] | None = None
        if not principal.is_proxy_admin:
            organizations = set(principal.admin_org_ids())
            if not organizations:
                raise exceptions.PermissionDenied(
                    "Model health is for proxy and organization admins."
                )
        try:
            timeout = float(request.query_params.get("timeout", CHECK_TIMEOUT_DEFAULT))
        except ValueError:
            raise exceptions.ValidationError({"timeout": "must be a number of seconds"}) from None
        if not 0 < timeout <= CHECK_TIMEOUT_MAX:
            raise exceptions.ValidationError(
                {"timeout": f"must be above 0 and at most {CHECK_TIMEOUT_MAX:g} seconds"}
            )
        deployments = health_deployments_visible(
            organization_ids=organizations, model=request.query_params.get("model") or None
        )
        report = async_to_sync(deployments_health_check)(deployments=deployments, seconds=timeout)
        return Response(report)


class CachePurgeView(APIView):
    """Purge the response cache (docs/caching.md) of an organization, or of one team's or key's
    scope in it, in one namespace or all. Proxy admins purge any organization, organization
    admins their own, team admins their team's scope."""

    @extend_schema(
        parameters=[
            OpenApiParameter("organization", int, required=True),
            OpenApiParameter("team", int, description="only this team's scope"),
            OpenApiParameter("key", int, description="only this key's scope"),
            OpenApiParameter("namespace", str, description="only this namespace"),
        ],
        responses={
            200: OpenApiTypes.OBJECT,
            503: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="the S3 tier's bucket could not be reached: Redis and every "
                "worker's in-process entries were purged, its objects were not",
            ),
        },
    )
    def delete(self, request: Request) -> Response:
        from gateway.cache import cache_namespace_valid
        from gateway.services import CachePurgeError, response_cache_purge
        from keys.models import VirtualKey
        from tenants.models import Team

        principal = request_principal(request)
        params = request.query_params
        organization_id = _id_param(params.get("organization"), name="organization", required=True)
        team_id = _id_param(params.get("team"), name="team")
        key_id = _id_param(params.get("key"), name="key")
        namespace = params.get("namespace") or None
        if namespace is not None and not cache_namespace_valid(namespace):
            raise exceptions.ValidationError(
                {"namespace": ["1 to 64 letters, digits, `_`, `.` or `-`."]}
            )
        if (
            team_id is not None
            and not Team.objects.filter(pk=team_id, organization_id=organization_id).exists()
        ):
            raise exceptions.ValidationError({"team": ["No such team in this organization."]})
        key_team: int | None = None
        if key_id is not None:
            key = VirtualKey.objects.filter(pk=key_id, organization_id=organization_id).first()
            if key is None:
                raise exceptions.ValidationError({"key": ["No such key in this organization."]})
            key_team = key.team_id
        team_scope = team_id if team_id is not None else key_team
        allowed = principal.is_org_admin(organization_id) or (
            team_scope is not None and principal.is_team_admin(team_scope, organization_id)
        )
        if not allowed:
            raise exceptions.PermissionDenied(
                "Purging the cache is for proxy admins, the organization's admins and, for a "
                "team's or key's scope, the team's admins."
            )
        try:
            deleted = response_cache_purge(
                organization_id=organization_id,
                team_id=team_id,
                key_id=key_id,
                namespace=namespace,
            )
        except CachePurgeError as exc:
            return Response({"detail": str(exc)}, status=503)
        return Response(
            {
                "organization": organization_id,
                "team": team_id,
                "key": key_id,
                "namespace": namespace,
                "deleted": deleted,
            }
        )


def _id_param(raw: str | None, *, name: str, required: bool = False) -> int | None:
    if raw in (None, ""):
        if required:
            raise exceptions.ValidationError({name: ["This parameter is required."]})
        return None
    if not raw.isdigit():
        raise exceptions.ValidationError({name: ["A valid integer is required."]})
    return int(raw)
