"""The slow mock upstream: the benchmark's SSE answer, one event every 1/rate seconds.

`python -m bench.slow_upstream --port P --rate R`, started by `bench.nginx.start_nginx` on the load
core. nginx's `limit_rate` trickles bytes, not events, in bursts aligned to whole seconds: a write
could end inside an event and the next come up to two intervals later, the same for every path,
which hid a gateway's stalls among the mock's own. Here each stream's events go out on a fixed
schedule from its start (event k at k/rate seconds), each in its own write, so that every gap a
client sees beyond 1/rate is the path's, not the mock's. asyncio with uvloop: 2,000 streams at
2 events/s are 4,000 small writes a second, a fraction of a core.
"""

from __future__ import annotations

import argparse
import asyncio
import re

from bench.bodies import completion_sse

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Connection: close\r\n\r\n"
)
_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


def _events() -> list[bytes]:
    return [event + b"\n\n" for event in completion_sse().split(b"\n\n") if event]


async def serve(port: int, rate: float) -> None:
    events = _events()
    interval = 1 / rate
    loop = asyncio.get_running_loop()

    async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = _LENGTH.search(head)
            if length:
                await reader.readexactly(int(length.group(1)))
            started = loop.time()
            writer.write(HEAD + events[0])
            for index, event in enumerate(events[1:], start=1):
                await asyncio.sleep(max(started + index * interval - loop.time(), 0))
                writer.write(event)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(stream, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.slow_upstream")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="events per second")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.port, args.rate))
    except ImportError:
        asyncio.run(serve(args.port, args.rate))


if __name__ == "__main__":
    main()
