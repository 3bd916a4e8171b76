"""A local emulator of HashiCorp Vault's HTTP API (KV version 2 and AppRole) on a real socket.

Like Vault, it answers 403 `permission denied` to a missing or unknown `X-Vault-Token`, 400 to a
bad AppRole login and 404 to an unknown path; writes make a new version. `JsonEmulator`, the
threaded JSON server under it, is shared by the other secret manager emulators.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Reply = tuple[int, Any, dict[str, str]]


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: Message
    body: bytes = b""


class JsonEmulator:
    """A ThreadingHTTPServer on 127.0.0.1 that hands each request to `handle` and records it."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[Seen] = []
        self.fail_with: int | None = None  # answer every request with this status (an outage)
        self._server: ThreadingHTTPServer | None = None

    def handle(self, request: Seen) -> Reply:
        raise NotImplementedError

    def start(self) -> JsonEmulator:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _dispatch(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                split = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(split.query).items()}
                seen = Seen(
                    self.command,
                    split.path,
                    query,
                    self.headers,
                    self.rfile.read(length) if length else b"",
                )
                emulator.requests.append(seen)
                if emulator.fail_with is not None:
                    status, payload, headers = emulator.fail_with, {"errors": ["down"]}, {}
                else:
                    status, payload, headers = emulator.handle(seen)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _dispatch

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def reads(self, path: str) -> int:
        return sum(1 for seen in self.requests if seen.method == "GET" and seen.path == path)


@dataclass
class _Role:
    secret_id: str
    lease_duration: int


class VaultEmulator(JsonEmulator):
    def __init__(self, *, mounts: tuple[str, ...] = ("kv", "secret")) -> None:
        super().__init__()
        self.mounts = mounts
        self.root_token = f"hvs.{secrets.token_urlsafe(16)}"
        self.tokens: set[str] = {self.root_token}
        self.roles: dict[str, _Role] = {}
        self.data: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def put(self, mount: str, path: str, values: dict[str, Any]) -> int:
        """Write a new version (as `vault kv put` does); returns its number."""
        versions = self.data.setdefault((mount, path), [])
        versions.append(dict(values))
        return len(versions)

    def approle(self, *, lease_duration: int = 3600) -> tuple[str, str]:
        role_id, secret_id = secrets.token_hex(8), secrets.token_hex(16)
        self.roles[role_id] = _Role(secret_id, lease_duration)
        return role_id, secret_id

    def revoke_tokens(self) -> None:
        self.tokens = {self.root_token}

    def handle(self, request: Seen) -> Reply:
        parts = request.path.strip("/").split("/")
        if parts[:1] != ["v1"]:
            return 404, {"errors": []}, {}
        if parts[1:2] == ["auth"] and parts[-1] == "login" and request.method in ("POST", "PUT"):
            return self._login(request)
        if request.headers.get("X-Vault-Token") not in self.tokens:
            return 403, {"errors": ["permission denied"]}, {}
        if len(parts) < 4 or parts[1] not in self.mounts or parts[2] != "data":
            return 404, {"errors": []}, {}
        key = (parts[1], "/".join(parts[3:]))
        if request.method in ("POST", "PUT"):
            version = self.put(*key, json.loads(request.body)["data"])
            return 200, {"data": {"version": version}}, {}
        versions = self.data.get(key)
        if not versions:
            return 404, {"errors": []}, {}
        body = {
            "request_id": secrets.token_hex(8),
            "lease_id": "",
            "renewable": False,
            "lease_duration": 0,
            "data": {
                "data": versions[-1],
                "metadata": {"version": len(versions), "destroyed": False, "deletion_time": ""},
            },
        }
        return 200, body, {}

    def _login(self, request: Seen) -> Reply:
        try:
            body = json.loads(request.body)
            role = self.roles[body["role_id"]]
        except (ValueError, KeyError):
            return 400, {"errors": ["invalid role ID"]}, {}
        if body.get("secret_id") != role.secret_id:
            return 400, {"errors": ["invalid secret id"]}, {}
        token = f"hvs.{secrets.token_urlsafe(16)}"
        self.tokens.add(token)
        auth = {"client_token": token, "lease_duration": role.lease_duration, "renewable": True}
        return 200, {"auth": auth}, {}
