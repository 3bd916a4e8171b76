"""What every LiteLLM route shares: its authentication headers, its error shape, and lookups of
LiteLLM's ids (user ids are Ogem usernames; keys are named by secret or by `token`, Ogem's id)."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from keys.authentication import ManagementKeyAuthentication
from keys.models import VirtualKey
from keys.selectors import key_authenticate, key_list
from ogem_site.hashing import KEY_PREFIX
from tenants.authentication import OIDCAuthentication
from tenants.models import User
from tenants.principals import Principal
from tenants.rest.base import request_principal
from tenants.selectors import user_list

from .dispatch import Answer

# LiteLLM's ProxyException types by status; clients match on `type` and on `code` (a string).
_ERROR_TYPES = {
    400: "bad_request_error",
    401: "auth_error",
    403: "auth_error",
    404: "not_found_error",
    429: "budget_exceeded",
}


_DURATION_ALIASES = {"24h": "1d", "1w": "7d", "1mo": "30d"}


def budget_duration_to_ogem(value: Any) -> Any:
    """LiteLLM also writes "24h", "1w" and "1mo"; Ogem's periods are a day, a week, 30 days."""
    return _DURATION_ALIASES.get(value, value) if isinstance(value, str) else value


def money(value: Any) -> float | None:
    return float(value) if value is not None else None


class LiteLLMKeyAuthentication(ManagementKeyAuthentication):
    """`Authorization: Bearer KEY`, or LiteLLM's own `x-litellm-api-key: KEY` (with or without
    "Bearer "), for the master key or a user's virtual key."""

    def authenticate(self, request):  # type: ignore[no-untyped-def]
        litellm_key = request.META.get("HTTP_X_LITELLM_API_KEY", "").strip()
        if litellm_key:
            if not litellm_key.lower().startswith("bearer "):
                litellm_key = f"Bearer {litellm_key}"
            # The in-process /api/v1 call made on the caller's behalf reads the same header.
            request._request.META["HTTP_AUTHORIZATION"] = litellm_key
            request._request.__dict__.pop("headers", None)  # a cached view of META
        return super().authenticate(request)


class LiteLLMError(exceptions.APIException):
    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status_code = status


def error_message(data: Any) -> str:
    """One sentence out of a DRF error body (`{"field": ["..."]}` or `{"detail": "..."}`)."""
    if isinstance(data, dict):
        parts = []
        for field, value in data.items():
            text = error_message(value)
            parts.append(text if field in ("detail", "non_field_errors") else f"{field}: {text}")
        return "; ".join(parts)
    if isinstance(data, list):
        return " ".join(error_message(item) for item in data)
    return str(data)


def answer_or_raise(answer: Answer) -> Any:
    if not answer.ok:
        raise LiteLLMError(error_message(answer.data), status=answer.status)
    return answer.data


class LiteLLMView(APIView):
    # As /api/v1, without the browser session (these routes are for scripts: no CSRF to check).
    authentication_classes = [LiteLLMKeyAuthentication, OIDCAuthentication]
    # LiteLLM's routes are another API than /api/v1: its schema documents /api/v1 only.
    schema = None

    @property
    def principal(self) -> Principal:
        return request_principal(self.request)

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        status = response.status_code
        message = error_message(response.data)
        if isinstance(exc, exceptions.NotAuthenticated):
            message = "Authentication Error, No api key passed in."
        response.data = {
            "error": {
                "message": message,
                "type": _ERROR_TYPES.get(status, "internal_server_error"),
                "param": None,
                "code": str(status),
            }
        }
        return response

    def body(self) -> dict[str, Any]:
        data = self.request.data
        if not isinstance(data, dict):
            raise LiteLLMError("The request body must be a JSON object.")
        return dict(data)


def user_by_litellm_id(*, principal: Principal, user_id: Any) -> User:
    """The user a LiteLLM `user_id` names (an Ogem username, or an id), among those the caller
    sees."""
    users = user_list(principal=principal)
    found = users.filter(username=str(user_id)).first()
    if found is None and str(user_id).isdigit():
        found = users.filter(pk=int(user_id)).first()
    if found is None:
        raise LiteLLMError(f"User {user_id} not found.", status=404)
    return found


def key_by_litellm_id(*, principal: Principal, key: Any) -> VirtualKey:
    """The key a LiteLLM client names: its secret (`sk-...`) or its `token` (Ogem's key id)."""
    visible = key_list(principal=principal)
    value = str(key or "")
    found: VirtualKey | None = None
    if value.startswith(KEY_PREFIX):
        authenticated = key_authenticate(secret=value)
        if authenticated is not None:
            found = visible.filter(pk=authenticated.pk).first()
    elif value.isdigit():
        found = visible.filter(pk=int(value)).first()
    if found is None:
        raise LiteLLMError(f"Key not found: {_masked(value)}", status=404)
    return found


def _masked(value: str) -> str:
    return value[:7] + "..." if len(value) > 10 else value


def caller_key_id(request: Request) -> int | None:
    principal = request_principal(request)
    return principal.via_key_id
