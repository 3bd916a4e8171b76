"""What every /api/v1 resource shares: the caller's Principal, scoped querysets, and errors.

Querysets come from selectors filtered by the Principal, so objects outside the caller's scope
are simply not found (404). Objects in scope that the caller may not change answer 403.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError
from django.db.models import Model, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import exceptions, filters, pagination, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.audit import (
    audit_actor_name,
    audit_actor_reset,
    audit_actor_set,
    audit_client_ip,
    audit_record,
    audit_snapshot,
)
from tenants.models import AuditSurface
from tenants.principals import Principal
from tenants.selectors import principal_for_user, principal_user_id

Selector = Callable[..., QuerySet]
# A slug, or organization-slug/team-slug.
_SLUG_REFERENCE = re.compile(r"[-a-zA-Z0-9_]{1,100}(?:/[-a-zA-Z0-9_]{1,100})?")


def request_principal(request: Request) -> Principal:
    """The Principal of a request: set by key authentication, or built from the session user."""
    cached = getattr(request, "_ogem_principal", None)
    if cached is not None:
        return cached
    if isinstance(request.auth, Principal):
        principal = request.auth
    elif request.user is not None and request.user.is_authenticated:
        principal = principal_for_user(user=request.user)
    else:
        raise exceptions.NotAuthenticated()
    request._ogem_principal = principal
    return principal


def request_user(request: Request) -> Any:
    """The caller's user row, or None for the master key (it has no row)."""
    principal = request_principal(request)
    return principal.user if principal_user_id(principal=principal) is not None else None


@extend_schema_field(
    {"oneOf": [{"type": "integer"}, {"type": "string"}], "description": "An id, or a slug."}
)
class ScopedRelatedField(serializers.PrimaryKeyRelatedField):
    """A foreign key chosen among the objects the caller can see; any other one answers 404.

    Objects with a slug are also found by it: `"organization": "acme"`, and a team by its slug
    (when only one team the caller sees has it) or as `"acme/search"`. Answers give the id.
    """

    def __init__(self, *, selector: Selector, **kwargs: Any) -> None:
        self.selector = selector
        super().__init__(**kwargs)

    def get_queryset(self) -> QuerySet:
        return self.selector(principal=request_principal(self.context["request"]))

    def to_internal_value(self, data: Any) -> Model:
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("incorrect_type", data_type=type(data).__name__)
        queryset = self.get_queryset()
        try:
            found = queryset.filter(pk=int(data))
        except ValueError:
            found = self._by_slug(queryset, str(data))
        matches = list(found[:2])
        if len(matches) > 1:
            raise serializers.ValidationError(
                f"More than one {self.field_name} has the slug {data!r}: give its id, or "
                "organization-slug/team-slug."
            )
        if not matches:
            raise exceptions.NotFound(f"{self.field_name} {data} not found.")
        return matches[0]

    def _by_slug(self, queryset: QuerySet, value: str) -> QuerySet:
        fields = {field.name for field in queryset.model._meta.get_fields()}
        if "slug" not in fields or not _SLUG_REFERENCE.fullmatch(value):
            self.fail("incorrect_type", data_type=type(value).__name__)
        if "organization" in fields and "/" in value:
            organization, _, slug = value.partition("/")
            return queryset.filter(organization__slug=organization, slug=slug)
        return queryset.filter(slug=value)


def _nul_free(value: Any) -> bool:
    """No NUL character in a string, or in any key or string of a JSON value (PostgreSQL's text
    and jsonb refuse it)."""
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, dict):
        return all(_nul_free(key) and _nul_free(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_nul_free(item) for item in value)
    return True


@extend_schema_field(OpenApiTypes.OBJECT)
class JSONObjectField(serializers.JSONField):
    """A JSON object (`metadata`): anything else, or a NUL character inside, is a 400."""

    default_error_messages = {
        "not_object": "Must be a JSON object.",
        "null_characters": "Null characters are not allowed.",
    }

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            self.fail("not_object")
        if not _nul_free(value):
            self.fail("null_characters")
        return value


class QueryParamFilter(filters.BaseFilterBackend):
    """Exact-match filters declared on the view as ``filter_params = {param: lookup}``."""

    def filter_queryset(self, request: Request, queryset: QuerySet, view: Any) -> QuerySet:
        for param, lookup in getattr(view, "filter_params", {}).items():
            value = request.query_params.get(param)
            if value is None or value == "":
                continue
            if "\x00" in value:  # PostgreSQL cannot compare text holding NUL
                raise exceptions.ValidationError({param: ["Null characters are not allowed."]})
            if value.lower() == "null":
                queryset = queryset.filter(**{f"{lookup}__isnull": True})
                continue
            try:
                queryset = queryset.filter(**{lookup: value})
                queryset.exists()
            except (ValueError, TypeError, DjangoValidationError) as exc:
                raise exceptions.ValidationError({param: [f"{value!r} is not valid."]}) from exc
        return queryset

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": param,
                "required": False,
                "in": "query",
                "description": f"Only objects whose {lookup} equals this value ('null' for none).",
                "schema": {"type": "string"},
            }
            for param, lookup in getattr(view, "filter_params", {}).items()
        ]


class Pagination(pagination.LimitOffsetPagination):
    """`?limit=&offset=`: a limit above `max_limit` (or beyond any database integer) is capped."""

    max_limit = 1000


def audit_organization_id(instance: Model) -> int | None:
    """The organization an object belongs to, for scoping its audit events."""
    if instance._meta.label == "tenants.Organization":
        return instance.pk
    organization_id = getattr(instance, "organization_id", None)
    for parent in ("team", "key"):
        if organization_id is None and getattr(instance, f"{parent}_id", None) is not None:
            organization_id = getattr(instance, parent).organization_id
    return organization_id


