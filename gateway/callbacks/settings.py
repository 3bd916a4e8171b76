"""What the configuration says about callbacks (both formats read it into these:
gateway/config/callbacks.py); the config imports them from here, so that gateway.callbacks never
imports gateway.config."""

from __future__ import annotations

from dataclasses import dataclass, field

# Callback names the configuration accepts that no sink delivers: tracing and metrics, served by
# their own stages (docs/callbacks.md). They are recorded in `CallbackSettings.tracing`.
CALLBACKS_ELSEWHERE = ("otel", "opentelemetry", "prometheus")


@dataclass(frozen=True, slots=True)
class SinkSpec:
    """One configured callback: its name in the lists (`langfuse`, or a name of one's own for a
    `generic_api` entry of LiteLLM's callback_settings), the registry's sink it is, and its
    settings (lowercase environment names as LiteLLM's callback_vars spell them, resolved)."""

    name: str
    kind: str  # a key of gateway.callbacks.registry.SINKS
    settings: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    # Set by a team's or key's `logging` metadata, not the operator: the URLs in its settings
    # are checked like any user-supplied URL before Ogem connects (docs/callbacks.md).
    untrusted: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class CallbackSettings:
    """Callbacks to observability platforms (`callbacks:` in Ogem's format; LiteLLM's
    `litellm_settings.success_callback` / `failure_callback` / `callbacks`); gateway/callbacks/
    delivers them, off the request path (docs/callbacks.md). Compared by identity: each load
    is a new one."""

    success: tuple[str, ...] = ()  # sink names that get successful requests
    failure: tuple[str, ...] = ()  # ... and failed ones
    sinks: dict[str, SinkSpec] = field(default_factory=dict)
    tracing: tuple[str, ...] = ()  # CALLBACKS_ELSEWHERE names the file asks for
    message_logging: bool = True  # False: events carry no input nor output
    queue_size: int = 10_000  # events a process holds for delivery; past it, dropped and counted
    flush_interval: float = 1.0  # seconds a partial batch waits
    max_retries: int = 3  # sends of a batch after its first, with exponential backoff

    @property
    def active(self) -> bool:
        return bool(self.success or self.failure)
