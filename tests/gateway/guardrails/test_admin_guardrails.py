"""Guardrails defined in Django admin (gateway.GuardrailDefinition, docs/guardrails.md): created
through the admin's form, attached to a team through /api/v1, picked up by the live server's
reload without a restart, and applied to requests made with the official OpenAI SDK; another
organization's guardrail cannot be attached; bad settings are form errors; secrets stay
encrypted and are never shown back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from django.test import Client
from rest_framework.test import APIClient

from gateway import registry as deployment_registry
from gateway.config import config_current, config_watch_stop
from gateway.config import watch as config_watch
from gateway.models import GuardrailDefinition
from gateway.registry import registry_install, registry_load_initial
from keys.services import key_create
from ogem_site.crypto import secrets_decrypt
from tenants.models import Role
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.openai_api import OpenAIEmulator
from tests.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

ADD = "/admin/gateway/guardraildefinition/add/"
PROMPT = "Write to jane.doe@example.com about the refund."


@pytest.fixture
def watched(settings, tmp_path: Path, openai_emulator: OpenAIEmulator) -> Iterator[Path]:
    """A configuration file with model `emulated` on the OpenAI emulator and one file-defined
    guardrail, watched (polled every 0.2 s) as a server's is."""
    path = tmp_path / "ogem.yaml"
    path.write_text(
        "models:\n"
        "  - name: emulated\n"
        "    provider: openai\n"
        "    model: gpt-4o-mini\n"
        f"    api_base: {openai_emulator.url}/v1\n"
        f"    api_key: {UPSTREAM_KEY}\n"
        "guardrails:\n"
        "  - name: from-file\n"
        "    kind: words\n"
        "    words: [darn]\n"
    )
    settings.OGEM_CONFIG = str(path)
    settings.OGEM_CONFIG_WATCH = True
    settings.OGEM_CONFIG_POLL_SECONDS = 0.2
    previous, previous_config = deployment_registry._current, config_watch._current
    registry_install(registry_load_initial(), source="test")
    yield path
    config_watch_stop()
    deployment_registry._current = previous
    config_watch._current = previous_config  # its guardrails must not run in later tests


def _user(**flags: bool) -> Any:
    user = UserFactory(**flags)
    user.save(update_fields=["password"])  # the factory sets it after its own save
    return user


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(_user(is_superuser=True))
    return client


def _form(**fields: Any) -> dict[str, Any]:
    """The add form's POST data: a pre_call pii mask unless `fields` say otherwise."""
    data: dict[str, Any] = {
        "name": "pii-admin",
        "kind": "pii",
        "modes": ["pre_call"],
        "action": "mask",
        "requestable": "on",
        "restore": "on",
        "timeout": "5",
        "model_groups": "[]",
        "options": '{"entities": ["EMAIL_ADDRESS"]}',
        "organization": "",
        "enabled": "on",
    }
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _loaded(name: str) -> bool:
    guardrails = config_current().guardrails
    return guardrails is not None and name in guardrails.guardrails


def test_admin_guardrail_on_a_team_masks_then_blocks_after_an_edit(
    live_ogem, master_key, watched, operator, openai_emulator
) -> None:  # type: ignore[no-untyped-def]
    team = TeamFactory()
    response = operator.post(ADD, _form(organization=str(team.organization_id)))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response.url.endswith("/admin/gateway/guardraildefinition/"), response.url
    row = GuardrailDefinition.objects.get(name="pii-admin")
    assert row.organization_id == team.organization_id

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {master_key}")
    attached = api.patch(
        f"/api/v1/teams/{team.pk}", {"metadata": {"guardrails": ["pii-admin"]}}, format="json"
    )
    assert attached.status_code == 200, attached.content
    secret = key_create(name="k", team=team).secret
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)

    assert _wait_for(lambda: _loaded("pii-admin")), "the row was not picked up"
    answer = client.chat.completions.create(
        model="emulated", messages=[{"role": "user", "content": PROMPT}]
    )
    sent = openai_emulator.last.json["messages"][0]["content"]
    assert sent == "Write to <EMAIL_ADDRESS_1> about the refund."
    assert answer.choices[0].message.content == f"Emulated reply to: {PROMPT}"

    # An edit in admin takes effect at the next reload, without a restart.
    change = f"/admin/gateway/guardraildefinition/{row.pk}/change/"
    edited = operator.post(change, _form(organization=str(team.organization_id), action="block"))
    assert edited.status_code == 302, edited.content.decode()[:2000]
    assert _wait_for(lambda: config_current().guardrails.guardrails["pii-admin"].action == "block")
    with pytest.raises(openai.BadRequestError) as blocked:
        client.chat.completions.create(
            model="emulated", messages=[{"role": "user", "content": PROMPT}]
        )
    assert blocked.value.code == "content_filter"
    assert "pii-admin" in blocked.value.message

    # The master key (no organization) neither runs it nor may ask for it by name.
    master = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as unknown:
        master.chat.completions.create(
            model="emulated",
            messages=[{"role": "user", "content": PROMPT}],
            extra_body={"guardrails": ["pii-admin"]},
        )
    assert "No guardrail named 'pii-admin'" in unknown.value.message

    # Disabled: gone at the next reload; the team's requests then fail closed.
    row.refresh_from_db()
    row.enabled = False
    row.save()
    assert _wait_for(lambda: not _loaded("pii-admin"))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="emulated", messages=[{"role": "user", "content": PROMPT}]
        )


