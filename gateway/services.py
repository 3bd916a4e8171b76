"""Writes to model deployments and named credentials (API and admin call these)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import orjson
from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from psycopg.types.json import Jsonb

from gateway.blocking import blocking_run
from gateway.config.credentials import API_KEY, REDACTED, deployment_params_split
from gateway.models import (
    Credential,
    DebugCapture,
    GuardrailDefinition,
    ModelDeployment,
    RealtimeCall,
    RealtimeClientSecret,
    SemanticCacheEntry,
    StoredCompletion,
    StoredResponse,
)
from gateway.stored_response_columns import STORED_RESPONSE_FIELDS, stored_response_names
from ogem_site.crypto import secret_encrypt, secret_reencrypt, secret_value_encrypt
from ogem_site.pg import pg_enabled, pg_execute

logger = logging.getLogger(__name__)


def _apply(
    deployment: ModelDeployment,
    *,
    data: dict[str, Any],
    params: dict[str, Any] | None,
    api_key: str | None,
) -> ModelDeployment:
    for name, value in data.items():
        setattr(deployment, name, value)
    current: dict[str, str] = dict(deployment.encrypted_secrets or {})
    tokens = dict(current)
    if params is not None:
        params = dict(params)
        # params.api_key (LiteLLM's spelling) is the same secret as the api_key field.
        in_params = params.pop(API_KEY, REDACTED)
        if api_key is None and in_params != REDACTED:
            api_key = in_params or ""
        deployment.params, tokens = deployment_params_split(params, current=current)
        if API_KEY in current:
            tokens[API_KEY] = current[API_KEY]
    if api_key is not None:
        tokens.pop(API_KEY, None)
        if api_key:
            tokens[API_KEY] = secret_value_encrypt(api_key)
    # One source of key at a time: the one just given replaces the others.
    if api_key:
        deployment.credential_ref = ""
        deployment.credential = None
    elif data.get("credential_ref"):
        deployment.credential = None
        tokens.pop(API_KEY, None)
    elif data.get("credential"):
        deployment.credential_ref = ""
        tokens.pop(API_KEY, None)
    deployment.encrypted_secrets = tokens
    deployment.save()
    return deployment


def deployment_create(
    *, data: dict[str, Any], params: dict[str, Any] | None = None, api_key: str | None = None
) -> ModelDeployment:
    return _apply(ModelDeployment(), data=data, params=params or {}, api_key=api_key)


def deployment_update(
    *,
    deployment: ModelDeployment,
    data: dict[str, Any],
    params: dict[str, Any] | None = None,
    api_key: str | None = None,
) -> ModelDeployment:
    return _apply(deployment, data=data, params=params, api_key=api_key)


def deployment_delete(*, deployment: ModelDeployment) -> None:
    """Delete a deployment; workers drop it when they next compare the database's fingerprint
    (gateway.config.database)."""
    deployment.delete()


def guardrail_definition_save(
    *, definition: GuardrailDefinition, secrets: dict[str, str | None], clear: bool = False
) -> GuardrailDefinition:
    """Save an admin-defined guardrail; `secrets` are its secret options, each None to keep what
    is stored or a value to store encrypted; `clear` removes the stored ones first. Workers pick
    it up when they next compare the database's fingerprint (gateway.config.database)."""
    tokens: dict[str, str] = {} if clear else dict(definition.encrypted_secrets or {})
    for name, value in secrets.items():
        if value:
            tokens[name] = secret_value_encrypt(value)
    definition.encrypted_secrets = tokens
    definition.save()
    return definition


def credential_save(*, credential: Credential, value: str | None = None) -> Credential:
    """Save a named credential; `value` (None keeps it, "" removes it) is stored encrypted.

    A reference replaces a stored value: one credential holds one secret.
    """
    if credential.reference:
        credential.encrypted_value = ""
    elif value is not None:
        credential.encrypted_value = secret_encrypt(value) if value else ""
    credential.save()
    return credential


