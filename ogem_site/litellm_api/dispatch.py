"""Run an /api/v1 resource in-process on the caller's behalf, with a translated body.

The inner request carries the caller's own credentials, so the resource authenticates, scopes and
audits exactly as on /api/v1; only the field names differ outside.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, QueryDict
from rest_framework.request import Request

from billing.rest import BudgetViewSet
from gateway.rest import ModelDeploymentViewSet
from keys.rest import KeyViewSet
from tenants.rest.views import MembershipViewSet, OrganizationViewSet, TeamViewSet, UserViewSet

RESOURCES: dict[str, Any] = {
    "keys": KeyViewSet,
    "teams": TeamViewSet,
    "users": UserViewSet,
    "organizations": OrganizationViewSet,
    "memberships": MembershipViewSet,
    "budgets": BudgetViewSet,
    "models": ModelDeploymentViewSet,
}
_ACTIONS = {
    ("GET", False): "list",
    ("POST", False): "create",
    ("GET", True): "retrieve",
    ("PATCH", True): "partial_update",
    ("DELETE", True): "destroy",
}


@dataclass(frozen=True)
class Answer:
    status: int
    data: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def resource_call(
    request: Request,
    *,
    resource: str,
    method: str,
    pk: int | str | None = None,
    body: dict[str, Any] | None = None,
    query: dict[str, Any] | None = None,
) -> Answer:
    """Call /api/v1/<resource>[/<pk>] with ``body`` as the caller of ``request``."""
    outer = request._request
    payload = json.dumps(body or {}).encode()
    inner = HttpRequest()
    inner.method = method
    inner.path = inner.path_info = f"/api/v1/{resource}" + (f"/{pk}" if pk is not None else "")
    query_string = urlencode({k: v for k, v in (query or {}).items() if v is not None})
    inner.META = {
        key: value
        for key, value in outer.META.items()
        if key.startswith("HTTP_") or key in ("REMOTE_ADDR", "SERVER_NAME", "SERVER_PORT")
    }
    inner.META.update(
        REQUEST_METHOD=method,
        CONTENT_TYPE="application/json",
        CONTENT_LENGTH=str(len(payload)),
        QUERY_STRING=query_string,
    )
    inner.META.pop("HTTP_COOKIE", None)  # the bearer key authenticates, never a session
    inner.GET = QueryDict(query_string)
    inner._stream = io.BytesIO(payload)  # type: ignore[attr-defined]
    inner._read_started = False  # type: ignore[attr-defined]
    inner._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
    action = _ACTIONS[(method, pk is not None)]
    view = RESOURCES[resource].as_view({method.lower(): action})
    response = view(inner, **({"pk": str(pk)} if pk is not None else {}))
    return Answer(status=response.status_code, data=getattr(response, "data", None))
