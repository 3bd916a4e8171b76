"""Site-wide response headers Django's own middleware does not set (Django 5 has no CSP)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from inspect import iscoroutinefunction

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

Handler = Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]

_HEADER = "Content-Security-Policy"


@sync_and_async_middleware
def content_security_policy(get_response: Handler) -> Handler:
    """OGEM_CONTENT_SECURITY_POLICY on every response that does not set its own (empty: none)."""
    policy = settings.OGEM_CONTENT_SECURITY_POLICY

    def add(response: HttpResponseBase) -> HttpResponseBase:
        if policy and _HEADER not in response:
            response[_HEADER] = policy
        return response

    if iscoroutinefunction(get_response):

        async def middleware_async(request: HttpRequest) -> HttpResponseBase:
            return add(await get_response(request))  # type: ignore[misc]

        return middleware_async

    def middleware(request: HttpRequest) -> HttpResponseBase:
        return add(get_response(request))  # type: ignore[arg-type]

    return middleware