@transaction.atomic
def deployment_secrets_reencrypt() -> dict[str, int]:
    """Every deployment's, admin-defined guardrail's and credential's secret re-encrypted under
    the first key: how many rows of each ("model deployments", "guardrail definitions",
    "credentials"); a row without a secret has none to re-encrypt."""
    counts: dict[str, int] = {}
    for label, model in (
        ("model deployments", ModelDeployment),
        ("guardrail definitions", GuardrailDefinition),
    ):
        counts[label] = 0
        for row in model.objects.select_for_update().exclude(encrypted_secrets={}):
            row.encrypted_secrets = {
                name: secret_reencrypt(token) for name, token in row.encrypted_secrets.items()
            }
            row.save(update_fields=["encrypted_secrets"])
            counts[label] += 1
    counts["credentials"] = 0
    for credential in Credential.objects.select_for_update().exclude(encrypted_value=""):
        credential.encrypted_value = secret_reencrypt(credential.encrypted_value)
        credential.save(update_fields=["encrypted_value"])
        counts["credentials"] += 1
    return counts


# ---- Stored chat completions (gateway/stored.py writes them; /v1 updates and deletes) ----------


def stored_completion_create(
    *,
    completion_id: str,
    organization_id: int | None,
    team_id: int | None,
    key_id: int | None,
    model: str,
    request_model: str,
    created_at: datetime,
    metadata: dict[str, str],
    messages: list[Any],
    completion: dict[str, Any],
) -> StoredCompletion:
    return StoredCompletion.objects.create(
        completion_id=completion_id,
        organization_id=organization_id,
        team_id=team_id,
        key_id=key_id,
        model=model,
        request_model=request_model,
        created_at=created_at,
        metadata=metadata,
        messages=messages,
        completion=completion,
    )


def stored_completion_metadata_update(
    *, stored: StoredCompletion, metadata: dict[str, str]
) -> StoredCompletion:
    """Replace a stored completion's metadata: the one thing OpenAI lets a client change."""
    stored.metadata = metadata
    stored.save(update_fields=["metadata"])
    return stored


def stored_completion_delete(*, stored: StoredCompletion) -> None:
    stored.delete()


def response_cache_purge(
    *,
    organization_id: int,
    team_id: int | None = None,
    key_id: int | None = None,
    namespace: str | None = None,
) -> int:
    """Delete the response cache's entries of an organization (or of one team's or key's scope
    in it), in one namespace or all, in Redis and in the S3 tier when the configuration has one;
    every worker then forgets its in-process entries. Returns how many Redis entries and S3
    objects were deleted (docs/caching.md)."""
    # Imported on use: gateway.cache loads the /v1 pipeline's modules, which the admin and the
    # management API need only here.
    from gateway.cache import cache_purge_patterns
    from gateway.config import config_current
    from gateway.registry import registry_get
    from ogem_site.broadcast import RESPONSE_CACHE, broadcast_publish
    from ogem_site.redis import redis_client_sync

    deleted = semantic_cache_purge(
        organization_id=organization_id, team_id=team_id, key_id=key_id, namespace=namespace
    )
    patterns = cache_purge_patterns(
        organization_id=organization_id, team_id=team_id, key_id=key_id, namespace=namespace
    )
    if settings.REDIS_URL:
        client = redis_client_sync()
        for pattern in patterns:
            # One key per command: entries sit in different slots of a Cluster.
            for key in client.scan_iter(match=pattern, count=1000):
                deleted += client.delete(key)
    registry_get()  # a process that has not served /v1 yet loads its configuration here
    cache = config_current().cache
    try:
        if cache is not None and cache.s3 is not None:
            from gateway.cache_s3 import s3_purge

            deleted += s3_purge(cache.s3, patterns)
    except Exception as exc:  # botocore's errors: the bucket is unreachable or refuses
        logger.warning("response cache purge: S3 failed (%s)", type(exc).__name__)
        raise CachePurgeError("The S3 tier of the response cache could not be purged.") from exc
    finally:
        broadcast_publish(topic=RESPONSE_CACHE)
    return deleted


class CachePurgeError(Exception):
    """A tier of the response cache could not be purged (the others were)."""


# ---- The response cache's semantic tier (gateway/semantic.py) ----------------------------------


def semantic_cache_entries_create(*, rows: list[dict[str, Any]]) -> list[int]:
    """Write a batch of semantic entries (a label already written is skipped); their ids, in
    the order given (None for a skipped one: ids are then read back)."""
    entries = [SemanticCacheEntry(**row) for row in rows]
    created = SemanticCacheEntry.objects.bulk_create(entries, ignore_conflicts=True)
    ids = [entry.pk for entry in created]
    if any(pk is None for pk in ids):  # ignore_conflicts: some backends return no ids
        found = dict(
            SemanticCacheEntry.objects.filter(label__in=[row["label"] for row in rows]).values_list(
                "label", "id"
            )
        )
        ids = [found.get(row["label"]) for row in rows]
    return ids


