"""`python -m bench --tracing` / `--callbacks`, `bench ab --variant tracing`: an HTTP sink that
only counts what Ogem posts to it (OTLP exports, webhook batches), run as a process of its own
pinned to the load core.

Its own process, not a thread of the bench: the latency probe runs in the bench process, and a
sink there took the probe's GIL and event loop for every post it parsed, so that the variant
with telemetry on was measured with a slower client than the baseline.
`python -m bench.otlp_sink` serves; it prints its port, then answers every POST 200 with an
empty body (an empty ExportTraceServiceResponse is zero bytes of protobuf) and `GET /stats` with
its counts.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.procs import BenchError, pinned, stop


class _Counts:
    def __init__(self) -> None:
        self.exports = 0
        self.bytes = 0
        self.last_post = 0.0  # time.monotonic() at the last POST: one clock for every process
        self.lock = threading.Lock()


def _server(counts: _Counts) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a collector would

        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(size)
            with counts.lock:
                counts.exports += 1
                counts.bytes += size
                counts.last_post = time.monotonic()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            with counts.lock:
                stats = {"exports": counts.exports, "bytes": counts.bytes}
                stats["last_post"] = counts.last_post
            body = json.dumps(stats).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


class OTLPSink:
    """The sink's process (pinned to `core`) and what it has counted so far."""

    def __init__(self, *, core: int | None = None) -> None:
        self._process = subprocess.Popen(
            pinned([sys.executable, "-m", "bench.otlp_sink"], core),
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        if not line.isdigit():
            stop(self._process)
            raise BenchError(f"the bench's HTTP sink did not start (it said {line!r})")
        self.url = f"http://127.0.0.1:{int(line)}"

    def _stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=10) as answer:
            return json.loads(answer.read())  # type: ignore[no-any-return]

    @property
    def exports(self) -> int:
        return int(self._stats()["exports"])

    @property
    def last_post(self) -> float:
        return float(self._stats()["last_post"])

    def environment(self) -> dict[str, str]:
        """What turns Ogem's tracing on, exporting here."""
        return {
            "OGEM_TRACING": "true",
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_SERVICE_NAME": "ogem-bench",
        }

    def summary(self) -> str:
        stats = self._stats()
        return (
            f"The local sink received {stats['exports']:,} posts (OTLP exports, webhook batches), "
            f"{stats['bytes']:,} bytes."
        )

    def stop(self) -> None:
        stop(self._process)


def main() -> None:
    server = _server(_Counts())
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
