"""What a deployment may hold depending on who saves it, checked by the API and admin alike.

An organization's deployment reaches its upstream from inside the operator's network, so its
`api_base` (and any other upstream URL) must resolve to addresses its organization's policy
allows (providers/addresses.py; the same check runs again at every connect). Parameters that lift
a server-side limit are the operator's alone. Prices are numbers >= 0 for everyone.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from billing.pricing import price_params_problems
from providers.addresses import (
    AddressPolicy,
    AddressRefusedError,
    address_policy,
    url_host_check,
)
from tenants.models import Organization

# Parameters that lift a limit Ogem keeps for the operator: fetching media from private
# addresses, and the size of what is fetched.
OPERATOR_ONLY_PARAMS = frozenset({"allow_private_urls", "max_media_bytes"})
# Parameters that name an upstream URL besides api_base.
URL_PARAMS = ("aws_bedrock_runtime_endpoint",)


def deployment_problems(
    *,
    organization: Organization | None,
    operator: bool,
    api_base: str | None = None,
    params: dict[str, Any] | None = None,
    current_params: dict[str, Any] | None = None,
) -> dict[str, list[str]]:
    """field -> why the values being saved are refused (empty: accepted). `api_base` and
    `params` are what is being written (None: unchanged); `operator`: a proxy admin saves;
    `current_params`: the row's, whose operator-only values a tenant may keep as they are."""
    problems: dict[str, list[str]] = {}
    if params is not None:
        found = price_params_problems(params)
        if not operator:
            current = current_params or {}
            found += [
                f"{name} can only be set by a proxy admin."
                for name in sorted(OPERATOR_ONLY_PARAMS & params.keys())
                if name not in current or params[name] != current[name]
            ]
        for name in URL_PARAMS if organization is not None else ():
            problem = params.get(name) and upstream_url_problem(
                str(params[name]), organization=organization
            )
            if problem:
                found.append(f"{name}: {problem}")
        if found:
            problems["params"] = found
    if organization is not None and api_base:
        problem = upstream_url_problem(api_base, organization=organization)
        if problem:
            problems["api_base"] = [problem]
    return problems


def organization_address_policy(organization: Organization) -> AddressPolicy:
    """The addresses an organization's deployments may reach: public ones, and the networks an
    operator listed in its `upstream_networks`."""
    networks = organization.upstream_networks
    return address_policy(tuple(str(n) for n in networks) if isinstance(networks, list) else ())


def upstream_url_problem(url: str, *, organization: Organization) -> str | None:
    """Why an organization's deployment may not use `url` as its upstream, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Give an http(s) URL."
    try:
        url_host_check(url, policy=organization_address_policy(organization))
    except AddressRefusedError:
        return (
            f"The host {parts.hostname!r} resolves to a loopback, private, link-local or other "
            "non-public address, which an organization's deployment may not reach (a proxy "
            "admin can allow a network in the organization's upstream_networks)."
        )
    except (OSError, UnicodeError):
        return f"The host {parts.hostname!r} does not resolve."
    return None
