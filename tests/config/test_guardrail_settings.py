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
        (
            "guardrails:\n  - {guardrail_name: a, litellm_params: {guardrail: "
            "azure/text_moderations, api_base: 'https://cs.example'}}",
            "needs api_base (the Content Safety resource's endpoint) and api_key",
        ),
        (
            "guardrails:\n  - {guardrail_name: a, litellm_params: {guardrail: azure/prompt_shield,"
            " api_base: 'https://cs.example', api_key: k, mode: post_call}}",
            "Prompt Shields screen requests",
        ),
        (
            "guardrails:\n  - {guardrail_name: a, litellm_params: {guardrail: "
            "azure/text_moderations, api_base: 'https://cs.example', api_key: k, "
            "severity_threshold_by_category: {Gore: 2}}}",
            "severity_threshold_by_category names one of",
        ),
        (
            "guardrails:\n  - {guardrail_name: a, litellm_params: {guardrail: "
            "azure/text_moderations, api_base: 'https://cs.example', api_key: k, "
            "severity_threshold: 9}}",
            "a whole number from 0 to 7",
        ),
        (
            "guardrails:\n  - {guardrail_name: b, litellm_params: {guardrail: bedrock, "
            "guardrailVersion: DRAFT}}",
            "needs guardrailIdentifier",
        ),
        (
            "guardrails:\n  - {guardrail_name: j, litellm_params: {guardrail: llm_judge, "
            "model: a}}",
            'needs "rubric"',
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


def test_litellm_vendor_guardrails(write_config, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AZURE_GUARDRAIL_API_KEY", "az-test")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    path = write_config(
        """
        model_list:
          - {model_name: a, litellm_params: {model: mock/a}}
        guardrails:
          - guardrail_name: azure-prompt-shield
            litellm_params:
              guardrail: azure/prompt_shield
              mode: pre_call
              api_key: os.environ/AZURE_GUARDRAIL_API_KEY
              api_base: https://cs.example.com
          - guardrail_name: azure-text-moderation
            litellm_params:
              guardrail: azure/text_moderations
              mode: [pre_call, post_call]
              api_key: os.environ/AZURE_GUARDRAIL_API_KEY
              api_base: https://cs.example.com
              default_on: true
              severity_threshold: 4
              severity_threshold_by_category: {Violence: 2}
          - guardrail_name: bedrock-pre-guard
            litellm_params:
              guardrail: bedrock
              mode: during_call
              guardrailIdentifier: ff6ujrregl1q
              guardrailVersion: "DRAFT"
              aws_region_name: os.environ/AWS_REGION
              mask_request_content: true
          - guardrail_name: openai-moderation
            litellm_params:
              guardrail: openai_moderation
              mode: pre_call
              api_key: os.environ/OPENAI_API_KEY
              model: omni-moderation-latest
        """
    )
    config, problems = config_check(path)
    assert [str(p) for p in problems] == []
    assert config is not None and config.guardrails is not None
    specs = config.guardrails.guardrails
    assert {name: (s.kind, s.modes, s.action) for name, s in specs.items()} == {
        "azure-prompt-shield": ("azure_prompt_shield", ("pre_call",), "block"),
        "azure-text-moderation": (
            "azure_text_moderation",
            ("pre_call", "post_call"),
            "block",
        ),
        "bedrock-pre-guard": ("bedrock", ("during_call",), "block"),
        "openai-moderation": ("openai_moderation", ("pre_call",), "block"),
    }
    assert specs["azure-text-moderation"].options == {
        "api_key": "az-test",
        "api_base": "https://cs.example.com",
        "severity_threshold": 4,
        "severity_threshold_by_category": {"Violence": 2},
    }
    assert specs["bedrock-pre-guard"].options == {
        "guardrailIdentifier": "ff6ujrregl1q",
        "guardrailVersion": "DRAFT",
        "aws_region_name": "eu-west-1",
    }
    assert specs["openai-moderation"].options == {
        "api_key": "sk-test",
        "model": "omni-moderation-latest",
    }
    assert config.guardrails.default_on == ("azure-text-moderation",)


MISSING_JUDGE = (
    'guardrails: guardrail "judge-elsewhere" asks the model group "missing", which this file '
    "does not define (a database deployment must, or the check fails)"
)


def test_ogem_vendor_guardrails(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        """
        models:
          - {name: gpt, model: mock/gpt}
          - {name: moderation, model: mock/omni-moderation-latest}
        guardrails:
          - name: shield
            kind: azure_prompt_shield
            mode: during_call
            api_base: https://cs.example.com
            api_key: k
            fail_open: true
            timeout: 1.5
          - name: bedrock
            kind: bedrock
            mode: [pre_call, post_call]
            guardrailIdentifier: arn:aws:bedrock:us-east-1:123456789012:guardrail/abc
            guardrailVersion: 3
            aws_access_key_id: AKIAEXAMPLE
            aws_secret_access_key: secret
          - {name: moderation, kind: openai_moderation, model: moderation, categories: [hate]}
          - name: judge
            kind: llm_judge
            model: gpt
            rubric: Refuse anything about competitors.
            max_tokens: 64
          - {name: judge-elsewhere, kind: llm_judge, model: missing, rubric: Be strict.}
        """
    )
    config, problems = config_check(path)
    assert [(p.severity, str(p).endswith(MISSING_JUDGE)) for p in problems] == [("warning", True)]
    assert config is not None and config.guardrails is not None
    specs = config.guardrails.guardrails
    assert specs["shield"] == GuardrailSpec(
        name="shield",
        kind="azure_prompt_shield",
        modes=("during_call",),
        fail_open=True,
        timeout=1.5,
    )
    assert specs["bedrock"].options == {
        "guardrailIdentifier": "arn:aws:bedrock:us-east-1:123456789012:guardrail/abc",
        "guardrailVersion": 3,
        "aws_access_key_id": "AKIAEXAMPLE",
        "aws_secret_access_key": "secret",
    }
    assert specs["moderation"].options == {"model": "moderation", "categories": ["hate"]}
    assert specs["judge"].options == {
        "model": "gpt",
        "rubric": "Refuse anything about competitors.",
        "max_tokens": 64,
    }
