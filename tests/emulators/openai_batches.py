"""OpenAI's Files and Batch APIs in the OpenAI emulator (tests/emulators/openai_api.py), and Azure
OpenAI's (`/openai/files`, `/openai/batches`, each with `api-version`), from their references.

`POST /files` (multipart: `purpose`, `file`) keeps a file; `GET /files/{id}/content` reads it.
`POST /batches` (`input_file_id`, `endpoint`, `completion_window`, `metadata`) checks the input
file (purpose `batch`, every line `{custom_id, method: POST, url: endpoint, body}`, unique custom
ids; Azure's `url` is the path without `/v1` and its `body.model` a deployment name) and answers
the batch, `validating`. Each `GET /batches/{id}` is one step of work: `validating` →
`in_progress` → (after `polls_to_end` reads, unless `hold`) `completed`, its lines answered by the
emulator's own endpoints into an output file and an error file in OpenAI's formats.
`POST /batches/{id}/cancel` makes it `cancelling`, and the next read `cancelled` (no line run).
`GET /batches` lists them, newest first.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

if TYPE_CHECKING:
    from tests.emulators.openai_api import OpenAIEmulator, Recorded

_PATH = re.compile(r"(?:/v1|/openai/v1|/openai)/(files|batches)(?:/([^/]+))?(?:/(content|cancel))?")
_ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")


def _error(status: int, message: str, *, param: str | None = None) -> web.Response:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    }
    return web.json_response(body, status=status, dumps=lambda v: orjson.dumps(v).decode())


def _json(payload: Any) -> web.Response:
    return web.json_response(payload, dumps=lambda v: orjson.dumps(v).decode())


class BatchesAPI:
    def __init__(self, emulator: OpenAIEmulator) -> None:
        self.emulator = emulator
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.hold = False
        self.polls_to_end = 2

    def clear(self) -> None:
        self.files.clear()
        self.batches.clear()
        self.hold = False
        self.polls_to_end = 2

    @staticmethod
    def match(path: str) -> re.Match[str] | None:
        return _PATH.fullmatch(path)

    async def route(
        self, request: web.Request, recorded: Recorded, body: dict[str, Any], match: re.Match[str]
    ) -> web.Response:
        azure = request.path.startswith("/openai/") and not request.path.startswith("/openai/v1/")
        if azure and "api-version" not in request.query:
            return _error(404, "Resource not found")
        kind, object_id, action = match.groups()
        method = request.method
        if kind == "files":
            if object_id is None and method == "POST":
                return self._file_create(recorded)
            file = self.files.get(object_id or "")
            if file is None:
                return _error(404, f"No such File object: {object_id}", param="id")
            if action == "content" and method == "GET":
                return web.Response(body=file["content"], content_type="application/octet-stream")
            if action is None and method == "GET":
                return _json(file["object"])
            if action is None and method == "DELETE":
                del self.files[object_id or ""]
                return _json({"id": object_id, "object": "file", "deleted": True})
        elif kind == "batches":
            if object_id is None and method == "POST":
                return self._batch_create(body, azure=azure)
            if object_id is None and method == "GET":
                return self._batch_list(request)
            batch = self.batches.get(object_id or "")
            if batch is None:
                return _error(404, f"No batch found with id '{object_id}'.", param="batch_id")
            if action is None and method == "GET":
                return _json(await self._batch_step(batch, recorded, azure=azure))
            if action == "cancel" and method == "POST":
                if batch["status"] in ("validating", "in_progress"):
                    batch["status"] = "cancelling"
                    batch["cancelling_at"] = int(time.time())
                return _json(batch)
        return _error(404, f"Invalid URL ({method} {request.path})")

    # -- files ------------------------------------------------------------------------------------
    def _file_create(self, recorded: Recorded) -> web.Response:
        purpose = recorded.form.get("purpose")
        if purpose not in ("batch", "fine-tune", "assistants", "user_data", "vision", "evals"):
            return _error(400, f"Invalid purpose: {purpose!r}", param="purpose")
        if "file" not in recorded.files:
            return _error(400, "Missing required parameter: 'file'.", param="file")
        filename, content = recorded.files["file"]
        return _json(self._file_keep(content, filename=filename, purpose=purpose))

    def _file_keep(self, content: bytes, *, filename: str, purpose: str) -> dict[str, Any]:
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        obj = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }
        self.files[file_id] = {"object": obj, "content": content}
        return obj

    # -- batches ----------------------------------------------------------------------------------
    def _batch_create(self, body: dict[str, Any], *, azure: bool) -> web.Response:
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not body.get(name):
                return _error(400, f"Missing required parameter: '{name}'.", param=name)
        endpoint = body["endpoint"]
        allowed = [e.removeprefix("/v1") for e in _ENDPOINTS] if azure else _ENDPOINTS
        if endpoint not in allowed:
            return _error(400, f"Invalid value for 'endpoint': {endpoint}.", param="endpoint")
        if body["completion_window"] != "24h":
            return _error(400, "Invalid completion_window.", param="completion_window")
        file = self.files.get(body["input_file_id"])
        if file is None:
            return _error(404, f"No such File object: {body['input_file_id']}")
        if file["object"]["purpose"] != "batch":
            return _error(400, "The input file must have purpose 'batch'.", param="input_file_id")
        seen: set[str] = set()
        lines = []
        for number, raw in enumerate(file["content"].splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return _error(400, f"Line {number} is not valid JSON.", param="input_file_id")
            if line.get("method") != "POST" or line.get("url") != endpoint:
                return _error(
                    400,
                    f"Line {number}: the url must be {endpoint} and the method POST.",
                    param="input_file_id",
                )
            if line.get("custom_id") in seen or not line.get("custom_id"):
                return _error(400, f"Line {number}: duplicate custom_id.", param="input_file_id")
            seen.add(line["custom_id"])
            if not isinstance(line.get("body"), dict) or not line["body"].get("model"):
                return _error(400, f"Line {number}: body.model is required.", param="input_file_id")
            lines.append(line)
        now = int(time.time())
        batch_id = f"batch_{uuid.uuid4().hex[:24]}"
        self.batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": endpoint,
            "errors": None,
            "input_file_id": body["input_file_id"],
            "completion_window": "24h",
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + 24 * 3600,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
            "_lines": lines,
            "_polls": 0,
            "_order": len(self.batches),
        }
        return _json(self._public(self.batches[batch_id]))

    def _batch_list(self, request: web.Request) -> web.Response:
        """Newest first, `limit` (default 20) at a time (no `after` cursor here)."""
        limit = int(request.query.get("limit") or 20)
        newest = sorted(self.batches.values(), key=lambda b: b["_order"], reverse=True)
        data = [self._public(batch) for batch in newest[:limit]]
        return _json(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": len(newest) > limit,
            }
        )

    @staticmethod
    def _public(batch: dict[str, Any]) -> dict[str, Any]:
        return {name: value for name, value in batch.items() if not name.startswith("_")}

    async def _batch_step(
        self, batch: dict[str, Any], recorded: Recorded, *, azure: bool
    ) -> dict[str, Any]:
        batch["_polls"] += 1
        now = int(time.time())
        if batch["status"] == "cancelling":
            batch["status"], batch["cancelled_at"] = "cancelled", now
        elif batch["status"] == "validating":
            batch["status"], batch["in_progress_at"] = "in_progress", now
        elif batch["status"] == "in_progress" and not self.hold:
            if batch["_polls"] >= self.polls_to_end:
                await self._batch_run(batch, recorded, azure=azure)
        return self._public(batch)

    async def _batch_run(self, batch: dict[str, Any], recorded: Recorded, *, azure: bool) -> None:
        output, errors = [], []
        for line in batch["_lines"]:
            endpoint = line["url"].removeprefix("/v1/").lstrip("/")
            body = line["body"]
            messages = body.get("messages") or [{}]
            if messages[-1].get("content") == "emulate error":
                status, answer = (
                    400,
                    {
                        "error": {
                            "message": "The emulator refused it.",
                            "type": "invalid_request_error",
                            "param": None,
                            "code": None,
                        }
                    },
                )
            else:
                refused = self.emulator._validate(endpoint, body, azure=azure)
                handler = getattr(self.emulator, "_" + endpoint.replace("/", "_"))
                response = refused or await handler(body, recorded)
                status, answer = response.status, orjson.loads(response.body)
            request_id = uuid.uuid4().hex
            entry = {
                "id": f"batch_req_{uuid.uuid4().hex[:24]}",
                "custom_id": line["custom_id"],
                "response": {"status_code": status, "request_id": request_id, "body": answer},
                "error": None,
            }
            (output if status == 200 else errors).append(orjson.dumps(entry) + b"\n")
        now = int(time.time())
        batch["finalizing_at"] = now
        if output:
            batch["output_file_id"] = self._file_keep(
                b"".join(output), filename="batch_output.jsonl", purpose="batch_output"
            )["id"]
        if errors:
            batch["error_file_id"] = self._file_keep(
                b"".join(errors), filename="batch_error.jsonl", purpose="batch_output"
            )["id"]
        batch["request_counts"] = {
            "total": len(batch["_lines"]),
            "completed": len(output),
            "failed": len(errors),
        }
        batch["status"], batch["completed_at"] = "completed", now
