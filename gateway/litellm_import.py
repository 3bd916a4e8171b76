"""Import a LiteLLM Proxy database (``manage.py import_litellm``): docs/litellm-import.md.

LiteLLM's PostgreSQL tables are read through a read-only psycopg connection of their own (never
Django's database) and become Ogem organizations, teams, users and memberships, end customers,
budgets, virtual keys, model deployments and request-log rows. Every object made is recorded in
``ImportedObject`` with a fingerprint of the source row: a rerun updates what changed in LiteLLM
and leaves the rest (and everything Ogem has done since, such as spend) alone. The whole import is
one transaction; a dry run rolls it back after counting.

Keys keep working: LiteLLM stores ``sha256(secret)``; the key is stored under that digest with
pepper ID 0 and upgraded to Ogem's HMAC on its first use (ogem_site/hashing.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from django.db import transaction
from django.db.models import Min, Sum
from django.utils import timezone
from django.utils.text import slugify
from psycopg.rows import dict_row

from billing.models import (
    SCOPE_FIELDS,
    Budget,
    BudgetScope,
    BudgetTemplate,
    RequestLog,
    UsageRollup,
    UsageRollupDay,
)
from billing.rollups import rollup_day, rollup_watermark
from billing.services import (
    EntityLimits,
    budget_period_restore,
    budget_template_create,
    budget_template_update,
    budget_upsert,
)
from gateway.config.provider_names import (
    provider_is_servable,
    provider_split,
    provider_unservable_reason,
)
from gateway.models import ImportedObject, ModelDeployment
from gateway.services import deployment_create, deployment_update
from keys.models import VirtualKey
from keys.services import key_legacy_create, key_revoke, key_update
from ogem_site.hashing import legacy_prefix_of
from tenants.models import EndCustomer, Membership, Organization, Role, Team, User
from tenants.services import (
    membership_create,
    membership_update,
    organization_create,
    organization_update,
    team_create,
    team_update,
    user_create,
    user_update,
)

logger = logging.getLogger(__name__)

SOURCE = "litellm"
KINDS = (
    "budget",
    "organization",
    "team",
    "user",
    "membership",
    "end_user",
    "key",
    "model",
    "spend_log",
    "daily_spend",
)
# Where LiteLLM keeps teams and keys that belong to no organization (Ogem's teams need one).
DEFAULT_ORGANIZATION = ("LiteLLM", "litellm")
# Rows LiteLLM makes for itself: the proxy-wide budget's holder and the UI's default user.
PSEUDO_USERS = frozenset({"litellm-proxy-budget", "default_user_id"})
# LiteLLM's "every model" markers in a models list.
ALL_MODELS = frozenset({"all-proxy-models", "*"})
# LiteLLM's bookkeeping in a model table row's model_info (and access_groups, read apart).
_MODEL_INFO_BOOKKEEPING = frozenset(
    {
        "id",
        "db_model",
        "access_groups",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
        "team_id",
        "team_public_model_name",
    }
)
# LiteLLM budget durations ("30d", "1mo", "24h", ...) as Ogem's periods.
_DURATIONS = {
    "1d": "1d",
    "24h": "1d",
    "7d": "7d",
    "1w": "7d",
    "30d": "30d",
    "1mo": "30d",
    "": "",
}
_USERNAME = re.compile(r"^[\w.@+-]{1,150}$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_CALL_TYPES = {
    "completion": "chat/completions",
    "acompletion": "chat/completions",
    "text_completion": "completions",
    "atext_completion": "completions",
    "embedding": "embeddings",
    "aembedding": "embeddings",
    "image_generation": "images/generations",
    "aimage_generation": "images/generations",
    "transcription": "audio/transcriptions",
    "atranscription": "audio/transcriptions",
    "speech": "audio/speech",
    "aspeech": "audio/speech",
    "moderation": "moderations",
    "amoderation": "moderations",
    "rerank": "rerank",
    "arerank": "rerank",
    "aresponses": "responses",
    "responses": "responses",
}
# Source columns that change with traffic, not with configuration: left out of fingerprints, so
# a rerun against a LiteLLM still serving does not "update" every row.
_VOLATILE = frozenset(
    {"spend", "model_spend", "last_active", "updated_at", "budget_reset_at", "updated_by"}
)


class LiteLLMImportError(Exception):
    """The source cannot be imported (unreachable, not a LiteLLM database)."""


@dataclass
class ImportSummary:
    counts: dict[str, Counter[str]] = field(
        default_factory=lambda: {kind: Counter() for kind in KINDS}
    )
    skipped: list[str] = field(default_factory=list)
    # Imported, but not exactly as LiteLLM had it.
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False

    def count(self, kind: str, outcome: str, reason: str = "") -> None:
        self.counts[kind][outcome] += 1
        if reason:
            self.skipped.append(f"{kind}: {reason}")

    def lines(self) -> list[str]:
        head = "Dry run: nothing was written." if self.dry_run else "Imported from LiteLLM."
        out = [head]
        for kind in KINDS:
            c = self.counts[kind]
            out.append(
                f"  {kind:<13} created {c['created']}, updated {c['updated']}, "
                f"unchanged {c['unchanged']}, skipped {c['skipped']}"
            )
        out.extend(f"  skipped {reason}" for reason in self.skipped)
        out.extend(f"  note {note}" for note in self.notes)
        return out


@dataclass(frozen=True, slots=True)
class ImportOptions:
    database_url: str
    dry_run: bool = False
    # LITELLM_SALT_KEY, else LiteLLM's master key: what its model table's secrets are encrypted
    # with. None: encrypted values cannot be read and their models are skipped.
    salt_key: str | None = None


def litellm_import(*, options: ImportOptions) -> ImportSummary:
    """Import everything; returns what was done (with a dry run, what would be)."""
    summary = ImportSummary(dry_run=options.dry_run)
    try:
        source = psycopg.connect(options.database_url, row_factory=dict_row, connect_timeout=10)
    except psycopg.Error as exc:
        raise LiteLLMImportError(f"cannot connect to the LiteLLM database: {exc}") from None
    try:
        source.read_only = True  # the source is only ever read
        if _table_missing(source, "LiteLLM_VerificationToken"):
            raise LiteLLMImportError("not a LiteLLM database: LiteLLM_VerificationToken is missing")
        with transaction.atomic():
            _Importer(source=source, summary=summary, salt_key=options.salt_key).run()
            if options.dry_run:
                transaction.set_rollback(True)
    finally:
        source.close()
    return summary


def _table_missing(source: psycopg.Connection[Any], table: str) -> bool:
    row = source.execute("SELECT to_regclass(%s) AS found", (f'public."{table}"',)).fetchone()
    return row is None or row["found"] is None


def _fingerprint(row: dict[str, Any]) -> str:
    stable = {name: value for name, value in row.items() if name not in _VOLATILE}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.00000001"))


def _positive_int(value: Any) -> int | None:
    return None if value is None or int(value) < 0 else int(value)


def _models(value: Any) -> list[str]:
    models = [str(m) for m in value or []]
    return [] if ALL_MODELS & set(models) else models


def _model_of(row: dict[str, Any]) -> str:
    """A daily row's model as Ogem's rollups name it: the public model group, else the model."""
    return str(row.get("model_group") or row.get("model") or "")


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class _Importer:
    def __init__(
        self, *, source: psycopg.Connection[Any], summary: ImportSummary, salt_key: str | None
    ) -> None:
        self.source = source
        self.summary = summary
        self.salt_key = salt_key
        self.budgets: dict[str, dict[str, Any]] = {}
        self.organizations: dict[str, Organization] = {}
        self.teams: dict[str, Team] = {}
        # The daily totals' bounds: the request log's first day and the rollup watermark.
        self.first_day: date | None = None
        self.watermark: date | None = None
        self.users: dict[str, User] = {}
        self.keys: dict[str, VirtualKey] = {}
        self.default_organization: Organization | None = None
        self._pending_fp = ""
        self.mappings = {
            (m.kind, m.external_id): m for m in ImportedObject.objects.filter(source=SOURCE)
        }

    # ---- reading -------------------------------------------------------------------------

    def rows(self, table: str, order: str) -> Iterator[dict[str, Any]]:
        if _table_missing(self.source, table):
            return
        # Identifiers are ours (constants above), never the source's.
        query = f'SELECT * FROM "{table}" ORDER BY {order}'  # noqa: S608
        with self.source.cursor(name=f"import_{table.lower()}") as cursor:
            cursor.itersize = 2000
            cursor.execute(query)
            yield from cursor

    # ---- the mapping table ---------------------------------------------------------------

    def lookup(
        self, kind: str, external_id: str, row: dict[str, Any], model: type[Any]
    ) -> tuple[Any, bool]:
        """(the Ogem object made from this source row before, or None; whether the row is
        unchanged since). The row's fingerprint is kept for `remember`."""
        self._pending_fp = _fingerprint(row)
        mapping = self.mappings.get((kind, external_id))
        if mapping is None:
            return None, False
        found = model.objects.filter(pk=mapping.object_id).first()
        return found, found is not None and mapping.fingerprint == self._pending_fp

    def remember(self, kind: str, external_id: str, obj: Any) -> None:
        """Record (or refresh) the mapping of a source row to the Ogem object made from it."""
        known = self.mappings.get((kind, external_id))
        if known is not None and (known.object_id, known.fingerprint) == (obj.pk, self._pending_fp):
            return
        mapping, _ = ImportedObject.objects.update_or_create(
            source=SOURCE,
            kind=kind,
            external_id=external_id,
            defaults={"object_id": obj.pk, "fingerprint": self._pending_fp},
        )
        self.mappings[(kind, external_id)] = mapping

    # ---- the import ----------------------------------------------------------------------

    def run(self) -> None:
        self.budgets = {
            row["budget_id"]: row for row in self.rows("LiteLLM_BudgetTable", '"budget_id"')
        }
        self.import_budgets()
        self.import_organizations()
        self.import_users()
        self.import_teams()
        self.import_memberships()
        self.import_keys()
        self.import_end_users()
        self.import_models()
        self.import_spend_logs()
        self.import_daily_spend()

    def import_budgets(self) -> None:
        """LiteLLM_BudgetTable rows as budget templates (`/budget/list` shows them; a
        `budget_id` given later copies them), besides the limits of the entities that use them."""
        for budget_id, row in self.budgets.items():
            duration_raw = str(row.get("budget_duration") or "")
            duration = _DURATIONS.get(duration_raw)
            if duration is None:
                self.summary.notes.append(
                    f"budget {budget_id}: budget_duration {duration_raw!r} has no Ogem period; "
                    "its template never resets"
                )
            values = {
                "max_budget": _decimal(row.get("max_budget")),
                "soft_budget": _decimal(row.get("soft_budget")),
                "duration": duration or "",
                "rpm_limit": _positive_int(row.get("rpm_limit")),
                "tpm_limit": _positive_int(row.get("tpm_limit")),
                "max_parallel_requests": _positive_int(row.get("max_parallel_requests")),
            }
            template = BudgetTemplate.objects.filter(budget_id=str(budget_id)[:100]).first()
            if template is None:
                budget_template_create(
                    budget_id=str(budget_id)[:100],
                    created_by=str(row.get("created_by") or "")[:150],
                    values=values,
                )
                self.summary.count("budget", "created")
            elif all(getattr(template, k) == v for k, v in values.items()):
                self.summary.count("budget", "unchanged")
            else:
                budget_template_update(template=template, values=values)
                self.summary.count("budget", "updated")

    def budget_of(self, budget_id: str | None) -> dict[str, Any]:
        return self.budgets.get(budget_id or "", {})

    def set_budget(
        self,
        *,
        scope: str,
        target: Any,
        limits: dict[str, Any],
        spend: Any,
        created: bool,
        what: str,
    ) -> None:
        """The entity's budget and rate limits from LiteLLM's columns; its spend and period
        only when the entity is new (later runs leave what Ogem has counted since)."""
        duration_raw = str(limits.get("budget_duration") or "")
        duration = _DURATIONS.get(duration_raw)
        if duration is None:
            self.summary.notes.append(
                f"{what}: budget_duration {duration_raw!r} has no Ogem period; it never resets"
            )
            duration = ""
        max_budget = _decimal(limits.get("max_budget"))
        soft_budget = _decimal(limits.get("soft_budget"))
        rate = EntityLimits(
            rpm_limit=_positive_int(limits.get("rpm_limit")),
            tpm_limit=_positive_int(limits.get("tpm_limit")),
            max_parallel_requests=_positive_int(limits.get("max_parallel_requests")),
        )
        has_limits = any((rate.rpm_limit, rate.tpm_limit, rate.max_parallel_requests))
        if max_budget is None and soft_budget is None and not has_limits:
            return
        existing = Budget.objects.filter(scope=scope, **{SCOPE_FIELDS[scope]: target}).first()
        budget = budget_upsert(
            scope=scope,
            target=target,
            max_budget=max_budget,
            soft_budget=soft_budget,
            duration=duration,
            limits=rate,
        )
        if created or existing is None:
            budget_period_restore(
                budget=budget,
                spend=_decimal(spend) or Decimal("0"),
                reset_at=_aware(limits.get("budget_reset_at")),
            )

    def organization_default(self) -> Organization:
        if self.default_organization is None:
            name, slug = DEFAULT_ORGANIZATION
            found = Organization.objects.filter(slug=slug).first()
            self.default_organization = found or organization_create(name=name, slug=slug)
        return self.default_organization

    def import_organizations(self) -> None:
        for row in self.rows("LiteLLM_OrganizationTable", '"organization_id"'):
            external = row["organization_id"]
            org, unchanged = self.lookup("organization", external, row, Organization)
            if org is not None:
                self.organizations[external] = org
                if unchanged:
                    self.summary.count("organization", "unchanged")
                    continue
            fields = {
                "name": (row.get("organization_alias") or external)[:200],
                "metadata": dict(row.get("metadata") or {}),
                "allowed_models": _models(row.get("models")),
            }
            created = org is None
            if created:
                org = organization_create(**fields)
            else:
                org = organization_update(organization=org, **fields)
            self.organizations[external] = org
            self.set_budget(
                scope=BudgetScope.ORGANIZATION,
                target=org,
                limits=self.budget_of(row.get("budget_id")),
                spend=row.get("spend"),
                created=created,
                what=f"organization {external}",
            )
            self.remember("organization", external, org)
            self.summary.count("organization", "created" if created else "updated")

    def import_users(self) -> None:
        for row in self.rows("LiteLLM_UserTable", '"user_id"'):
            external = row["user_id"]
            if external in PSEUDO_USERS:
                self.summary.count("user", "skipped", f"{external}: LiteLLM's own, not a person")
                continue
            user, unchanged = self.lookup("user", external, row, User)
            if user is not None:
                self.users[external] = user
                if unchanged:
                    self.summary.count("user", "unchanged")
                    continue
            email = (row.get("user_email") or "")[:254]
            created = user is None
            if created:
                user = user_create(
                    username=self.username_for(external),
                    email=email,
                    display_name=(row.get("user_alias") or "")[:200],
                    is_superuser=row.get("user_role") == "proxy_admin",
                )
            else:
                user = user_update(
                    user=user, email=email, display_name=(row.get("user_alias") or "")[:200]
                )
            self.users[external] = user
            self.set_budget(
                scope=BudgetScope.USER,
                target=user,
                limits=row,
                spend=row.get("spend"),
                created=created,
                what=f"user {external}",
            )
            self.remember("user", external, user)
            self.summary.count("user", "created" if created else "updated")

    def username_for(self, external: str) -> str:
        base = external if _USERNAME.match(external) else (slugify(external) or "litellm-user")
        base = base[:140]
        name, suffix = base, 2
        while User.objects.filter(username=name).exists():
            name = f"{base}-{suffix}"
            suffix += 1
        return name

    def import_teams(self) -> None:
        for row in self.rows("LiteLLM_TeamTable", '"team_id"'):
            external = row["team_id"]
            team, unchanged = self.lookup("team", external, row, Team)
            if team is not None:
                self.teams[external] = team
                if unchanged:
                    self.summary.count("team", "unchanged")
                    continue
            org = self.organizations.get(row.get("organization_id") or "")
            org = org or (team.organization if team is not None else self.organization_default())
            fields = {
                "name": (row.get("team_alias") or external)[:200],
                "metadata": dict(row.get("metadata") or {}),
                "allowed_models": _models(row.get("models")),
            }
            created = team is None
            if created:
                team = team_create(organization=org, **fields)
            else:
                team = team_update(team=team, **fields)
            self.teams[external] = team
            self.set_budget(
                scope=BudgetScope.TEAM,
                target=team,
                limits=row,
                spend=row.get("spend"),
                created=created,
                what=f"team {external}",
            )
            self.remember("team", external, team)
            self.summary.count("team", "created" if created else "updated")

    def import_memberships(self) -> None:
        """Organization roles (LiteLLM_OrganizationMembership) and team roles (the team's
        members_with_roles, and LiteLLM_TeamMembership rows as members)."""
        wanted: dict[tuple[str, str, str], str] = {}
        for row in self.rows("LiteLLM_OrganizationMembership", '"user_id", "organization_id"'):
            role = {
                "org_admin": Role.ORG_ADMIN,
                "internal_user_viewer": Role.VIEWER,
                "proxy_admin_viewer": Role.VIEWER,
            }.get(row.get("user_role") or "", Role.MEMBER)
            wanted[("org", row["organization_id"], row["user_id"])] = role
        for row in self.rows("LiteLLM_TeamMembership", '"user_id", "team_id"'):
            wanted.setdefault(("team", row["team_id"], row["user_id"]), Role.MEMBER)
        for row in self.rows("LiteLLM_TeamTable", '"team_id"'):
            for member in row.get("members_with_roles") or []:
                if isinstance(member, dict) and member.get("user_id"):
                    role = Role.TEAM_ADMIN if member.get("role") == "admin" else Role.MEMBER
                    wanted[("team", row["team_id"], str(member["user_id"]))] = role
        for (level, owner, user_id), role in sorted(wanted.items()):
            external = f"{level}:{owner}:{user_id}"
            user = self.users.get(user_id)
            team = self.teams.get(owner) if level == "team" else None
            org = team.organization if team is not None else self.organizations.get(owner)
            if user is None or org is None:
                self.summary.count(
                    "membership", "skipped", f"{external}: its user or {level} was not imported"
                )
                continue
            found = Membership.objects.filter(user=user, organization=org, team=team).first()
            mapping = self.mappings.get(("membership", external))
            if found is None:
                found = membership_create(user=user, organization=org, team=team, role=role)
                self.summary.count("membership", "created")
            elif found.role == role or (mapping is not None and mapping.fingerprint == role):
                # Same role in LiteLLM as last time: a role changed in Ogem since stays.
                self.summary.count("membership", "unchanged")
            else:
                found = membership_update(membership=found, role=role)
                self.summary.count("membership", "updated")
            self._pending_fp = str(role)
            self.remember("membership", external, found)

    def import_keys(self) -> None:
        for row in self.rows("LiteLLM_VerificationToken", '"token"'):
            token = str(row["token"])
            if token.startswith("sk-"):  # very old LiteLLM versions stored the key itself
                token = hashlib.sha256(token.encode()).hexdigest()
            if not _SHA256_HEX.match(token):
                self.summary.count("key", "skipped", "a token that is not a SHA-256 digest")
                continue
            prefix = legacy_prefix_of(token)
            row = {**row, "token": prefix}  # the fingerprint never holds the digest
            key, unchanged = self.lookup("key", prefix, row, VirtualKey)
            if key is not None:
                self.keys[token] = key
                if unchanged:
                    self.summary.count("key", "unchanged")
                    continue
            team = self.teams.get(row.get("team_id") or "")
            org = team.organization if team is not None else None
            org = org or self.organizations.get(row.get("organization_id") or "")
            # A key of no organization would be an operator's key in Ogem: a tenant's instead.
            org = org or self.organization_default()
            budget_row = self.budget_of(row.get("budget_id"))
            metadata = dict(row.get("metadata") or {})
            if row.get("aliases"):
                metadata["litellm_aliases"] = row["aliases"]  # kept, not applied
            fields: dict[str, Any] = {
                "name": (row.get("key_alias") or row.get("key_name") or f"litellm {prefix[:8]}")[
                    :200
                ],
                "user": self.users.get(row.get("user_id") or ""),
                "allowed_models": _models(row.get("models")),
                "expires_at": _aware(row.get("expires")),
                "metadata": metadata,
                "rpm_limit": _positive_int(row.get("rpm_limit") or budget_row.get("rpm_limit")),
                "tpm_limit": _positive_int(row.get("tpm_limit") or budget_row.get("tpm_limit")),
                "max_parallel_requests": _positive_int(
                    row.get("max_parallel_requests") or budget_row.get("max_parallel_requests")
                ),
            }
            created = key is None
            if created:
                # A key's team and organization are set once: a rerun never moves it.
                key = key_legacy_create(
                    lookup_prefix=prefix, sha256_digest=token, organization=org, team=team, **fields
                )
            else:
                key = key_update(key=key, **fields)
            if row.get("blocked") and key.revoked_at is None:
                key = key_revoke(key=key)
            self.keys[token] = key
            limits = {
                "max_budget": row["max_budget"]
                if row.get("max_budget") is not None
                else budget_row.get("max_budget"),
                "soft_budget": budget_row.get("soft_budget"),
                "budget_duration": row.get("budget_duration") or budget_row.get("budget_duration"),
                "budget_reset_at": row.get("budget_reset_at"),
            }
            self.set_budget(
                scope=BudgetScope.KEY,
                target=key,
                limits=limits,
                spend=row.get("spend"),
                created=created,
                what=f"key {prefix[:8]}",
            )
            self.remember("key", prefix, key)
            self.summary.count("key", "created" if created else "updated")

    def end_user_organizations(self) -> dict[str, Organization]:
        """Each end user's organization: that of the first key that sent it (spend logs)."""
        found: dict[str, Organization] = {}
        if _table_missing(self.source, "LiteLLM_SpendLogs"):
            return found
        rows = self.source.execute(
            'SELECT DISTINCT ON ("end_user") "end_user", "api_key" FROM "LiteLLM_SpendLogs" '
            'WHERE "end_user" IS NOT NULL AND "end_user" <> \'\' '
            'ORDER BY "end_user", "startTime"'
        ).fetchall()
        for row in rows:
            key = self.keys.get(row["api_key"])
            org = key.organization if key is not None else None
            if org is not None:
                found[row["end_user"]] = org
        return found

    def import_end_users(self) -> None:
        owners = self.end_user_organizations()
        for row in self.rows("LiteLLM_EndUserTable", '"user_id"'):
            external = row["user_id"]
            customer, unchanged = self.lookup("end_user", external, row, EndCustomer)
            if customer is not None and unchanged:
                self.summary.count("end_user", "unchanged")
                continue
            created = customer is None
            if created:
                org = owners.get(external) or self.organization_default()
                customer, _ = EndCustomer.objects.get_or_create(
                    organization=org, external_id=external[:255]
                )
            customer.alias = (row.get("alias") or "")[:200]
            customer.blocked = bool(row.get("blocked"))
            customer.save(update_fields=["alias", "blocked"])
            self.set_budget(
                scope=BudgetScope.END_CUSTOMER,
                target=customer,
                limits=self.budget_of(row.get("budget_id")),
                spend=row.get("spend"),
                created=created,
                what=f"end user {external}",
            )
            self.remember("end_user", external, customer)
            self.summary.count("end_user", "created" if created else "updated")

    # ---- the model table -------------------------------------------------------------------

    def decrypt(self, value: Any) -> Any:
        """A litellm_params value as LiteLLM encrypted it (NaCl SecretBox under sha256 of the
        salt key, base64), or the value itself when it is not encrypted."""
        if not isinstance(value, str) or not self.salt_key:
            return value
        import nacl.exceptions
        import nacl.secret

        try:
            sealed = base64.b64decode(value, validate=True)
        except ValueError:
            return value
        box = nacl.secret.SecretBox(hashlib.sha256(self.salt_key.encode()).digest())
        try:
            return box.decrypt(sealed).decode()
        except (nacl.exceptions.CryptoError, ValueError, UnicodeDecodeError):
            return value

    def import_models(self) -> None:
        for row in self.rows("LiteLLM_ProxyModelTable", '"model_id"'):
            external = row["model_id"]
            deployment, unchanged = self.lookup("model", external, row, ModelDeployment)
            if deployment is not None and unchanged:
                self.summary.count("model", "unchanged")
                continue
            params = {name: self.decrypt(v) for name, v in (row["litellm_params"] or {}).items()}
            info = dict(row.get("model_info") or {})
            model = params.pop("model", None)
            if not isinstance(model, str) or not model:
                reason = "litellm_params.model is unreadable (encrypted? give --salt-key)"
                self.summary.count("model", "skipped", f"{row['model_name']}: {reason}")
                continue
            provider, upstream, recognised = provider_split(model)
            if not recognised or not provider_is_servable(provider):
                reason = (
                    provider_unservable_reason(provider)
                    if recognised
                    else f"provider of {model!r} not served"
                )
                self.summary.count("model", "skipped", f"{row['model_name']}: {reason}")
                continue
            api_key = params.pop("api_key", None)
            data: dict[str, Any] = {
                "model_name": row["model_name"][:200],
                "provider": provider,
                "upstream_model": upstream[:300],
                "api_base": str(params.pop("api_base", "") or "")[:500],
                "api_version": str(params.pop("api_version", "") or "")[:50],
                "rpm": _positive_int(params.pop("rpm", None)),
                "tpm": _positive_int(params.pop("tpm", None)),
                "access_groups": list(info.get("access_groups") or []),
            }
            if isinstance(api_key, str) and api_key.startswith("os.environ/"):
                data["credential_ref"], api_key = api_key, None
            for price in ("input_cost_per_token", "output_cost_per_token"):
                if info.get(price) is not None:
                    params[price] = info[price]
            # The rest of model_info as a config file's (its other prices, context sizes, mode,
            # base_model), less LiteLLM's bookkeeping of the row itself.
            kept = {k: v for k, v in info.items() if k not in _MODEL_INFO_BOOKKEEPING}
            if kept:
                params["model_info"] = kept
            created = deployment is None
            if created:
                deployment = deployment_create(data=data, params=params, api_key=api_key)
            else:
                deployment = deployment_update(
                    deployment=deployment, data=data, params=params, api_key=api_key
                )
            self.remember("model", external, deployment)
            self.summary.count("model", "created" if created else "updated")

    # ---- spend history -----------------------------------------------------------------------

    def import_spend_logs(self) -> None:
        """LiteLLM_SpendLogs rows as request-log rows (idempotent on request_id), then the
        rollups of the days they touched that are already rolled up."""
        days: set[date] = set()
        batch: list[RequestLog] = []
        for row in self.rows("LiteLLM_SpendLogs", '"startTime", "request_id"'):
            log = self.request_log(row)
            if log is None:
                continue
            batch.append(log)
            if len(batch) >= 1000:
                days |= self.request_logs_write(batch)
                batch = []
        if batch:
            days |= self.request_logs_write(batch)
        watermark = rollup_watermark()
        # Days after the watermark are rolled by the beat in order; earlier ones are rewritten
        # now, with the imported rows in them.
        for day in sorted(days):
            if watermark is not None and day <= watermark:
                rollup_day(day=day)

    def request_log(self, row: dict[str, Any]) -> RequestLog | None:
        request_id = str(row["request_id"])
        if len(request_id) > 64:
            self.summary.count("spend_log", "skipped", f"{request_id[:20]}…: id over 64 chars")
            return None
        key = self.keys.get(str(row.get("api_key") or ""))
        team = self.teams.get(row.get("team_id") or "")
        org = self.organizations.get(row.get("organization_id") or "")
        org_id = key.organization_id if key is not None else None
        org_id = org_id or (team.organization_id if team is not None else None)
        org_id = org_id or (org.pk if org is not None else None)
        start, end = _aware(row["startTime"]), _aware(row["endTime"])
        status = str(row.get("status") or "success")
        metadata = row.get("metadata") or {}
        # The key's owner: the `user` column, else what LiteLLM put in the row's metadata.
        user = self.users.get(str(row.get("user") or "")) or self.users.get(
            str(metadata.get("user_api_key_user_id") or "")
        )
        tags = row.get("request_tags") or []
        return RequestLog(
            request_id=request_id,
            created_at=start,
            organization_id=org_id,
            team_id=key.team_id if key is not None else (team.pk if team else None),
            key_id=key.pk if key is not None else None,
            user_id=user.pk if user is not None else (key.user_id if key else None),
            end_customer=str(row.get("end_user") or "")[:255],
            endpoint=_CALL_TYPES.get(str(row.get("call_type") or ""), "chat/completions"),
            model=str(row.get("model_group") or row.get("model") or "")[:200],
            provider=str(row.get("custom_llm_provider") or "")[:50],
            deployment=str(row.get("model_id") or "")[:200],
            status_code=200 if status == "success" else 500,
            prompt_tokens=max(int(row.get("prompt_tokens") or 0), 0),
            completion_tokens=max(int(row.get("completion_tokens") or 0), 0),
            total_tokens=max(int(row.get("total_tokens") or 0), 0),
            cost=_decimal(row.get("spend")) or Decimal("0"),
            latency_ms=max(int((end - start).total_seconds() * 1000), 0) if start and end else 0,
            cache_hit=str(row.get("cache_hit") or "").lower() == "true",
            tags=[str(t) for t in tags] if isinstance(tags, list) else [],
        )

    def request_logs_write(self, batch: list[RequestLog]) -> set[date]:
        ids = [log.request_id for log in batch]
        existing = set(
            RequestLog.objects.filter(request_id__in=ids).values_list("request_id", flat=True)
        )
        new = [log for log in batch if log.request_id not in existing]
        RequestLog.objects.bulk_create(new, ignore_conflicts=True)
        for _ in existing:
            self.summary.count("spend_log", "unchanged")
        for _ in new:
            self.summary.count("spend_log", "created")
        return {log.created_at.astimezone(UTC).date() for log in new}

    def import_daily_spend(self) -> None:
        """LiteLLM's daily totals (LiteLLM_DailyUserSpend, LiteLLM_DailyTeamSpend,
        LiteLLM_DailyTagSpend) for the days Ogem's request log has nothing of, such as days whose
        spend logs LiteLLM's retention deleted: written as those days' rollups. A day the request
        log covers is rolled up from it instead; a day after the rollup watermark that the log
        does not precede would make the watermark skip days, so it is skipped and reported.

        The user and team tables count the same requests (each row is a day, key and model, per
        user or per team): the user table's rows are the day's partition, and a team row fills in
        only a (day, key, model) the user table has no row for. Tag rows repeat a request once
        per tag, as Ogem's tagged rollups do."""
        first = RequestLog.objects.aggregate(first=Min("created_at"))["first"]
        self.first_day = first.astimezone(UTC).date() if first is not None else None
        self.watermark = rollup_watermark()
        rows_by_day: dict[date, list[UsageRollup]] = {}
        users = list(self.rows("LiteLLM_DailyUserSpend", '"date", "id"'))
        covered = {(str(r["date"]), str(r.get("api_key") or ""), _model_of(r)) for r in users}
        sources: list[tuple[str, str, dict[str, Any]]] = [("", "user", r) for r in users]
        for table, kind in (("LiteLLM_DailyTeamSpend", "team"), ("LiteLLM_DailyTagSpend", "tag")):
            for row in self.rows(table, '"date", "id"'):
                key = (str(row["date"]), str(row.get("api_key") or ""), _model_of(row))
                if kind == "team" and key in covered:
                    continue  # the user table counted these requests
                sources.append((f"{kind}:", kind, row))
        for prefix, kind, row in sources:
            external = f"{prefix}{row['id']}"
            if ("daily_spend", external) in self.mappings:
                self.summary.count("daily_spend", "unchanged")
                continue
            day = self.daily_day(row, external)
            if day is None:
                continue
            rows_by_day.setdefault(day, []).append(self.daily_rollup(row, kind=kind, day=day))
            # Recorded so a rerun skips it; the rollup rows are the day's, with no id of their own.
            self.mappings[("daily_spend", external)] = ImportedObject(
                source=SOURCE, kind="daily_spend", external_id=external, object_id=0, fingerprint=""
            )
        for day, rollups in sorted(rows_by_day.items()):
            UsageRollup.objects.bulk_create(rollups)
            # A day's request count is its partition's: tagged rows repeat requests.
            partition = UsageRollup.objects.filter(day=day, tag="").aggregate(n=Sum("requests"))
            UsageRollupDay.objects.update_or_create(
                day=day, defaults={"rolled_at": timezone.now(), "requests": partition["n"] or 0}
            )
            self.summary.counts["daily_spend"]["created"] += len(rollups)
        ImportedObject.objects.bulk_create(
            [m for (kind, _), m in self.mappings.items() if kind == "daily_spend" and m.pk is None]
        )

    def daily_day(self, row: dict[str, Any], external: str) -> date | None:
        """The UTC day a daily row totals, or None (counted as skipped) when it is not imported."""
        try:
            day = date.fromisoformat(str(row["date"]))
        except ValueError:
            self.summary.count("daily_spend", "skipped", f"{external}: date {row['date']!r}")
            return None
        if self.first_day is not None and day >= self.first_day:
            self.summary.count("daily_spend", "skipped", f"{day}: rolled up from spend logs")
            return None
        if self.watermark is not None and day > self.watermark:
            self.summary.count(
                "daily_spend", "skipped", f"{day}: after the rollup watermark {self.watermark}"
            )
            return None
        return day

    def daily_rollup(self, row: dict[str, Any], *, kind: str, day: date) -> UsageRollup:
        key = self.keys.get(str(row.get("api_key") or ""))
        user = self.users.get(str(row.get("user_id") or "")) if kind == "user" else None
        team = self.teams.get(str(row.get("team_id") or "")) if kind == "team" else None
        prompt = max(int(row.get("prompt_tokens") or 0), 0)
        completion = max(int(row.get("completion_tokens") or 0), 0)
        organization_id = key.organization_id if key is not None else None
        team_id = key.team_id if key is not None else None
        if team is not None:
            organization_id = organization_id or team.organization_id
            team_id = team_id or team.pk
        return UsageRollup(
            day=day,
            organization_id=organization_id,
            team_id=team_id,
            key_id=key.pk if key is not None else None,
            user_id=user.pk if user is not None else (key.user_id if key else None),
            model=_model_of(row)[:200],
            tag=str(row.get("tag") or "")[:200] if kind == "tag" else "",
            requests=max(int(row.get("api_requests") or 0), 0),
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            spend=_decimal(row.get("spend")) or Decimal("0"),
        )
