"""Portal pages: thin views over ogem_site.portal.selectors and ogem_site.portal.services.

The portal composes every app's reads and writes (keys, spend, models), so it sits above them
all (docs/architecture.md); its sign-in (allauth adapters, identity providers) is tenants'.
"""

from __future__ import annotations

import secrets
from contextlib import AbstractContextManager
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from batches.selectors import ENDED as BATCH_ENDED
from fine_tuning.selectors import ENDED as FINE_TUNING_ENDED
from gateway.errors import GatewayError
from keys.permissions import key_change_allowed
from keys.selectors import key_status
from keys.services import IssuedKey
from ogem_site.portal.forms import KeyCreateForm, RealtimeSecretForm
from ogem_site.portal.selectors import (
    portal_batch_rows,
    portal_chat_model_default,
    portal_fine_tuning_jobs,
    portal_key_get,
    portal_key_list,
    portal_key_teams,
    portal_model_list,
    portal_realtime_keys,
    portal_team_rows,
    portal_usage,
    portal_vector_store_rows,
)
from ogem_site.portal.services import (
    portal_key_create,
    portal_key_revoke,
    portal_key_rotate,
    portal_realtime_secret_create,
)
from tenants.audit import audit_actor, audit_actor_name, audit_client_ip
from tenants.models import AuditSurface
from tenants.portal.forms import SsoDiscoveryForm
from tenants.portal.selectors import identity_provider_for_email
from tenants.principals import Principal
from tenants.selectors import principal_for_user

_FORM_TOKENS = "ogem_portal_form_tokens"
_FORM_TOKENS_KEPT = 20


def _form_token_issue(request: HttpRequest) -> str:
    """A one-time token for the page's forms, so a reloaded POST never repeats a write."""
    token = secrets.token_urlsafe(16)
    tokens = [*request.session.get(_FORM_TOKENS, []), token][-_FORM_TOKENS_KEPT:]
    request.session[_FORM_TOKENS] = tokens
    return token


def _form_token_consume(request: HttpRequest) -> bool:
    token = request.POST.get("form_token", "")
    tokens = request.session.get(_FORM_TOKENS, [])
    if not token or token not in tokens:
        return False
    request.session[_FORM_TOKENS] = [t for t in tokens if t != token]
    return True


def _resubmitted(request: HttpRequest) -> HttpResponse:
    messages.info(request, "That form was already submitted; nothing was changed again.")
    return redirect("portal:keys")


def _principal(request: HttpRequest) -> Principal:
    return principal_for_user(user=request.user)


def _audit(request: HttpRequest) -> AbstractContextManager[Any]:
    return audit_actor(
        actor=audit_actor_name(user=request.user),
        surface=AuditSurface.PORTAL,
        user_id=request.user.pk,
        ip_address=audit_client_ip(request=request),
        request_id=request.headers.get("x-request-id", "")[:100],
    )


def _render(
    request: HttpRequest, template: str, context: dict[str, Any], **kw: Any
) -> HttpResponse:
    return render(request, template, {"nav": template.rsplit("/", 1)[-1][:-5], **context}, **kw)


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    principal = _principal(request)
    keys = list(portal_key_list(principal=principal)[:5])
    return _render(
        request,
        "portal/home.html",
        {
            "usage": portal_usage(principal=principal),
            "keys": [(key, key_status(key=key)) for key in keys],
            "teams": portal_team_rows(principal=principal),
            "models": portal_model_list(principal=principal),
        },
    )


def _key_rows(principal: Principal) -> list[dict[str, Any]]:
    return [
        {
            "key": key,
            "status": key_status(key=key),
            "can_change": key_change_allowed(principal=principal, key=key),
        }
        for key in portal_key_list(principal=principal)
    ]


def _keys_page(
    request: HttpRequest,
    principal: Principal,
    *,
    form: KeyCreateForm | None = None,
    issued: IssuedKey | None = None,
    status: int = 200,
) -> HttpResponse:
    teams = portal_key_teams(principal=principal)
    response = _render(
        request,
        "portal/keys.html",
        {
            "rows": _key_rows(principal),
            "form": form or KeyCreateForm(teams=teams),
            "can_create": bool(teams),
            "issued": issued,
            "example_model": portal_chat_model_default(
                models=portal_model_list(principal=principal)
            )
            if issued is not None
            else None,
            "form_token": _form_token_issue(request),
        },
        status=status,
    )
    if issued is not None:
        response["Cache-Control"] = "no-store"
    return response


@login_required
def keys(request: HttpRequest) -> HttpResponse:
    principal = _principal(request)
    if request.method != "POST":
        return _keys_page(request, principal)
    teams = portal_key_teams(principal=principal)
    if not teams:
        raise PermissionDenied("You cannot create keys.")
    if not _form_token_consume(request):
        return _resubmitted(request)
    form = KeyCreateForm(request.POST, teams=teams)
    if not form.is_valid():
        return _keys_page(request, principal, form=form, status=400)
    with _audit(request):
        issued = portal_key_create(
            principal=principal, team=form.cleaned_data["team"], name=form.cleaned_data["name"]
        )
    return _keys_page(request, principal, issued=issued, status=201)


