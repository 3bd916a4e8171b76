"""Admin forms that take secrets write-only: shown as set / not set, never rendered back."""

from __future__ import annotations

from typing import Any

from django import forms

from gateway.config.credentials import API_KEY, deployment_params_shown, deployment_write_problem
from gateway.config.database import GUARDRAIL_COLUMNS
from gateway.config.guardrails import (
    MODES,
    SECRET_OPTIONS,
    URL_OPTIONS,
    guardrail_definition_read,
    guardrail_entry,
    guardrail_options_reserved,
    guardrail_options_unknown,
    guardrail_references,
)
from gateway.config.problems import Problems
from gateway.config.secrets import SecretError, secret_check, secret_is_reference
from gateway.config.types import GUARDRAIL_KINDS
from gateway.config.watch import config_current
from gateway.deployments import deployment_problems
from gateway.models import Credential, GuardrailDefinition, ModelDeployment
from tenants.catalog import provider_unknown_message


def _secret_field(label: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )


def _status(is_set: bool) -> str:
    return "Set: leave empty to keep it, type a new one to replace it." if is_set else "Not set."


class ModelDeploymentForm(forms.ModelForm):
    operator = False  # set per request by ModelDeploymentAdmin.get_form
    api_key = _secret_field("API key")
    clear_api_key = forms.BooleanField(label="Remove the API key", required=False)

    class Meta:
        model = ModelDeployment
        # The admin's fieldsets add the other fields (with its URL scheme override).
        fields = ["params", "credential", "credential_ref"]
        help_texts = {
            "credential_ref": "os.environ/NAME, file:///path or secret://...: shared deployments "
            "only (an organization's deployment uses its own API key or a granted credential).",
            "credential": "A named credential granted to the deployment's organization.",
            "params": "Secret params (api_key, tokens, passwords, headers) are stored encrypted "
            'and shown as "********"; leave that value to keep them.',
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        secrets = self.instance.encrypted_secrets or {}
        self.fields["api_key"].help_text = _status(API_KEY in secrets)
        if "params" in self.fields and self.instance.pk:
            self.initial["params"] = deployment_params_shown(self.instance.params or {}, secrets)

    def clean_provider(self) -> str:
        value = self.cleaned_data.get("provider") or ""
        problem = provider_unknown_message(provider=value)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        api_key = "" if data.get("clear_api_key") else data.get("api_key") or None
        organization = data.get("organization", self.instance.organization)
        problem = deployment_write_problem(
            deployment=self.instance if self.instance.pk else None,
            organization_id=organization.pk if organization else None,
            data={
                "credential_ref": data.get("credential_ref", ""),
                "credential": data.get("credential"),
                "provider": data.get("provider", self.instance.provider),
                "params": data.get("params") or {},
            },
            api_key=api_key,
        )
        if problem is not None:
            field, message = problem
            self.add_error(field if field in self.fields else None, message)
        self._upstream_check(data)
        return data

    def _upstream_check(self, data: dict[str, Any]) -> None:
        """Addresses, operator-only params and prices (gateway.deployments), as the API checks."""
        new = self.instance.pk is None
        moved = {"api_base", "organization"} & set(self.changed_data)
        problems = deployment_problems(
            organization=data.get("organization"),
            operator=self.operator,
            api_base=data.get("api_base") if new or moved else None,
            params=data.get("params") if isinstance(data.get("params"), dict) else None,
            current_params=None if new else self.instance.params,
        )
        for field, messages in problems.items():
            self.add_error(field if field in self.fields else None, messages)

    def secret_changes(self) -> tuple[dict[str, Any] | None, str | None]:
        """(params as sent, api_key: None keeps it, "" removes it) for gateway.services."""
        params = self.cleaned_data.get("params")
        if self.cleaned_data.get("clear_api_key"):
            return params, ""
        return params, self.cleaned_data.get("api_key") or None


class CredentialForm(forms.ModelForm):
    value = _secret_field("Secret")
    clear_value = forms.BooleanField(label="Remove the stored secret", required=False)

    class Meta:
        model = Credential
        fields = ["name", "description", "reference", "organizations"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["value"].help_text = (
            _status(bool(self.instance.encrypted_value)) + " Or give a reference instead."
        )

    def clean_reference(self) -> str:
        reference = self.cleaned_data["reference"]
        if reference and not secret_is_reference(reference):
            raise forms.ValidationError(
                "Give a reference (os.environ/NAME, file:///path or secret://...); put a secret "
                "itself in the Secret field."
            )
        try:
            secret_check(reference)
        except SecretError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return reference

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        value = data.get("value")
        stored = bool(self.instance.encrypted_value) and not data.get("clear_value")
        if data.get("reference") and value:
            self.add_error("value", "Give a reference or a secret, not both.")
        elif not data.get("reference") and not (value or stored):
            self.add_error("reference", "Give a reference or a secret.")
        return data


SECRET_LABELS = {
    "api_key": "API key",
    "aws_access_key_id": "AWS access key id",
    "aws_secret_access_key": "AWS secret access key",
    "aws_session_token": "AWS session token",
}


class GuardrailDefinitionForm(forms.ModelForm):
    """An admin-defined guardrail, checked by the configuration file's own guardrail reader; its
    vendor secrets are write-only, stored encrypted."""

    kind = forms.ChoiceField(choices=[(kind, kind) for kind in GUARDRAIL_KINDS])
    modes = forms.MultipleChoiceField(
        choices=[(mode, mode) for mode in MODES],
        widget=forms.CheckboxSelectMultiple,
        initial=["pre_call"],
        help_text="pre_call: before the call; during_call: beside it; post_call: on the answer.",
    )
    api_key = _secret_field(SECRET_LABELS["api_key"])
    aws_access_key_id = _secret_field(SECRET_LABELS["aws_access_key_id"])
    aws_secret_access_key = _secret_field(SECRET_LABELS["aws_secret_access_key"])
    aws_session_token = _secret_field(SECRET_LABELS["aws_session_token"])
    clear_secrets = forms.BooleanField(label="Remove the stored secrets", required=False)

    class Meta:
        model = GuardrailDefinition
        # The columns the reload reads into a guardrail, and those around them.
        fields = [*GUARDRAIL_COLUMNS, "options", "organization", "enabled"]
        help_texts = {
            "options": "The kind's settings as the configuration file writes them, e.g. "
            '{"entities": ["EMAIL_ADDRESS"]} for pii, {"patterns": [...]} for regex '
            "(docs/guardrails.md). Secrets go in the fields below.",
            "model_groups": 'Model group names, e.g. ["gpt-4o"].',
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stored = self.instance.encrypted_secrets or {}
        for name in SECRET_OPTIONS:
            self.fields[name].help_text = _status(name in stored)

    def clean_model_groups(self) -> list[str]:
        value = self.cleaned_data.get("model_groups") or []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise forms.ValidationError('Give a list of model group names, e.g. ["gpt-4o"].')
        return value

    def clean_options(self) -> dict[str, Any]:
        value = self.cleaned_data.get("options") or {}
        if not isinstance(value, dict):
            raise forms.ValidationError(
                'Give the kind\'s settings as an object, e.g. {"words": []}.'
            )
        reserved = guardrail_options_reserved(value)
        if reserved:
            raise forms.ValidationError(f"Set {', '.join(reserved)} in its own field.")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        organization = data.get("organization")
        options: dict[str, Any] = data.get("options") or {}
        given = {name: data.get(name) or None for name in SECRET_OPTIONS}
        kept = {} if data.get("clear_secrets") else dict(self.instance.encrypted_secrets or {})
        for name in SECRET_OPTIONS:
            value = options.get(name)
            if value is not None and not (isinstance(value, str) and secret_is_reference(value)):
                self.add_error("options", f"Put {name} in its field below: it is stored encrypted.")
            elif value is not None and (given[name] or name in kept):
                self.add_error("options", f"{name} is given twice: here and in its field.")
        unknown = guardrail_options_unknown(kind=data.get("kind") or "", options=options)
        if unknown:
            self.add_error(
                "options", f"A {data.get('kind')} guardrail has no setting {', '.join(unknown)}."
            )
        if organization is not None:
            present = {name for name in SECRET_OPTIONS if given[name] or name in kept}
            self._tenant_check(data, organization=organization, options=options, present=present)
        name = data.get("name") or ""
        current = config_current().guardrails
        if current is not None and name in set(current.guardrails) - current.from_database:
            self.add_error(
                "name",
                f'The configuration file defines a guardrail "{name}"; the file\'s wins. Choose '
                "another name, or change it in the file.",
            )
        if self.errors:
            return data
        # Present secrets are checked as set (their values are not needed to validate the rest).
        secrets = {name: "********" for name in SECRET_OPTIONS if given[name] or name in kept}
        problems = Problems()
        guardrail_definition_read(
            fields=guardrail_entry(fields=data, options=options, secrets=secrets),
            source="admin",
            problems=problems,
            resolve_secrets=False,
        )
        for problem in problems.errors:
            self.add_error(None, _problem_text(problem.message))
        return data

    def _tenant_check(
        self,
        data: dict[str, Any],
        *,
        organization: Any,
        options: dict[str, Any],
        present: set[str],
    ) -> None:
        """An organization's guardrail reads nothing of the server: no code, no secret
        references, no address outside its policy, no cloud identity but its own."""
        if data.get("kind") == "custom":
            self.add_error(
                "kind", "A custom guardrail runs code on the server: the operator's only (shared)."
            )
        given = {name: data[name] for name in SECRET_OPTIONS if data.get(name)}
        references = sorted(guardrail_references({**options, **given}))
        if references:
            self.add_error(
                "options",
                f"{', '.join(references)}: secret references read the server's secrets; an "
                "organization's guardrail gives its own secrets in the fields below.",
            )
        for name in URL_OPTIONS:
            if options.get(name):
                for messages in deployment_problems(
                    organization=organization, operator=False, api_base=str(options[name])
                ).values():
                    self.add_error("options", [f"{name}: {message}" for message in messages])
        if data.get("kind") == "bedrock" and not (
            {"aws_access_key_id", "aws_secret_access_key"} <= present
        ):
            self.add_error(
                None,
                "An organization's bedrock guardrail needs its own AWS access key id and secret "
                "access key (the server's AWS identity is the operator's).",
            )
        if "aws_profile_name" in options or "aws_role_name" in options:
            self.add_error("options", "aws_profile_name and aws_role_name are the operator's.")

    def secret_changes(self) -> tuple[dict[str, str | None], bool]:
        """(secret options given: None keeps the stored one, whether to clear the stored ones)."""
        return (
            {name: self.cleaned_data.get(name) or None for name in SECRET_OPTIONS},
            bool(self.cleaned_data.get("clear_secrets")),
        )


def _problem_text(message: str) -> str:
    # The reader's messages start with the entry's path in the generated document.
    for prefix in ("guardrails[0].", "guardrails[0]: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message
