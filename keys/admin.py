"""Admin for virtual keys: created through key_create, secret shown once, revoke and rotate."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from keys.budgets import USD, BudgetDuration, usd_str
from keys.limits import endpoint_limits_problem
from keys.models import VirtualKey
from keys.permissions import KEY_FIELDS, key_models_problem, key_scope_administered
from keys.selectors import key_list, key_spend_attach, key_status
from keys.services import key_change, key_create, key_revoke, key_rotate
from tenants.admin import TeamAdmin as TenantsTeamAdmin
from tenants.admin_scope import (
    ScopedAdminMixin,
    ScopedInlineMixin,
    admin_scope_ids,
    render_secrets,
    request_principal,
)
from tenants.audit import audit_record
from tenants.catalog import guardrails_foreign_message
from tenants.models import Team
from tenants.principals import Principal


def _endpoint_limits_clean(form: forms.ModelForm) -> dict[str, Any]:
    value = form.cleaned_data.get("endpoint_limits") or {}
    problem = endpoint_limits_problem(value)
    if problem:
        raise forms.ValidationError(problem)
    return value


class VirtualKeyCreateForm(forms.ModelForm):
    """The add form: the key's settings plus its budget; the secret is generated, never typed."""

    max_budget = forms.DecimalField(
        max_digits=USD["max_digits"],
        decimal_places=USD["decimal_places"],
        min_value=0,
        required=False,
        help_text="USD; empty for no budget of its own.",
    )
    soft_budget = forms.DecimalField(
        max_digits=USD["max_digits"],
        decimal_places=USD["decimal_places"],
        min_value=0,
        required=False,
    )
    budget_duration = forms.ChoiceField(choices=BudgetDuration.choices, required=False)

    def clean_endpoint_limits(self) -> dict[str, Any]:
        return _endpoint_limits_clean(self)

    class Meta:
        model = VirtualKey
        fields = ["name", "organization", "team", *KEY_FIELDS[1:]]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        team = data.get("team")
        organization = data.get("organization")
        if (
            team is not None
            and organization is not None
            and team.organization_id != organization.pk
        ):
            self.add_error("team", "The team belongs to another organization.")
        elif "allowed_models" in data:
            problem = key_models_problem(
                models=data["allowed_models"] or [],
                team=team,
                organization=team.organization if team is not None else organization,
            )
            if problem:
                self.add_error("allowed_models", problem)
        owner = team.organization if team is not None else organization
        _guardrails_check(self, data, organization_id=owner.pk if owner is not None else None)
        return data


class VirtualKeyChangeForm(forms.ModelForm):
    """The change form: a key's models stay within its team's and organization's."""

    class Meta:
        model = VirtualKey
        fields = "__all__"  # noqa: DJ007  the admin page chooses what it shows

    def clean_endpoint_limits(self) -> dict[str, Any]:
        return _endpoint_limits_clean(self)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if "allowed_models" in self.changed_data:
            problem = key_models_problem(
                models=data.get("allowed_models") or [],
                team=self.instance.team,
                organization=self.instance.organization,
            )
            if problem:
                self.add_error("allowed_models", problem)
        if "metadata" in self.changed_data:
            _guardrails_check(self, data, organization_id=self.instance.organization_id)
        return data


def _guardrails_check(
    form: forms.ModelForm, data: dict[str, Any], *, organization_id: int | None
) -> None:
    problem = guardrails_foreign_message(
        metadata=data.get("metadata"), organization_id=organization_id
    )
    if problem:
        form.add_error("metadata" if "metadata" in form.fields else None, problem)


class KeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True).filter(
                Q(expires_at__isnull=True) | Q(expires_at__gt=now)
            )
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        return queryset