def test_a_default_on_shared_guardrail_applies_to_every_request(
    live_ogem, master_key, watched, operator, openai_emulator
) -> None:  # type: ignore[no-untyped-def]
    response = operator.post(
        ADD,
        _form(
            name="no-tickets",
            kind="regex",
            action="block",
            default_on="on",
            options='{"patterns": [{"name": "TICKET", "pattern": "TCK-\\\\d{6}"}]}',
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert _wait_for(lambda: _loaded("no-tickets"))
    master = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as blocked:
        master.chat.completions.create(
            model="emulated", messages=[{"role": "user", "content": "see TCK-123456"}]
        )
    assert "no-tickets" in blocked.value.message and "TICKET" in blocked.value.message
    fine = master.chat.completions.create(
        model="emulated", messages=[{"role": "user", "content": "see TCK-12"}]
    )
    assert fine.choices[0].message.content == "Emulated reply to: see TCK-12"


def test_another_organizations_guardrail_cannot_be_attached(master_key) -> None:  # type: ignore[no-untyped-def]
    mine, theirs = TeamFactory(), TeamFactory()
    GuardrailDefinition.objects.create(name="theirs", kind="pii", organization=theirs.organization)
    GuardrailDefinition.objects.create(name="mine", kind="pii", organization=mine.organization)
    GuardrailDefinition.objects.create(name="shared", kind="secrets")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {master_key}")
    for field in ("guardrails", "guardrails_optional", "guardrails_off"):
        refused = api.patch(
            f"/api/v1/teams/{mine.pk}", {"metadata": {field: ["theirs"]}}, format="json"
        )
        assert refused.status_code == 400, field
        assert "`theirs` is available to this organization" in str(refused.json())
    refused = api.patch(
        f"/api/v1/organizations/{mine.organization_id}",
        {"metadata": {"guardrails": ["theirs"]}},
        format="json",
    )
    assert refused.status_code == 400
    key = api.post("/api/v1/keys", {"name": "k", "team": mine.pk}, format="json")
    assert key.status_code == 201, key.content
    refused = api.patch(
        f"/api/v1/keys/{key.json()['id']}",
        {"metadata": {"guardrails": ["theirs"]}},
        format="json",
    )
    assert refused.status_code == 400
    accepted = api.patch(
        f"/api/v1/teams/{mine.pk}",
        {"metadata": {"guardrails": ["mine", "shared"]}},
        format="json",
    )
    assert accepted.status_code == 200, accepted.content

    # The same through the team's admin page: a form error, nothing saved.
    admin = Client()
    admin.force_login(_user(is_superuser=True))
    page = admin.post(
        f"/admin/tenants/team/{mine.pk}/change/",
        {
            "organization": mine.organization_id,
            "name": mine.name,
            "slug": mine.slug,
            "metadata": '{"guardrails": ["theirs"]}',
            "allowed_models": "[]",
        },
    )
    assert page.status_code == 200
    assert "is available to this organization" in page.content.decode()
    mine.refresh_from_db()
    assert mine.metadata == {"guardrails": ["mine", "shared"]}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"options": '{"patterns": ["(unclosed"]}', "kind": "regex"}, "does not compile"),
        ({"options": '{"entities": ["NOT_AN_ENTITY"]}'}, "unknown PII entities"),
        ({"options": '{"colour": "blue"}'}, "colour"),
        ({"options": "[1, 2]"}, "as an object"),
        ({"options": "{not json"}, "Enter a valid JSON"),
        ({"options": '{"mode": "post_call"}'}, "in its own field"),
        ({"kind": "json_schema", "options": '{"schema": {"type": "object"}}'}, "post_call"),
        ({"kind": "lakera", "options": "{}"}, "needs api_key"),
        ({"kind": "lakera", "options": '{"api_key": "sk-plain"}'}, "stored encrypted"),
        ({"kind": "nonsense"}, "Select a valid choice"),
        ({"modes": ["whenever"]}, "Select a valid choice"),
        ({"model_groups": '"gpt-4o"'}, "list of model group names"),
        ({"name": "from-file"}, "The configuration file defines a guardrail"),
    ],
)
def test_bad_settings_are_form_errors(
    watched, operator, fields: dict[str, Any], message: str
) -> None:  # type: ignore[no-untyped-def]
    response = operator.post(ADD, _form(**fields))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not GuardrailDefinition.objects.exists()


