"""What the /v1 object APIs (stored completions, responses, files, batches, ...) share:
authentication with the request's timing started, and JSON answers carrying the request id and
Ogem's overhead (their blocking work runs through gateway/blocking.py).

These are not the inference hot path: object reads and writes are the database's.
"""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from gateway.auth import caller_authenticate
from gateway.context import Caller
from gateway.errors import InvalidRequestError
from gateway.responses import json_response, request_id_for


def request_timing_start(request: HttpRequest) -> None:
    request.ogem_started = time.perf_counter()  # type: ignore[attr-defined]


async def object_caller(request: HttpRequest) -> Caller:
    """Start the request's timing, authenticate it, and refuse NUL in the query string (in no id,
    and PostgreSQL refuses it in a query)."""
    request_timing_start(request)
    caller = await caller_authenticate(request)
    for name, value in request.GET.items():
        if "\x00" in name or "\x00" in value:
            raise InvalidRequestError("Query parameters cannot hold NUL characters.", param=name)
    return caller


def answer_headers(request: HttpRequest, response: HttpResponse | StreamingHttpResponse) -> None:
    response["x-request-id"] = request_id_for(request)
    started = request.ogem_started  # type: ignore[attr-defined]
    response["x-ogem-overhead-ms"] = f"{(time.perf_counter() - started) * 1000:.2f}"


def object_answer(request: HttpRequest, payload: Any) -> HttpResponse:
    response = json_response(payload)
    answer_headers(request, response)
    return response


def list_object(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """OpenAI's cursor-paginated list: the page's objects, its first and last ids, and whether
    more follow (`after=last_id` asks for them)."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
