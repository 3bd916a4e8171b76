"""The `guardrails:` section in LiteLLM's format and in Ogem's (docs/guardrails.md)."""

from __future__ import annotations

import pytest

from gateway.config import config_check
from gateway.config.types import GuardrailSettings, GuardrailSpec

pytestmark = pytest.mark.django_db


def test_litellm_guardrails_as_litellm_users_write_them(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        """
        model_list:
          - model_name: gpt
            litellm_params:
              model: mock/gpt
              guardrails: [secrets]
        guardrails:
          - guardrail_name: presidio-pii
            litellm_params:
              guardrail: presidio
              mode: pre_call
              default_on: true
              presidio_language: en
              output_parse_pii: true
              pii_entities_config:
                CREDIT_CARD: BLOCK
                EMAIL_ADDRESS: MASK
          - guardrail_name: secrets
            litellm_params:
              guardrail: hide-secrets
              mode: [pre_call, post_call]
          - guardrail_name: mine
            litellm_params:
              guardrail: custom_guardrail.MyGuardrail
              mode: during_call
              fail_open: true
              threshold: 0.5
        """
    )
    config, problems = config_check(path)
    assert [str(p) for p in problems] == []
    assert config is not None
    assert config.guardrails == GuardrailSettings(
        guardrails={
            "presidio-pii": GuardrailSpec(
                name="presidio-pii",
                kind="pii",
                modes=("pre_call",),
                action="mask",
                default_on=True,
                restore=True,
            ),
            "secrets": GuardrailSpec(
                name="secrets", kind="secrets", modes=("pre_call", "post_call"), action="mask"
            ),
            "mine": GuardrailSpec(
                name="mine", kind="custom", modes=("during_call",), fail_open=True
            ),
        },
        default_on=("presidio-pii",),
        model_groups={"gpt": ("secrets",)},
    )
    pii = config.guardrails.guardrails["presidio-pii"]
    assert pii.options == {
        "entities": ["CREDIT_CARD", "EMAIL_ADDRESS"],
        "entity_actions": {"CREDIT_CARD": "block", "EMAIL_ADDRESS": "mask"},
    }
    assert config.guardrails.guardrails["mine"].options == {
        "path": "custom_guardrail.MyGuardrail",
        "threshold": 0.5,
    }
    # Ogem's `guardrails` never reaches the upstream as a model parameter.
    assert "guardrails" not in config.deployments[0].params


def test_ogem_guardrails(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        """
        models:
          - {name: gpt, model: mock/gpt, guardrails: [no-medical]}
        guardrails:
          - name: pii
            kind: pii
            action: mask
            default_on: true
            enforced: true
            entities: [EMAIL_ADDRESS, PHONE_NUMBER]
            region: GB
          - name: no-medical
            kind: topics
            mode: [pre_call, post_call]
            action: warn
            requestable: false
            topics: {medical_advice: [dosage, prescription]}
          - name: answer-json
            kind: json_schema
            mode: post_call
            models: [gpt]
            schema: {type: object}
        """
    )
    config, problems = config_check(path)
    assert [str(p) for p in problems] == []
    assert config is not None and config.guardrails is not None
    specs = config.guardrails.guardrails
    assert specs["pii"] == GuardrailSpec(
        name="pii", kind="pii", action="mask", default_on=True, enforced=True
    )
    assert specs["pii"].options == {"entities": ["EMAIL_ADDRESS", "PHONE_NUMBER"], "region": "GB"}
    assert specs["no-medical"].modes == ("pre_call", "post_call")
    assert specs["no-medical"].requestable is False
    assert config.guardrails.default_on == ("pii",)
    assert config.guardrails.model_groups == {"gpt": ("answer-json", "no-medical")}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "guardrails:\n  - {guardrail_name: l, litellm_params: {guardrail: lakera}}",
            'the "lakera" guardrail is not available in this Ogem build',
        ),
        (
            "guardrails:\n  - {guardrail_name: p, litellm_params: {guardrail: presidio, "
            "pii_entities_config: {PASSPORT: MASK}}}",
            "unknown PII entities ['PASSPORT']",
        ),
        (
            "guardrails:\n  - {guardrail_name: p, litellm_params: {guardrail: presidio, "
            "mode: sometimes}}",
            'unknown mode "sometimes"',
        ),
        (
            "guardrails:\n  - {guardrail_name: r, litellm_params: {guardrail: regex, "
            "patterns: ['(unclosed']}}",
            "does not compile",
        ),
    ],
)
def test_litellm_guardrail_errors(write_config, section: str, message: str) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        "model_list:\n  - {model_name: a, litellm_params: {model: mock/a}}\n" + section
    )
    config, problems = config_check(path)
    assert config is None
    assert any(message in str(p) and p.severity == "error" for p in problems), problems


def test_a_model_group_naming_no_guardrail_is_an_error(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        """
        models:
          - {name: gpt, model: mock/gpt, guardrails: [missing]}
        guardrails:
          - {name: pii, kind: pii}
        """
    )
    config, problems = config_check(path)
    assert config is None
    assert any('model group "gpt" names no guardrail "missing"' in str(p) for p in problems)


def test_json_schema_checks_answers_only(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        """
        models:
          - {name: gpt, model: mock/gpt}
        guardrails:
          - {name: j, kind: json_schema, schema: {type: object}}
        """
    )
    config, problems = config_check(path)
    assert config is None
    assert any("its mode is post_call" in str(p) for p in problems)


def test_litellm_lakera_v2(write_config, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LAKERA_API_KEY", "lk-test")
    path = write_config(
        """
        model_list:
          - {model_name: a, litellm_params: {model: mock/a}}
        guardrails:
          - guardrail_name: lakera-guard
            litellm_params:
              guardrail: lakera_v2
              mode: during_call
              api_key: os.environ/LAKERA_API_KEY
              api_base: https://lakera.internal
              project_id: project-7
        """
    )
    config, problems = config_check(path)
    assert [str(p) for p in problems] == []
    assert config is not None and config.guardrails is not None
    spec = config.guardrails.guardrails["lakera-guard"]
    assert (spec.kind, spec.modes, spec.action) == ("lakera", ("during_call",), "block")
    assert spec.options == {
        "api_key": "lk-test",
        "api_base": "https://lakera.internal",
        "project_id": "project-7",
    }
    assert "lk-test" not in repr(spec)
