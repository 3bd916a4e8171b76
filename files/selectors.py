"""Reads of files and uploads: for a /v1 caller (its tenant's, never another's) and for the
management API and admin (a Principal's scope)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import IO

from django.db.models import Q, QuerySet
from django.utils import timezone

from files.batch_input import batch_lines
from files.models import File, Upload, UploadPart
from files.storage import blob_chunks, blob_open
from gateway.context import Caller
from gateway.errors import NotFoundError
from ogem_site.pagination import queryset_page
from tenants.principals import Principal
from tenants.selectors import principal_org_read_ids, principal_owns, principal_team_read_ids


def tenant_scope(queryset: QuerySet, *, caller: Caller) -> QuerySet:
    """A team's key sees its team's rows; an organization's key (no team), its organization's;
    the master key, every row; any other key (no organization), its own."""
    if caller.is_master:
        return queryset
    if caller.team_id is not None:
        return queryset.filter(organization_id=caller.organization_id, team_id=caller.team_id)
    if caller.organization_id is not None:
        return queryset.filter(organization_id=caller.organization_id)
    if caller.key_id is not None:
        return queryset.filter(organization__isnull=True, key_id=caller.key_id)
    return queryset.none()


def files_visible(*, caller: Caller) -> QuerySet[File]:
    """The files a /v1 caller may see: its tenant's, not expired."""
    live = File.objects.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
    return tenant_scope(live, caller=caller)


def file_get(*, caller: Caller, file_id: str) -> File | None:
    return files_visible(caller=caller).filter(file_id=file_id).first()


def file_get_visible(*, caller: Caller, file_id: str, param: str = "file_id") -> File:
    """The caller's file, or a 404 that reads the same for another tenant's file, an expired one
    and one that never existed."""
    found = file_get(caller=caller, file_id=file_id) if "\x00" not in file_id else None
    if found is None:
        raise NotFoundError(f"No such File object: {file_id}", param=param, code="not_found")
    return found


def file_page(
    *,
    caller: Caller,
    purpose: str | None,
    after: File | None,
    limit: int,
    descending: bool,
) -> tuple[list[File], bool]:
    """One page of the caller's files by creation time after the cursor file, and whether more
    follow."""
    files = files_visible(caller=caller)
    if purpose:
        files = files.filter(purpose=purpose)
    return queryset_page(files, after=after, limit=limit, descending=descending)


def file_open(*, file: File) -> IO[bytes]:
    """The file's contents as a binary stream (read it in pieces; close it)."""
    return blob_open(name=file.storage_name)


def file_chunks(*, file: File) -> Iterator[bytes]:
    """The file's contents as a stream of byte chunks (never read whole)."""
    return blob_chunks(name=file.storage_name)


def file_lines(*, file: File) -> Iterator[tuple[int, bytes]]:
    """The file's non-blank lines with their numbers from 1, one at a time (a batch's input)."""
    return iter(batch_lines(chunks=file_chunks(file=file)))


def file_list(*, principal: Principal) -> QuerySet[File]:
    """Files for the management API and admin: every one for a proxy admin; else those of the
    organizations and teams the principal may read, and those its own keys uploaded."""
    files = File.objects.select_related("organization", "team", "key")
    if principal.is_proxy_admin:
        return files
    return files.filter(
        Q(organization_id__in=principal_org_read_ids(principal=principal))
        | Q(team_id__in=principal_team_read_ids(principal=principal))
        | principal_owns(principal=principal, field="key__user_id")
    )


def files_expired(*, now: datetime | None = None) -> QuerySet[File]:
    return File.objects.filter(expires_at__lte=now or timezone.now())


def upload_get(*, caller: Caller, upload_id: str) -> Upload | None:
    if "\x00" in upload_id:
        return None
    return tenant_scope(Upload.objects.all(), caller=caller).filter(upload_id=upload_id).first()


def upload_get_visible(*, caller: Caller, upload_id: str) -> Upload:
    found = upload_get(caller=caller, upload_id=upload_id)
    if found is None:
        raise NotFoundError(
            f"No such Upload object: {upload_id}", param="upload_id", code="not_found"
        )
    return found


def upload_parts_ordered(*, upload: Upload, part_ids: list[str]) -> list[UploadPart]:
    """The upload's parts in the order named; a part of another upload is not found."""
    found = {part.part_id: part for part in upload.parts.filter(part_id__in=part_ids)}
    missing = [part_id for part_id in part_ids if part_id not in found]
    if missing:
        raise NotFoundError(
            f"No such Part object in upload {upload.upload_id}: {missing[0]}",
            param="part_ids",
            code="not_found",
        )
    return [found[part_id] for part_id in part_ids]


def uploads_expired(*, now: datetime | None = None) -> QuerySet[Upload]:
    """Pending uploads past their expiry, and finished ones still holding parts."""
    moment = now or timezone.now()
    return Upload.objects.filter(
        Q(status="pending", expires_at__lte=moment)
        | Q(status__in=["expired", "cancelled"], parts__isnull=False)
    ).distinct()