def unknown_fields_reject(serializer: serializers.BaseSerializer, data: Any) -> None:
    """A 400 naming every field the serializer does not have (with the likely one meant), instead
    of DRF's silent drop: `{"allowed_models": [...]}` must not create a key for every model.
    Read-only fields are known, so a GET body sent back with PUT still works."""
    if not isinstance(data, Mapping) or not isinstance(serializer, serializers.Serializer):
        return
    known = list(serializer.fields)
    errors: dict[str, list[str]] = {}
    for name in data:
        if name in serializer.fields:
            continue
        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
        errors[str(name)] = [
            f"Unknown field. Did you mean `{close[0]}`?" if close else "Unknown field."
        ]
    if errors:
        raise serializers.ValidationError(errors)


class ScopedViewSet(viewsets.GenericViewSet):
    """Base of every resource: scoped queryset from ``selector``, services for the writes.

    Subclasses set ``selector`` and implement ``perform_service_create``/``_update``/``_destroy``
    plus ``check_create``/``check_change`` that raise PermissionDenied.
    """

    selector: Selector
    filter_backends = [QueryParamFilter, filters.SearchFilter, filters.OrderingFilter]
    pagination_class = Pagination
    filter_params: dict[str, str] = {}
    ordering = ["pk"]
    lookup_value_regex = r"[0-9]+"

    @property
    def principal(self) -> Principal:
        return request_principal(self.request)

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):
            # Schema generation has no caller; it only needs the model.
            return self.get_serializer_class().Meta.model.objects.none()
        return self.selector(principal=self.principal)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # Services record audit events for the actor of the surface that called them.
        principal = request_principal(request)
        self._audit_token = audit_actor_set(
            actor=audit_actor_name(user=principal.user),
            surface=AuditSurface.API,
            user_id=principal_user_id(principal=principal),
            ip_address=audit_client_ip(request=request),
            request_id=request.headers.get("x-request-id", "")[:100],
        )

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        token = getattr(self, "_audit_token", None)
        if token is not None:
            audit_actor_reset(token)
            self._audit_token = None
        return super().finalize_response(request, response, *args, **kwargs)

    def deny(self, message: str = "You do not have permission to do this.") -> None:
        raise exceptions.PermissionDenied(message)

    def handle_exception(self, exc: Exception) -> Response:
        # Services signal bad input with ValueError (or a subclass); never answer it with a 500.
        # A DataError is a value the database refuses (out of range, NUL character): bad input too.
        if isinstance(exc, DjangoValidationError):
            exc = exceptions.ValidationError(exc.messages)
        elif isinstance(exc, DataError):
            exc = exceptions.ValidationError({"detail": ["A value is invalid for its field."]})
        elif isinstance(exc, ValueError | IntegrityError):
            field = getattr(exc, "field", None) or "detail"
            exc = exceptions.ValidationError({field: [str(exc)]})
        return super().handle_exception(exc)

    # Default CRUD built on the hooks below.

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        if page is not None:
            return self.get_paginated_response(self.get_serializer(page, many=True).data)
        return Response(self.get_serializer(queryset, many=True).data)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        unknown_fields_reject(serializer, request.data)
        serializer.is_valid(raise_exception=True)
        self.check_create(serializer.validated_data)
        instance = self.perform_service_create(serializer.validated_data)
        self.audit(action="create", instance=instance, before=None)
        return Response(self.created_data(instance), status=status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        instance = self.get_object()
        serializer = self.get_serializer(
            instance, data=request.data, partial=kwargs.get("partial", False)
        )
        unknown_fields_reject(serializer, request.data)
        serializer.is_valid(raise_exception=True)
        self.check_change(instance)
        before = audit_snapshot(instance)
        instance = self.perform_service_update(instance, serializer.validated_data)
        self.audit(action="update", instance=instance, before=before)
        return Response(self.get_serializer(self.refetch(instance)).data)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, partial=True, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        instance = self.get_object()
        self.check_destroy(instance)
        before = audit_snapshot(instance)
        # A deleted organization's events cannot point at it any more.
        is_organization = instance._meta.label == "tenants.Organization"
        organization_id = None if is_organization else audit_organization_id(instance)
        target_type, target_id = instance._meta.model_name, instance.pk
        self.perform_service_destroy(instance)
        audit_record(
            action="delete",
            target_type=target_type or "",
            target_id=target_id,
            organization_id=organization_id,
            before=before,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    def audit(self, *, action: str, instance: Model, before: Any) -> None:
        """Record an API change for the actor set in ``initial`` (services do not record)."""
        audit_record(
            action=action,
            target=instance,
            organization_id=audit_organization_id(instance),
            before=before,
            after=audit_snapshot(instance),
        )

    def created_data(self, instance: Any) -> dict[str, Any]:
        return self.get_serializer(self.refetch(instance)).data

    def refetch(self, instance: Model) -> Model:
        """Reload through the selector so annotations match what list/retrieve return."""
        return self.get_queryset().filter(pk=instance.pk).first() or instance

    def check_create(self, data: dict[str, Any]) -> None:
        self.deny()

    def check_change(self, instance: Any) -> None:
        self.deny()

    def check_destroy(self, instance: Any) -> None:
        self.check_change(instance)

    def perform_service_create(self, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    def perform_service_update(self, instance: Any, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    def perform_service_destroy(self, instance: Any) -> None:
        raise NotImplementedError