def _changeable_key(request: HttpRequest, principal: Principal, key_id: int) -> Any:
    """A key the caller can see (404 otherwise: others' keys are not revealed)."""
    key = portal_key_get(principal=principal, key_id=key_id)
    if key is None:
        raise Http404("No such key.")
    return key


@login_required
@require_POST
def key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    principal = _principal(request)
    key = _changeable_key(request, principal, key_id)
    if not _form_token_consume(request):
        return _resubmitted(request)
    with _audit(request):
        portal_key_revoke(principal=principal, key=key)
    messages.success(request, f"Key “{key.name}” revoked. It stops working on /v1 now.")
    return redirect("portal:keys")


@login_required
@require_POST
def key_rotate(request: HttpRequest, key_id: int) -> HttpResponse:
    principal = _principal(request)
    key = _changeable_key(request, principal, key_id)
    if not _form_token_consume(request):
        return _resubmitted(request)
    with _audit(request):
        issued = portal_key_rotate(principal=principal, key=key)
    return _keys_page(request, principal, issued=issued)


@login_required
@require_GET
def usage(request: HttpRequest) -> HttpResponse:
    return _render(
        request, "portal/usage.html", {"usage": portal_usage(principal=_principal(request))}
    )


@login_required
@require_GET
def teams(request: HttpRequest) -> HttpResponse:
    return _render(
        request, "portal/teams.html", {"teams": portal_team_rows(principal=_principal(request))}
    )


@login_required
@require_GET
def models(request: HttpRequest) -> HttpResponse:
    return _render(
        request, "portal/models.html", {"models": portal_model_list(principal=_principal(request))}
    )


@login_required
@require_GET
def batches(request: HttpRequest) -> HttpResponse:
    rows = portal_batch_rows(principal=_principal(request))
    active = any(row["batch"].status not in BATCH_ENDED for row in rows)
    return _render(request, "portal/batches.html", {"rows": rows, "active": active})


@login_required
@require_GET
def vector_stores(request: HttpRequest) -> HttpResponse:
    rows = portal_vector_store_rows(principal=_principal(request))
    active = any(row["status"] == "in_progress" for row in rows)
    return _render(request, "portal/vector_stores.html", {"rows": rows, "active": active})


@login_required
@require_GET
def fine_tuning(request: HttpRequest) -> HttpResponse:
    jobs = portal_fine_tuning_jobs(principal=_principal(request))
    active = any(job.status not in FINE_TUNING_ENDED for job in jobs)
    return _render(request, "portal/fine_tuning.html", {"jobs": jobs, "active": active})


@login_required
@require_GET
def playground(request: HttpRequest) -> HttpResponse:
    principal = _principal(request)
    models = portal_model_list(principal=principal)
    chat = [m for m in models if m["chat"]]
    return _render(
        request,
        "portal/playground.html",
        {
            "models": chat,
            "selected": portal_chat_model_default(models=chat),
            "realtime_models": [m for m in models if m["realtime"]],
            "realtime_keys": portal_realtime_keys(principal=principal),
        },
    )


@login_required
@require_POST
def playground_realtime_secret(request: HttpRequest) -> HttpResponse:
    """A one-minute Realtime client secret for one of the user's keys, as JSON (the playground's
    realtime mode opens its browser WebSocket with it)."""
    principal = _principal(request)
    form = RealtimeSecretForm(request.POST)
    if not form.is_valid():
        return JsonResponse(
            {"error": {"message": "Choose a key and a model.", "type": "invalid_request_error"}},
            status=400,
        )
    key = portal_key_get(principal=principal, key_id=form.cleaned_data["key_id"])
    if key is None:
        raise Http404
    try:
        value, expires_at = portal_realtime_secret_create(
            principal=principal, key=key, model=form.cleaned_data["model"]
        )
    except GatewayError as error:
        return JsonResponse(error.to_body(), status=error.status)
    return JsonResponse({"value": value, "expires_at": expires_at})


@require_GET
def sso_discover(request: HttpRequest) -> HttpResponse:
    """Email domain → the organization's IdP, offered as a one-click sign-in."""
    form = SsoDiscoveryForm(request.GET or None)
    identity_provider = None
    if form.is_valid():
        identity_provider = identity_provider_for_email(email=form.cleaned_data["email"])
    status = 404 if form.is_bound and identity_provider is None else 200
    return render(
        request,
        "account/sso_discover.html",
        {"form": form, "identity_provider": identity_provider, "next": request.GET.get("next", "")},
        status=status,
    )
