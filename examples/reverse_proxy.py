"""A small reverse proxy: clients speak to the core, the core's streams go to an upstream.

The client side is asgi-sansio's ``ServerConnection`` driven by asyncio streams, so clients may
use HTTP/1.1 (with keep-alive) or HTTP/2 with prior knowledge.  Each request is forwarded to the
upstream over a new HTTP/1.1 connection spoken with h11, and both bodies are streamed: a chunk
is passed on as it arrives, and writing waits for the other side to take it (``drain()``).
Hop-by-hop headers are dropped and ``x-forwarded-for`` / ``via`` are added; an upstream that
cannot be reached or breaks off gives a 502.  Run it in front of any HTTP/1.1 server::

    python -m http.server 8000 &
    python examples/reverse_proxy.py --listen 127.0.0.1:8080 --upstream 127.0.0.1:8000
    curl -i http://127.0.0.1:8080/

The first line printed gives the address it listens on (``--listen 127.0.0.1:0`` picks a port).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from typing import Any

import h11

from asgi_sansio import ClientDisconnected, ConnectionClosed, ServerConnection, StreamStarted

# RFC 9110 7.6.1: these describe one connection, never the message; not forwarded either way.
HOP_BY_HOP = {
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer",
    b"transfer-encoding", b"upgrade", b"proxy-authenticate", b"proxy-authorization",
}
READ_SIZE = 65536


def forwardable(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` without hop-by-hop fields, including those a ``Connection`` header names."""
    named = {
        token.strip().lower() for name, value in headers if name.lower() == b"connection"
        for token in value.split(b",")
    }
    return [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP and n.lower() not in named]


