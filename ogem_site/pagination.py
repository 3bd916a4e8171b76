"""OpenAI's cursor pagination over a queryset (files, batches, fine-tuning jobs, assistants,
vector stores): rows ordered by a field then pk, the page after or before a cursor row."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import Model, Q, QuerySet

M = TypeVar("M", bound=Model)


def queryset_page(
    rows: QuerySet[M],
    *,
    after: M | None,
    limit: int,
    descending: bool,
    before: M | None = None,
    field: str = "created_at",
) -> tuple[list[M], bool]:
    """One page of `rows` ordered by `field` then pk (newest first when `descending`): the rows
    that follow `after` and precede `before` in that order, at most `limit`, and whether more
    follow in the page's direction. With `before` alone, the page just before it (read
    backwards, returned in order)."""
    for cursor, later in ((after, not descending), (before, descending)):
        if cursor is None:
            continue
        value: Any = getattr(cursor, field)
        if later:
            rows = rows.filter(
                Q(**{f"{field}__gt": value}) | Q(**{field: value, "pk__gt": cursor.pk})
            )
        else:
            rows = rows.filter(
                Q(**{f"{field}__lt": value}) | Q(**{field: value, "pk__lt": cursor.pk})
            )
    forward = (f"-{field}", "-pk") if descending else (field, "pk")
    if before is not None and after is None:
        backward = (field, "pk") if descending else (f"-{field}", "-pk")
        found = list(rows.order_by(*backward)[: limit + 1])
        return list(reversed(found[:limit])), len(found) > limit
    found = list(rows.order_by(*forward)[: limit + 1])
    return found[:limit], len(found) > limit
