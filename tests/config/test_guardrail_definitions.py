"""Admin-defined guardrails (gateway.GuardrailDefinition) merged with the file's at load and
reload (docs/guardrails.md, "Guardrails defined in admin"), and scoped to their organization."""

from __future__ import annotations

import pytest

from gateway.config import config_check
from gateway.config.loader import config_with_database
from gateway.config.problems import Problems
from gateway.config.types import GuardrailSettings
from gateway.context import Caller, RequestContext
from gateway.errors import GatewayError, InvalidRequestError
from gateway.guardrails.stage import guard_plan
from gateway.models import GuardrailDefinition
from ogem_site.crypto import secrets_encrypt
from providers.base import Endpoint
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

FILE = """
models:
  - name: gpt
    provider: mock
    model: gpt
guardrails:
  - name: pii
    kind: pii
    default_on: true
"""


def _merged(write_config) -> tuple[GuardrailSettings, Problems]:  # type: ignore[no-untyped-def]
    config, _ = config_check(write_config(FILE))
    assert config is not None
    problems = Problems()
    merged = config_with_database(config, problems=problems)
    assert merged.guardrails is not None
    return merged.guardrails, problems


def test_rows_join_the_files_guardrails_and_the_file_wins_a_name(write_config) -> None:  # type: ignore[no-untyped-def]
    org = OrganizationFactory()
    GuardrailDefinition.objects.create(name="pii", kind="secrets")  # the file's name
    GuardrailDefinition.objects.create(
        name="tickets",
        kind="regex",
        modes=["pre_call", "post_call"],
        action="warn",
        default_on=True,
        model_groups=["gpt"],
        options={"patterns": [{"name": "TICKET", "pattern": "TCK-\\d+"}]},
        organization=org,
    )
    GuardrailDefinition.objects.create(
        name="lakera",
        kind="lakera",
        encrypted_secrets=secrets_encrypt({"api_key": "lk-secret"}),
        fail_open=True,
        timeout=2,
    )
    GuardrailDefinition.objects.create(name="off", kind="secrets", enabled=False)
    settings, problems = _merged(write_config)

    assert list(settings.guardrails) == ["pii", "tickets", "lakera"]
    assert settings.guardrails["pii"].kind == "pii"  # the file's
    assert any('defines a guardrail "pii"' in p.message for p in problems.errors)
    tickets = settings.guardrails["tickets"]
    assert (tickets.kind, tickets.modes, tickets.action) == (
        "regex",
        ("pre_call", "post_call"),
        "warn",
    )
    assert tickets.organization_id == org.pk
    assert settings.default_on == ("pii", "tickets")
    assert settings.model_groups == {"gpt": ("tickets",)}
    assert settings.from_database == frozenset({"tickets", "lakera"})
    lakera = settings.guardrails["lakera"]
    assert lakera.options["api_key"] == "lk-secret"
    assert (lakera.fail_open, lakera.timeout, lakera.organization_id) == (True, 2.0, None)


def test_rows_that_would_read_the_servers_secrets_or_code_are_skipped(write_config) -> None:  # type: ignore[no-untyped-def]
    org = OrganizationFactory()
    GuardrailDefinition.objects.create(
        name="code",
        kind="custom",
        options={"path": "tests.gateway.guardrails.custom.SlowWordFlag"},
        organization=org,
    )
    GuardrailDefinition.objects.create(
        name="env", kind="lakera", options={"api_key": "os.environ/HOME"}, organization=org
    )
    GuardrailDefinition.objects.create(
        name="broken", kind="regex", options={"patterns": ["(unclosed"]}
    )
    GuardrailDefinition.objects.create(
        name="unreadable", kind="lakera", encrypted_secrets={"api_key": "not-a-token"}
    )
    settings, problems = _merged(write_config)
    assert list(settings.guardrails) == ["pii"]
    messages = " ".join(p.message for p in problems.errors)
    assert "custom guardrail is the operator's" in messages
    assert "api_key: secret references" in messages
    assert "does not compile" in messages
    assert "encrypted_secrets" in messages


def test_an_organizations_guardrail_runs_for_its_requests_only(write_config) -> None:  # type: ignore[no-untyped-def]
    mine, theirs = OrganizationFactory(), OrganizationFactory()
    GuardrailDefinition.objects.create(
        name="ours", kind="secrets", default_on=True, model_groups=["gpt"], organization=mine
    )
    settings, _ = _merged(write_config)

    def plan(caller: Caller, body: dict | None = None):  # type: ignore[no-untyped-def]
        ctx = RequestContext(request_id="r", endpoint=Endpoint.CHAT, caller=caller, model="gpt")
        guard, _ = guard_plan(ctx, settings=settings, body=body or {})
        return {spec.name for spec in guard.pre} if guard else set()

    assert plan(Caller(organization_id=mine.pk)) == {"pii", "ours"}
    assert plan(Caller(organization_id=theirs.pk)) == {"pii"}
    assert plan(Caller(is_master=True)) == {"pii"}
    with pytest.raises(InvalidRequestError, match="No guardrail named 'ours'"):
        plan(Caller(organization_id=theirs.pk), {"guardrails": ["ours"]})
    # Attached to another organization's tenant anyway (written around the checks): fail closed.
    with pytest.raises(GatewayError, match="'ours' this key requires is not configured"):
        plan(Caller(organization_id=theirs.pk, guardrails={"on": ["ours"]}))


def test_an_organizations_vendor_check_connects_under_its_address_policy(write_config) -> None:  # type: ignore[no-untyped-def]
    """Written around the admin's save-time check (or a name that resolves elsewhere later): the
    connect itself is refused, and nothing reaches the address."""
    import asyncio
    import socket

    from gateway.guardrails.checks import check_for
    from providers.addresses import AddressRefusedError

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.setblocking(False)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    org = OrganizationFactory()
    GuardrailDefinition.objects.create(
        name="inside",
        kind="lakera",
        options={"api_base": url},
        encrypted_secrets=secrets_encrypt({"api_key": "lk-1"}),
        organization=org,
    )
    settings, _ = _merged(write_config)
    spec = settings.guardrails["inside"]
    assert spec.address_policy is not None
    with pytest.raises(AddressRefusedError):
        asyncio.run(check_for(spec).scan(["hello"], phase="pre_call"))
    with pytest.raises(BlockingIOError):
        listener.accept()  # nothing connected
    listener.close()
