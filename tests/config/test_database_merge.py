"""Database deployments merged with the file (docs/configuration.md, "Database deployments")."""

from __future__ import annotations

import logging

import pytest

from gateway.config import GatewayConfig, config_current, config_deployments, config_merge
from gateway.config.database import database_deployments
from gateway.config.problems import Problems
from ogem_site.crypto import secrets_encrypt
from providers.addresses import DEFAULT_POLICY
from providers.base import Deployment, Timeouts
from tests.factories import ModelDeploymentFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

BUILTIN = [
    Deployment(
        id="builtin:mock-chat", model_name="mock-chat", provider="mock", upstream_model="mock-chat"
    )
]


def test_rows_become_deployments(monkeypatch) -> None:
    monkeypatch.setenv("H3_DB_KEY", "db-secret")
    org = OrganizationFactory()
    row = ModelDeploymentFactory(
        model_name="gpt-4o",
        provider="openai",
        upstream_model="gpt-4o-2024-08-06",
        api_base="https://api.example.com/v1",
        encrypted_secrets=secrets_encrypt({"api_key": "db-secret", "aws_session_token": "t"}),
        organization=org,
        access_groups=["beta"],
        region="us",
        weight=3,
        priority=1,
        tags=["us"],
        rpm=10,
        tpm=1000,
        connect_timeout=1.5,
        first_byte_timeout=20.0,
        total_timeout=90.0,
        params={"temperature": 0},
    )
    shared = ModelDeploymentFactory(model_name="shared", credential_ref="os.environ/H3_DB_KEY")
    # Written before references became operator-only: refused, not resolved.
    leaked = ModelDeploymentFactory(
        model_name="leak", credential_ref="os.environ/H3_DB_KEY", organization=org
    )
    ModelDeploymentFactory(model_name="off", enabled=False)
    literal = ModelDeploymentFactory(model_name="literal", credential_ref="sk-raw")
    missing = ModelDeploymentFactory(model_name="missing", credential_ref="os.environ/H3_ABSENT")
    unsupported = ModelDeploymentFactory(model_name="sm", provider="petals")
    monkeypatch.delenv("H3_ABSENT", raising=False)

    problems = Problems()
    deployments = database_deployments(problems=problems)
    assert deployments == [
        Deployment(
            id=f"db:{row.pk}",
            model_name="gpt-4o",
            provider="openai",
            upstream_model="gpt-4o-2024-08-06",
            api_base="https://api.example.com/v1",
            api_key="db-secret",
            region="us",
            organization_id=org.pk,
            access_groups=("beta",),
            weight=3,
            priority=1,
            tags=("us",),
            rpm=10,
            tpm=1000,
            timeouts=Timeouts(connect=1.5, first_byte=20.0, total=90.0),
            params={"temperature": 0, "aws_session_token": "t"},
            # An organization's row connects only to public addresses (no network allowed).
            address_policy=DEFAULT_POLICY,
        ),
        Deployment(
            id=f"db:{shared.pk}",
            model_name="shared",
            provider="mock",
            upstream_model="shared",
            api_key="db-secret",
        ),
    ]
    assert deployments[0].api_key == "db-secret"
    assert [str(p) for p in problems.items] == [
        f"database:ModelDeployment#{leaked.pk}: error: an organization's deployment cannot use an "
        "os.environ/, file:// or secret:// reference (those are for the operator's shared "
        "deployments): give its api_key, or a credential the operator granted to the "
        "organization; skipped",
        f"database:ModelDeployment#{literal.pk}: error: credential_ref must be a reference "
        "(os.environ/NAME, file:///path); skipped",
        f"database:ModelDeployment#{missing.pk}: error: environment variable H3_ABSENT is not "
        "set; skipped",
        f'database:ModelDeployment#{unsupported.pk}: warning: provider "petals" is not '
        "served: the public Petals swarm no longer runs; serve the model with an "
        "OpenAI-compatible server (hosted_vllm/, ollama/) instead; skipped",
    ]


def test_merge_is_a_union_and_the_database_wins_on_the_same_id() -> None:
    file_a = Deployment(id="config:a#0", model_name="a", provider="mock", upstream_model="a")
    file_b = Deployment(id="db:7", model_name="b", provider="mock", upstream_model="from-file")
    row_a = Deployment(id="db:3", model_name="a", provider="mock", upstream_model="a2")
    row_b = Deployment(id="db:7", model_name="b", provider="mock", upstream_model="from-db")
    merged = config_merge(GatewayConfig(deployments=(file_a, file_b)), [row_a, row_b])
    assert merged.deployments == (file_a, row_b, row_a)
    assert {name: [d.id for d in group] for name, group in merged.model_groups().items()} == {
        "a": ["config:a#0", "db:3"],
        "b": ["db:7"],
    }


def test_without_a_file_the_builtin_models_and_the_rows(settings) -> None:
    settings.OGEM_CONFIG = ""
    row = ModelDeploymentFactory(model_name="mock-chat", upstream_model="db-chat")
    deployments = config_deployments(builtin=BUILTIN)
    assert [(d.id, d.model_name) for d in deployments] == [
        ("builtin:mock-chat", "mock-chat"),
        (f"db:{row.pk}", "mock-chat"),
    ]
    assert config_current().format == "default"


def test_with_a_file_the_file_replaces_the_builtin_models(settings, write_config) -> None:
    row = ModelDeploymentFactory(model_name="shared")
    settings.OGEM_CONFIG = write_config(
        """
        models:
          - {name: shared, provider: mock, model: shared-file}
        router:
          fallbacks: {shared: [other]}
        """
    )
    deployments = config_deployments(builtin=BUILTIN)
    assert [(d.id, d.model_name, d.upstream_model) for d in deployments] == [
        ("config:shared#0", "shared", "shared-file"),
        (f"db:{row.pk}", "shared", "shared"),
    ]
    current = config_current()
    assert (current.format, current.source) == ("ogem", settings.OGEM_CONFIG)
    assert current.router.fallbacks == {"shared": ("other",)}


def test_a_broken_file_is_logged_and_contributes_nothing(settings, write_config, caplog) -> None:
    row = ModelDeploymentFactory(model_name="kept")
    settings.OGEM_CONFIG = write_config("models:\n  - {name: a, provider: mock}\n")
    with caplog.at_level(logging.ERROR, logger="ogem.config"):
        deployments = config_deployments(builtin=BUILTIN)
    assert [d.id for d in deployments] == [f"db:{row.pk}"]
    assert [r.getMessage() for r in caplog.records] == [
        "configuration rejected: "
        f'{settings.OGEM_CONFIG}:2:5: error: models[0]: missing required key "model"'
    ]
