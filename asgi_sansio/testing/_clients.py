"""Independent clients (h11, h2 and wsproto in client mode) that talk to an in-memory ``Conn``.

They build what they send with their own serialisers and decode everything the server wrote: a
decoding error is an ``InvariantError``, since no input may make the server write bad output.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h11
from wsproto import ConnectionType, WSConnection
from wsproto import events as ws_events
from wsproto.extensions import PerMessageDeflate
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from ._engine import Conn, Engine, HarnessError, Response

Headers = Iterable[tuple[str | bytes, str | bytes]]


def _bytes(value: str | bytes) -> bytes:
    return value.encode("latin-1") if isinstance(value, str) else bytes(value)


def _headers(headers: Headers) -> list[tuple[bytes, bytes]]:
    return [(_bytes(n), _bytes(v)) for n, v in headers]


def _show(data: bytes) -> str:
    return repr(data[:400]) + (f"... ({len(data)} bytes)" if len(data) > 400 else "")


async def finish_connection(engine: Engine, conn: Conn) -> None:
    """The client hangs up; the core must then close, with every stream ended."""
    conn.feed(b"")
    await engine.settle()
    if not conn.closed:
        engine.violate("the connection stayed open after the client closed it")


async def h1_request(
    engine: Engine, method: str, target: str, headers: Headers, body: bytes, chunked: bool
) -> Response:
    hdrs = _headers(headers)
    names = {n.lower() for n, _ in hdrs}
    if b"host" not in names:
        hdrs.insert(0, (b"host", b"testserver"))
    if chunked:
        hdrs.append((b"transfer-encoding", b"chunked"))
    elif body and b"content-length" not in names:
        hdrs.append((b"content-length", b"%d" % len(body)))
    client = h11.Connection(h11.CLIENT)
    wire = client.send(h11.Request(method=method, target=target, headers=hdrs)) or b""
    if body:
        wire += client.send(h11.Data(data=body)) or b""
    wire += client.send(h11.EndOfMessage()) or b""

    conn = engine.open()
    conn.feed(wire)
    await engine.settle()
    out = conn.take()
    response: Response | None = None
    informational: list[int] = []
    complete = False

    def decode() -> None:
        nonlocal response, complete
        while not complete:
            event = client.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.InformationalResponse):
                informational.append(event.status_code)
            elif isinstance(event, h11.Response):
                response = Response(event.status_code, list(event.headers), b"",
                                    informational=informational)
            elif isinstance(event, h11.Data) and response is not None:
                response.body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage) and response is not None:
                response.trailers = list(event.headers)
                complete = True
            elif isinstance(event, h11.ConnectionClosed):
                return

    try:
        if out:
            client.receive_data(out)
        decode()
    except h11.RemoteProtocolError as exc:
        engine.violate(f"the HTTP/1.1 output does not decode ({exc}): {_show(out)}")
    if conn.closed and not complete:
        # A close-delimited body ends here; any other response was cut short (an abort).
        try:
            client.receive_data(b"")
            decode()
        except h11.RemoteProtocolError:
            pass
    await finish_connection(engine, conn)
    engine.check()
    if response is None or not complete:
        raise HarnessError(
            f"no complete response to {method} {target} (is the app waiting for something? "
            f"use connect() and advance()); the server wrote {_show(out)}"
        )
    return response


_H1_ONLY = frozenset({b"host", b"connection", b"keep-alive", b"transfer-encoding", b"upgrade",
                      b"proxy-connection"})


async def h2_request(
    engine: Engine, method: str, target: str, headers: Headers, body: bytes
) -> Response:
    hdrs = [(n.lower(), v) for n, v in _headers(headers)]
    authority = next((v for n, v in hdrs if n == b"host"), b"testserver")
    fields = [(b":method", method.encode()), (b":scheme", b"http"), (b":authority", authority),
              (b":path", target.encode())]
    fields += [(n, v) for n, v in hdrs if n not in _H1_ONLY]
    config = h2.config.H2Configuration(client_side=True, header_encoding=None)
    client = h2.connection.H2Connection(config)
    client.initiate_connection()
    sid = client.get_next_available_stream_id()
    client.send_headers(sid, fields, end_stream=not body)
    pending = body

    conn = engine.open()
    response: Response | None = None
    informational: list[int] = []
    done = False
    try:
        while True:
            if pending:  # as much of the body as the server's windows allow
                room = min(client.local_flow_control_window(sid), len(pending))
                size = client.max_outbound_frame_size
                for i in range(0, room, size):
                    chunk = pending[i:min(i + size, room)]
                    client.send_data(sid, chunk, end_stream=i + len(chunk) == len(pending))
                pending = pending[room:]
            data = client.data_to_send()
            conn.feed(data)
            await engine.settle()
            out = conn.take()
            for event in _h2_receive(client, out):
                if isinstance(event, h2.events.InformationalResponseReceived):
                    informational.append(int(dict(event.headers or [])[b":status"]))
                elif isinstance(event, h2.events.ResponseReceived) and event.stream_id == sid:
                    fields_in = list(event.headers or [])
                    status = int(dict(fields_in)[b":status"])
                    response = Response(status, [(n, v) for n, v in fields_in if n[:1] != b":"],
                                        http_version="2", informational=informational)
                elif isinstance(event, h2.events.DataReceived) and event.stream_id == sid:
                    if response is not None:
                        response.body += event.data or b""
                    client.acknowledge_received_data(event.flow_controlled_length or 0, sid)
                elif isinstance(event, h2.events.TrailersReceived) and response is not None:
                    response.trailers = list(event.headers or [])
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == sid:
                    done = True
                elif isinstance(event, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    pending = b""
            if done or (not data and not out and not pending):
                break
    except h2.exceptions.ProtocolError as exc:
        engine.violate(f"the HTTP/2 output does not decode: {exc!r}")
    if not conn.closed:
        client.close_connection()
        conn.feed(client.data_to_send())
    await finish_connection(engine, conn)
    engine.check()
    if response is None or not done:
        raise HarnessError(
            f"no complete response to {method} {target} over HTTP/2 (is the app waiting for "
            "something? use connect() and advance())"
        )
    return response


def _h2_receive(client: h2.connection.H2Connection, data: bytes) -> list[h2.events.Event]:
    """Decode frame by frame: h2 refuses every frame after a GOAWAY, but RFC 9113 6.8 lets the
    streams it names finish, so after one the client is put back to open to keep decoding."""
    events: list[h2.events.Event] = []
    while data:
        size = 9 + int.from_bytes(data[:3], "big") if len(data) >= 9 else len(data)
        frame, data = data[:size], data[size:]
        new = client.receive_data(frame)
        if any(isinstance(e, h2.events.ConnectionTerminated) for e in new):
            client.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        events += new
    return events


class WebSocketClient:
    """A wsproto client on one in-memory connection; see ``AsyncWebSocket`` for the API."""

    def __init__(self, engine: Engine, target: str, subprotocols: list[str],
                 headers: Headers) -> None:
        self.engine = engine
        self.conn = engine.open()
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.accepted = False
        self.subprotocol: str | None = None
        self.rejection: Response | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.messages: list[str | bytes] = []
        self._parts: list[Any] = []
        self.conn.feed(self.ws.send(ws_events.Request(
            host="testserver", target=target, subprotocols=subprotocols,
            extensions=[PerMessageDeflate()], extra_headers=_headers(headers),
        )))

    async def sync(self) -> None:
        """Settle, then decode what the server wrote (answering pings and its Close)."""
        await self.engine.settle()
        out = self.conn.take()
        try:
            self.ws.receive_data(out if out or not self.conn.closed else None)
            for event in self.ws.events():
                self._on(event)
        except RemoteProtocolError as exc:
            self.engine.violate(f"the WebSocket output does not decode ({exc}): {_show(out)}")
        if self.conn.closed and self.accepted and self.close_code is None:
            self.close_code = 1006  # the transport went without a Close frame
        await self.engine.settle()

    def _on(self, event: Any) -> None:
        if isinstance(event, ws_events.AcceptConnection):
            self.accepted = True
            self.subprotocol = event.subprotocol
        elif isinstance(event, ws_events.RejectConnection):
            self.rejection = Response(event.status_code, list(event.headers))
        elif isinstance(event, ws_events.RejectData) and self.rejection is not None:
            self.rejection.body += bytes(event.data)
        elif isinstance(event, (ws_events.TextMessage, ws_events.BytesMessage)):
            self._parts.append(event.data)
            if event.message_finished:
                if isinstance(event, ws_events.TextMessage):
                    self.messages.append("".join(self._parts))
                else:
                    self.messages.append(b"".join(bytes(p) for p in self._parts))
                self._parts = []
        elif isinstance(event, ws_events.Ping):
            self._send(event.response())
        elif isinstance(event, ws_events.CloseConnection):
            self.close_code, self.close_reason = event.code, event.reason
            if self.ws.state.name == "REMOTE_CLOSING":
                self._send(event.response())

    def _send(self, event: Any) -> None:
        try:
            self.conn.feed(self.ws.send(event))
        except LocalProtocolError as exc:
            raise HarnessError(f"cannot send on this WebSocket now: {exc}") from exc

    async def send(self, event: Any) -> None:
        self._send(event)
        await self.sync()
        self.engine.check()

    async def close(self, code: int, reason: str) -> None:
        if self.accepted and self.close_code is None and self.ws.state.name == "OPEN":
            self._send(ws_events.CloseConnection(code=code, reason=reason))
            await self.sync()
        await finish_connection(self.engine, self.conn)
        self.engine.check()
