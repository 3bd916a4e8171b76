from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from tenants.portal.selectors import instance_sso


def sso(request: HttpRequest) -> dict[str, Any]:
    """The instance-wide SSO button for the sign-in page (None when OGEM_OIDC_* is unset)."""
    return {"ogem_sso": instance_sso()}
