"""Test helpers: an independent h11 client to build requests and decode what the server wrote,
and small drivers that play an app against a ServerConnection without any event loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import h11

from asgi_sansio import Config, ServerConnection, StreamStarted
from asgi_sansio._events import Event


def make_conn(now: float = 0.0, **config: Any) -> ServerConnection:
    return ServerConnection(Config(**config), now=now, client=("10.0.0.1", 5555),
                            server=("10.0.0.2", 80))


def request_bytes(
    method: str = "GET",
    target: str = "/",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    chunked: bool = False,
) -> bytes:
    """Serialise one request with h11 in client mode (an independent implementation)."""
    client = h11.Connection(h11.CLIENT)
    hdrs = list(headers) if headers is not None else [("Host", "example.com")]
    if body and not chunked and not any(k.lower() == "content-length" for k, _ in hdrs):
        hdrs.append(("Content-Length", str(len(body))))
    if chunked:
        hdrs.append(("Transfer-Encoding", "chunked"))
    out = client.send(h11.Request(method=method, target=target, headers=hdrs)) or b""
    if body:
        out += client.send(h11.Data(data=body)) or b""
    out += client.send(h11.EndOfMessage()) or b""
    return out


@dataclass
class Reply:
    status: int
    headers: dict[bytes, bytes]
    body: bytes = b""
    trailers: dict[bytes, bytes] = field(default_factory=dict)
    informational: list[int] = field(default_factory=list)
    raw_headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def parse_responses(data: bytes, methods: list[str] | None = None, eof: bool = True) -> list[Reply]:
    """Decode consecutive responses with h11 in client mode.  Raises if the bytes are not
    well-formed HTTP/1.1, which is part of what the tests check."""
    replies: list[Reply] = []
    methods = list(methods or [])
    while data:
        method = methods.pop(0) if methods else "GET"
        client = h11.Connection(h11.CLIENT)
        client.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
        client.send(h11.EndOfMessage())
        client.receive_data(data)
        if eof:
            # Close-delimited bodies end at EOF, but only feed it when nothing else follows.
            pass
        reply: Reply | None = None
        informational: list[int] = []
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                if eof and client.their_state is h11.SEND_BODY:
                    client.receive_data(b"")
                    continue
                raise AssertionError(f"incomplete response; got so far {reply!r}")
            if isinstance(event, h11.InformationalResponse):
                informational.append(event.status_code)
            elif isinstance(event, h11.Response):
                reply = Reply(
                    event.status_code,
                    dict(event.headers),
                    informational=informational,
                    raw_headers=list(event.headers.raw_items()),
                )
            elif isinstance(event, h11.Data):
                assert reply is not None
                reply.body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                assert reply is not None
                reply.trailers = dict(event.headers)
                break
            elif isinstance(event, h11.ConnectionClosed):
                break
            else:  # PAUSED or anything else
                break
        assert reply is not None
        replies.append(reply)
        data, _closed = client.trailing_data
    return replies


class Harness:
    """Plays the driver: feeds bytes, collects events and output, and runs scripted apps."""

    def __init__(self, conn: ServerConnection | None = None, now: float = 0.0) -> None:
        self.conn = conn if conn is not None else make_conn(now)
        self.now = now
        self.events: list[Event] = []
        self.out = b""

    def pump(self) -> list[Event]:
        events = self.conn.pop_events()
        self.events.extend(events)
        self.out += self.conn.data_to_send()
        return events

    def feed(self, data: bytes) -> list[Event]:
        self.conn.receive_data(data, self.now)
        return self.pump()

    def started(self) -> list[StreamStarted]:
        return [e for e in self.events if isinstance(e, StreamStarted)]

    def receive(self, sid: int) -> dict[str, Any] | None:
        msg = self.conn.receive(sid)
        self.pump()
        return msg

    def send(self, sid: int, message: dict[str, Any]) -> None:
        try:
            self.conn.send(sid, message, self.now)
        finally:
            self.pump()

    def respond(self, sid: int, status: int = 200, body: bytes = b"ok",
                headers: list[tuple[bytes, bytes]] | None = None) -> None:
        hdrs = headers if headers is not None else [
            (b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        self.send(sid, {"type": "http.response.start", "status": status, "headers": hdrs})
        self.send(sid, {"type": "http.response.body", "body": body})

    def finish(self, sid: int, exc: BaseException | None = None) -> None:
        self.conn.app_finished(sid, self.now, exc)
        self.pump()

    def read_body(self, sid: int) -> bytes:
        body = b""
        while True:
            msg = self.receive(sid)
            assert msg is not None, "the body should be available"
            assert msg["type"] == "http.request", msg
            body += msg["body"]
            if not msg["more_body"]:
                return body

    def take_output(self) -> bytes:
        out, self.out = self.out, b""
        return out
