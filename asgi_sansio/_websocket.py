"""ASGI WebSocket over wsproto's frame layer, independent of what carries it.

A ``WebSocketSession`` is one WebSocket from the moment its handshake request was validated.  It
speaks ASGI to the app (``receive``/``send``) and frames to the peer through wsproto's bare
``Connection`` (wsproto's own h11 handshake is not used, so the same session serves an HTTP/1.1
Upgrade and an HTTP/2 extended CONNECT stream, STACK-WS-03).  What depends on the carrier, the
101 or ``:status 200`` answer, a denial response, and ending the transport or stream, goes through
the small ``Carrier`` protocol.

States (``TRANSITIONS`` lists which app message each allows; a missing entry is the misuse error):
``CONNECTING`` the app has not answered the handshake; ``DENYING`` it started an HTTP denial
response (EXT-WSDENY); ``OPEN`` accepted; ``CLOSING`` a Close frame went out and the peer's is
awaited; ``CLOSED`` over.

Bounds we add to wsproto (it has none): a reassembled message, and the bytes permessage-deflate
inflates, stop at ``Config.ws_max_message_size`` with close 1009; complete messages waiting for the
app stop the reading at ``Config.body_buffer_size``.

The common frame skips wsproto: a masked, unfragmented, uncompressed text or binary frame under
64 KiB from a client whose wsproto is idle is parsed here (``_fast_frames``), and an app message
is framed here when no extension was agreed (``_frame``).  wsproto costs ~25 us a message in and
out, which was most of a WebSocket echo's server CPU.  Anything else, from the first unusual byte
on (control frames, fragments, RSV bits, bad lengths, bad UTF-8), goes to wsproto until it is idle
again, so every error and every rare case keeps wsproto's answer;
``tests/test_websocket_fastpath.py`` checks differentially that both paths give the same messages.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections import deque
from enum import Enum
from typing import Any, Protocol

from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import generate_accept_token

from . import _http_messages as msgs
from ._config import Config
from ._errors import AppMisuseError, ClientDisconnected
from ._events import Event, StreamEnded, StreamReadable


class WS(Enum):
    CONNECTING = "CONNECTING"
    DENYING = "DENYING"
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"


ACCEPT = "websocket.accept"
SEND = "websocket.send"
CLOSE = "websocket.close"
DENY_START = "websocket.http.response.start"
DENY_BODY = "websocket.http.response.body"

TRANSITIONS: dict[tuple[WS, str], str] = {
    (WS.CONNECTING, ACCEPT): "WS-03",
    (WS.CONNECTING, CLOSE): "WS-05",
    (WS.CONNECTING, DENY_START): "EXT-WSDENY-01",
    (WS.DENYING, DENY_BODY): "EXT-WSDENY-01",
    (WS.OPEN, SEND): "WS-08",
    (WS.OPEN, CLOSE): "WS-06",
}
_KNOWN = frozenset({ACCEPT, SEND, CLOSE, DENY_START, DENY_BODY})
_WHY_NOT: dict[WS, tuple[str, str]] = {
    WS.CONNECTING: ("WS-02", "the handshake needs websocket.accept, websocket.close or a denial"),
    WS.DENYING: ("EXT-WSDENY-02", "only websocket.http.response.body may follow its start"),
    WS.OPEN: ("WS-08", "the handshake was already answered"),
    WS.CLOSING: ("WS-06", "the app already closed the websocket"),
    WS.CLOSED: ("WS-15", "the websocket is closed"),
}

# Handshake headers that are the server's to set (WS-03).
_RESERVED_ACCEPT_HEADERS = frozenset(
    {b"sec-websocket-protocol", b"sec-websocket-accept", b"sec-websocket-extensions",
     b"upgrade", b"connection", b"content-length", b"transfer-encoding"}
)


def valid_close_code(code: int) -> bool:
    """RFC 6455 7.4: codes an endpoint may send (WS-19)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