class ClientConnection:
    """One client connection: the core, a reader task, and one proxy task per stream."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
        upstream: tuple[str, int],
    ) -> None:
        self.reader, self.writer, self.upstream = reader, writer, upstream
        self.loop = asyncio.get_running_loop()
        self.core = ServerConnection(
            now=self.loop.time(), client=writer.get_extra_info("peername")[:2],
            server=writer.get_extra_info("sockname")[:2],
            wall_offset=time.time() - self.loop.time(),  # the loop's clock -> Unix time
        )
        self.news: dict[int, asyncio.Event] = {}  # set when the core has news for a stream
        self.tasks: set[asyncio.Task[None]] = set()
        self.changed = asyncio.Event()  # set by every flush()
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None  # the core's one deadline, armed
        self.timer_at: float | None = None

    def flush(self) -> None:
        """After every core call: route the events, write the bytes, re-arm the timer."""
        for event in self.core.pop_events():
            if isinstance(event, StreamStarted):
                self.news[event.stream_id] = asyncio.Event()
                task = self.loop.create_task(self.proxy(event.stream_id, event.scope))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            elif isinstance(event, ConnectionClosed):
                self.closed = True
            elif event.stream_id in self.news:
                self.news[event.stream_id].set()
        data = self.core.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)
        if self.closed:
            self.writer.close()
        deadline = None if self.closed else self.core.get_timer()
        if deadline != self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer_at = deadline
            self.timer = None if deadline is None else self.loop.call_at(deadline, self.on_timer)
        self.changed.set()  # the reader re-checks wants_read

    def on_timer(self) -> None:
        self.timer = self.timer_at = None
        self.core.handle_timer(self.loop.time())  # idle keep-alive, slow request heads, ...
        self.flush()

    async def run(self) -> None:
        """Feed the core what the client sends, while it wants input."""
        self.flush()
        eof = False
        try:
            while not self.closed:
                if eof or not self.core.wants_read:  # backpressure: the streams pull first
                    self.changed.clear()
                    await self.changed.wait()
                    continue
                try:
                    data = await self.reader.read(READ_SIZE)
                except OSError:
                    data = b""
                eof = not data
                self.core.receive_data(data, self.loop.time())  # b"": the client closed
                self.flush()
        finally:
            for task in list(self.tasks):
                task.cancel()

    async def receive(self, sid: int) -> dict[str, Any]:
        news = self.news[sid]
        while True:
            news.clear()
            message = self.core.receive(sid)
            self.flush()
            if message is not None:
                return message
            await news.wait()

    async def send(self, sid: int, message: dict[str, Any]) -> None:
        news = self.news[sid]
        try:
            self.core.send(sid, message, self.loop.time())
        finally:
            self.flush()
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()  # the client's socket takes the bytes at its own pace
        while not self.core.writable(sid):  # HTTP/2 flow control
            news.clear()
            await news.wait()

    async def proxy(self, sid: int, scope: dict[str, Any]) -> None:
        error: BaseException | None = None
        try:
            await self.forward(sid, scope)
        except ClientDisconnected as exc:
            error = exc
        except Exception as exc:
            error = exc  # the core answers 502 below, or aborts a response already begun
        finally:
            self.core.app_finished(sid, self.loop.time(), error)
            self.flush()
            del self.news[sid]

    async def forward(self, sid: int, scope: dict[str, Any]) -> None:
        """Pass one request upstream and stream the answer back."""
        started = False  # the response has begun: a failure can only cut it short now
        up_writer = None
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            upstream = h11.Connection(h11.CLIENT)
            if not await self.send_request(sid, scope, upstream, up_writer):
                return  # the client left while sending its body
            while True:  # the response, streamed back as it arrives
                event = upstream.next_event()
                if event is h11.NEED_DATA:
                    upstream.receive_data(await up_reader.read(READ_SIZE))
                elif isinstance(event, h11.Response):
                    started = True
                    await self.send(sid, {
                        "type": "http.response.start", "status": event.status_code,
                        "headers": forwardable(list(event.headers)),
                    })
                elif isinstance(event, h11.Data):
                    await self.send(sid, {"type": "http.response.body",
                                          "body": bytes(event.data), "more_body": True})
                elif isinstance(event, h11.EndOfMessage):
                    await self.send(sid, {"type": "http.response.body", "body": b""})
                    return
                elif isinstance(event, h11.ConnectionClosed):  # h11 raises on a cut body
                    raise ConnectionError("the upstream closed before answering")
                # an h11.InformationalResponse (1xx) is not passed on
        except ClientDisconnected:
            raise
        except (OSError, h11.ProtocolError):
            if started:
                raise  # the core aborts the response: the client sees it cut short
            await self.bad_gateway(sid)
        finally:
            if up_writer is not None:
                up_writer.close()

    async def send_request(
        self, sid: int, scope: dict[str, Any], upstream: h11.Connection,
        up_writer: asyncio.StreamWriter,
    ) -> bool:
        """Write the request head and stream its body; False if the client left."""
        # The core gives HTTP/2's :authority as ``host``, so both versions look the same here.
        headers = forwardable(scope["headers"])
        if not any(n == b"host" for n, _ in headers):
            headers.append((b"host", b"%s:%d" % (self.upstream[0].encode(), self.upstream[1])))
        client = scope.get("client")
        headers += [
            (b"x-forwarded-for", client[0].encode() if client else b"unknown"),
            (b"via", f"{scope['http_version']} asgi-sansio-proxy".encode()),
        ]
        message = await self.receive(sid)
        if message["type"] == "http.disconnect":
            return False
        if not any(n == b"content-length" for n, _ in headers):
            if message.get("more_body"):  # a streamed body of unknown size
                headers.append((b"transfer-encoding", b"chunked"))
            elif message["body"]:
                headers.append((b"content-length", b"%d" % len(message["body"])))
        target = scope["raw_path"]
        if scope["query_string"]:
            target += b"?" + scope["query_string"]
        request = h11.Request(method=scope["method"], target=target, headers=headers)
        up_writer.write(upstream.send(request) or b"")
        while True:  # the body, chunk by chunk
            if message.get("body"):
                up_writer.write(upstream.send(h11.Data(data=message["body"])) or b"")
                await up_writer.drain()
            if not message.get("more_body"):
                break
            message = await self.receive(sid)
            if message["type"] == "http.disconnect":
                return False
        up_writer.write(upstream.send(h11.EndOfMessage()) or b"")
        await up_writer.drain()
        return True

    async def bad_gateway(self, sid: int) -> None:
        body = b"502 Bad Gateway: the upstream cannot be reached\n"
        await self.send(sid, {"type": "http.response.start", "status": 502, "headers": [
            (b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body)),
        ]})
        await self.send(sid, {"type": "http.response.body", "body": body})


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def main(listen: tuple[str, int], upstream: tuple[str, int]) -> None:
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await ClientConnection(reader, writer, upstream).run()

    server = await asyncio.start_server(accept, *listen)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"Proxying http://{host}:{port} -> http://{upstream[0]}:{upstream[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", type=address, default=("127.0.0.1", 8080))
    parser.add_argument("--upstream", type=address, default=("127.0.0.1", 8000))
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.listen, args.upstream))
