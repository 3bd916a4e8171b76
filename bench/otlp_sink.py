"""`python -m bench --tracing`: an OTLP/HTTP collector that only counts what Ogem exports
(docs/tracing.md), run in the bench process (on the load core)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class OTLPSink:
    def __init__(self) -> None:
        self.exports = 0
        self.bytes = 0
        self.last_post = 0.0  # time.monotonic() at the last POST
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a collector would

            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(size)
                sink.exports += 1
                sink.bytes += size
                sink.last_post = time.monotonic()
                # An empty ExportTraceServiceResponse is zero bytes of protobuf.
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="bench-otlp-sink", daemon=True
        )
        self._thread.start()

    def environment(self) -> dict[str, str]:
        """What turns Ogem's tracing on, exporting here."""
        return {
            "OGEM_TRACING": "true",
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_SERVICE_NAME": "ogem-bench",
        }

    def summary(self) -> str:
        return (
            f"The local sink received {self.exports:,} posts (OTLP exports, webhook batches), "
            f"{self.bytes:,} bytes."
        )

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