class Carrier(Protocol):
    """What a session needs from the connection that carries it."""

    def ws_accept(self, session: WebSocketSession, headers: list[tuple[bytes, bytes]]) -> None:
        """Write the handshake answer (101 or ``:status 200``) with these extra headers."""

    def ws_deny(
        self, session: WebSocketSession, status: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        """Write the head of an HTTP response refusing the handshake."""

    def ws_deny_body(self, session: WebSocketSession, data: bytes, more: bool) -> None:
        """Write part of the denial response's body; ``more=False`` ends it."""

    def ws_write(self, session: WebSocketSession, data: bytes) -> None:
        """Write WebSocket frame bytes."""

    def ws_finished(self, session: WebSocketSession, abort: bool) -> None:
        """The session is over: close the transport (or end the stream) after what was
        written; ``abort`` says the exchange was cut short."""

    def emit(self, event: Event) -> None:
        """Queue an event for the driver."""


class BoundedDeflate(PerMessageDeflate):
    """permessage-deflate that refuses to inflate past ``limit`` bytes per message (close 1009),
    so a small compressed frame cannot become a memory bomb.

    It also keeps a compressed message's state across a control frame (a ping) between its
    fragments: wsproto's own extension resets it there and fails to inflate the rest.
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self._inflated = 0
        self._control = False  # the frame being read is a control frame

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        self._control = opcode.iscontrol()
        if self._control:
            return CloseReason.PROTOCOL_ERROR if rsv.rsv1 else RsvBits(True, False, False)
        return super().frame_inbound_header(proto, opcode, rsv, payload_length)

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if self._control or not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        assert self._decompressor is not None
        budget = self.limit - self._inflated
        try:
            out = self._decompressor.decompress(bytes(data), budget + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(out)
        if self._inflated > self.limit:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if self._control:
            return None
        if fin:
            self._inflated = 0
        return super().frame_inbound_complete(proto, fin)


def check_handshake(headers: list[tuple[bytes, bytes]], method: bytes) -> int | None:
    """RFC 6455 4.2.1 checks on an upgrade request; the status to answer, or None if valid."""
    if method != b"GET":
        return 400
    keys = [v for n, v in headers if n == b"sec-websocket-key"]
    versions = [v for n, v in headers if n == b"sec-websocket-version"]
    if len(keys) != 1:
        return 400
    try:
        if len(base64.b64decode(keys[0].strip(), validate=True)) != 16:
            return 400
    except (binascii.Error, ValueError):
        return 400
    if len(versions) != 1:
        return 400
    if versions[0].strip() != b"13":
        return 426  # with Sec-WebSocket-Version: 13 (RFC 6455 4.4)
    return None


def offered_subprotocols(headers: list[tuple[bytes, bytes]]) -> list[str]:
    """WS-SCOPE-10: every token of every Sec-WebSocket-Protocol header, in order."""
    out: list[str] = []
    for name, value in headers:
        if name == b"sec-websocket-protocol":
            out.extend(p.strip() for p in value.decode("latin-1").split(",") if p.strip())
    return out


class WebSocketSession:
    """One WebSocket: ASGI on one side, frames on the other.  See the module docstring."""

    _FAST_PATH = True  # False sends every frame through wsproto (the tests' reference)

    def __init__(
        self,
        config: Config,
        stream_id: int,
        carrier: Carrier,
        headers: list[tuple[bytes, bytes]],
        now: float,
        *,
        http_version: str = "1.1",
    ) -> None:
        self.config = config
        self.stream_id = stream_id
        self._carrier = carrier
        self._http_version = http_version
        self._key = next((v.strip() for n, v in headers if n == b"sec-websocket-key"), b"")
        self._offered = offered_subprotocols(headers)
        self._offered_extensions = [
            offer.strip()
            for n, v in headers
            if n == b"sec-websocket-extensions"
            for offer in v.decode("latin-1").split(",")
            if offer.strip()
        ]
        self.state = WS.CONNECTING
        self._ws: Connection | None = None
        self._connect_delivered = False
        self._queue: deque[dict[str, Any]] = deque()
        self._queued_bytes = 0
        self._sizes: deque[int] = deque()  # what each queued message counts against the bound
        self._text_parts: list[str] = []
        self._bytes_parts: list[bytes] = []
        self._part_bytes = 0  # size of the message being reassembled
        self._waiting = False
        self._disconnect: dict[str, Any] | None = None
        self.ended = False
        self._peer_gone = False
        self._deny_started = False
        self._now = now
        self._ping_at: float | None = None
        self._pong_deadline: float | None = None
        self._close_deadline: float | None = None
        # WS-14: how the app closed, reported if the peer never answers with its own code.
        self._closing_disconnect: dict[str, Any] | None = None
        self._shutdown_code: int | None = None  # shutdown() came before the accept
        self._fast_out = False  # no extension agreed: data frames are framed here
        self._slow = False  # wsproto may hold bytes or a message in progress
        self._app_gone = False  # app_finished(): messages from the peer are dropped
        self._eof = False  # end_of_input() came while wsproto still held frames: read them first

    # -- the app's receive --------------------------------------------------------------------

    def receive(self) -> dict[str, Any] | None:
        if not self._connect_delivered:
            self._connect_delivered = True
            return {"type": "websocket.connect"}  # WS-01
        if self._queue:
            message = self._queue.popleft()
            was_full = self._queued_bytes >= self.config.body_buffer_size
            self._queued_bytes -= self._sizes.popleft()
            if was_full and self._ws is not None and not self._peer_gone:
                self._pump()  # room again: parse what wsproto already holds
            return message
        if self._disconnect is not None:
            return dict(self._disconnect)  # WS-16: the same disconnect on every call
        self._waiting = True
        return None

    @property
    def wants_read(self) -> bool:
        return (
            self._disconnect is None and self._queued_bytes < self.config.body_buffer_size
        )

    # -- the app's send ---------------------------------------------------------------------

    def send(self, message: dict[str, Any], now: float) -> None:
        self._now = now
        if self._peer_gone or self.state is WS.CLOSED:
            raise ClientDisconnected(f"websocket {self.stream_id}: the connection is closed")
        mtype = message.get("type") if type(message) is dict else None
        if self.state is WS.CLOSING and mtype in (SEND, CLOSE):
            # WS-15: the app already closed; only the peer's answer is pending.
            raise ClientDisconnected(f"websocket {self.stream_id}: the connection is closing")
        try:
            if type(message) is not dict:
                raise AppMisuseError(None, "MAIN-08", "a message must be a dict")
            if (self.state, mtype) not in TRANSITIONS:
                if mtype not in _KNOWN:
                    raise AppMisuseError(mtype, "MAIN-09", "unknown type for a websocket")
                rule, why = _WHY_NOT[self.state]
                raise AppMisuseError(mtype, rule, why)
            if mtype == SEND:
                self._send_data(message)
            elif mtype == ACCEPT:
                self._accept(message, now)
            elif mtype == CLOSE:
                self._app_close(message, now)
            elif mtype == DENY_START:
                self._deny_start(message)
            else:
                self._deny_body(message)
        except AppMisuseError:
            # Queue the right answer for the peer (500 or close 1011), then raise.
            self._fail_app(error=True)
            raise

    def _accept(self, message: dict[str, Any], now: float) -> None:
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and (
            type(subprotocol) is not str or subprotocol not in self._offered
        ):
            raise AppMisuseError(ACCEPT, "WS-04", f"subprotocol {subprotocol!r} was not offered")
        headers = msgs.validate_headers(ACCEPT, message.get("headers"))
        for name, _ in headers:
            if name.lower() in _RESERVED_ACCEPT_HEADERS:
                raise AppMisuseError(ACCEPT, "WS-03", f"header {name!r} is the server's to set")
        extra: list[tuple[bytes, bytes]] = []
        if self._http_version == "1.1":
            extra.append((b"sec-websocket-accept", generate_accept_token(self._key)))
        if subprotocol is not None:
            extra.append((b"sec-websocket-protocol", subprotocol.encode("latin-1")))
        extensions: list[Extension] = []
        if self.config.ws_per_message_deflate and self._offered_extensions:
            deflate = BoundedDeflate(self.config.ws_max_message_size)
            agreed = server_extensions_handshake(self._offered_extensions, [deflate])
            if agreed is not None:
                extensions.append(deflate)
                extra.append((b"sec-websocket-extensions", agreed))
        self._ws = Connection(ConnectionType.SERVER, extensions=extensions)
        self._fast_out = self._FAST_PATH and not extensions
        self.state = WS.OPEN  # before the carrier feeds us frames that arrived early
        try:
            self._carrier.ws_accept(self, extra + headers)
        except AppMisuseError:
            self._ws = None  # the answer never left: the handshake is still open
            self.state = WS.CONNECTING
            raise
        if self.state is not WS.OPEN:
            return  # frames handed over at the accept already ended the session
        if self._shutdown_code is not None:
            # Accepted while the server shuts down: going away at once (WS-20).
            self._send_close(self._shutdown_code, "", now)
            self._closing_disconnect = {
                "type": "websocket.disconnect", "code": self._shutdown_code, "reason": ""}
        elif self.config.ws_ping_interval is not None:
            self._ping_at = now + self.config.ws_ping_interval

    def _send_data(self, message: dict[str, Any]) -> None:
        data = message.get("bytes")
        text = message.get("text")
        if (data is None) == (text is None):
            raise AppMisuseError(SEND, "WS-08", "exactly one of bytes and text must be set")
        if data is not None and type(data) is not bytes:
            if not isinstance(data, (bytearray, memoryview)):
                raise AppMisuseError(SEND, "WS-08", "bytes must be bytes")
            data = bytes(data)
        if text is not None and type(text) is not str:
            raise AppMisuseError(SEND, "WS-08", "text must be a str")
        ws = self._ws
        assert ws is not None
        if self._fast_out and ws.state is ConnectionState.OPEN:
            if text is not None:
                self._carrier.ws_write(self, _frame(0x81, text.encode("utf-8")))
            else:
                self._carrier.ws_write(self, _frame(0x82, data or b""))
            return
        event = TextMessage(data=text) if text is not None else BytesMessage(data=data or b"")
        self._carrier.ws_write(self, ws.send(event))

    def _app_close(self, message: dict[str, Any], now: float) -> None:
        code = message.get("code", 1000)
        reason = message.get("reason") or ""
        if type(code) is not int or not valid_close_code(code):
            raise AppMisuseError(CLOSE, "WS-19", f"close code {code!r} may not be sent")
        if type(reason) is not str or len(reason.encode("utf-8")) > 123:
            raise AppMisuseError(CLOSE, "WS-19", "reason must be a str of at most 123 bytes")
        if self.state is WS.CONNECTING:
            # WS-05: close before accept is an HTTP 403; the handshake never completes.
            self._deny_started = True
            self._carrier.ws_deny(self, 403, [(b"content-length", b"0")])
            self._carrier.ws_deny_body(self, b"", False)
            self._end({"type": "websocket.disconnect", "code": code, "reason": reason})
            self.state = WS.CLOSED
            self._carrier.ws_finished(self, abort=False)
            return
        self._send_close(code, reason, now)
        self._closing_disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}

    def _deny_start(self, message: dict[str, Any]) -> None:
        status = message.get("status")
        if type(status) is not int or not 200 <= status <= 599:
            raise AppMisuseError(DENY_START, "EXT-WSDENY-03", f"bad status {status!r}")
        if message.get("trailers"):
            raise AppMisuseError(DENY_START, "EXT-WSDENY-03", "trailers are not defined here")
        headers = msgs.validate_headers(DENY_START, message.get("headers"))
        self._deny_started = True
        self._carrier.ws_deny(self, status, headers)
        self.state = WS.DENYING

    def _deny_body(self, message: dict[str, Any]) -> None:
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if type(body) is not bytes or type(more) is not bool:
            raise AppMisuseError(DENY_BODY, "EXT-WSDENY-01", "body must be bytes, more_body bool")
        self._carrier.ws_deny_body(self, body, more)
        if not more:
            self.state = WS.CLOSED
            self._end(_LOST)
            self._carrier.ws_finished(self, abort=False)

    # -- the app ending ---------------------------------------------------------------------

    def app_finished(self, exc: BaseException | None, now: float) -> None:
        self._now = now
        # Nobody reads what is queued now: drop it (and what comes later) so that reading goes
        # on, or the peer's answer to our Close would wait behind it until the close timeout.
        self._app_gone = True
        self._queue.clear()
        self._sizes.clear()
        self._queued_bytes = 0
        if self.state not in (WS.CLOSING, WS.CLOSED) and not self._peer_gone:
            self._fail_app(error=exc is not None)
        if self.state is WS.CLOSING and self._ws is not None and not self._peer_gone:
            self._pump()  # what wsproto held back while the queue was full

    def _fail_app(self, error: bool) -> None:
        """The app broke the session or left it open."""
        if self.state is WS.CONNECTING:
            # WS-17: before accept the peer gets an HTTP 500.
            self._deny_started = True
            body = b"Internal Server Error"
            self._carrier.ws_deny(self, 500, [(b"content-type", b"text/plain; charset=utf-8"),
                                              (b"content-length", str(len(body)).encode())])
            self._carrier.ws_deny_body(self, body, False)
            self.state = WS.CLOSED
            self._end(_LOST)
            self._carrier.ws_finished(self, abort=False)
        elif self.state is WS.DENYING:
            self.state = WS.CLOSED
            self._end(_LOST)
            self._carrier.ws_finished(self, abort=True)
        elif self.state is WS.OPEN:
            # AMB-10: 1011 when the app failed, 1000 when it simply returned.
            code = 1011 if error else 1000
            self._send_close(code, "", self._now)
            self._closing_disconnect = {"type": "websocket.disconnect", "code": code, "reason": ""}

    # -- frames from the peer -----------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes from the peer after the accept; ``b""`` is end of input."""
        self._now = now
        ws = self._ws
        if ws is None or self.state is WS.CLOSED:
            if not data:
                self.peer_lost()
            return
        if not data:
            self.peer_lost()
            return
        if self._slow and _idle(ws):
            self._slow = False
        if (
            not self._slow and self._FAST_PATH
            and self.state is WS.OPEN and ws.state is ConnectionState.OPEN
            and self._queued_bytes < self.config.body_buffer_size
        ):
            data = self._fast_frames(data)
            if not data:
                return
        self._slow = True
        ws.receive_data(data)
        self._pump()

    def end_of_input(self, now: float) -> bool:
        """The peer will send nothing more but can still read (HTTP/2 END_STREAM).  Frames
        wsproto still holds because the app was behind are read first, so a Close among them
        ends the session with the peer's code, not 1006; then the session calls
        ``ws_finished`` itself (True).  With nothing held it is ``receive_data(b"")`` (False)."""
        ws = self._ws
        if ws is None or self.state not in (WS.OPEN, WS.CLOSING) or _idle(ws):
            self.receive_data(b"", now)
            return False
        self._now = now
        self._eof = True
        self._pump()
        return True

    def _fast_frames(self, data: bytes) -> bytes:
        """Deliver the common whole frames at the head of ``data`` (see the module docstring)
        and return the rest, from the first frame that is not one (or is cut short), for
        wsproto.  If the app falls behind, the rest goes to wsproto unread, for ``_pump``."""
        pos, size = 0, len(data)
        limit = self.config.body_buffer_size
        max_size = self.config.ws_max_message_size
        while pos < size:
            if size - pos < 6:
                return data[pos:]
            first, second = data[pos], data[pos + 1]
            if (first != 0x81 and first != 0x82) or second < 0x80:
                return data[pos:]  # not a final text/binary frame, or not masked
            length = second & 0x7F
            if length < 126:
                head = 6
            elif length == 126 and size - pos >= 8:
                length = (data[pos + 2] << 8) | data[pos + 3]
                if length < 126:
                    return data[pos:]  # not the shortest length form: wsproto's error
                head = 8
            else:
                return data[pos:]
            end = pos + head + length
            if end > size or length > max_size:
                return data[pos:]
            payload = _unmask(data[pos + head : end], data[pos + head - 4 : pos + head])
            if first == 0x81:
                try:
                    text = payload.decode("utf-8")
                except UnicodeDecodeError:
                    return data[pos:]
                message: dict[str, Any] = {"type": "websocket.receive", "bytes": None,
                                           "text": text}
            else:
                message = {"type": "websocket.receive", "bytes": payload, "text": None}
            self._part_bytes = length
            self._deliver(message)
            pos = end
            if self._queued_bytes >= limit and pos < size:
                self._slow = True  # the app is behind: wsproto holds the rest for ``_pump``
                self._ws.receive_data(data[pos:])  # type: ignore[union-attr]
                return b""
        return b""

    def _pump(self) -> None:
        ws = self._ws
        assert ws is not None
        limit = self.config.body_buffer_size
        if self.state is WS.CLOSED or self._queued_bytes >= limit:
            # Already full: more bytes (HTTP/2 keeps feeding DATA the window allowed) wait in
            # wsproto, or every call would queue one more message past the bound.
            return
        for event in ws.events():
            if isinstance(event, TextMessage):
                self._text_part(event)
            elif isinstance(event, BytesMessage):
                self._bytes_part(event)
            elif isinstance(event, Ping):
                if ws.state is ConnectionState.OPEN:
                    self._carrier.ws_write(self, ws.send(event.response()))
            elif isinstance(event, Pong):
                self._pong_deadline = None
                if self.config.ws_ping_interval is not None:
                    self._ping_at = self._now + self.config.ws_ping_interval
            elif isinstance(event, CloseConnection):
                self._peer_close(event)
                return
            if self._queued_bytes >= limit or self._over():
                return  # the app is behind (the rest waits in wsproto), or it is over
        if self._eof:  # all read, and no Close among it: the peer left without one
            self._eof = False
            self.peer_lost()
            self._carrier.ws_finished(self, abort=False)

    def _over(self) -> bool:
        # A method, not an inline test: the state changes under the calls above.
        return self.state is WS.CLOSED

    def _grow(self, size: int) -> bool:
        self._part_bytes += size
        if self._part_bytes > self.config.ws_max_message_size:
            self._protocol_failure(1009, "message too big")  # WS-10
            return False
        return True

    def _text_part(self, event: TextMessage) -> None:
        text = event.data
        # The limit is in bytes: count UTF-8 bytes, cheaply when the text is ASCII.
        if not self._grow(len(text) if text.isascii() else len(text.encode("utf-8"))):
            return
        if not event.message_finished:
            self._text_parts.append(text)
            return
        if self._text_parts:
            self._text_parts.append(text)
            text = "".join(self._text_parts)
            self._text_parts = []
        self._deliver({"type": "websocket.receive", "bytes": None, "text": text})

    def _bytes_part(self, event: BytesMessage) -> None:
        if not self._grow(len(event.data)):
            return
        if not event.message_finished:
            self._bytes_parts.append(bytes(event.data))
            return
        data = bytes(event.data)
        if self._bytes_parts:
            self._bytes_parts.append(data)
            data = b"".join(self._bytes_parts)
            self._bytes_parts = []
        self._deliver({"type": "websocket.receive", "bytes": data, "text": None})

    def _deliver(self, message: dict[str, Any]) -> None:
        # A message costs its size plus a fixed overhead, so a flood of empty messages is
        # bounded too.
        size = self._part_bytes + 16
        if self._app_gone:
            self._part_bytes = 0
            return
        self._queue.append(message)
        self._sizes.append(size)
        self._queued_bytes += size
        self._part_bytes = 0
        self._wake()

    def _peer_close(self, event: CloseConnection) -> None:
        ws = self._ws
        assert ws is not None
        code = int(event.code)
        reason = event.reason or ""
        if ws.state is ConnectionState.OPEN:
            # wsproto reports a frame it could not parse as a close it never received.
            self._protocol_failure(code, reason)
            return
        if ws.state is ConnectionState.REMOTE_CLOSING:
            # The peer started the close: echo its code, as RFC 6455 5.5.1 asks.
            self._carrier.ws_write(self, ws.send(event.response()))
        self.state = WS.CLOSED
        self._end({"type": "websocket.disconnect", "code": code, "reason": reason})  # WS-11/12
        self._carrier.ws_finished(self, abort=False)

    def _protocol_failure(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): a Close frame with ``code``, then hang up."""
        ws = self._ws
        assert ws is not None
        if ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            self._carrier.ws_write(self, ws.send(CloseConnection(code=code, reason=reason[:60])))
        self.state = WS.CLOSED
        self._end({"type": "websocket.disconnect", "code": code, "reason": reason})
        self._carrier.ws_finished(self, abort=True)

    def peer_lost(self) -> None:
        """The transport went away without a close handshake (WS-13: 1006)."""
        self._peer_gone = True
        if self.state is not WS.CLOSED:
            self.state = WS.CLOSED
            self._end(self._closing_disconnect or _LOST)
        else:
            self._end(_LOST)

    # -- closing from our side ----------------------------------------------------------------

    def _send_close(self, code: int, reason: str, now: float) -> None:
        ws = self._ws
        assert ws is not None
        self._carrier.ws_write(self, ws.send(CloseConnection(code=code, reason=reason)))
        self.state = WS.CLOSING
        self._ping_at = self._pong_deadline = None
        self._close_deadline = now + self.config.ws_close_timeout

    def shutdown(self, now: float, code: int = 1001) -> None:
        """Server going away (WS-20): 1001, or 1012 for a restart."""
        self._now = now
        self._shutdown_code = code
        if self.state is WS.OPEN:
            self._send_close(code, "", now)
            self._closing_disconnect = {"type": "websocket.disconnect", "code": code, "reason": ""}

    # -- timers ------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        timer: float | None = None
        for deadline in (self._ping_at, self._pong_deadline, self._close_deadline):
            if deadline is not None and (timer is None or deadline < timer):
                timer = deadline
        return timer

    def handle_timer(self, now: float) -> None:
        self._now = now
        if self._close_deadline is not None and now >= self._close_deadline:
            # The peer never answered our Close: hang up.
            self._close_deadline = None
            self.state = WS.CLOSED
            self._end(self._closing_disconnect or _LOST)
            self._carrier.ws_finished(self, abort=True)
            return
        if self._pong_deadline is not None and now >= self._pong_deadline:
            self._pong_deadline = None
            self._send_close(1011, "ping timeout", now)  # the peer stopped answering
            return
        if self._ping_at is not None and now >= self._ping_at and self._ws is not None:
            self._ping_at = None
            self._pong_deadline = now + self.config.ws_ping_timeout
            self._carrier.ws_write(self, self._ws.send(Ping(payload=b"asgi-sansio")))

    # -- ending ------------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._waiting:
            self._waiting = False
            self._carrier.emit(StreamReadable(self.stream_id))

    def _end(self, disconnect: dict[str, Any]) -> None:
        if self._disconnect is None:
            self._disconnect = disconnect
        self._ping_at = self._pong_deadline = self._close_deadline = None
        if not self.ended:
            self.ended = True
            self._carrier.emit(StreamEnded(self.stream_id))
        self._wake()


_LOST = {"type": "websocket.disconnect", "code": 1006, "reason": ""}  # WS-13


def _unmask(payload: bytes, mask: bytes) -> bytes:
    """RFC 6455 5.3: XOR with the 4-byte key, as one big-integer operation."""
    size = len(payload)
    if not size:
        return b""
    key = (mask * ((size + 3) >> 2))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        size, "little"
    )


def _frame(first: int, payload: bytes) -> bytes:
    """A server frame (unmasked, RFC 6455 5.2) with the FIN/opcode byte ``first``."""
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return bytes((first, 126)) + size.to_bytes(2, "big") + payload
    return bytes((first, 127)) + size.to_bytes(8, "big") + payload


def _idle(ws: Connection) -> bool:
    """wsproto holds no input and no message in progress, so a frame may skip it.  It reads
    wsproto's private state; if that ever changes shape, the answer is False and every frame
    simply goes through wsproto."""
    try:
        proto = ws._proto
        decoder = proto._frame_decoder
        return (
            decoder.header is None
            and not decoder.buffer.buffer
            and proto._message_decoder.opcode is None
            and not ws._events
        )
    except AttributeError:
        return False
