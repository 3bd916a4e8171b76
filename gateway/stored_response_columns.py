"""StoredResponse's table and columns as quoted SQL names, for the two statements the /v1 path
sends on PostgreSQL from the event loop (ogem_site/pg.py): the read of a `previous_response_id`
(selectors) and the write of a new response (services)."""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

from django.db import connection

from gateway.models import StoredResponse

# Every field of the model, by attribute name: the read returns them in this order (to build the
# model from), the write sends all but `id` (the database's own) in this order.
STORED_RESPONSE_FIELDS = (
    "id",
    "response_id",
    "organization_id",
    "team_id",
    "key_id",
    "model",
    "status",
    "background",
    "deployment_id",
    "previous_response_id",
    "created_at",
    "updated_at",
    "input_items",
    "history",
    "response",
)


class StoredResponseNames(NamedTuple):
    table: str
    columns: str  # STORED_RESPONSE_FIELDS's, comma-separated
    written: str  # the same without `id`
    written_params: str  # a parameter for each of them
    response_id: str


@cache
def stored_response_names() -> StoredResponseNames:
    quote = connection.ops.quote_name
    meta = StoredResponse._meta
    columns = [quote(meta.get_field(name).column) for name in STORED_RESPONSE_FIELDS]
    return StoredResponseNames(
        table=quote(meta.db_table),
        columns=", ".join(columns),
        written=", ".join(columns[1:]),
        written_params=", ".join(["%s"] * (len(columns) - 1)),
        response_id=quote(meta.get_field("response_id").column),
    )
