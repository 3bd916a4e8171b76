"""`manage.py import_litellm` against a PostgreSQL database built from LiteLLM's Prisma schema
(tests/litellm/litellm_schema.sql) and seeded as a LiteLLM Proxy leaves it: the imported keys
answer on /v1 with the secrets their holders have, within their models and what is left of their
budgets; a rerun changes nothing; a dry run writes nothing."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import nacl.secret
import nacl.utils
import openai
import psycopg
import pytest
from django.core.management import call_command
from django.forms.models import model_to_dict

from billing.models import (
    Budget,
    BudgetScope,
    BudgetTemplate,
    RequestLog,
    UsageRollup,
    UsageRollupDay,
)
from billing.pricing import deployment_price
from gateway.config.database import database_deployments
from gateway.config.problems import Problems
from gateway.models import ImportedObject, ModelDeployment
from keys.models import VirtualKey
from ogem_site.hashing import LEGACY_SHA256, secret_matches
from tenants.models import EndCustomer, Membership, Organization, Role, Team, User
from tests.live import LiveServer

SCHEMA = Path(__file__).with_name("litellm_schema.sql")
ADMIN_URL = os.environ.get(
    "LITELLM_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SALT_KEY = "sk-litellm-master-key-for-tests"
UPSTREAM_SECRET = "sk-upstream-provider-secret"


def _litellm_secret() -> str:
    # LiteLLM's /key/generate: "sk-" and secrets.token_urlsafe(16).
    return "sk-" + secrets.token_urlsafe(16)


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _encrypt(value: str) -> str:
    """A litellm_params value as LiteLLM stores it in its model table."""
    box = nacl.secret.SecretBox(hashlib.sha256(SALT_KEY.encode()).digest())
    return base64.b64encode(box.encrypt(value.encode())).decode()


def _seed(conn: psycopg.Connection[Any], *, keys: dict[str, str], reset_at: datetime) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    reset = reset_at.replace(tzinfo=None)
    run = conn.execute
    for budget_id, max_budget, soft, duration in (
        ("budget-org", 100.0, None, "30d"),
        ("budget-key-soft", None, 5.0, None),
        ("budget-customer", 2.0, None, None),
    ):
        run(
            'INSERT INTO "LiteLLM_BudgetTable" ("budget_id", "max_budget", "soft_budget", '
            '"budget_duration", "created_by", "updated_by") VALUES (%s, %s, %s, %s, %s, %s)',
            (budget_id, max_budget, soft, duration, "admin", "admin"),
        )
    run(
        'INSERT INTO "LiteLLM_OrganizationTable" ("organization_id", "organization_alias", '
        '"budget_id", "models", "spend", "metadata", "created_by", "updated_by") '
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            "org-acme",
            "Acme",
            "budget-org",
            ["mock-chat", "mock-embed", "imported-chat"],
            12.5,
            json.dumps({"cost_center": "42"}),
            "admin",
            "admin",
        ),
    )
    for user_id, email, role, max_budget in (
        ("alice", "alice@acme.test", "internal_user", 20.0),
        ("bob@acme.test", "bob@acme.test", "internal_user_viewer", None),
    ):
        run(
            'INSERT INTO "LiteLLM_UserTable" ("user_id", "user_email", "user_role", '
            '"max_budget", "spend") VALUES (%s, %s, %s, %s, %s)',
            (user_id, email, role, max_budget, 1.25),
        )
    run(
        'INSERT INTO "LiteLLM_TeamTable" ("team_id", "team_alias", "organization_id", '
        '"members_with_roles", "models", "max_budget", "spend", "budget_duration", '
        '"budget_reset_at", "rpm_limit") VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)',
        (
            "team-search",
            "Search",
            "org-acme",
            json.dumps(
                [
                    {"role": "admin", "user_id": "alice"},
                    {"role": "user", "user_id": "bob@acme.test"},
                ]
            ),
            ["mock-chat", "imported-chat"],
            50.0,
            7.0,
            "7d",
            reset,
            600,
        ),
    )
    run(
        'INSERT INTO "LiteLLM_TeamTable" ("team_id", "team_alias", "organization_id", '
        '"tpm_limit", "budget_duration") VALUES (%s, %s, %s, %s, %s)',
        ("team-ml", "ML", "org-acme", 100000, "2h"),
    )
    run(
        'INSERT INTO "LiteLLM_OrganizationMembership" ("user_id", "organization_id", '
        '"user_role") VALUES (%s, %s, %s), (%s, %s, %s)',
        ("alice", "org-acme", "org_admin", "bob@acme.test", "org-acme", "internal_user_viewer"),
    )
    run(
        'INSERT INTO "LiteLLM_TeamMembership" ("user_id", "team_id") VALUES (%s, %s)',
        ("bob@acme.test", "team-ml"),
    )
    run(
        'INSERT INTO "LiteLLM_EndUserTable" ("user_id", "alias", "spend", "budget_id") '
        "VALUES (%s, %s, %s, %s)",
        ("customer-42", "Customer 42", 0.5, "budget-customer"),
    )
    # The search key: $10 a month, $9.9995 of it spent this period, mock-chat only.
    run(
        'INSERT INTO "LiteLLM_VerificationToken" ("token", "key_name", "key_alias", "spend", '
        '"models", "aliases", "user_id", "team_id", "metadata", "rpm_limit", "max_budget", '
        '"budget_duration", "budget_reset_at", "budget_id", "organization_id") '
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            _sha256(keys["search"]),
            "sk-...abcd",
            "search-prod",
            9.9995,
            ["mock-chat"],
            json.dumps({"fast": "mock-chat"}),
            "alice",
            "team-search",
            json.dumps({"env": "prod"}),
            100,
            10.0,
            "30d",
            reset,
            "budget-key-soft",
            "org-acme",
        ),
    )
    run(
        'INSERT INTO "LiteLLM_VerificationToken" ("token", "key_alias", "team_id", "expires", '
        '"models") VALUES (%s, %s, %s, %s, %s)',
        (_sha256(keys["ml"]), "ml-batch", "team-ml", now + timedelta(days=90), []),
    )
    # A key of the UI's pseudo team (no row) and LiteLLM's proxy-budget pseudo user.
    run(
        'INSERT INTO "LiteLLM_VerificationToken" ("token", "key_alias", "team_id", "budget_id") '
        "VALUES (%s, %s, %s, %s)",
        (_sha256(keys["orphan"]), "dashboard", "litellm-dashboard", "budget-org"),
    )
    run(
        'INSERT INTO "LiteLLM_UserTable" ("user_id", "max_budget") VALUES (%s, %s)',
        ("litellm-proxy-budget", 1000.0),
    )
    run(
        'INSERT INTO "LiteLLM_VerificationToken" ("token", "key_alias", "team_id", "blocked") '
        "VALUES (%s, %s, %s, %s)",
        (_sha256(keys["blocked"]), "old-intern", "team-ml", True),
    )
    for model_id, name, params, info in (
        (
            "model-1",
            "imported-chat",
            {"model": _encrypt("mock/mock-chat"), "api_key": _encrypt(UPSTREAM_SECRET)},
            # As LiteLLM's UI saves a model with custom pricing and context sizes.
            {
                "id": "model-1",
                "db_model": True,
                "input_cost_per_token": 0.000002,
                "output_cost_per_token": 0.000004,
                "cache_read_input_token_cost": 0.0000005,
                "max_input_tokens": 128000,
                "max_tokens": 4096,
                "mode": "chat",
                "base_model": "gpt-4o-mini",
                "updated_at": "2026-01-15T10:00:00Z",
                "updated_by": "admin",
            },
        ),
        ("model-2", "exotic", {"model": _encrypt("madeup_provider/x-model")}, {"id": "model-2"}),
        ("model-3", "old-palm", {"model": _encrypt("palm/chat-bison")}, {"id": "model-3"}),
    ):
        run(
            'INSERT INTO "LiteLLM_ProxyModelTable" ("model_id", "model_name", "litellm_params", '
            '"model_info", "created_by", "updated_by") VALUES (%s, %s, %s, %s, %s, %s)',
            (model_id, name, json.dumps(params), json.dumps(info), "admin", "admin"),
        )
    # Daily totals: one day whose spend logs LiteLLM's retention deleted, one the logs cover.
    for row_id, days_ago, spend, requests in (
        ("daily-old", 10, 2.5, 40),
        ("daily-logged", 3, 9.9995, 2),
    ):
        run(
            'INSERT INTO "LiteLLM_DailyUserSpend" ("id", "user_id", "date", "api_key", "model", '
            '"model_group", "custom_llm_provider", "prompt_tokens", "completion_tokens", "spend", '
            '"api_requests", "successful_requests", "updated_at") '
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                row_id,
                "alice",
                (now - timedelta(days=days_ago)).date().isoformat(),
                _sha256(keys["search"]),
                "mock-chat",
                "mock-chat",
                "mock",
                30000,
                12000,
                spend,
                requests,
                requests,
                now,
            ),
        )
    # The team table counts the same requests as the user table (its row for the old day is
    # covered by alice's); a day only it knows of, and a tag's total of the old day.
    for table, column, row_id, owner, key, days_ago, spend, requests in (
        ("LiteLLM_DailyTeamSpend", "team_id", "team-old", "team-search", "search", 10, 2.5, 40),
        ("LiteLLM_DailyTeamSpend", "team_id", "team-older", "team-ml", "ml", 12, 1.25, 5),
        ("LiteLLM_DailyTagSpend", "tag", "tag-old", "prod", "search", 10, 2.5, 40),
    ):
        run(
            f'INSERT INTO "{table}" ("id", "{column}", "date", "api_key", "model", '
            '"model_group", "custom_llm_provider", "prompt_tokens", "completion_tokens", "spend", '
            '"api_requests", "successful_requests", "updated_at") '
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                row_id,
                owner,
                (now - timedelta(days=days_ago)).date().isoformat(),
                _sha256(keys[key]),
                "mock-chat",
                "mock-chat",
                "mock",
                30000,
                12000,
                spend,
                requests,
                requests,
                now,
            ),
        )
    day = now - timedelta(days=3)
    for index, (key, spend, end_user) in enumerate(
        (("search", 3.0, None), ("search", 6.9995, None), ("ml", 0.25, "customer-42"))
    ):
        start = day + timedelta(hours=index)
        run(
            'INSERT INTO "LiteLLM_SpendLogs" ("request_id", "call_type", "api_key", "spend", '
            '"total_tokens", "prompt_tokens", "completion_tokens", "startTime", "endTime", '
            '"model", "model_group", "custom_llm_provider", "end_user", "team_id", "status") '
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                f"chatcmpl-{uuid.uuid4()}",
                "acompletion",
                _sha256(keys[key]),
                spend,
                1500,
                1000,
                500,
                start,
                start + timedelta(milliseconds=850),
                "mock-chat",
                "mock-chat",
                "mock",
                end_user,
                "team-search" if key == "search" else "team-ml",
                "success",
            ),
        )


@pytest.fixture
def litellm_db() -> Iterator[tuple[str, dict[str, str]]]:
    """A scratch LiteLLM database (schema and seed), dropped afterwards; its URL and the
    secrets of its keys."""
    name = f"litellm_import_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError:
        pytest.skip(f"no PostgreSQL at {ADMIN_URL} for the LiteLLM database")
    admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    keys = {name: _litellm_secret() for name in ("search", "ml", "blocked", "orphan")}
    # Its own period start, so no earlier run's live counter in Redis is this budget's.
    reset_at = datetime.now(UTC) + timedelta(days=12, seconds=secrets.randbelow(10**6))
    try:
        with psycopg.connect(url) as conn:
            conn.execute(SCHEMA.read_text())
            _seed(conn, keys=keys, reset_at=reset_at)
        yield url, keys
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _import(url: str, *, dry_run: bool = False) -> str:
    out = io.StringIO()
    args = ["import_litellm", "--database-url", url]
    if dry_run:
        args.append("--dry-run")
    call_command(*args, stdout=out)
    return out.getvalue()


def _state() -> dict[str, list[dict[str, Any]]]:
    """Every row the import writes, as comparable dicts."""
    tables = {
        "organizations": Organization,
        "teams": Team,
        "users": User,
        "memberships": Membership,
        "end_customers": EndCustomer,
        "keys": VirtualKey,
        "budgets": Budget,
        "budget_templates": BudgetTemplate,
        "deployments": ModelDeployment,
        "request_logs": RequestLog,
        "rollups": UsageRollup,
        "rollup_days": UsageRollupDay,
        "mappings": ImportedObject,
    }
    state = {}
    for name, model in tables.items():
        rows = []
        for obj in model.objects.order_by("pk"):
            row = model_to_dict(obj)
            for stamp in ("updated_at", "imported_at", "last_login"):
                if hasattr(obj, stamp):
                    row[stamp] = getattr(obj, stamp)
            rows.append(row)
        state[name] = rows
    return state


def test_dry_run_writes_nothing(litellm_db: tuple[str, dict[str, str]], db: None) -> None:
    url, _ = litellm_db
    output = _import(url, dry_run=True)
    assert output.splitlines()[0] == "Dry run: nothing was written."
    assert "key           created 4, updated 0, unchanged 0, skipped 0" in output
    assert "spend_log     created 3, updated 0, unchanged 0, skipped 0" in output
    assert not Organization.objects.exists()
    assert not VirtualKey.objects.exists()
    assert not Budget.objects.exists()
    assert not RequestLog.objects.exists()
    assert not ImportedObject.objects.exists()


@pytest.fixture
def salt_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LITELLM_SALT_KEY", SALT_KEY)
    return SALT_KEY


def test_import_maps_every_object_type(
    litellm_db: tuple[str, dict[str, str]], salt_key: str, db: None
) -> None:
    url, keys = litellm_db
    output = _import(url)

    assert "budget        created 3, updated 0, unchanged 0, skipped 0" in output
    templates = {
        t.budget_id: (t.max_budget, t.soft_budget, t.duration) for t in BudgetTemplate.objects.all()
    }
    assert templates == {
        "budget-org": (Decimal("100"), None, "30d"),
        "budget-key-soft": (None, Decimal("5"), ""),
        "budget-customer": (Decimal("2"), None, ""),
    }
    assert "organization  created 1, updated 0, unchanged 0, skipped 0" in output
    assert "team          created 2, updated 0, unchanged 0, skipped 0" in output
    assert "user          created 2, updated 0, unchanged 0, skipped 1" in output
    assert "litellm-proxy-budget: LiteLLM's own, not a person" in output
    assert "membership    created 5, updated 0, unchanged 0, skipped 0" in output
    assert "end_user      created 1, updated 0, unchanged 0, skipped 0" in output
    assert "model         created 1, updated 0, unchanged 0, skipped 2" in output
    assert "exotic: provider of 'madeup_provider/x-model' not served" in output
    # A LiteLLM prefix whose upstream is gone says so, and what to use instead.
    assert 'old-palm: provider "palm" is not served: Google shut the PaLM API down' in output
    assert "use gemini/" in output
    assert UPSTREAM_SECRET not in output

    acme = Organization.objects.get(name="Acme")
    assert acme.allowed_models == ["mock-chat", "mock-embed", "imported-chat"]
    assert acme.metadata == {"cost_center": "42"}
    org_budget = Budget.objects.get(scope=BudgetScope.ORGANIZATION, organization=acme)
    assert (org_budget.max_budget, org_budget.duration, org_budget.spend) == (
        Decimal("100"),
        "30d",
        Decimal("12.5"),
    )
    search = Team.objects.get(organization=acme, name="Search")
    team_budget = Budget.objects.get(scope=BudgetScope.TEAM, team=search)
    assert (team_budget.max_budget, team_budget.duration, team_budget.rpm_limit) == (
        Decimal("50"),
        "7d",
        600,
    )
    ml = Team.objects.get(organization=acme, name="ML")
    ml_budget = Budget.objects.get(scope=BudgetScope.TEAM, team=ml)
    assert (ml_budget.tpm_limit, ml_budget.duration) == (100000, "")
    assert "note team team-ml: budget_duration '2h' has no Ogem period; it never resets" in output

    alice = User.objects.get(username="alice")
    bob = User.objects.get(username="bob@acme.test")
    assert (alice.email, alice.is_superuser, alice.has_usable_password()) == (
        "alice@acme.test",
        False,
        False,
    )
    roles = {
        (m.user.username, m.team.name if m.team else None): m.role
        for m in Membership.objects.select_related("user", "team")
    }
    assert roles == {
        ("alice", None): Role.ORG_ADMIN,
        ("bob@acme.test", None): Role.VIEWER,
        ("alice", "Search"): Role.TEAM_ADMIN,
        ("bob@acme.test", "Search"): Role.MEMBER,
        ("bob@acme.test", "ML"): Role.MEMBER,
    }
    assert Budget.objects.get(scope=BudgetScope.USER, user=alice).max_budget == Decimal("20")
    assert not Budget.objects.filter(scope=BudgetScope.USER, user=bob).exists()

    customer = EndCustomer.objects.get(external_id="customer-42")
    assert (customer.organization, customer.alias) == (acme, "Customer 42")
    customer_budget = Budget.objects.get(scope=BudgetScope.END_CUSTOMER, end_customer=customer)
    assert (customer_budget.max_budget, customer_budget.spend) == (Decimal("2"), Decimal("0.5"))

    key = VirtualKey.objects.get(name="search-prod")
    assert (key.team, key.organization, key.user) == (search, acme, alice)
    assert (key.allowed_models, key.rpm_limit) == (["mock-chat"], 100)
    assert key.metadata == {"env": "prod", "litellm_aliases": {"fast": "mock-chat"}}
    assert key.pepper_id == LEGACY_SHA256
    assert key.display_prefix == "sk-… (imported)"  # its prefix is no part of the secret
    assert secret_matches(secret=keys["search"], digest=key.digest, pepper_id=key.pepper_id)
    budget = Budget.objects.get(scope=BudgetScope.KEY, key=key)
    assert (budget.max_budget, budget.soft_budget, budget.duration, budget.spend) == (
        Decimal("10"),
        Decimal("5"),
        "30d",
        Decimal("9.9995"),
    )
    assert budget.reset_at is not None
    assert budget.period_started_at == budget.reset_at - timedelta(days=30)
    assert VirtualKey.objects.get(name="old-intern").revoked_at is not None
    assert VirtualKey.objects.get(name="ml-batch").expires_at is not None
    orphan = VirtualKey.objects.get(name="dashboard")
    assert (orphan.team, orphan.organization.slug) == (None, "litellm")
    orphan_budget = Budget.objects.get(scope=BudgetScope.KEY, key=orphan)  # its budget row's
    assert (orphan_budget.max_budget, orphan_budget.duration) == (Decimal("100"), "30d")

    deployment = ModelDeployment.objects.get(model_name="imported-chat")
    assert (deployment.provider, deployment.upstream_model, deployment.organization) == (
        "mock",
        "mock-chat",
        None,
    )
    assert "api_key" in deployment.encrypted_secrets
    assert UPSTREAM_SECRET not in json.dumps(deployment.encrypted_secrets)
    # model_info kept as a config file's, less LiteLLM's bookkeeping of the row.
    assert deployment.params["model_info"] == {
        "input_cost_per_token": 0.000002,
        "output_cost_per_token": 0.000004,
        "cache_read_input_token_cost": 0.0000005,
        "max_input_tokens": 128000,
        "max_tokens": 4096,
        "mode": "chat",
        "base_model": "gpt-4o-mini",
    }

    logs = RequestLog.objects.order_by("created_at")
    assert [(log.key_id, log.cost) for log in logs] == [
        (key.pk, Decimal("3")),
        (key.pk, Decimal("6.9995")),
        (VirtualKey.objects.get(name="ml-batch").pk, Decimal("0.25")),
    ]
    assert {log.organization_id for log in logs} == {acme.pk}
    assert (logs[2].end_customer, logs[2].endpoint, logs[2].latency_ms) == (
        "customer-42",
        "chat/completions",
        850,
    )

    assert "daily_spend   created 3, updated 0, unchanged 0, skipped 1" in output
    old_day = (datetime.now(UTC) - timedelta(days=10)).date()
    older_day = (datetime.now(UTC) - timedelta(days=12)).date()
    rollup = UsageRollup.objects.get(day=old_day, tag="")
    assert (rollup.day, rollup.key_id, rollup.team_id, rollup.organization_id, rollup.user_id) == (
        old_day,
        key.pk,
        search.pk,
        acme.pk,
        alice.pk,
    )
    assert (rollup.requests, rollup.total_tokens, rollup.spend) == (40, 42000, Decimal("2.5"))
    ml_key = VirtualKey.objects.get(name="ml-batch")
    team_rollup = UsageRollup.objects.get(day=older_day)
    assert (team_rollup.key_id, team_rollup.team_id, team_rollup.tag, team_rollup.spend) == (
        ml_key.pk,
        ml_key.team_id,
        "",
        Decimal("1.25"),
    )
    tagged = UsageRollup.objects.get(tag="prod")
    assert (tagged.day, tagged.key_id, tagged.requests, tagged.spend) == (
        old_day,
        key.pk,
        40,
        Decimal("2.5"),
    )
    # A day's request count is its partition's (the tag row repeats alice's requests).
    assert dict(UsageRollupDay.objects.values_list("day", "requests")) == {
        old_day: 40,
        older_day: 5,
    }


def test_imported_key_answers_within_its_budget_and_models(
    litellm_db: tuple[str, dict[str, str]],
    salt_key: str,
    live_ogem: LiveServer,
    install_deployments: Callable[..., None],
) -> None:
    url, keys = litellm_db
    _import(url)
    # The imported model table serves (as the registry loads database deployments), with the
    # upstream key LiteLLM had encrypted.
    deployments = database_deployments(problems=Problems())
    assert [(d.model_name, d.provider, d.api_key) for d in deployments] == [
        ("imported-chat", "mock", UPSTREAM_SECRET)
    ]
    # Charged at the row's own prices, with its output limit for budget reservations.
    price = deployment_price(deployment=deployments[0])
    assert price is not None
    assert (price.input, price.output, price.cache_read, price.max_output_tokens) == (
        Decimal("0.000002"),
        Decimal("0.000004"),
        Decimal("0.0000005"),
        4096,
    )
    install_deployments(*deployments)
    ml = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=keys["ml"], max_retries=0)
    served = ml.chat.completions.with_raw_response.create(
        model="imported-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    assert served.headers["x-ogem-deployment"] == deployments[0].id
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=keys["search"], max_retries=0)

    reply = client.chat.completions.create(
        model="mock-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    assert reply.choices[0].message.content

    key = VirtualKey.objects.get(name="search-prod")
    assert key.pepper_id != LEGACY_SHA256  # upgraded on first use: no SHA-256 left
    assert key.digest != _sha256(keys["search"])
    assert secret_matches(secret=keys["search"], digest=key.digest, pepper_id=key.pepper_id)

    with pytest.raises(openai.PermissionDeniedError):  # not in the key's models
        client.embeddings.create(model="mock-embed", input="hi")

    # $0.0005 were left; 2,000 output tokens of mock-chat may cost $0.004.
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(
            model="mock-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=2000
        )
    assert refused.value.body["code"] == "budget_exceeded"

    # The upgraded key answers again once no cache remembers it.
    from gateway.auth import _local

    _local.clear()
    again = client.chat.completions.create(
        model="mock-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    assert again.choices[0].message.content

    blocked = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=keys["blocked"], max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        blocked.models.list()
    stranger = openai.OpenAI(
        base_url=f"{live_ogem.url}/v1", api_key=_litellm_secret(), max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        stranger.models.list()


def test_second_import_changes_nothing(
    litellm_db: tuple[str, dict[str, str]], salt_key: str, db: None
) -> None:
    url, _ = litellm_db
    _import(url)
    before = _state()
    output = _import(url)
    assert _state() == before
    kinds = (
        "budget",
        "organization",
        "team",
        "user",
        "end_user",
        "key",
        "model",
        "spend_log",
        "daily_spend",
    )
    for kind in kinds:
        line = next(line for line in output.splitlines() if line.strip().startswith(kind + " "))
        assert " created 0, updated 0," in line, line
    assert "membership    created 0, updated 0, unchanged 5" in output
