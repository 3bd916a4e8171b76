from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.live import LiveServer, start_live_server

pytest_plugins = ["tests.emulators.fixtures"]

# google-auth's application-default credentials ping the metadata server at 169.254.169.254 when
# nothing else is configured; the suite never sends traffic there (google-auth reads this when
# imported; tests that emulate the metadata server lift it: tests/emulators/google_identity_api).
os.environ.setdefault("NO_GCE_CHECK", "true")


@pytest.fixture(scope="session")
def ogem_server() -> Iterator[LiveServer]:
    """One live Ogem server for the whole session; pair it with `transactional_db`."""
    from ogem_site.asgi import application

    server = start_live_server(application)
    yield server
    server.stop()


@pytest.fixture
def live_ogem(ogem_server: LiveServer, transactional_db: None) -> LiveServer:
    return ogem_server


@pytest.fixture(autouse=True)
def _registry_restored() -> Iterator[None]:
    """The deployment registry a test loaded (database rows its transaction then rolled back)
    does not serve the next test: on SQLite a later row can even reuse the rolled-back ids."""
    from gateway import registry as deployment_registry

    previous = deployment_registry._current
    yield
    deployment_registry._current = previous


@pytest.fixture(autouse=True)
def _redis_answers_again() -> Iterator[None]:
    """A test that made Redis unreachable leaves no outage behind for the next one."""
    yield
    from ogem_site.redis import redis_outage_reset

    redis_outage_reset()


@pytest.fixture
def master_key(settings) -> str:  # type: ignore[no-untyped-def]
    return settings.OGEM_MASTER_KEY
