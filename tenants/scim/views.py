"""SCIM 2.0 endpoints (DRF, thin): authenticate the organization's token, call services, render.

Responses are written directly as ``application/scim+json`` rather than through DRF's content
negotiation, because SCIM clients send a variety of Accept headers and all expect SCIM JSON.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.http import HttpResponse
from rest_framework import authentication, exceptions, parsers, permissions, renderers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.views import APIView

from tenants.audit import AuditActorViewMixin, audit_actor_name
from tenants.models import AuditSurface, Organization, ScimToken
from tenants.scim import selectors, services
from tenants.scim.errors import ScimError
from tenants.scim.schemas import (
    LIST_RESPONSE_SCHEMA,
    SEARCH_REQUEST_SCHEMA,
    resource_type_documents,
    schema_documents,
    service_provider_config_document,
)

CONTENT_TYPE = "application/scim+json"
logger = logging.getLogger(__name__)


def scim_response(body: Any, *, status: int = 200, location: str | None = None) -> HttpResponse:
    response = HttpResponse(
        json.dumps(body) if body is not None else b"", status=status, content_type=CONTENT_TYPE
    )
    if location:
        response["Location"] = location
    return response


class ScimTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, ScimToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            return None
        token = selectors.scim_token_authenticate(secret=secret.strip())
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked SCIM token.")
        return (ScimClient(token), token)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="ogem-scim"'


class ScimClient:
    """The request user for a SCIM token: the organization's identity provider."""

    is_authenticated = True
    is_anonymous = False
    pk = None

    def __init__(self, token: ScimToken) -> None:
        self.token = token
        self.username = f"scim:{token.prefix}"
        self.audit_name = audit_actor_name(scim_token_prefix=token.prefix)


class ScimJSONParser(parsers.JSONParser):
    media_type = "application/scim+json"


class ScimJSONRenderer(renderers.JSONRenderer):
    media_type = CONTENT_TYPE


class ScimContentNegotiation(DefaultContentNegotiation):
    """Always answer SCIM JSON, whatever the Accept header says (responses bypass rendering)."""

    def select_renderer(self, request: Any, renderers: Any, format_suffix: Any = None) -> Any:
        return (renderers[0], renderers[0].media_type)


_DRF_SCIM_TYPES = {exceptions.ParseError: "invalidSyntax"}


class ScimView(AuditActorViewMixin, APIView):
    audit_surface = AuditSurface.SCIM
    authentication_classes = [ScimTokenAuthentication]
    permission_classes = [permissions.IsAuthenticated]
    parser_classes = [ScimJSONParser, parsers.JSONParser]
    renderer_classes = [ScimJSONRenderer]
    content_negotiation_class = ScimContentNegotiation

    @property
    def organization(self) -> Organization:
        return self.request.auth.organization

    @property
    def base_url(self) -> str:
        return self.request.build_absolute_uri("/scim/v2/")

    def handle_exception(self, exc: Exception) -> HttpResponse:
        if isinstance(exc, ScimError):
            return scim_response(exc.to_body(), status=exc.status)
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            error = ScimError(401, str(exc.detail))
            response = scim_response(error.to_body(), status=401)
            response["WWW-Authenticate"] = 'Bearer realm="ogem-scim"'
            return response
        if isinstance(exc, exceptions.APIException):
            detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
            error = ScimError(
                exc.status_code, str(detail), scim_type=_DRF_SCIM_TYPES.get(type(exc))
            )
            return scim_response(error.to_body(), status=exc.status_code)
        raise exc

    def body(self) -> Any:
        try:
            return self.request.data
        except exceptions.ParseError as exc:
            raise ScimError(400, "the body is not valid JSON", scim_type="invalidSyntax") from exc

    def list_params(self, source: Any) -> dict[str, Any]:
        def integer(name: str, default: int | None) -> int | None:
            raw = source.get(name)
            if raw in (None, ""):
                return default
            try:
                return int(raw)
            except (TypeError, ValueError) as exc:
                raise ScimError(
                    400, f"{name} must be an integer", scim_type="invalidValue"
                ) from exc

        return {
            "filter_text": source.get("filter") or None,
            "start_index": integer("startIndex", 1) or 1,
            "count": integer("count", None),
        }

    def projected(self, resource: dict[str, Any], source: Any) -> dict[str, Any]:
        return selectors.scim_project(
            resource,
            attributes=source.get("attributes"),
            excluded=source.get("excludedAttributes"),
        )

    def project_list(self, listing: dict[str, Any], source: Any) -> dict[str, Any]:
        listing["Resources"] = [self.projected(r, source) for r in listing["Resources"]]
        return listing


class ServiceProviderConfigView(ScimView):
    def get(self, request: Request) -> HttpResponse:
        return scim_response(service_provider_config_document(base_url=self.base_url))


