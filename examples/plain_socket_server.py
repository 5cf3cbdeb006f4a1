"""An HTTP server on plain sockets: no asyncio, no trio, no threads.

asgi-sansio's ``ServerConnection`` does all the protocol work.  This file only moves bytes
between non-blocking sockets and the core (with the stdlib ``selectors`` module), keeps the
time, and steps the ASGI app's coroutines by hand: an ASGI app is ``async``, but a coroutine
is just an object whose ``send(None)`` runs it to its next pause, so no event loop is needed.

Because the core recognises the HTTP/2 connection preface, the same loop serves HTTP/1.1
(with keep-alive and pipelining) and HTTP/2 with prior knowledge (h2c).  Run it and try it::

    python examples/plain_socket_server.py 8000
    curl http://127.0.0.1:8000/hello http://127.0.0.1:8000/again    # one keep-alive connection
    curl --http2-prior-knowledge -d 'some body' http://127.0.0.1:8000/echo

Stop it with Ctrl+C.  Port 0 (the default) picks a free port; the first line printed says which.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import sys
import time
import types
from collections.abc import Coroutine, Generator
from typing import Any

from asgi_sansio import ConnectionClosed, ServerConnection, StreamStarted

# -- the application: any ASGI app whose only awaits are receive() and send() ------------------

async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Say what was asked, over which protocol, from which client port, with how much body."""
    if scope["type"] != "http":
        return  # this tiny server runs no lifespan and accepts no WebSocket
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    text = (
        f"{scope['method']} {scope['path']} over HTTP/{scope['http_version']} "
        f"from port {scope['client'][1]}, {size} bytes of body\n"
    ).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/plain"), (b"content-length", str(len(text)).encode()),
    ]})
    await send({"type": "http.response.body", "body": text})


# -- the server ---------------------------------------------------------------------------------

HIGH_WATER = 64 * 1024  # an app's send() waits while more than this is unwritten


@types.coroutine
def suspend() -> Generator[None, None, None]:
    """Pause the app's coroutine: ``step()`` resumes it, and it checks again why it waited."""
    yield


class Connection:
    """One client socket, its ``ServerConnection``, and the app coroutine of each stream."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.core = ServerConnection(
            now=time.monotonic(), client=sock.getpeername(), server=sock.getsockname(),
            wall_offset=time.time() - time.monotonic(),  # monotonic -> Unix time, for `date`
        )
        self.apps: dict[int, Coroutine[Any, Any, None]] = {}  # stream id -> app coroutine
        self.outbox = b""  # bytes from the core that the socket has not taken yet
        self.closing = False  # the core is done: close once the outbox is written
        self.eof = False  # the client has finished sending: nothing more to read
        self.watching = 0  # the selector events this socket is registered for

    def start(self, sid: int, scope: dict[str, Any]) -> None:
        async def receive() -> dict[str, Any]:
            while (message := self.core.receive(sid)) is None:
                await suspend()  # until the core has more for this stream
            return message

        async def send(message: dict[str, Any]) -> None:
            self.core.send(sid, message, time.monotonic())  # raises if the client has gone
            while not self.core.writable(sid) or len(self.outbox) > HIGH_WATER:
                await suspend()  # backpressure: until the output drains

        self.apps[sid] = app(scope, receive, send)

    def step(self, sid: int) -> None:
        """Run the stream's app until it next waits; tell the core if it has ended."""
        try:
            self.apps[sid].send(None)
            return
        except StopIteration:
            error = None
        except Exception as exc:  # the core answers with a 500 or an abort
            error = exc
        del self.apps[sid]
        self.core.app_finished(sid, time.monotonic(), error)

    def pump(self) -> None:
        """Act on everything the core queued: start and wake apps, collect the bytes."""
        while events := self.core.pop_events():  # stepping an app may queue more
            for event in events:
                if isinstance(event, ConnectionClosed):
                    self.closing = True
                    continue
                if isinstance(event, StreamStarted):
                    self.start(event.stream_id, event.scope)
                if event.stream_id in self.apps:  # readable, writable, ended: let it look
                    self.step(event.stream_id)
        self.outbox += self.core.data_to_send()

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # a reset is an end of input too
        self.eof = not data
        self.core.receive_data(data, time.monotonic())  # b"" tells the core the peer closed
        self.pump()

    def on_writable(self) -> None:
        try:
            self.outbox = self.outbox[self.sock.send(self.outbox):]
        except BlockingIOError:
            return
        except OSError:  # the peer is gone: nothing more can be written
            self.outbox, self.closing = b"", True
            return
        if len(self.outbox) <= HIGH_WATER:  # apps held in send() may go on
            for sid in list(self.apps):
                self.step(sid)
            self.pump()

    def watch(self, selector: selectors.BaseSelector) -> None:
        """Wait for input only while the core wants it, and for output only while some waits.
        (A selector cannot watch for nothing, so an idle socket is unregistered.)"""
        reading = self.core.wants_read and not (self.closing or self.eof)
        read = selectors.EVENT_READ if reading else 0
        wanted = read | (selectors.EVENT_WRITE if self.outbox else 0)
        if wanted != self.watching:
            if not self.watching:
                selector.register(self.sock, wanted, self)
            elif not wanted:
                selector.unregister(self.sock)
            else:
                selector.modify(self.sock, wanted, self)
            self.watching = wanted

    def close(self, selector: selectors.BaseSelector) -> None:
        if self.watching:
            selector.unregister(self.sock)
        for coroutine in self.apps.values():
            coroutine.close()  # the app sees GeneratorExit at its await
        self.sock.close()


def serve(port: int = 0, host: str = "127.0.0.1") -> None:
    listener = socket.create_server((host, port))
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    print(f"Serving on http://{host}:{listener.getsockname()[1]}", flush=True)
    connections: set[Connection] = set()
    while True:
        # Sleep until a socket is ready or the earliest of the core's timers is due.
        deadlines = [t for c in connections if (t := c.core.get_timer()) is not None]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        for key, events in selector.select(timeout):
            if key.fileobj is listener:
                try:
                    sock, _ = listener.accept()
                except BlockingIOError:
                    continue
                sock.setblocking(False)
                connection = Connection(sock)
                connections.add(connection)
                connection.pump()
                continue
            if events & selectors.EVENT_READ:
                key.data.on_readable()
            if events & selectors.EVENT_WRITE:
                key.data.on_writable()
        now = time.monotonic()
        for connection in list(connections):
            deadline = connection.core.get_timer()
            if deadline is not None and deadline <= now:
                connection.core.handle_timer(now)  # idle keep-alive, slow request heads, ...
                connection.pump()
            if connection.closing and not connection.outbox:
                connections.discard(connection)
                connection.close(selector)
            else:
                connection.watch(selector)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C stops it
        serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
