"""A lean ASGI path for /v1: Django's request/response objects and URL routing, nothing else.

Django's ASGIHandler costs a /v1 request far more than the gateway's own work: the middleware
chain (sessions, CSRF, auth, messages, allauth: none of which /v1 uses; it authenticates by API
key and is CSRF-exempt), the `request_started`/`request_finished` signals whose sync receivers
(`close_old_connections`) each run through `sync_to_async` (a thread hop), a thread hop to close
the response and another to log every 4xx. Measured on the 2-core build machine (mock provider,
master key, governance on, one core pinned, ASGI app driven in-process, best of 3 x 2,000 chat
completions): Django's handler 5.55 ms a request, this one 0.31 ms. Through uvicorn (uvloop,
httptools) under wrk at 10 connections on a busy machine: ~260-410 requests/s before, ~1,350 after.

What /v1 still gets: URL resolution (Ninja's routes and its one exception handler), the request
body spooled as Django does, and client-disconnect handling (the view's work is cancelled and a
streaming body's iterator closed, which closes the upstream request). Database connections are
not used on /v1's steady path; the key resolver's rare lookups close their own connection.
ALLOWED_HOSTS is not checked on /v1: nothing there builds a URL from the Host header.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import set_script_prefix, set_urlconf

from gateway.api import api
from gateway.auth import caller_known, credential_pick
from gateway.cache import HIT, PlanMemo, cache_memo_get, cache_memo_held, memo_sizes
from gateway.config import config_current
from gateway.context import Caller
from gateway.errors import AuthenticationError, InvalidRequestError, RequestTooLargeError
from gateway.governance import settle_deferred
from gateway.registry import registry_get
from gateway.relay import relay_memo_hit
from gateway.responses import (
    PlainHeaders,
    headers_apply,
    json_bytes_response,
    overhead_ms,
    request_id_chosen,
    request_id_for,
)
from gateway.responses_api import views as responses_api
from gateway.tracing import trace_context_parse, trace_id_new, trace_refused, tracing_active
from gateway.views import inference
from ogem_site.asgi_types import ASGIApp, Receive, Scope, Send, asgi_respond
from ogem_site.hot_settings import hot_settings
from providers.base import Endpoint

V1_PREFIX = "/v1/"

logger = logging.getLogger(__name__)
_sched_yield = getattr(os, "sched_yield", lambda: None)  # Unix; elsewhere nothing to yield to


class V1Handler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        self._middleware_chain = convert_exception_to_response(self._get_response_async)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        view = _direct_views().get(request.path_info) if request.method == "POST" else None
        if view is not None:
            # No URL resolution on this path, so no urlconf to set (Django sets the default one,
            # which is what an unset one means).
            response = await _direct(view, request)
        else:
            set_urlconf(hot_settings().ROOT_URLCONF)
            response = await self._middleware_chain(request)
        if response.status_code == 405 and not response.get("Content-Type", "").endswith("json"):
            allowed = response.get("Allow", "")
            response = HttpResponse(
                orjson.dumps(
                    InvalidRequestError(
                        f"{request.method} is not allowed on {request.path}; use {allowed}.",
                        code="method_not_allowed",
                        status=405,
                    ).to_body()
                ),
                status=405,
                content_type="application/json",
            )
            response["Allow"] = allowed
            response["x-request-id"] = request_id_for(request)
        response._resource_closers.append(request.close)
        return response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = hot_settings().OGEM_MAX_REQUEST_BYTES
        if scope["method"] == "POST" and scope["path"].startswith(_UPLOAD_PREFIXES):
            limit = _upload_body_limit(scope["path"], limit)
        expected = None
        traceparent = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit():
                expected = int(value)
            elif name == b"traceparent":
                traceparent = value
        # Every answer carries its trace id: the client's traceparent's, else a new one.
        parsed = trace_context_parse(traceparent) if traceparent is not None else None
        if parsed is None:
            parsed = (trace_id_new(), 0, 1)
        trace_header = (b"x-ogem-trace-id", b"%032x" % parsed[0])
        if expected is not None and expected > limit:
            await _send_too_large(send, limit, trace_header, scope=scope, traced=parsed)
            return
        try:
            body_file, size, body = await _read_body(receive, limit, expected)
        except RequestAborted:
            return
        if size > limit:  # a chunked body without Content-Length
            body_file.close()
            await _send_too_large(send, limit, trace_header, scope=scope, traced=parsed)
            return
        script_name = hot_settings().FORCE_SCRIPT_NAME or scope.get("root_path", "") or ""
        if (
            body is not None
            and len(body) in memo_sizes  # a body of no memo'd size (most misses): no more
            and not script_name
            and (expected is None or expected == size)
            and scope["method"] == "POST"
        ):
            endpoint = _MEMO_ROUTES.get(scope["path"])
            if endpoint is not None:
                started = time.perf_counter()  # the view's start, which authenticates first
                memo_hit = _memo_request(scope, endpoint, body)
                if memo_hit is not None and await self.memo_answer(
                    scope, send, body_file, body, memo_hit, parsed, trace_header, started
                ):
                    body_file.close()
                    return
        if script_name:
            # Else the prefix is Django's default ("/", what "" sets): each request runs in a
            # task of its own, whose context no other request's setting reaches, and setting
            # it (asgiref's Local, through a context manager) cost more than the whole check.
            set_script_prefix(script_name)
        try:
            request = V1Request(scope, body_file, script_name=script_name, body=body)
            error_response = None
        except UnicodeDecodeError:  # Django's own answer to it (a 400), and its log line
            request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            error_response.headers._store["x-ogem-trace-id"] = (
                "x-ogem-trace-id",
                trace_header[1].decode(),
            )
            await self.send_response(error_response, send)
            return
        request.ogem_trace = parsed  # type: ignore[attr-defined]
        trace_id = trace_header[1].decode()
        request.ogem_trace_hex = trace_id  # type: ignore[attr-defined]  # the relay's, made once
        # The client leaving cancels the work (`_DisconnectWatch`). The relay's own routes start
        # watching when they first wait on more than Redis (gateway/relay.py `_client_watch`):
        # a response cache hit, answered from memory or Redis, never does, a listener task
        # (created, run, cancelled: 3 % of a hit's instructions) less. Any other route, at once.
        watch = _DisconnectWatch(asyncio.current_task(), receive, self.listen_for_disconnect)  # type: ignore[arg-type]
        if request.path_info in _WATCHED_LATER and request.method == "POST":
            request.ogem_watch = watch.start  # type: ignore[attr-defined]
        else:
            watch.start()

        async def process() -> HttpResponseBase:
            # What the view left for once the response is sent (settle_deferred): the settle's
            # Redis reply, or a response cache hit's whole settle.
            deferred: list[Awaitable[None]] = []
            token = settle_deferred.set(deferred)
            try:
                response = await self.get_response_async(request)
            finally:
                settle_deferred.reset(token)
            response._handler_class = self.__class__
            response.headers._store["x-ogem-trace-id"] = ("x-ogem-trace-id", trace_id)
            if response.status_code == 401 and request.ogem_trace is not None:
                # Refused by an endpoint the relay does not serve (files, batches, vector
                # stores...): its request span is recorded here.
                if request.path.startswith(V1_PREFIX):
                    _refusal_trace(
                        request.path,
                        traced=request.ogem_trace,
                        error=AuthenticationError("Invalid API key."),
                        method=request.method or "GET",
                    )
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client went away while we were sending
            finally:
                # The answer is out: a client leaving no longer cancels what follows.
                watch.finished = True
                for item in deferred:
                    if isinstance(item, asyncio.Future):
                        await asyncio.shield(item)  # a settle's reply
                    else:
                        await _after_answer(item)  # a response cache hit's settle
            return response

        # The work runs in this task, not a second one as in Django (a task and a loop turn less a
        # request): the client leaving cancels it; any other cancellation propagates.
        response = None
        try:
            response = await process()
        except asyncio.CancelledError:
            if not watch.left:
                raise
            watch.task.uncancel()
        finally:
            watch.finished = True
            if watch.listener is not None:
                watch.listener.cancel()
        if response is not None:
            _close_quietly(response)
        body_file.close()

    async def memo_answer(
        self,
        scope: Scope,
        send: Send,
        body_file: Any,
        body: bytes,
        memo_hit: tuple[Endpoint, Caller, PlanMemo, str],
        traced: tuple[int, int, int],
        trace_header: tuple[bytes, bytes],
        started: float,
    ) -> bool:
        """A memo'd request answered by its L1 entry (`_memo_request` found it), without Django's
        request or response: the relay's `relay_memo_hit`, its answer's headers as the relay's
        path sets them (`headers_apply`) and `send_response` encodes them, its settle after the
        answer as `process` runs it. False, with nothing done, when the entry does not answer:
        the request takes the usual path."""
        endpoint, caller, memo, sent_id = memo_hit
        request_id = request_id_chosen(sent_id)
        trace_id = trace_header[1].decode()
        deferred: list[Awaitable[None]] = []
        response: HttpResponseBase | None = None
        headers = None
        token = settle_deferred.set(deferred)
        try:
            try:
                done = await relay_memo_hit(
                    endpoint=endpoint,
                    caller=caller,
                    memo=memo,
                    request_id=request_id,
                    started=started,
                    trace_id=trace_id,
                )
            finally:
                settle_deferred.reset(token)
        except Exception as exc:  # a refusal: answered as the view's (`_direct`)
            request = V1Request(scope, body_file, script_name="", body=body)
            request.ogem_request_id = request_id  # type: ignore[attr-defined]
            request.ogem_started = started  # type: ignore[attr-defined]
            request.ogem_trace = traced  # type: ignore[attr-defined]
            request.ogem_trace_hex = trace_id  # type: ignore[attr-defined]
            response = api.on_exception(request, exc)
            response._resource_closers.append(request.close)
            response.headers._store["x-ogem-trace-id"] = ("x-ogem-trace-id", trace_id)
        else:
            if done is None:
                return False
            ctx, answer, extra = done
            if not extra or type(extra) is PlainHeaders:
                headers = [_JSON_TYPE, (b"x-request-id", request_id.encode())]
                for name, value in extra.items():
                    headers.append((name.encode(), value.encode()))
                headers.append(_CACHE_HIT)
                if ctx.cache_age is not None:
                    headers.append((b"x-ogem-cache-age", b"%d" % int(ctx.cache_age)))
                headers.append((b"x-ogem-overhead-ms", overhead_ms(ctx).encode()))
                headers.append(trace_header)
            else:  # headers Django converts: through its response
                response = json_bytes_response(answer)
                headers_apply(response, ctx, extra)
                response.headers._store["x-ogem-trace-id"] = ("x-ogem-trace-id", trace_id)
        try:
            if response is not None:
                await self.send_response(response, send)
            else:
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": answer})
        except asyncio.CancelledError:
            pass  # the client went away while we were sending
        finally:
            for item in deferred:
                if isinstance(item, asyncio.Future):
                    await asyncio.shield(item)  # a settle's reply
                else:
                    await _after_answer(item)  # a response cache hit's settle
        if response is not None:
            _close_quietly(response)
        return True

    async def listen_for_disconnect(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestAborted()
            # Else the body's last, empty message: _read_body stops at Content-Length.

    async def send_response(self, response: HttpResponseBase, send: Send) -> None:
        # The header store directly: response.items() goes through two generic mapping layers.
        # It holds strings only (Django's ResponseHeaders converts, and so do Ogem's writes).
        headers = [
            (name.encode(), value.encode("latin1"))  # names: ASCII (Django checks them)
            for name, value in response.headers._store.values()
        ]
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        if response.streaming and response.is_async:
            # The relay's own generator, without Django's two wrapping generators per event; it
            # yields bytes (make_bytes only for anything else) and is closed here, at once.
            make_bytes = response.make_bytes
            async with aclosing(response._iterator) as content:
                async for part in content:
                    body = part if type(part) is bytes else make_bytes(part)
                    await send({"type": "http.response.body", "body": body, "more_body": True})
            await send({"type": "http.response.body"})
        elif response.streaming:
            async with aclosing(aiter(response)) as content:
                async for part in content:
                    await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body"})
        else:
            await send({"type": "http.response.body", "body": response.content})


# File uploads have bounds of their own (files/api.py, docs/files.md): a /v1/files body may be as
# large as the largest file of any purpose (the view then applies its purpose's), an upload's part
# as OGEM_UPLOAD_PART_MAX_BYTES; both plus room for the multipart form around the file.
_UPLOAD_PREFIXES = (V1_PREFIX + "files", V1_PREFIX + "uploads/")
_MULTIPART_ROOM = 1024 * 1024


def _upload_body_limit(path: str, limit: int) -> int:
    if path in (V1_PREFIX + "files", V1_PREFIX + "files/"):
        largest = max(settings.OGEM_FILES_MAX_BYTES.values(), default=0)
        return max(limit, largest + _MULTIPART_ROOM)
    if path.endswith("/parts"):
        return max(limit, settings.OGEM_UPLOAD_PART_MAX_BYTES + _MULTIPART_ROOM)
    return limit


View = Callable[[HttpRequest], Awaitable[HttpResponseBase]]
_direct_table: dict[str, View] = {}


def _direct_views() -> dict[str, View]:
    """The busiest inference routes, called without URL resolution or Ninja's operation wrapper
    (about a tenth of a request's CPU). They take no parameters and return HttpResponses, so
    Ninja would only add its exception handler, applied the same way in `_direct`."""
    if not _direct_table:
        _direct_table.update(
            {
                V1_PREFIX + "chat/completions": inference.chat_completions,
                V1_PREFIX + "completions": inference.completions,
                V1_PREFIX + "embeddings": inference.embeddings,
                V1_PREFIX + "responses": responses_api.responses_create,
            }
        )
    return _direct_table


async def _direct(view: View, request: HttpRequest) -> HttpResponseBase:
    try:
        return await view(request)
    except Exception as exc:
        return api.on_exception(request, exc)


async def _after_answer(work: Awaitable[None]) -> None:
    """Work the view left for after its answer (a response cache hit's settle), in the
    handler's task."""
    # The server's I/O thread writes the answer, and it may share this core (one worker per
    # core): give it the core (and the GIL) first, or the answer waits for this work, which
    # would be all the deferring gained.
    _sched_yield()
    try:
        await work
    except Exception:
        logger.exception("work after a /v1 answer failed")


# The relay's JSON routes whose view may answer from a plan memo (gateway/relay.py `relay`).
_MEMO_ROUTES = {
    V1_PREFIX + "chat/completions": Endpoint.CHAT,
    V1_PREFIX + "completions": Endpoint.COMPLETIONS,
    V1_PREFIX + "embeddings": Endpoint.EMBEDDINGS,
}
_JSON_TYPE = (b"Content-Type", b"application/json")  # `json_bytes_response`'s, encoded
_CACHE_HIT = (b"x-ogem-cache", HIT.encode())
# The headers the relay reads on a memo'd hit (its credential, Cache-Control, x-request-id).
_MEMO_HEADERS = frozenset(
    {b"authorization", b"api-key", b"x-api-key", b"cache-control", b"x-request-id"}
)


def _latin1(value: bytes | None) -> str | None:
    """A raw header's value as Django's request holds it (latin-1, as WSGI and ASGI say)."""
    return value.decode("latin1") if value is not None else None


def _memo_request(
    scope: Scope, endpoint: Endpoint, body: bytes
) -> tuple[Endpoint, Caller, PlanMemo, str] | None:
    """What `relay` would use a plan memo for with this request, found without awaiting
    anything or changing anything: its endpoint, caller (from the in-process key cache), memo
    and x-request-id. None when the request is not one (the usual path then decides): no such
    memo, a caller the key cache does not hold, anything that takes the relay's memo or its
    early hit away (tracing, guardrails, callbacks, a debug capture, the semantic tier, a
    stream, a stored completion), or headers the usual path would read otherwise (a repeated
    one, a name not in lowercase, a multipart body, a query string not ASCII)."""
    registry = registry_get()
    config = config_current()
    cache = config.cache
    if (
        cache is None
        or not cache.local_max_bytes  # no L1 (`redis-l2`): its entries are read in the relay
        or cache.semantic is not None
        or config.guardrails is not None
        or config.callbacks is not None
        or tracing_active(config.tracing) is not None
    ):
        return None
    query = scope.get("query_string", b"")
    if isinstance(query, bytes) and not query.isascii():
        return None
    found: dict[bytes, bytes] = {}
    for name, value in scope.get("headers", ()):
        if not name.islower():
            return None
        if name in _MEMO_HEADERS:
            if name in found:
                return None
            found[name] = value
        elif name == b"content-type" and b"multipart" in value:
            return None
    secret = credential_pick(
        authorization=_latin1(found.get(b"authorization")),
        api_key=_latin1(found.get(b"api-key")),
        x_api_key=_latin1(found.get(b"x-api-key")),
    )
    if secret is None:
        return None
    caller = caller_known(secret)
    if caller is None or caller.debug_until is not None or caller.guardrails or caller.logging:
        return None
    memo = cache_memo_get(
        endpoint,
        caller,
        body=body,
        header=_latin1(found.get(b"cache-control")),
        config=config,
        registry=registry,
    )
    if memo is None or memo.checked.stream or memo.checked.store or not cache_memo_held(memo):
        return None
    request_id = found.get(b"x-request-id")
    return endpoint, caller, memo, request_id.decode("latin1") if request_id is not None else ""


# The routes whose view is the relay's (`_direct_views`), which starts the disconnect watch itself.
_WATCHED_LATER = frozenset(
    {V1_PREFIX + "chat/completions", V1_PREFIX + "completions", V1_PREFIX + "embeddings"}
)


class _DisconnectWatch:
    __slots__ = ("finished", "left", "listen", "listener", "receive", "task")

    def __init__(
        self,
        task: asyncio.Task[Any],
        receive: Receive,
        listen: Callable[[Receive], Awaitable[None]],
    ) -> None:
        self.task = task
        self.receive = receive
        self.listen = listen
        self.listener: asyncio.Task[None] | None = None
        self.left = False
        self.finished = False

    def start(self) -> None:
        """Listen for the client leaving, from now until the answer is sent. Once."""
        if self.listener is not None or self.finished:
            return
        self.listener = self.task.get_loop().create_task(self.listen(self.receive))
        self.listener.add_done_callback(self.client_left)

    def client_left(self, listener: asyncio.Task[None]) -> None:
        if listener.cancelled():
            return
        listener.exception()  # retrieved: RequestAborted is how a disconnect ends it
        if not self.finished:
            self.left = True
            self.task.cancel()


async def _read_body(
    receive: Receive, limit: int, expected: int | None
) -> tuple[Any, int, bytes | None]:
    """Django's spooled body, but bytes past `limit` are counted and not kept. With a
    Content-Length it stops once that much has arrived: some servers (granian) send the body and
    then an empty last message, and waiting for that costs a round trip to the server's thread.

    A body within FILE_UPLOAD_MAX_MEMORY_SIZE, which Django's spooled file would keep in memory,
    is a BytesIO (whose methods are C; the spooled file's are Python) and is returned as bytes
    too, for the request's `body`; a larger one is spooled as Django does (None then)."""
    memory = hot_settings().FILE_UPLOAD_MAX_MEMORY_SIZE
    chunks: list[bytes] = []
    kept = 0
    spooled: Any = None
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if spooled is not None:
                spooled.close()
            raise RequestAborted()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            if spooled is not None:
                spooled.write(chunk)
            else:
                chunks.append(chunk)
                kept += len(chunk)
                if kept > memory:
                    spooled = tempfile.SpooledTemporaryFile(max_size=memory, mode="w+b")
                    spooled.write(b"".join(chunks))
                    chunks.clear()
        if not message.get("more_body", False) or (expected is not None and size >= expected):
            break
    if spooled is not None:
        spooled.seek(0)
        return spooled, size, None
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return io.BytesIO(body), size, body


# Header names as ASGI sends them -> their META keys (Django's: CONTENT_LENGTH, CONTENT_TYPE,
# HTTP_<NAME>; "" for a name with an underscore, which Django drops). Bounded: names are the
# client's to choose.
_meta_keys: dict[bytes, str] = {}
_META_KEYS_MAX = 512


def _meta_key(name: bytes) -> str:
    text = name.decode("latin1")
    if "_" in text:  # Django's guard against spoofing through `-` and `_` meaning the same
        key = ""
    elif text == "content-length":
        key = "CONTENT_LENGTH"
    elif text == "content-type":
        key = "CONTENT_TYPE"
    else:
        key = "HTTP_" + text.upper().replace("-", "_")
    if len(_meta_keys) < _META_KEYS_MAX:
        _meta_keys[name] = key
    return key


class V1Request(ASGIRequest):
    """Django's ASGIRequest, with the same attributes and META, built with less work: the
    script prefix given (read once, from the settings object itself), header names' META keys
    remembered, and a body read into memory handed over as `body` (Django would read it back
    from the stream, checking DATA_UPLOAD_MAX_MEMORY_SIZE with four reads of the lazy settings;
    the same check is made here, and a body over it is left for Django to refuse as before)."""

    def __init__(
        self, scope: Scope, body_file: Any, *, script_name: str, body: bytes | None
    ) -> None:
        self.scope = scope
        self._post_parse_error = False
        self._read_started = False
        self.resolver_match = None
        path = scope["path"]
        self.path = path
        self.script_name = script_name
        self.path_info = path.removeprefix(script_name) if script_name else path
        self.method = method = scope["method"].upper()
        query_string = scope.get("query_string", "")
        if isinstance(query_string, bytes):
            query_string = query_string.decode()
        meta: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "QUERY_STRING": query_string,
            "SCRIPT_NAME": script_name,
            "PATH_INFO": self.path_info,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
        }
        client = scope.get("client")
        if client:
            meta["REMOTE_ADDR"] = meta["REMOTE_HOST"] = client[0]
            meta["REMOTE_PORT"] = client[1]
        server = scope.get("server")
        if server:
            meta["SERVER_NAME"] = server[0]
            meta["SERVER_PORT"] = str(server[1])
        else:
            meta["SERVER_NAME"] = "unknown"
            meta["SERVER_PORT"] = "0"
        headers: dict[str, str] = {}
        keys = _meta_keys
        for name, value in scope.get("headers", ()):
            key = keys.get(name)
            if key is None:
                key = _meta_key(name)
            if not key:
                continue
            text = value.decode("latin1")
            if key in headers:  # a repeated header: its values joined, as Django does
                headers[key] += "," + text
            else:
                headers[key] = text
        meta.update(headers)
        self.META = meta
        self._set_content_type_params(meta)
        self._stream = body_file
        if body is not None and self.content_type != "multipart/form-data":
            cap = hot_settings().DATA_UPLOAD_MAX_MEMORY_SIZE
            length = meta.get("CONTENT_LENGTH") or "0"
            if cap is None or (
                len(body) <= cap and length.isascii() and length.isdigit() and int(length) <= cap
            ):
                self._body = body


async def _send_too_large(
    send: Send,
    limit: int,
    trace_header: tuple[bytes, bytes],
    *,
    scope: Scope,
    traced: tuple[int, int, int],
) -> None:
    error = RequestTooLargeError(f"The request body is larger than {limit} bytes.")
    body = orjson.dumps(error.to_body())
    headers = [
        (b"content-type", b"application/json"),
        (b"x-request-id", uuid.uuid4().hex.encode()),
        trace_header,
    ]
    if scope["path"].startswith(V1_PREFIX):
        _refusal_trace(scope["path"], traced=traced, error=error)
    await asgi_respond(send, status=413, body=body, headers=headers)


def _refusal_trace(
    path: str, *, traced: tuple[int, int, int], error: Exception, method: str = "POST"
) -> None:
    """A /v1 request refused here: its request span, when tracing is on (gateway/tracing.py)."""
    registry_get()  # a process's first request loads the configuration file
    tracing = tracing_active(config_current().tracing)
    if tracing is not None:
        trace_refused(
            tracing=tracing,
            traced=traced,
            path=path,
            error=error,
            started_ns=time.time_ns(),
            method=method,
        )


def _close_quietly(response: HttpResponseBase) -> None:
    """Run the response's resource closers without Django's request_finished signal."""
    for closer in response._resource_closers:
        try:
            closer()
        except Exception:  # noqa: S110 - closing is best effort, as in Django
            pass
    response._resource_closers.clear()
    response.closed = True


# LiteLLM also serves its OpenAI routes without the /v1 prefix (`/chat/completions`,
# `/embeddings`, `/models`, ...): they are their /v1 twins. A bare `/<root>/` stays the portal's
# (its `/models/` and `/batches/` pages).
V1_TWIN_ROOTS = frozenset(
    {
        "chat",
        "completions",
        "embeddings",
        "models",
        "moderations",
        "images",
        "audio",
        "rerank",
        "responses",
        "files",
        "uploads",
        "batches",
    }
)


def v1_twin(path: str) -> str | None:
    """The /v1 path a LiteLLM-style root path stands for, if it is one."""
    root, slash, rest = path[1:].partition("/")
    if root in V1_TWIN_ROOTS and (rest or not slash):
        return "/v1" + path
    return None


class V1Split:
    """Send /v1/ HTTP requests (and their LiteLLM root twins) to the lean handler and everything
    else to `app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.v1 = V1Handler()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith(V1_PREFIX):
            await self.v1(scope, receive, send)
            return
        twin = v1_twin(path)
        if twin is None:
            await self.app(scope, receive, send)
            return
        raw = scope.get("raw_path") or path.encode()
        await self.v1({**scope, "path": twin, "raw_path": b"/v1" + raw}, receive, send)
