"""The smallest real server: blocking sockets, one connection at a time, no event loop.

asgi-sansio's ``ServerConnection`` does all the protocol work (parsing, framing, keep-alive,
limits, error answers, timeouts).  This file reads bytes into it, writes its bytes out, and runs
the ASGI app's coroutine by hand.  Run it and try it::

    python examples/minimal_server.py 8000
    curl http://127.0.0.1:8000/ http://127.0.0.1:8000/again      # one keep-alive connection
    curl -d 'echo me' http://127.0.0.1:8000/echo

``--keep-alive SECONDS`` sets how long an idle connection is kept (5 by default).  Port 0 (the
default) picks a free port; the first line printed says which.  Stop it with Ctrl+C.

While one client is connected the next one waits in the listen queue: see
``plain_socket_server.py`` for many connections at once.
"""

import argparse
import contextlib
import socket
import time
import types
from collections.abc import Coroutine, Generator
from functools import partial
from typing import Any

from asgi_sansio import Config, ConnectionClosed, ServerConnection, StreamStarted


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Hello for a GET; a POST gets its own request body back."""
    if scope["type"] != "http":
        return  # no lifespan here, and the core declines a WebSocket the app did not accept
    body, more = b"", True
    while more:  # (a disconnect has no body and no more_body)
        message = await receive()
        body, more = body + message.get("body", b""), message.get("more_body", False)
    if scope["method"] != "POST":
        body = b"Hello, world!\n"
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@types.coroutine
def receive(conn: ServerConnection, sid: int) -> Generator[None, None, dict[str, Any]]:
    """The app's ``await receive()``: pause the coroutine until the core has a message."""
    while (message := conn.receive(sid)) is None:
        yield  # back to step(); resumed once more bytes have arrived
    return message


@types.coroutine
def send(conn: ServerConnection, sid: int, message: dict[str, Any]) -> Generator[None, None, None]:
    """The app's ``await send(message)``: the core checks and frames it."""
    conn.send(sid, message, time.monotonic())  # raises if the app broke a rule or the client left
    while not conn.writable(sid):
        yield  # HTTP/2 flow control: resumed once the client opens its window


def step(conn: ServerConnection, apps: dict[int, Coroutine[Any, Any, None]], sid: int) -> None:
    """Run one app until it pauses; when it returns or raises, tell the core."""
    try:
        apps[sid].send(None)
        return
    except StopIteration:
        conn.app_finished(sid, time.monotonic())
    except Exception as exc:  # the core answers for the app: a 500, or an abort
        conn.app_finished(sid, time.monotonic(), exc)
    del apps[sid]


def handle(sock: socket.socket, config: Config) -> None:
    """Serve one client until the core says the connection is over."""
    now = time.monotonic()  # the core's clock; wall_offset turns it into Unix time for `date`
    conn = ServerConnection(config, now=now, client=sock.getpeername(),
                            server=sock.getsockname(), wall_offset=time.time() - now)
    apps: dict[int, Coroutine[Any, Any, None]] = {}  # stream id -> its app's coroutine
    while True:
        while events := conn.pop_events():  # stepping an app may queue more
            for event in events:
                if isinstance(event, StreamStarted):
                    sid = event.stream_id
                    apps[sid] = app(event.scope, partial(receive, conn, sid),
                                    partial(send, conn, sid))
                if not isinstance(event, ConnectionClosed) and event.stream_id in apps:
                    step(conn, apps, event.stream_id)  # started, readable, writable or ended
        sock.settimeout(None)
        sock.sendall(conn.data_to_send())
        if conn.closed:
            return  # any app still paused is closed with `apps`: it sees GeneratorExit
        # Wait for bytes, but only until the core's next deadline (keep-alive, head, ...).
        deadline = conn.get_timer()
        sock.settimeout(None if deadline is None else max(deadline - time.monotonic(), 0))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            conn.handle_timer(time.monotonic())
            continue
        except OSError:
            data = b""  # a reset ends the input like a close does
        conn.receive_data(data, time.monotonic())  # b"": the client finished sending


def serve(port: int, config: Config, host: str = "127.0.0.1") -> None:
    """Accept one client at a time, until Ctrl+C."""
    listener = socket.create_server((host, port))
    with listener, contextlib.suppress(KeyboardInterrupt):
        print(f"Serving on http://{host}:{listener.getsockname()[1]}", flush=True)
        while True:
            sock, _ = listener.accept()
            with sock, contextlib.suppress(OSError):  # a client that vanished is just gone
                handle(sock, config)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A minimal HTTP server on asgi-sansio.")
    parser.add_argument("port", type=int, nargs="?", default=0)
    parser.add_argument("--keep-alive", type=float, default=5.0, metavar="SECONDS")
    args = parser.parse_args()
    serve(args.port, Config(keep_alive_timeout=args.keep_alive))
