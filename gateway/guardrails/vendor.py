"""The HTTP session of a vendor check (lakera, azure, bedrock, openai_moderation's direct mode).

An organization's own guardrail (gateway.GuardrailDefinition) connects under its organization's
address policy, like its model deployments: checked at every connect on the addresses actually
connected to (providers/addresses.py), so a name that resolves elsewhere after saving gains
nothing. The operator's guardrails connect anywhere.
"""

from __future__ import annotations

import aiohttp
from yarl import URL

from gateway.config.types import GuardrailSpec
from providers.http import http_session


def vendor_session(spec: GuardrailSpec, url: str | URL) -> aiohttp.ClientSession:
    policy = spec.address_policy
    if policy is not None:
        # The resolver judges names; an IP-literal host is never resolved, so it is judged here.
        host = url.raw_host if isinstance(url, URL) else URL(url).raw_host
        policy.check_literal(host or "")
    return http_session(policy)