def test_vendor_secrets_are_stored_encrypted_and_never_shown(operator) -> None:  # type: ignore[no-untyped-def]
    response = operator.post(
        ADD,
        _form(
            name="lakera",
            kind="lakera",
            action="block",
            options='{"project_id": "project-1"}',
            api_key="lk-very-secret-value",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    row = GuardrailDefinition.objects.get(name="lakera")
    assert "lk-very-secret-value" not in str(row.encrypted_secrets)
    assert secrets_decrypt(row.encrypted_secrets) == {"api_key": "lk-very-secret-value"}
    page = operator.get(f"/admin/gateway/guardraildefinition/{row.pk}/change/")
    assert "lk-very-secret-value" not in page.content.decode()
    assert "Set: leave empty to keep it" in page.content.decode()
    # Saving without retyping it keeps it; the clear box removes it (then lakera refuses).
    kept = operator.post(
        f"/admin/gateway/guardraildefinition/{row.pk}/change/",
        _form(name="lakera", kind="lakera", action="warn", options="{}"),
    )
    assert kept.status_code == 302
    row.refresh_from_db()
    assert row.action == "warn" and secrets_decrypt(row.encrypted_secrets)["api_key"]
    cleared = operator.post(
        f"/admin/gateway/guardraildefinition/{row.pk}/change/",
        _form(name="lakera", kind="lakera", options="{}", clear_secrets="on"),
    )
    assert cleared.status_code == 200
    assert "needs api_key" in cleared.content.decode()


def test_an_org_admin_defines_guardrails_for_their_organization_only() -> None:
    mine, theirs = OrganizationFactory(), OrganizationFactory()
    admin = _user()
    MembershipFactory(user=admin, organization=mine, role=Role.ORG_ADMIN)
    client = Client()
    client.force_login(admin)
    shared = client.post(ADD, _form(name="shared-try"))
    assert shared.status_code == 200
    assert "Choose an organization you administer" in shared.content.decode()
    other = client.post(ADD, _form(name="other-try", organization=str(theirs.pk)))
    assert other.status_code == 200
    code = client.post(
        ADD,
        _form(
            name="code",
            kind="custom",
            organization=str(mine.pk),
            options='{"path": "tests.gateway.guardrails.custom.Keyword"}',
        ),
    )
    assert "runs code on the server" in code.content.decode()
    reference = client.post(
        ADD,
        _form(
            name="ref",
            kind="lakera",
            organization=str(mine.pk),
            options='{"api_key": "os.environ/OPENAI_API_KEY"}',
        ),
    )
    assert "secret references read the server" in reference.content.decode()
    in_the_field = client.post(
        ADD,
        _form(
            name="ref2",
            kind="lakera",
            organization=str(mine.pk),
            options="{}",
            api_key="os.environ/OPENAI_API_KEY",
        ),
    )
    assert "secret references read the server" in in_the_field.content.decode()
    bedrock = client.post(
        ADD,
        _form(
            name="aws",
            kind="bedrock",
            organization=str(mine.pk),
            options='{"guardrailIdentifier": "gr-1", "aws_region_name": "us-east-1"}',
        ),
    )
    assert "needs its own AWS access key id" in bedrock.content.decode()
    inside = client.post(
        ADD,
        _form(
            name="local",
            kind="lakera",
            organization=str(mine.pk),
            options='{"api_base": "http://127.0.0.1:9"}',
            api_key="lk-1",
        ),
    )
    assert inside.status_code == 200 and "api_base" in inside.content.decode()
    assert not GuardrailDefinition.objects.exists()
    ok = client.post(ADD, _form(name="ours", organization=str(mine.pk)))
    assert ok.status_code == 302, ok.content.decode()[:2000]
    GuardrailDefinition.objects.create(name="foreign", kind="pii", organization=theirs)
    listing = client.get("/admin/gateway/guardraildefinition/").content.decode()
    assert "ours" in listing and "foreign" not in listing
