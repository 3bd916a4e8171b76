"""What every provider package builds on: the resolved deployment and model-string parsing.

A deployment reaches an adapter fully resolved (secrets read, defaults applied) and immutable;
adapters know nothing of tenants, keys or budgets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from providers.addresses import AddressPolicy


class Endpoint(StrEnum):
    CHAT = "chat/completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    IMAGES_GENERATIONS = "images/generations"
    IMAGES_EDITS = "images/edits"
    IMAGES_VARIATIONS = "images/variations"
    AUDIO_TRANSCRIPTIONS = "audio/transcriptions"
    AUDIO_TRANSLATIONS = "audio/translations"
    AUDIO_SPEECH = "audio/speech"
    MODERATIONS = "moderations"
    RERANK = "rerank"
    # A WebSocket session (gateway/realtime/), not an HTTP call: adapters that can relay one
    # name it in `endpoints` and build its upstream address (`realtime_target`).
    REALTIME = "realtime"
    # OpenAI's Responses API: native on OpenAI and Azure (passed through); Ogem serves it on every
    # other provider over chat completions (gateway/responses_api/).
    RESPONSES = "responses"


# Every endpoint served by an HTTP request to the adapter.
HTTP_ENDPOINTS = frozenset(Endpoint) - {Endpoint.REALTIME}
# The endpoints an adapter that speaks OpenAI's wire format serves by default: every HTTP one but
# the Responses API, which only OpenAI's and Azure's upstreams have.
CHAT_FAMILY_ENDPOINTS = HTTP_ENDPOINTS - {Endpoint.RESPONSES}


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 5.0
    first_byte: float = 60.0
    total: float = 600.0


# A parameter whose last word names a secret (not `max_tokens`, not `aws_access_key_id`).
_SECRET_PARAM = re.compile(r"(^|_)(key|secret|token|password|credentials?|headers)$", re.I)


def param_is_secret(name: str) -> bool:
    return bool(_SECRET_PARAM.search(name))


@dataclass(frozen=True, slots=True)
class Deployment:
    id: str  # stable and unique: "config:<model_name>:<index>" or "db:<pk>"
    model_name: str  # the public name clients send
    provider: str  # the provider package name (LiteLLM prefix), e.g. "openai", "azure", "mock"
    upstream_model: str  # the model id sent upstream
    api_base: str = ""
    api_key: str | None = None  # resolved secret; never logged, never in an error message
    api_version: str = ""
    region: str = ""
    organization_id: int | None = None  # None: every organization may use it
    access_groups: tuple[str, ...] = ()
    weight: int = 1
    priority: int = 0
    tags: tuple[str, ...] = ()
    rpm: int | None = None
    tpm: int | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    proxy: str | None = None
    # The addresses its upstream calls may connect to: set for organizations' database
    # deployments, None (any address) for the operator's.
    address_policy: AddressPolicy | None = None
    # Provider-specific parameters (e.g. Azure's deployment name, extra headers, organization).
    params: dict[str, Any] = field(default_factory=dict)
    # Requests in flight on this deployment, across workers (None: no limit; the router's).
    max_parallel_requests: int | None = None
    # LiteLLM's drop_params: a parameter the provider refuses is dropped and the request sent
    # again, instead of the refusal (the gateway's). None: the configuration's default.
    drop_params: bool | None = None
    # LiteLLM's modify_params: the adapter may change the request to meet the provider's rules
    # (e.g. an empty message content that Anthropic refuses). None: the configuration's default.
    modify_params: bool | None = None
    # The credentials it holds: api_key, secret params, the secret fields of a secret mapping
    # (a service account's private_key) and extra headers' values. Upstream error messages are
    # scrubbed of them (providers/errors.py); computed once, not per error.
    secrets: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        found: list[Any] = [self.api_key]
        for name, value in self.params.items():
            if not param_is_secret(name):
                continue
            if isinstance(value, dict):
                every = name.endswith("headers")  # any header may carry a credential
                found += [v for k, v in value.items() if every or param_is_secret(str(k))]
            else:
                found.append(value)
        object.__setattr__(self, "secrets", tuple(v for v in found if isinstance(v, str) and v))

    def __repr__(self) -> str:  # keeps api_key out of logs and tracebacks
        return f"Deployment(id={self.id!r}, model={self.model_name!r}, provider={self.provider!r})"


def model_string_split(model: str, *, known_providers: frozenset[str]) -> tuple[str, str]:
    """Split a LiteLLM-style "provider/model" string; a bare name is an OpenAI model.

    Only a known provider prefix is split off, so upstream ids that contain slashes
    ("meta-llama/Llama-3-8b") stay whole under "openai_compatible/" or "together_ai/".
    """
    head, sep, tail = model.partition("/")
    if sep and head in known_providers:
        return head, tail
    return "openai", model
