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


# -- WebSocket -------------------------------------------------------------------------------------
# An independent wsproto *client* builds the upgrade request and decodes everything the server
# writes (the 101 with its Sec-WebSocket-Accept, denial responses, frames).

import os  # noqa: E402
import struct  # noqa: E402

from wsproto import ConnectionType, WSConnection  # noqa: E402
from wsproto.events import (  # noqa: E402
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate  # noqa: E402


class WSClient:
    """A wsproto client endpoint fed with the server's output.

    ``feed()`` raises (wsproto's ``RemoteProtocolError``) if the answer is not a well-formed 101
    with the right accept token, or if a frame is malformed, so every test that feeds it also
    checks the wire format.  Fragments are reassembled into ``messages`` (str or bytes).
    """

    def __init__(
        self,
        target: str = "/",
        subprotocols: list[str] | None = None,
        deflate: bool = True,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
        host: str = "example.com",
    ) -> None:
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.request = self.ws.send(Request(
            host=host, target=target, subprotocols=list(subprotocols or []),
            extensions=[PerMessageDeflate()] if deflate else [],
            extra_headers=list(extra_headers or []),
        ))
        self.accepted: AcceptConnection | None = None
        self.rejected: RejectConnection | None = None
        self.reject_body = b""
        self.reject_done = False
        self.messages: list[str | bytes] = []
        self.pings: list[bytes] = []
        self.pongs: list[bytes] = []
        self.close: CloseConnection | None = None
        self.events: list[Any] = []
        self._parts: list[Any] = []

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.ws.receive_data(data)
        for event in self.ws.events():
            self.events.append(event)
            if isinstance(event, AcceptConnection):
                self.accepted = event
            elif isinstance(event, RejectConnection):
                self.rejected = event
            elif isinstance(event, RejectData):
                self.reject_body += bytes(event.data)
                self.reject_done = self.reject_done or event.body_finished
            elif isinstance(event, (TextMessage, BytesMessage)):
                assert self.close is None, "a data frame after the server's Close frame"
                self._parts.append(event.data)
                if event.message_finished:
                    joined: str | bytes = (
                        "".join(self._parts) if isinstance(event, TextMessage)
                        else b"".join(bytes(p) for p in self._parts)
                    )
                    self.messages.append(joined)
                    self._parts = []
            elif isinstance(event, Ping):
                self.pings.append(bytes(event.payload))
            elif isinstance(event, Pong):
                self.pongs.append(bytes(event.payload))
            elif isinstance(event, CloseConnection):
                assert self.close is None, "two Close frames from the server"
                self.close = event

    def send(self, event: Any) -> bytes:
        """Bytes for one event (after the handshake: masked, compressed if negotiated)."""
        return self.ws.send(event)

    def text(self, data: str, fin: bool = True) -> bytes:
        return self.send(TextMessage(data=data, message_finished=fin))

    def binary(self, data: bytes, fin: bool = True) -> bytes:
        return self.send(BytesMessage(data=data, message_finished=fin))

    def close_frame(self, code: int | None = 1000, reason: str | None = None) -> bytes:
        return self.send(CloseConnection(code=code, reason=reason))  # type: ignore[arg-type]


def raw_frame(opcode: int, payload: bytes = b"", fin: bool = True, mask: bool = True,
              rsv1: bool = False) -> bytes:
    """One frame built by hand (for frames wsproto refuses to write: unmasked, bad opcodes)."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([first, (0x80 if mask else 0) | n])
    elif n < 65536:
        head = bytes([first, (0x80 if mask else 0) | 126]) + struct.pack("!H", n)
    else:
        head = bytes([first, (0x80 if mask else 0) | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_upgrade_bytes(
    target: str = "/",
    headers: list[tuple[bytes, bytes]] | None = None,
    method: bytes = b"GET",
    version: bytes = b"1.1",
    key: bytes | None = b"dGhlIHNhbXBsZSBub25jZQ==",
    ws_version: bytes | None = b"13",
    upgrade: bool = True,
    body: bytes = b"",
) -> bytes:
    """A hand-built upgrade request, for the malformed handshakes wsproto will not write."""
    lines = [method + b" " + target.encode() + b" HTTP/" + version, b"Host: example.com"]
    if upgrade:
        lines += [b"Upgrade: websocket", b"Connection: Upgrade"]
    if key is not None:
        lines.append(b"Sec-WebSocket-Key: " + key)
    if ws_version is not None:
        lines.append(b"Sec-WebSocket-Version: " + ws_version)
    lines += [n + b": " + v for n, v in headers or []]
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def ws_connect(h: Harness, client: WSClient, accept: dict[str, Any] | None = None) -> int:
    """Feed the client's upgrade, answer websocket.connect with ``accept``, feed the 101 back
    to the client; returns the stream id."""
    h.feed(client.request)
    sid = h.started()[-1].stream_id
    assert h.receive(sid) == {"type": "websocket.connect"}
    h.send(sid, accept if accept is not None else {"type": "websocket.accept"})
    client.feed(h.take_output())
    assert client.accepted is not None, client.events
    return sid


# -- HTTP/2 ----------------------------------------------------------------------------------------
# An independent h2 *client* builds requests and decodes everything the server writes: feeding it
# raises h2's ProtocolError on any malformed frame, bad header block or flow-control violation, so
# every test that feeds it also checks the wire format.

from h2.config import H2Configuration  # noqa: E402
from h2.connection import ConnectionState, H2Connection  # noqa: E402
from h2.events import (  # noqa: E402
    ConnectionTerminated,
    DataReceived,
    InformationalResponseReceived,
    PingAckReceived,
    PushedStreamReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.events import StreamEnded as H2StreamEnded  # noqa: E402
from hyperframe.frame import Frame, GoAwayFrame, RstStreamFrame  # noqa: E402

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@dataclass
class H2Reply:
    """What the server answered on one stream, as the h2 client decoded it."""

    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    trailers: list[tuple[bytes, bytes]] | None = None
    informational: list[list[tuple[bytes, bytes]]] = field(default_factory=list)
    ended: bool = False  # END_STREAM seen
    reset: int | None = None  # the server's RST_STREAM error code

    @property
    def status(self) -> int | None:
        for name, value in self.headers:
            if name == b":status":
                return int(value)
        return None

    def header(self, name: bytes) -> bytes | None:
        values = [v for n, v in self.headers if n == name]
        return values[0] if values else None


class H2Client:
    """An h2 client endpoint fed with the server's output.

    ``validate=False`` turns off h2's outbound header checks so malformed requests can be sent.
    ``auto_ack`` gives back the window for every DATA byte as soon as it is decoded; without it
    the test opens the window itself (``ack``).  ``settings`` become the client's SETTINGS.
    """

    def __init__(
        self,
        *,
        validate: bool = True,
        auto_ack: bool = True,
        settings: dict[int, int] | None = None,
        connection_window: int | None = None,
    ) -> None:
        config = H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=validate,
            normalize_outbound_headers=validate,
        )
        self.c = H2Connection(config)
        if settings:
            from h2.settings import Settings

            self.c.local_settings = Settings(client=True, initial_values=settings)
        self.c.initiate_connection()
        if connection_window is not None and connection_window > 65535:
            self.c.increment_flow_control_window(connection_window - 65535)
        self.auto_ack = auto_ack
        self.replies: dict[int, H2Reply] = {}
        self.events: list[Any] = []
        self.server_settings: dict[int, int] = {}
        self.goaways: list[ConnectionTerminated] = []
        self.ping_acks = 0
        # (parent stream, promised stream, request fields) per PUSH_PROMISE
        self.pushes: list[tuple[int, int, list[tuple[bytes, bytes]]]] = []
        self.unacked: dict[int, int] = {}
        self.raw = b""  # every byte the server wrote, for frame-level checks
        self._pending = b""

    # -- sending ------------------------------------------------------------------------------

    def data(self) -> bytes:
        return self.c.data_to_send()

    def request(
        self,
        method: bytes = b"GET",
        path: bytes = b"/",
        *,
        authority: bytes | None = b"example.com",
        scheme: bytes = b"http",
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes = b"",
        end: bool = True,
        protocol: bytes | None = None,
    ) -> int:
        """Open a stream with a request (and its body); returns the stream id."""
        sid = self.c.get_next_available_stream_id()
        fields = [(b":method", method), (b":scheme", scheme)]
        if authority is not None:
            fields.append((b":authority", authority))
        fields.append((b":path", path))
        if protocol is not None:
            fields.append((b":protocol", protocol))
        fields += headers or []
        self.raw_request(sid, fields, end=end and not body)
        if body:
            self.send_body(sid, body, end=end)
        return sid

    def raw_request(self, sid: int, fields: list[tuple[bytes, bytes]], end: bool = True) -> None:
        self.c.send_headers(sid, fields, end_stream=end)
        self.replies.setdefault(sid, H2Reply())

    def send_body(self, sid: int, body: bytes, end: bool = True) -> None:
        """DATA frames of at most the peer's frame size (the caller keeps within windows)."""
        size = self.c.max_outbound_frame_size
        for i in range(0, len(body), size):
            chunk = body[i:i + size]
            self.c.send_data(sid, chunk, end_stream=end and i + size >= len(body))
        if not body and end:
            self.c.end_stream(sid)

    # -- receiving ----------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Any]:
        """Decode server output frame by frame.

        h2 closes its state machine on a GOAWAY and would refuse every later frame, although
        RFC 9113 6.8 lets the streams the GOAWAY names finish; so after one the client is put
        back in the CLIENT_OPEN state to keep decoding them.
        """
        if not data:
            return []
        self.raw += data
        self._pending += data
        events: list[Any] = []
        while len(self._pending) >= 9:
            length = int.from_bytes(self._pending[:3], "big")
            if len(self._pending) < 9 + length:
                break
            frame, self._pending = self._pending[:9 + length], self._pending[9 + length:]
            new = self.c.receive_data(frame)
            if any(isinstance(e, ConnectionTerminated) for e in new):
                self.c.state_machine.state = ConnectionState.CLIENT_OPEN
            events.extend(new)
        self.events.extend(events)
        for event in events:
            sid = getattr(event, "stream_id", 0)
            reply = self.replies.setdefault(sid, H2Reply()) if sid else None
            if isinstance(event, ResponseReceived):
                assert reply is not None
                reply.headers = list(event.headers or [])
            elif isinstance(event, InformationalResponseReceived):
                assert reply is not None
                reply.informational.append(list(event.headers or []))
            elif isinstance(event, DataReceived):
                assert reply is not None
                reply.body += event.data or b""
                flow = event.flow_controlled_length or 0
                if self.auto_ack:
                    if flow and sid in self.c.streams and not self.c.streams[sid].closed:
                        self.c.acknowledge_received_data(flow, sid)
                    elif flow:
                        self.c.increment_flow_control_window(flow)
                else:
                    self.unacked[sid] = self.unacked.get(sid, 0) + flow
            elif isinstance(event, TrailersReceived):
                assert reply is not None
                reply.trailers = list(event.headers or [])
            elif isinstance(event, H2StreamEnded):
                assert reply is not None
                reply.ended = True
            elif isinstance(event, StreamReset):
                assert reply is not None
                reply.reset = int(event.error_code) if event.error_code is not None else None
            elif isinstance(event, RemoteSettingsChanged):
                for code, change in event.changed_settings.items():
                    self.server_settings[int(code)] = change.new_value
            elif isinstance(event, ConnectionTerminated):
                self.goaways.append(event)
            elif isinstance(event, PingAckReceived):
                self.ping_acks += 1
            elif isinstance(event, PushedStreamReceived):
                self.pushes.append((event.parent_stream_id or 0, event.pushed_stream_id or 0,
                                    list(event.headers or [])))
            elif isinstance(event, WindowUpdated):
                pass
        return events

    def ack(self, sid: int, amount: int | None = None) -> None:
        """Give back window for ``amount`` (default: all unacked) bytes of stream ``sid``."""
        unacked = self.unacked.get(sid, 0)
        amount = unacked if amount is None else amount
        self.unacked[sid] = unacked - amount
        self.c.acknowledge_received_data(amount, sid)

    def reply(self, sid: int) -> H2Reply:
        return self.replies.setdefault(sid, H2Reply())


def h2_frames(data: bytes) -> list[Frame]:
    """Split server output (without a preface) into hyperframe frames, for frame-level checks."""
    frames: list[Frame] = []
    while len(data) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        if len(data) < 9 + length:
            break
        frame.parse_body(memoryview(data[9:9 + length]))
        frames.append(frame)
        data = data[9 + length:]
    return frames


def goaway_frames(data: bytes) -> list[GoAwayFrame]:
    return [f for f in h2_frames(data) if isinstance(f, GoAwayFrame)]


def rst_frames(data: bytes) -> list[RstStreamFrame]:
    return [f for f in h2_frames(data) if isinstance(f, RstStreamFrame)]


class H2Harness(Harness):
    """A ``Harness`` on an HTTP/2 connection with an h2 client as the peer.

    ``exchange()`` moves the client's pending bytes to the server and the server's output back
    to the client, until neither has anything to say.
    """

    def __init__(
        self,
        conn: ServerConnection | None = None,
        now: float = 0.0,
        client: H2Client | None = None,
        alpn: bool = True,
        **config: Any,
    ) -> None:
        if conn is None:
            conn = ServerConnection(Config(**config), now=now, client=("10.0.0.1", 5555),
                                    server=("10.0.0.2", 443 if alpn else 80),
                                    alpn="h2" if alpn else None)
        super().__init__(conn, now)
        self.client = client if client is not None else H2Client()
        self.exchange()

    def exchange(self) -> None:
        for _ in range(1000):
            data = self.client.data()
            if data:
                self.feed(data)
            out = self.take_output()
            if out:
                self.client.feed(out)
            if not data and not out:
                return
        raise AssertionError("the client and server never went quiet")

    def request(self, *args: Any, **kwargs: Any) -> int:
        sid = self.client.request(*args, **kwargs)
        self.exchange()
        return sid

    def send(self, sid: int, message: dict[str, Any]) -> None:
        try:
            super().send(sid, message)
        finally:
            self.exchange()

    def receive(self, sid: int) -> dict[str, Any] | None:
        msg = super().receive(sid)
        self.exchange()
        return msg

    def finish(self, sid: int, exc: BaseException | None = None) -> None:
        super().finish(sid, exc)
        self.exchange()

    def tick(self, now: float) -> None:
        self.now = now
        self.conn.handle_timer(now)
        self.pump()
        self.exchange()

    def reply(self, sid: int) -> H2Reply:
        return self.client.reply(sid)

    def scope(self, sid: int) -> dict[str, Any]:
        (scope,) = [e.scope for e in self.started() if e.stream_id == sid]
        return scope