class _DiscoveryListView(ScimView):
    resource_type = ""

    def documents(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def get(self, request: Request, item_id: str | None = None) -> HttpResponse:
        documents = self.documents()
        if item_id is not None:
            for document in documents:
                if document["id"] == item_id:
                    return scim_response(document)
            raise ScimError(404, f"{self.resource_type} {item_id} not found")
        return scim_response(
            {
                "schemas": [LIST_RESPONSE_SCHEMA],
                "totalResults": len(documents),
                "itemsPerPage": len(documents),
                "startIndex": 1,
                "Resources": documents,
            }
        )


class SchemasView(_DiscoveryListView):
    resource_type = "Schema"

    def documents(self) -> list[dict[str, Any]]:
        return schema_documents(base_url=self.base_url)


class ResourceTypesView(_DiscoveryListView):
    resource_type = "ResourceType"

    def documents(self) -> list[dict[str, Any]]:
        return resource_type_documents(base_url=self.base_url)


class UsersView(ScimView):
    def get(self, request: Request) -> HttpResponse:
        listing = selectors.scim_user_list(
            organization=self.organization,
            base_url=self.base_url,
            **self.list_params(request.query_params),
        )
        return scim_response(self.project_list(listing, request.query_params))

    def post(self, request: Request) -> HttpResponse:
        user = services.scim_user_create(organization=self.organization, document=self.body())
        resource = selectors.scim_user_representation(user=user, base_url=self.base_url)
        return scim_response(
            self.projected(resource, request.query_params),
            status=201,
            location=resource["meta"]["location"],
        )


class UserView(ScimView):
    def get(self, request: Request, user_id: str) -> HttpResponse:
        user = selectors.scim_user_get(organization=self.organization, user_id=user_id)
        resource = selectors.scim_user_representation(user=user, base_url=self.base_url)
        return scim_response(self.projected(resource, request.query_params))

    def put(self, request: Request, user_id: str) -> HttpResponse:
        user = selectors.scim_user_get(organization=self.organization, user_id=user_id)
        user = services.scim_user_replace(
            organization=self.organization, user=user, document=self.body()
        )
        resource = selectors.scim_user_representation(user=user, base_url=self.base_url)
        return scim_response(self.projected(resource, request.query_params))

    def patch(self, request: Request, user_id: str) -> HttpResponse:
        user = selectors.scim_user_get(organization=self.organization, user_id=user_id)
        user = services.scim_user_patch(
            organization=self.organization, user=user, body=self.body(), base_url=self.base_url
        )
        resource = selectors.scim_user_representation(user=user, base_url=self.base_url)
        return scim_response(self.projected(resource, request.query_params))

    def delete(self, request: Request, user_id: str) -> HttpResponse:
        user = selectors.scim_user_get(organization=self.organization, user_id=user_id)
        services.scim_user_delete(organization=self.organization, user=user)
        return scim_response(None, status=204)


class GroupsView(ScimView):
    def get(self, request: Request) -> HttpResponse:
        listing = selectors.scim_group_list(
            organization=self.organization,
            base_url=self.base_url,
            **self.list_params(request.query_params),
        )
        return scim_response(self.project_list(listing, request.query_params))

    def post(self, request: Request) -> HttpResponse:
        team = services.scim_group_create(organization=self.organization, document=self.body())
        resource = selectors.scim_group_representation(team=team, base_url=self.base_url)
        return scim_response(
            self.projected(resource, request.query_params),
            status=201,
            location=resource["meta"]["location"],
        )


class GroupView(ScimView):
    def get(self, request: Request, group_id: str) -> HttpResponse:
        team = selectors.scim_group_get(organization=self.organization, group_id=group_id)
        resource = selectors.scim_group_representation(team=team, base_url=self.base_url)
        return scim_response(self.projected(resource, request.query_params))

    def put(self, request: Request, group_id: str) -> HttpResponse:
        team = selectors.scim_group_get(organization=self.organization, group_id=group_id)
        team = services.scim_group_replace(
            organization=self.organization, team=team, document=self.body()
        )
        resource = selectors.scim_group_representation(team=team, base_url=self.base_url)
        return scim_response(self.projected(resource, request.query_params))

    def patch(self, request: Request, group_id: str) -> HttpResponse:
        team = selectors.scim_group_get(organization=self.organization, group_id=group_id)
        team = services.scim_group_patch(
            organization=self.organization, team=team, body=self.body(), base_url=self.base_url
        )
        resource = selectors.scim_group_representation(team=team, base_url=self.base_url)
        return scim_response(self.projected(resource, request.query_params))

    def delete(self, request: Request, group_id: str) -> HttpResponse:
        team = selectors.scim_group_get(organization=self.organization, group_id=group_id)
        services.scim_group_delete(organization=self.organization, team=team)
        return scim_response(None, status=204)


class SearchView(ScimView):
    """POST /Users/.search and /Groups/.search (RFC 7644 §3.4.3)."""

    resource_type = ""

    def post(self, request: Request) -> HttpResponse:
        body = self.body()
        if not isinstance(body, dict) or SEARCH_REQUEST_SCHEMA not in (body.get("schemas") or []):
            raise ScimError(
                400, f"schemas must contain {SEARCH_REQUEST_SCHEMA}", scim_type="invalidSyntax"
            )
        params = self.list_params(body)
        if not self.resource_type:
            listing = selectors.scim_search_all(
                organization=self.organization, base_url=self.base_url, **params
            )
        elif self.resource_type == "User":
            listing = selectors.scim_user_list(
                organization=self.organization, base_url=self.base_url, **params
            )
        else:
            listing = selectors.scim_group_list(
                organization=self.organization, base_url=self.base_url, **params
            )
        return scim_response(self.project_list(listing, body))


class RootSearchView(SearchView):
    """POST /.search: Users and Groups at once."""


class NotFoundView(ScimView):
    def get(self, request: Request, rest: str) -> HttpResponse:
        raise ScimError(404, f"no SCIM endpoint at /{rest}")

    post = put = patch = delete = get