def semantic_cache_purge(
    *,
    organization_id: int,
    team_id: int | None = None,
    key_id: int | None = None,
    namespace: str | None = None,
) -> int:
    """Delete the semantic entries of an organization (or of a team's or key's scope in it), in
    one namespace or all, and tell every worker to drop them from its index; how many went."""
    from ogem_site.broadcast import SEMANTIC_CACHE, broadcast_publish

    entries = SemanticCacheEntry.objects.filter(organization_id=organization_id)
    scope: str | None = None
    if key_id is not None:
        scope = f"o{organization_id}.k{key_id}"
    elif team_id is not None:
        scope = f"o{organization_id}.t{team_id}"
    if scope is not None:
        entries = entries.filter(scope=scope)
    if namespace:
        entries = entries.filter(namespace=namespace)
    deleted, _ = entries.delete()
    message = {
        "op": "purge",
        "organization": organization_id,
        "scope": scope,
        "namespace": namespace or None,
    }
    broadcast_publish(topic=SEMANTIC_CACHE, message=message)
    return deleted


def semantic_cache_entries_delete(*, labels: list[int]) -> int:
    """Delete these semantic entries (the admin's action) and tell every worker to drop them;
    how many went."""
    from ogem_site.broadcast import SEMANTIC_CACHE, broadcast_publish

    deleted, _ = SemanticCacheEntry.objects.filter(label__in=labels).delete()
    broadcast_publish(topic=SEMANTIC_CACHE, message={"op": "remove", "labels": labels})
    return deleted


def semantic_cache_expire(*, now: datetime, max_entries: int | None) -> int:
    """Delete expired semantic entries, and the oldest of a namespace past `max_entries`
    (idempotent: Celery beat, or the embedded default's worker, runs it); how many went."""
    deleted, _ = SemanticCacheEntry.objects.filter(expires_at__lte=now).delete()
    if max_entries is None:
        return deleted
    full = (
        SemanticCacheEntry.objects.values("scope", "namespace")
        .annotate(count=Count("id"))
        .filter(count__gt=max_entries)
    )
    for space in full:
        newest = (
            SemanticCacheEntry.objects.filter(scope=space["scope"], namespace=space["namespace"])
            .order_by("-id")
            .values_list("id", flat=True)[max_entries : max_entries + 1]
        )
        boundary = next(iter(newest), None)
        if boundary is not None:
            removed, _ = SemanticCacheEntry.objects.filter(
                scope=space["scope"], namespace=space["namespace"], id__lte=boundary
            ).delete()
            deleted += removed
    return deleted


REALTIME_SECRET_PREFIX = "ek_"


def realtime_client_secret_create(
    *, key_id: int, model: str, session: dict[str, Any], expires_at: datetime, now: datetime
) -> tuple[str, RealtimeClientSecret]:
    """Mint an ephemeral Realtime secret bound to a key, a model and a session configuration;
    returns the secret (shown this once) and its row. Expired secrets are deleted on the way."""
    from ogem_site.hashing import secret_generate

    RealtimeClientSecret.objects.filter(expires_at__lte=now).delete()
    new = secret_generate(kind_prefix=REALTIME_SECRET_PREFIX)
    row = RealtimeClientSecret.objects.create(
        prefix=new.prefix,
        digest=new.digest,
        pepper_id=new.pepper_id,
        key_id=key_id,
        model=model,
        session=session,
        expires_at=expires_at,
    )
    return new.secret, row


def realtime_call_create(
    *,
    call_id: str,
    key_id: int | None,
    model: str,
    deployment_id: str,
    hold_id: str,
    hold_bucket: int,
    hold_local: bool,
    expires_at: datetime,
    now: datetime,
) -> RealtimeCall:
    """Record a WebRTC call set up through Ogem; calls past their expiry are deleted on the way."""
    RealtimeCall.objects.filter(expires_at__lte=now).delete()
    return RealtimeCall.objects.create(
        call_id=call_id,
        key_id=key_id,
        model=model,
        deployment_id=deployment_id,
        hold_id=hold_id,
        hold_bucket=hold_bucket,
        hold_local=hold_local,
        expires_at=expires_at,
    )


