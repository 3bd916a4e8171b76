from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from tenants.portal.selectors import identity_providers_exist, instance_sso


def sso(request: HttpRequest) -> dict[str, Any]:
    """The sign-in page's SSO entries: the instance-wide button (None when OGEM_OIDC_* is unset)
    and whether to offer organization SSO discovery (a callable, so that only a template that
    asks runs its query)."""
    return {"ogem_sso": instance_sso(), "ogem_org_sso": identity_providers_exist}
