"""Admin forms that take secrets write-only: shown as set / not set, never rendered back."""

from __future__ import annotations

from typing import Any

from django import forms

from gateway.config.credentials import API_KEY, deployment_params_shown, deployment_write_problem
from gateway.config.secrets import SecretError, secret_check, secret_is_reference
from gateway.deployments import deployment_problems
from gateway.models import Credential, ModelDeployment
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