def realtime_call_end(*, call_id: str, now: datetime) -> bool:
    """Mark a call ended; True for the one caller that ended it (who then frees its slots)."""
    return bool(
        RealtimeCall.objects.filter(call_id=call_id, ended_at__isnull=True).update(ended_at=now)
    )


# ---- Stored responses (the Responses API) -------------------------------------------------------

# A background response's states in which it can still change (be finished or cancelled).
RESPONSE_RUNNING = ("queued", "in_progress")


_response_insert_sql = ""


def _response_insert() -> str:
    global _response_insert_sql
    if not _response_insert_sql:
        names = stored_response_names()
        # Names of the model's own, quoted; the values go as parameters.
        _response_insert_sql = (
            f"INSERT INTO {names.table} ({names.written}) "  # noqa: S608
            f"VALUES ({names.written_params}) "
            # A new random id: a conflict is this very row, written by a first attempt whose
            # connection broke before it answered (ogem_site/pg.py sends it once more).
            f"ON CONFLICT ({names.response_id}) DO NOTHING"
        )
    return _response_insert_sql


async def stored_response_write(
    *,
    response_id: str,
    organization_id: int | None,
    team_id: int | None,
    key_id: int | None,
    model: str,
    status: str,
    background: bool,
    deployment_id: str,
    previous_response_id: str,
    created_at: datetime,
    input_items: list[Any],
    history: list[Any],
    response: dict[str, Any],
    encoded: bytes | None = None,
) -> None:
    """Keep a new response, committed when this returns (read-your-writes on any worker): on
    PostgreSQL one INSERT in autocommit from the event loop (ogem_site/pg.py), else through the
    ORM in a worker thread. `encoded`: `response` as JSON already (the answer's own body)."""
    fields: dict[str, Any] = {
        "response_id": response_id,
        "organization_id": organization_id,
        "team_id": team_id,
        "key_id": key_id,
        "model": model,
        "status": status,
        "background": background,
        "deployment_id": deployment_id,
        "previous_response_id": previous_response_id,
        "created_at": created_at,
        "input_items": input_items,
        "history": history,
        "response": response,
    }
    if not pg_enabled():
        await blocking_run(StoredResponse.objects.create, **fields)
        return
    # The INSERT's parameters go in the order of STORED_RESPONSE_FIELDS; `updated_at` is the
    # ORM's auto_now.
    fields["updated_at"] = timezone.now()
    fields["input_items"] = Jsonb(input_items, dumps=orjson.dumps)
    fields["history"] = Jsonb(history, dumps=orjson.dumps)
    if encoded is None:
        encoded = orjson.dumps(response)
    fields["response"] = Jsonb(encoded, dumps=_encoded)
    await pg_execute(_response_insert(), tuple(fields[name] for name in STORED_RESPONSE_FIELDS[1:]))


def _encoded(value: bytes) -> bytes:
    return value


def stored_response_progress(*, response_id: str, response: dict[str, Any]) -> bool:
    """A running background response's new state (in progress, finished or failed). Only while
    it still runs: a response cancelled meanwhile, on any worker, stays cancelled."""
    updated = StoredResponse.objects.filter(
        response_id=response_id, status__in=RESPONSE_RUNNING
    ).update(status=response["status"], response=response, updated_at=timezone.now())
    return updated == 1


def stored_response_cancel(*, stored: StoredResponse) -> bool:
    """Cancel a running background response; False when it was no longer running."""
    response = {**stored.response, "status": "cancelled"}
    updated = StoredResponse.objects.filter(pk=stored.pk, status__in=RESPONSE_RUNNING).update(
        status="cancelled", response=response, updated_at=timezone.now()
    )
    if updated:
        stored.status, stored.response = "cancelled", response
    return updated == 1


def stored_response_delete(*, stored: StoredResponse) -> None:
    stored.delete()


def debug_capture_create(*, fields: dict[str, Any]) -> DebugCapture:
    """Store one request-debugging capture (gateway/debugging.py writes it after the answer)."""
    return DebugCapture.objects.create(**fields)


def debug_captures_purge(*, now: datetime | None = None) -> int:
    """Delete the captures past their retention; returns how many (idempotent)."""
    deleted, _ = DebugCapture.objects.filter(expires_at__lte=now or timezone.now()).delete()
    return deleted
