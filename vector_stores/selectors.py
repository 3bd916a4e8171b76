"""Reads of vector stores, their files and batches: for a /v1 caller (its tenant's, never
another's) and for admin."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from files.selectors import tenant_scope
from gateway.context import Caller
from gateway.errors import NotFoundError
from ogem_site.pagination import queryset_page
from tenants.principals import Principal
from tenants.selectors import principal_org_read_ids, principal_owns, principal_team_read_ids
from vector_stores.models import (
    FileStatus,
    VectorStore,
    VectorStoreFile,
    VectorStoreFileBatch,
)


def stores_visible(*, caller: Caller) -> QuerySet[VectorStore]:
    return tenant_scope(VectorStore.objects.all(), caller=caller)


def store_get_visible(
    *, caller: Caller, store_id: str, param: str = "vector_store_id"
) -> VectorStore:
    """The caller's store, or a 404 that reads the same for another tenant's and a missing one."""
    found = None
    if "\x00" not in store_id:
        # No ORDER BY (first() would add one): a search reads this row every time.
        rows = stores_visible(caller=caller).filter(store_id=store_id).order_by()
        found = next(iter(rows[:1]), None)
    if found is None:
        raise NotFoundError(f"No vector store found with id '{store_id}'.", param=param)
    return found


def store_page(
    *,
    caller: Caller,
    after: VectorStore | None,
    before: VectorStore | None,
    limit: int,
    descending: bool,
) -> tuple[list[VectorStore], bool]:
    return queryset_page(
        stores_visible(caller=caller),
        after=after,
        before=before,
        limit=limit,
        descending=descending,
    )


def store_file_get(*, store: VectorStore, file_id: str) -> VectorStoreFile | None:
    if "\x00" in file_id:
        return None
    return store.files.filter(file_id=file_id).first()


def store_file_get_visible(*, store: VectorStore, file_id: str) -> VectorStoreFile:
    found = store_file_get(store=store, file_id=file_id)
    if found is None:
        raise NotFoundError(
            f"No file found with id '{file_id}' in vector store '{store.store_id}'.",
            param="file_id",
        )
    return found


def store_file_page(
    *,
    store: VectorStore,
    batch: VectorStoreFileBatch | None,
    status: str | None,
    after: VectorStoreFile | None,
    before: VectorStoreFile | None,
    limit: int,
    descending: bool,
) -> tuple[list[VectorStoreFile], bool]:
    rows = store.files.all()
    if batch is not None:
        rows = rows.filter(batch=batch)
    if status:
        rows = rows.filter(status=status)
    return queryset_page(rows, after=after, before=before, limit=limit, descending=descending)


def batch_get_visible(*, store: VectorStore, batch_id: str) -> VectorStoreFileBatch:
    found = None
    if "\x00" not in batch_id:
        found = store.batches.filter(batch_id=batch_id).first()
    if found is None:
        raise NotFoundError(
            f"No file batch found with id '{batch_id}' in vector store '{store.store_id}'.",
            param="batch_id",
        )
    return found


def file_counts(files: QuerySet[VectorStoreFile]) -> dict[str, int]:
    """OpenAI's `file_counts`: files by status, and their total."""
    counted = dict(files.order_by().values_list("status").annotate(count=Count("id")))
    counts = {status.value: int(counted.get(status.value, 0)) for status in FileStatus}
    counts["total"] = sum(counts.values())
    return counts


def store_file_counts_map(*, store_pks: list[int]) -> dict[int, dict[str, int]]:
    """`file_counts` of several stores in one query."""
    rows = (
        VectorStoreFile.objects.filter(store_id__in=store_pks)
        .order_by()
        .values_list("store_id", "status")
        .annotate(count=Count("id"))
    )
    found: dict[int, dict[str, int]] = {
        pk: {status.value: 0 for status in FileStatus} for pk in store_pks
    }
    for store_pk, status, count in rows:
        if status in found[store_pk]:
            found[store_pk][status] = int(count)
    for counts in found.values():
        counts["total"] = sum(counts.values())
    return found


def store_status(*, store: VectorStore, counts: dict[str, int]) -> str:
    if store.expires_at is not None and store.expires_at <= timezone.now():
        return "expired"
    return "in_progress" if counts["in_progress"] else "completed"


def tenant_usage_bytes(*, store: VectorStore) -> int:
    """What the store's tenant (its organization; a key's own stores without one) holds in
    vector stores, in bytes."""
    stores = VectorStore.objects.all()
    if store.organization_id is not None:
        stores = stores.filter(organization_id=store.organization_id)
    elif store.key_id is not None:
        stores = stores.filter(organization__isnull=True, key_id=store.key_id)
    else:
        stores = stores.filter(organization__isnull=True, key__isnull=True)
    return int(stores.aggregate(total=Sum("usage_bytes"))["total"] or 0)


def store_list(*, principal: Principal) -> QuerySet[VectorStore]:
    """Stores for admin: every one for a proxy admin; else those of the organizations and teams
    the principal may read, and those its own keys created."""
    stores = VectorStore.objects.select_related("organization", "team", "key")
    if principal.is_proxy_admin:
        return stores
    return stores.filter(
        Q(organization_id__in=principal_org_read_ids(principal=principal))
        | Q(team_id__in=principal_team_read_ids(principal=principal))
        | principal_owns(principal=principal, field="key__user_id")
    )
