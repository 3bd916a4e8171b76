"""Celery tasks of files: thin wrappers over its services (scheduled by beat)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="files.tasks.files_expired_purge", ignore_result=True)
def files_expired_purge() -> int:
    """Expired files and uploads removed; idempotent (files/services.py)."""
    # Imported on use: the services load the gateway's router and every provider adapter, which
    # a beat process would otherwise pay at start.
    from files.services import files_expired_purge as purge

    return purge()
