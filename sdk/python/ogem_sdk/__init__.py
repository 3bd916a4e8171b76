"""Ogem's management API (/api/v1) for Python: `Ogem` and `AsyncOgem`."""

from ogem_sdk.client import AsyncOgem, Ogem
from ogem_sdk.errors import OgemAPIError, OgemConnectionError, OgemError
from ogem_sdk.resources import OPERATIONS

__all__ = ["OPERATIONS", "AsyncOgem", "Ogem", "OgemAPIError", "OgemConnectionError", "OgemError"]
