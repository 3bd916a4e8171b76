"""Ogem's own format."""

from __future__ import annotations

import pytest

from gateway.config import RouterSettings, config_check, config_load
from providers.base import Deployment, Timeouts
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


def test_models_router_and_settings(write_config, monkeypatch) -> None:
    monkeypatch.setenv("H3_MISTRAL_KEY", "mk-env")
    org = OrganizationFactory(slug="acme")
    path = write_config(
        """
        version: 1
        models:
          - name: small
            provider: mistral
            model: mistral-small-latest
            api_key: os.environ/H3_MISTRAL_KEY
            weight: 2
            priority: 1
            region: eu
            tags: [eu]
            rpm: 60
            tpm: 6000
            timeouts: {connect: 2, first_byte: 10, total: 120}
            access_groups: [internal]
            organization: acme
            params:
              safe_prompt: true
          - id: small-backup
            name: small
            model: groq/llama-3.1-8b-instant
            proxy: http://proxy.internal:3128
        router:
          strategy: usage-based-routing-v2
          num_retries: 2
          timeout: 45
          fallbacks: {small: [big]}
          aliases: {tiny: small}
          groups:
            small: {strategy: latency-based-routing}
        settings:
          drop_params: true
        """
    )
    config = config_load(path)
    assert config.format == "ogem"
    assert config.deployments == (
        Deployment(
            id="config:small#0",
            model_name="small",
            provider="mistral",
            upstream_model="mistral-small-latest",
            api_key="mk-env",
            region="eu",
            organization_id=org.pk,
            access_groups=("internal",),
            weight=2,
            priority=1,
            tags=("eu",),
            rpm=60,
            tpm=6000,
            timeouts=Timeouts(connect=2.0, first_byte=10.0, total=120.0),
            params={"safe_prompt": True},
        ),
        Deployment(
            id="config:small-backup",
            model_name="small",
            provider="groq",
            upstream_model="llama-3.1-8b-instant",
            proxy="http://proxy.internal:3128",
        ),
    )
    assert config.deployments[0].api_key == "mk-env"
    assert config.router == RouterSettings(
        strategy="usage-based-routing-v2",
        num_retries=2,
        timeout=45.0,
        fallbacks={"small": ("big",)},
        model_group_alias={"tiny": "small"},
        group_strategy={"small": "latency-based-routing"},
    )
    assert config.general == {"drop_params": True}


def test_unknown_organization_is_skipped_with_a_warning(write_config) -> None:
    path = write_config(
        """
        models:
          - name: a
            provider: mock
            model: a
            organization: nobody
        """
    )
    config, problems = config_check(path)
    assert config is not None
    assert config.deployments == ()
    assert [str(p) for p in problems] == [
        f'{path}:5:19: warning: models[0].organization: no organization with slug "nobody"; '
        "deployment skipped"
    ]


def test_required_fields_and_types(write_config) -> None:
    path = write_config(
        """
        version: 2
        models:
          - provider: mock
            model: a
          - name: b
            provider: mock
          - name: c
            model: mock/c
            weight: 0
            rpm: lots
            timeouts: {total: fast, read: 3}
            tags: {a: 1}
          - just-a-string
        router:
          strategy: round-robin
          fallbacks: {c: []}
        """
    )
    config, problems = config_check(path)
    assert config is None
    assert [str(p) for p in problems] == [
        f"{path}:1:10: error: version: unsupported version 2 (this Ogem reads version 1)",
        f'{path}:3:5: error: models[0]: missing required key "name"',
        f'{path}:5:5: error: models[1]: missing required key "model"',
        f"{path}:9:13: error: models[2].weight: must be at least 1, got 0",
        f"{path}:10:10: error: models[2].rpm: expected an integer, got a string ('lots')",
        f"{path}:11:23: error: models[2].timeouts.total: expected a number, got a string ('fast')",
        f"{path}:11:29: warning: models[2].timeouts.read: unknown key in timeouts, ignored",
        f"{path}:12:11: error: models[2].tags: expected a list, got a mapping",
        f"{path}:13:5: error: models[3]: expected a mapping, got a string ('just-a-string')",
        f'{path}:15:13: error: router.strategy: unknown routing strategy "round-robin" (one of: '
        "cost-based-routing, latency-based-routing, least-busy, simple-shuffle, tag-based, "
        "usage-based-routing, usage-based-routing-v2)",
        f"{path}:16:18: error: router.fallbacks.c: expected a list of model group names",
    ]


def test_mixed_formats_and_non_mapping_documents(write_config) -> None:
    mixed = write_config(
        """
        models: []
        model_list: []
        """
    )
    assert [str(p) for p in config_check(mixed)[1]] == [
        f"{mixed}:1:1: error: mixes LiteLLM keys (model_list) with Ogem keys (models); "
        "use one format per file"
    ]
    listed = write_config("- a\n- b\n")
    assert [str(p) for p in config_check(listed)[1]] == [
        f"{listed}:1:1: error: the configuration must be a mapping of sections"
    ]
    empty = write_config("")
    config, problems = config_check(empty)
    assert config is not None and config.deployments == ()
    assert [str(p) for p in problems] == [f"{empty}:1:1: warning: no models are configured"]


def test_duplicate_ids_and_keys(write_config) -> None:
    path = write_config(
        """
        models:
          - {id: x, name: a, provider: mock, model: a}
          - {id: x, name: b, provider: mock, model: b}
          - name: c
            name: d
            provider: mock
            model: c
        """
    )
    config, problems = config_check(path)
    assert config is None
    assert [str(p) for p in problems] == [
        f'{path}:3:5: error: models[1]: duplicate deployment id "config:x" (first used at '
        f"{path}:2:5)",
        f'{path}:5:5: warning: models[2].name: duplicate key "name"; the last value is used',
    ]


def test_yaml_syntax_error_has_its_location(write_config) -> None:
    path = write_config(
        """
        models:
          - name: a
            model: [unclosed
        router: {}
        """
    )
    config, problems = config_check(path)
    assert config is None
    assert len(problems) == 1
    assert str(problems[0]).startswith(f"{path}:4:7: error: invalid YAML: ")


def test_merge_keys_and_anchors(write_config) -> None:
    path = write_config(
        """
        defaults: &defaults
          provider: mock
          rpm: 10
        models:
          - <<: *defaults
            name: a
            model: a
        """
    )
    config, problems = config_check(path)
    assert [str(p) for p in problems] == [
        f"{path}:1:1: warning: defaults: unknown key in the Ogem configuration, ignored"
    ]
    assert config is not None
    assert [(d.provider, d.rpm) for d in config.deployments] == [("mock", 10)]