class KeyChangeList(ChangeList):
    """The key list, with every listed key's spend read at once (not a query per row)."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        self.result_list = key_spend_attach(keys=list(self.result_list))


@admin.register(VirtualKey)
class VirtualKeyAdmin(ScopedAdminMixin, admin.ModelAdmin):
    selector = staticmethod(key_list)
    scoped_access = "team"
    form = VirtualKeyChangeForm

    def scoped_choices(self, *, principal: Principal, team_admin: bool) -> QuerySet[VirtualKey]:
        org_ids, team_ids = admin_scope_ids(principal=principal, team_admin=team_admin)
        return VirtualKey.objects.filter(Q(organization_id__in=org_ids) | Q(team_id__in=team_ids))

    list_display = [
        "name",
        "display_prefix",
        "status",
        "organization",
        "team",
        "user",
        "spend",
        "max_budget",
        "expires_at",
        "created_at",
    ]
    list_filter = [KeyStatusFilter, "organization", "team"]
    list_select_related = ["organization", "team", "user"]
    search_fields = ["name", "prefix", "user__username", "team__name", "organization__name"]
    autocomplete_fields = ["organization", "team", "user"]
    date_hierarchy = "created_at"
    actions = ["revoke_keys", "rotate_keys"]
    fields = [
        "name",
        "display_prefix",
        "status",
        "organization",
        "team",
        "user",
        "allowed_models",
        "spend",
        "total_spend",
        "max_budget",
        "expires_at",
        "rpm_limit",
        "tpm_limit",
        "max_parallel_requests",
        "endpoint_limits",
        "metadata",
        "tags",
        "revoked_at",
        "created_by",
        "created_at",
        "updated_at",
    ]
    readonly_fields = [
        "display_prefix",
        "status",
        "organization",
        "team",
        "spend",
        "total_spend",
        "max_budget",
        "revoked_at",
        "created_by",
        "created_at",
        "updated_at",
    ]

    def scoped_writable(self, principal: Principal, obj: VirtualKey) -> bool:
        return key_scope_administered(
            principal=principal, team_id=obj.team_id, organization_id=obj.organization_id
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[VirtualKey]:
        # key_list scopes and annotates the key's budget (spend, limit) for read-only columns.
        principal = request_principal(request)
        if not principal.is_proxy_admin and not self.scoped_user(request):
            return VirtualKey.objects.none()
        return key_list(principal=principal)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):  # type: ignore[no-untyped-def]
        if obj is None:
            kwargs["form"] = VirtualKeyCreateForm
            kwargs["fields"] = None
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return [
                "name",
                "organization",
                "team",
                "user",
                "allowed_models",
                "max_budget",
                "soft_budget",
                "budget_duration",
                "expires_at",
                "rpm_limit",
                "tpm_limit",
                "max_parallel_requests",
                "endpoint_limits",
                "metadata",
                "tags",
            ]
        return self.fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else self.readonly_fields

    @admin.display(description="Key")
    def display_prefix(self, key: VirtualKey) -> str:
        return key.display_prefix

    @admin.display(description="Status")
    def status(self, key: VirtualKey) -> str:
        return key_status(key=key)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return KeyChangeList

    @admin.display(description="Spend (USD)")
    def spend(self, key: VirtualKey) -> str:
        if not hasattr(key, "spend"):
            key_spend_attach(keys=[key])  # the change page; the list attaches them at once
        return usd_str(key.spend)  # type: ignore[attr-defined]

    @admin.display(description="Total spend (USD)")
    def total_spend(self, key: VirtualKey) -> str:
        if not hasattr(key, "total_spend"):
            key_spend_attach(keys=[key])
        return usd_str(key.total_spend)  # type: ignore[attr-defined]

    @admin.display(description="Max budget (USD)")
    def max_budget(self, key: VirtualKey) -> Decimal | None:
        return getattr(key, "budget_max", None)

    def save_model(
        self, request: HttpRequest, obj: VirtualKey, form: forms.ModelForm, change: bool
    ) -> None:
        data = form.cleaned_data
        if change:
            changes = {name: data[name] for name in form.changed_data if name in KEY_FIELDS}
            key_change(principal=request_principal(request), key=obj, changes=changes)
            return
        issued = key_create(
            name=data["name"],
            organization=data.get("organization"),
            team=data.get("team"),
            user=data.get("user"),
            created_by=request.user,
            models=data.get("allowed_models") or [],
            expires_at=data.get("expires_at"),
            metadata=data.get("metadata") or {},
            tags=data.get("tags") or [],
            rpm_limit=data.get("rpm_limit"),
            tpm_limit=data.get("tpm_limit"),
            max_parallel_requests=data.get("max_parallel_requests"),
            endpoint_limits=data.get("endpoint_limits") or {},
            max_budget=data.get("max_budget"),
            soft_budget=data.get("soft_budget"),
            budget_duration=data.get("budget_duration") or None,
        )
        # The admin goes on with `obj` (log entry, redirect): make it the created row.
        for field in VirtualKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(issued.key, field.attname))
        obj._state.adding = False
        request._ogem_new_secret = issued.secret

    def response_add(
        self, request: HttpRequest, obj: VirtualKey, post_url_continue: str | None = None
    ) -> HttpResponse:
        secret = getattr(request, "_ogem_new_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return render_secrets(
            request,
            title=f"Key “{obj.name}” created",
            secrets=[(str(obj), secret)],
            back_url=reverse("admin:keys_virtualkey_change", args=[obj.pk]),
        )

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[VirtualKey]) -> None:
        keys = self.writable_or_deny(request, queryset)
        for key in keys:
            was_revoked = key.revoked_at is not None
            key_revoke(key=key)
            if not was_revoked:
                audit_record(
                    action="key.revoke",
                    target=key,
                    organization_id=key.organization_id,
                    before={"revoked_at": None},
                    after={"revoked_at": key.revoked_at},
                )
        self.message_user(request, f"Revoked {len(keys)} key(s).", messages.SUCCESS)

    @admin.action(
        description="Rotate selected keys (new secrets shown once)", permissions=["change"]
    )
    def rotate_keys(
        self, request: HttpRequest, queryset: QuerySet[VirtualKey]
    ) -> TemplateResponse | None:
        keys = [key for key in self.writable_or_deny(request, queryset) if key.revoked_at is None]
        if not keys:
            self.message_user(request, "Revoked keys cannot be rotated.", messages.WARNING)
            return None
        secrets: list[tuple[str, str]] = []
        for key in keys:
            old_prefix = key.prefix
            issued = key_rotate(key=key)
            audit_record(
                action="key.rotate",
                target=issued.key,
                organization_id=issued.key.organization_id,
                before={"prefix": old_prefix},
                after={"prefix": issued.key.prefix},
            )
            secrets.append((str(issued.key), issued.secret))
        return render_secrets(
            request,
            title="Rotated keys",
            secrets=secrets,
            back_url=reverse("admin:keys_virtualkey_changelist"),
        )


class TeamKeyInline(ScopedInlineMixin, admin.TabularInline):
    """The team's keys, read-only: keys are created from the key admin so the secret is shown."""

    model = VirtualKey
    selector = staticmethod(key_list)
    fk_name = "team"
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["name", "display_prefix", "user", "expires_at", "revoked_at", "created_at"]
    readonly_fields = fields

    @admin.display(description="Key")
    def display_prefix(self, key: VirtualKey) -> str:
        return key.display_prefix

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# The team page lists the team's keys: keys composes tenants' admin, never the reverse.
admin.site.unregister(Team)


@admin.register(Team)
class TeamAdmin(TenantsTeamAdmin):
    # Keys are listed, not created, inline: a new key's secret needs its own page.
    inlines = [*TenantsTeamAdmin.inlines, TeamKeyInline]
