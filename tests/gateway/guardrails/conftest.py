"""Fixtures of the vendor guardrails' tests."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from gateway.config import watch as config_watch
from gateway.config.types import GuardrailSettings, GuardrailSpec
from gateway.registry import registry_get


@pytest.fixture
def install_guardrails() -> Iterator[Callable[..., GuardrailSettings]]:
    """Install guardrails (those `default_on` run on every request) in the live configuration
    for one test; installing again replaces them."""
    registry_get()  # the first load installs its configuration: before this test's
    previous = config_watch._current

    def install(*specs: GuardrailSpec) -> GuardrailSettings:
        settings = GuardrailSettings(
            guardrails={spec.name: spec for spec in specs},
            default_on=tuple(spec.name for spec in specs if spec.default_on),
        )
        config_watch._current = replace(previous, guardrails=settings)
        return settings

    yield install
    config_watch._current = previous


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A URL whose server accepts connections and never answers (a vendor that hangs)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
