"""Fuzz WebSockets through ServerConnection: over an HTTP/1.1 Upgrade and over HTTP/2 extended
CONNECT (RFC 8441), chosen by the input's first decision.

After the handshake request (valid, or one of a few bad ones), the input scripts the client's
frames (whole or fragmented text and binary messages, pings, pongs, closes, with or without
permessage-deflate; unless the client is well-behaved, malformed frames and raw bytes too), the
app's receive() and messages (accept with or without a subprotocol, text, bytes, close with any
code, a denial response, misuse), the app returning or raising, time passing and the ping and
close timers firing, shutdown() and EOF; over HTTP/2 also window updates, resets and GOAWAY.
Invariants, after every call (plus the ``_common.Driver`` and ``fuzz_http2`` ones):

* nothing escapes the core but AppMisuseError or ClientDisconnected from send(): AppMisuseError
  exactly for messages the ASGI rules forbid in the session's state, ClientDisconnected exactly
  once the session is over (or, for send and close, closing);
* every stream ends exactly once; the app sees websocket.connect first and once, then the
  client's messages exactly as sent (while the client is well-behaved), then one
  websocket.disconnect, repeated unchanged by every later receive(), with a valid code (the
  client's own when it closed first); an ended stream always gets there;
* the output decodes with an independent client: h11 for the HTTP/1.1 head (a 101 with the right
  Sec-WebSocket-Accept, the app's subprotocol, permessage-deflate only if offered; or the app's
  denial response), the h2 client for HTTP/2, then wsproto's frame parser in client mode (with
  the negotiated deflate): server frames unmasked and well-formed, the app's messages in order,
  pongs echo the client's pings, a server Close carries a valid code (RFC 6455 7.4) and nothing
  follows it;
* complete messages queued for the app stay within body_buffer_size plus one message.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import h2.errors
import h2.events
import h11
import hyperframe.frame as hf
from _common import (
    CLIENT_ERRORS,
    KNOWN_ISSUES,
    App,
    Checker,
    Config,
    header_problem,
    main,
    pick,
    provider,
    without_hop_fields,
)
from fuzz_http2 import DELTAS, INCREMENTS, H2Driver, View
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import FrameProtocol, Opcode, ParseFailed

CONFIGS = (
    Config(),
    Config(body_buffer_size=64, ws_max_message_size=1024, ws_ping_interval=5.0,
           ws_ping_timeout=2.0, ws_close_timeout=3.0, shutdown_timeout=3.0,
           output_high_water=256, ws_per_message_deflate=True),
    Config(body_buffer_size=16, ws_max_message_size=100_000, ws_ping_interval=None,
           ws_close_timeout=0.0, ws_per_message_deflate=False, keep_alive_timeout=0.0,
           date_header=False, server_header=None),
)
CARRIERS = ("h1", "preface", "alpn")
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
DEFLATE_OFFER = b"permessage-deflate; client_max_window_bits"
# (subprotocols offered, deflate offered, version, method): the last three are refused.
HANDSHAKES = (
    ((), False, b"13", b"GET"),
    ((b"chat", b"superchat"), True, b"13", b"GET"),
    ((), True, b"13", b"GET"),
    ((b"chat",), False, b"13", b"GET"),
    ((), False, b"8", b"GET"),
    ((), False, b"13", b"POST"),
    ((), False, None, b"GET"),
)
SUBPROTOCOLS = (None, None, "chat", "superchat", "other", 5)
ACCEPT_HEADERS: tuple[Any, ...] = (
    [], [], [(b"x-a", b"1")], [(b"sec-websocket-accept", b"x")], [(b"Bad Name", b"x")],
    [(b"x", b"a\r\nb")], "junk",
)
CLOSE_CODES: tuple[Any, ...] = (1000, 1000, 1001, 1011, 1012, 3000, 4999, 999, 1005, 1006,
                                1015, 5000, "1000", None)
REASONS: tuple[Any, ...] = ("", "", "bye", "\u00e9" * 61, "x" * 124, 5)
DENY_STATUSES: tuple[Any, ...] = (403, 401, 500, 204, 101, 600, "403")
DENY_HEADERS: tuple[Any, ...] = (
    [], [(b"content-type", b"text/plain")], [(b"content-length", b"5")],
    [(b"content-length", b"x")], [(b"connection", b"keep-alive")], [(b"bad name", b"v")],
    [(b"te", b"gzip")], [(b"Transfer-Encoding", b"x\x00")],
)
SIZES = (0, 1, 5, 125, 126, 1000, 70_000)
CLIENT_CLOSES: tuple[int | None, ...] = (1000, 1001, 1002, 3000, 4000, None)


def accept_token(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def valid_code(code: int) -> bool:
    """RFC 6455 7.4.1 and the IANA registry: codes an endpoint may put in a Close frame."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


class Session:
    """What the harness knows of the one WebSocket, from the app's side and the client's."""

    def __init__(self, offered: tuple[bytes, ...], deflate: bool) -> None:
        self.offered = [p.decode() for p in offered]
        self.deflate_offered = deflate
        self.sid: int | None = None
        # Our model of the session: connecting, denying, open, closing, closed.
        self.state = "connecting"
        self.subprotocol: str | None = None
        self.deny_left: int | None = None  # content-length bytes a denial still owes
        self.deny_body = b""
        self.deny_status = 0
        self.deny_headers: list[tuple[bytes, bytes]] = []
        self.connect_seen = False
        self.disconnect: dict[str, Any] | None = None
        self.expected: list[Any] = []  # messages the client sent, not yet received by the app
        self.clean = True  # every client frame so far was well-formed
        self.client_close: int | bool | None = False  # its Close frame's code (False: none)
        self.sent: list[Any] = []  # messages the app sent, accepted by the core
        self.seen: list[Any] = []  # data messages decoded from the server's frames
        self.pings: list[bytes] = []  # client ping payloads not yet answered
        self.server_closed = False  # a Close frame came from the server
        self.accepted = False  # the 101 / 200 was decoded
        self.timed = False  # a timer fired while open: a ping timeout may have closed us
        self.shutdown = False
        self.frames: FrameProtocol | None = None  # parses the server's frames
        self.client: FrameProtocol = FrameProtocol(client=True, extensions=[])
        self.client_deflate: PerMessageDeflate | None = None
        self.fragmenting = False  # the client is in the middle of a fragmented message
        self.partial: list[Any] = []


class WSDriver(H2Driver):
    """``H2Driver`` (HTTP/2) or plain ``Driver`` behaviour (HTTP/1.1) plus a WebSocket client
    and model (see the module docstring)."""

    def __init__(self, config: Config, check: Checker, carrier: str, strict: bool,
                 handshake: tuple[Any, ...], trace: list[str] | None) -> None:
        offered, deflate, version, method = handshake
        self.ws = Session(offered, deflate)
        super().__init__(config, check, carrier, strict, trace)
        if carrier == "h1":
            self.decoder = H1Client(self, method)
            lines = [method + b" /ws?q=1 HTTP/1.1", b"Host: a", b"Upgrade: websocket",
                     b"Connection: Upgrade", b"Sec-WebSocket-Key: " + KEY]
        else:
            lines = []
        if version is not None:
            lines.append(b"Sec-WebSocket-Version: " + version)
        if offered:
            lines.append(b"Sec-WebSocket-Protocol: " + b", ".join(offered))
        if deflate:
            lines.append(b"Sec-WebSocket-Extensions: " + DEFLATE_OFFER)
        if carrier == "h1":
            self.pending += b"\r\n".join(lines) + b"\r\n\r\n"
        else:
            fields = [(b":method", b"CONNECT" if method == b"GET" else method),
                      (b":protocol", b"websocket"), (b":scheme", b"https"), (b":path", b"/ws"),
                      (b":authority", b"a")]
            for line in lines:
                name, _, value = line.partition(b": ")
                fields.append((name.lower(), value))
            sid = self.client.get_next_available_stream_id()
            self.client.send_headers(sid, fields)
            self.take_client_output()
            self.views[sid] = View()
            self.ws.sid = sid

    # -- the client's frames -----------------------------------------------------------------

    def client_frames(self, what: str, data: bytes, clean: bool = True) -> None:
        """Frame bytes from the client: appended to the connection (HTTP/1.1) or sent as DATA
        on the CONNECT stream (HTTP/2)."""
        ws = self.ws
        if not clean:
            ws.clean = False
        if self.carrier == "h1":
            if self.trace is not None:
                self.log(f"client ws {what}: {bytes(data[:60])!r}")
            self.pending += data
            return
        sid = ws.sid
        assert sid is not None
        if not self.sendable(sid):
            return
        window = self.client.local_flow_control_window(sid)
        if len(data) > window:
            self.log(f"client ws {what}: no window ({len(data)} > {window})")
            ws.clean = False  # the frame is lost: what follows may not parse
            return
        size = self.client.max_outbound_frame_size
        for i in range(0, len(data), size):
            chunk = bytes(data[i : i + size])
            self.client_call(f"ws {what} ({len(chunk)} bytes)", self.client.send_data, sid, chunk)

    def message(self, text: bool, size: int, parts: int) -> None:
        ws = self.ws
        if ws.fragmenting:
            return
        payload: Any = ("\u00e9" * (size // 2) + "a" * (size % 2)) if text else b"b" * size
        step = max(1, -(-len(payload) // parts))
        chunks = [payload[i : i + step] for i in range(0, len(payload), step)] or [payload]
        data = bytearray()
        for index, chunk in enumerate(chunks):
            data += ws.client.send_data(chunk, fin=index == len(chunks) - 1)
        if ws.state not in ("closed",) and ws.client_close is False:
            ws.expected.append(payload)
        self.client_frames(f"{'text' if text else 'bytes'} {size} in {len(chunks)}", data)

    def ping(self, payload: bytes) -> None:
        self.ws.pings.append(payload)
        self.client_frames("ping", self.ws.client.ping(payload))

    def close(self, code: int | None, reason: str) -> None:
        ws = self.ws
        if ws.client_close is not False:
            return
        ws.client_close = code
        self.client_frames(f"close {code}", ws.client.close(code, reason if code else None))

    # -- the app -----------------------------------------------------------------------------

    def receive(self, app: App) -> dict[str, Any] | None:
        if app.kind != "websocket":
            return super().receive(app)
        check = self.check
        message = self.conn.receive(app.sid)
        if self.trace is not None:
            self.log(f"receive({app.sid}) -> {str(message)[:120]}")
        owed, app.owed = app.owed, False
        if message is None:
            check(not owed, "lost-wakeup", f"stream {app.sid}: None after StreamReadable")
            check(not app.ended, "receive-after-end", "None after StreamEnded")
            app.waiting = True
        else:
            app.waiting = False
            self._check_receive(message)
        self._pump()
        return message

    def _check_receive(self, message: Any) -> None:
        check, ws = self.check, self.ws
        mtype = message.get("type")
        if not ws.connect_seen:
            check(mtype == "websocket.connect", "ws-connect-first", repr(message))
            ws.connect_seen = True
            return
        if ws.disconnect is not None:
            if message != ws.disconnect:
                check(False, "ws-disconnect-changed", f"{message!r} after {ws.disconnect!r}")
            return
        if mtype == "websocket.disconnect":
            code, reason = message.get("code"), message.get("reason")
            check(type(code) is int and (valid_code(code) or code in (1005, 1006)) and
                  isinstance(reason, str), "ws-bad-disconnect", repr(message))
            check(self.apps[ws.sid].ended if ws.sid in self.apps else True, "early-disconnect",
                  "websocket.disconnect before StreamEnded")
            if ws.clean and ws.client_close not in (False, None) and ws.state == "open" \
                    and not ws.server_closed and not ws.shutdown and not ws.timed:
                # 1006 too: input held back while the app lagged is dropped at EOF, its
                # Close among it (HTTP/2's END_STREAM reads it first: test_http2).
                check(code in (ws.client_close, 1006), "ws-disconnect-code",
                      f"{code} but the client closed with {ws.client_close}")
            ws.disconnect = dict(message)
            return
        if mtype != "websocket.receive":
            check(False, "bad-receive", repr(message)[:200])
        text, data = message.get("text"), message.get("bytes")
        if not ((text is None) != (data is None) and (text is None or type(text) is str)
                and (data is None or type(data) is bytes)):
            check(False, "bad-receive", repr(message)[:200])
        if ws.clean and not (ws.expected and ws.expected[0] == (text if data is None else data)):
            check(False, "ws-wrong-message",
                  f"{repr(message)[:100]} but expected {repr(ws.expected[:1])[:100]}")
        if ws.expected:
            ws.expected.pop(0)

    def problem(self, message: Any) -> str | None:
        """Why ``message`` is not a legal next send in the session's state, or None."""
        ws = self.ws
        if type(message) is not dict:
            return "not a dict"
        mtype = message.get("type")
        state = ws.state
        if mtype == "websocket.accept" and state == "connecting":
            sub = message.get("subprotocol")
            if sub is not None and (type(sub) is not str or sub not in ws.offered):
                return "subprotocol not offered"
            headers = message.get("headers")
            bad = header_problem(headers)
            if bad:
                return bad
            reserved = {b"sec-websocket-protocol", b"sec-websocket-accept",
                        b"sec-websocket-extensions", b"upgrade", b"connection",
                        b"content-length", b"transfer-encoding"}
            if any(n.lower() in reserved for n, _ in headers or ()):
                return "reserved header"
            return None
        if mtype == "websocket.close" and state in ("connecting", "open"):
            code, reason = message.get("code", 1000), message.get("reason") or ""
            if type(code) is not int or not valid_code(code):
                return "bad close code"
            if type(reason) is not str or len(reason.encode()) > 123:
                return "bad reason"
            return None
        if mtype == "websocket.http.response.start" and state == "connecting":
            status = message.get("status")
            if type(status) is not int or not 200 <= status <= 599:
                return "bad status"
            if message.get("trailers"):
                return "trailers"
            headers = message.get("headers")
            bad = header_problem(headers)  # every field, the dropped ones too (SRV-10)
            if bad:
                return bad
            kept = [(n, v) for n, v in headers or () if n.lower() != b"transfer-encoding"]
            if self.carrier != "h1":
                kept = without_hop_fields(kept)
            lengths = [v for n, v in kept if n.lower() == b"content-length"]
            if len(lengths) > 1 or any(not v.isdigit() for v in lengths):
                return "bad content-length"
            return None
        if mtype == "websocket.http.response.body" and state == "denying":
            body, more = message.get("body", b""), message.get("more_body", False)
            if type(body) is not bytes or type(more) is not bool:
                return "bad body"
            if ws.deny_left is not None:
                if len(body) > ws.deny_left:
                    return "body over content-length"
                if not more and len(body) < ws.deny_left:
                    return "body short of content-length"
            return None
        if mtype == "websocket.send" and state == "open":
            data, text = message.get("bytes"), message.get("text")
            if (data is None) == (text is None):
                return "bytes and text"
            if data is not None and not isinstance(data, (bytes, bytearray, memoryview)):
                return "bytes not bytes"
            if text is not None and type(text) is not str:
                return "text not str"
            return None
        return "out of order"

    def send(self, app: App, message: Any) -> None:
        if app.kind != "websocket":
            super().send(app, message)
            return
        check, ws = self.check, self.ws
        if not self.conn.writable(app.sid):
            self.log(f"send({app.sid}) held: not writable")
            return
        problem = self.problem(message)
        mtype = message.get("type") if type(message) is dict else None
        # ClientDisconnected: once the session ended; send and close also while closing.
        gone = app.ended
        # Closing for sure, or maybe (a ping timeout or shutdown() may have sent our Close).
        closing = ws.state == "closing"
        maybe = closing or (ws.state == "open" and (ws.timed or ws.shutdown))
        may_disconnect = gone or (maybe and mtype in ("websocket.send", "websocket.close"))
        if self.trace is not None:
            self.log(f"send({app.sid}, {str(message)[:120]})  # {problem or 'valid'}")
        try:
            self.conn.send(app.sid, message, self.now)
        except Exception as exc:
            name = type(exc).__name__
            self.log(f"  -> {name} {exc}")
            if name == "ClientDisconnected":
                check(may_disconnect, "bad-disconnected", f"{ws.state}, ended={app.ended}")
                if ws.state == "open" and not gone:
                    ws.state = "closing"  # the ping timed out or shutdown closed it
            elif name == "AppMisuseError":
                check(problem is not None and not gone, "valid-refused",
                      f"{str(message)[:120]} refused: {exc}")
                check(not (closing and mtype in ("websocket.send", "websocket.close")),
                      "misuse-while-closing", "should be ClientDisconnected")
                self._refused()
            else:
                raise
        else:
            check(not gone, "send-after-close", "no ClientDisconnected")
            if problem is not None:
                check(False, "invalid-accepted", f"{str(message)[:120]}: {problem}")
            self._accepted(message)
        self._pump()

    def _refused(self) -> None:
        ws = self.ws
        ws.state = {"connecting": "closed", "denying": "closed", "open": "closing"}.get(
            ws.state, ws.state)

    def _accepted(self, message: dict[str, Any]) -> None:
        ws, mtype = self.ws, message["type"]
        self.budget += 256 + 2 * len(message.get("bytes") or message.get("body") or b"") \
            + 4 * len(message.get("text") or "")
        if mtype == "websocket.accept":
            ws.state = "closing" if ws.shutdown else "open"
            ws.subprotocol = message.get("subprotocol")
        elif mtype == "websocket.close":
            ws.state = "closed" if ws.state == "connecting" else "closing"
            if ws.state == "closed":
                ws.deny_status = 403
        elif mtype == "websocket.http.response.start":
            ws.state = "denying"
            ws.deny_status = message["status"]
            ws.deny_headers = list(message.get("headers") or [])
            lengths = [v for n, v in ws.deny_headers if n.lower() == b"content-length"]
            no_body = ws.deny_status in (204, 304)
            ws.deny_left = int(lengths[0]) if lengths and not no_body else None
        elif mtype == "websocket.http.response.body":
            ws.deny_body += message.get("body", b"")
            if ws.deny_left is not None:
                ws.deny_left -= len(message.get("body", b""))
            if not message.get("more_body", False):
                ws.state = "closed"
        else:
            data = message.get("bytes")
            ws.sent.append(bytes(data) if data is not None else message["text"])

    def app_finished(self, app: App, exc: BaseException | None) -> None:
        ws, check = self.ws, self.check
        if app.kind == "websocket" and app.ended:
            # The ended stream gives its app what is queued, then the disconnect, forever.
            for _ in range(10_000):
                if ws.disconnect is not None:
                    break
                message = self.conn.receive(app.sid)
                check(message is not None, "ws-no-disconnect", "None after the stream ended")
                if message is None:
                    break
                self._check_receive(message)
        if app.kind == "websocket" and not app.ended:
            ws.state = {"connecting": "closed", "denying": "closed", "open": "closing"}.get(
                ws.state, ws.state)
        super().app_finished(app, exc)

    def fire_timer(self) -> None:
        if self.ws.state == "open":
            self.ws.timed = True
        super().fire_timer()

    def shutdown(self) -> None:
        self.ws.shutdown = True
        super().shutdown()

    # -- the server's side, decoded --------------------------------------------------------------

    def accepted_on_wire(self, headers: list[tuple[bytes, bytes]]) -> None:
        """The 101 (or :status 200) arrived: check its fields, set up the frame parsers."""
        check, ws = self.check, self.ws
        fields = {n.lower(): v for n, v in headers}
        check(ws.state in ("open", "closing", "closed") and not ws.deny_status,
              "ws-unexpected-accept", f"state {ws.state}")
        if self.carrier == "h1":
            check(fields.get(b"sec-websocket-accept") == accept_token(KEY), "ws-accept-token",
                  repr(fields.get(b"sec-websocket-accept")))
        sub = fields.get(b"sec-websocket-protocol")
        check(sub == (ws.subprotocol.encode() if ws.subprotocol else None), "ws-subprotocol",
              f"{sub!r} but the app chose {ws.subprotocol!r}")
        agreed = fields.get(b"sec-websocket-extensions")
        check(agreed is None or (ws.deflate_offered and self.config.ws_per_message_deflate),
              "ws-extension", f"{agreed!r} not offered")
        extensions: list[Any] = []
        if agreed is not None:
            ext = PerMessageDeflate()
            ext.finalize(agreed.decode("latin-1"))
            extensions.append(ext)
            if not ws.fragmenting:
                client_ext = PerMessageDeflate()
                client_ext.finalize(agreed.decode("latin-1"))
                ws.client = FrameProtocol(client=True, extensions=[client_ext])
        ws.frames = FrameProtocol(client=True, extensions=extensions)
        ws.accepted = True

    def denied_on_wire(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        ws, check = self.ws, self.check
        if ws.deny_status:
            check(status == ws.deny_status or status == 500, "ws-deny-status",
                  f"{status} != {ws.deny_status}")
        else:
            ok = status in CLIENT_ERRORS or status in (403, 405, 426, 500)
            check(ok, "ws-deny-status", f"unexpected {status} in state {ws.state}")

    def server_bytes(self, data: bytes) -> None:
        """WebSocket frame bytes the server wrote (after its accept)."""
        ws, check = self.ws, self.check
        if not data:
            return
        check(ws.frames is not None, "ws-frames-before-accept", repr(data[:40]))
        if ws.frames is None:
            return
        ws.frames.receive_bytes(data)
        try:
            for frame in ws.frames.received_frames():
                self._server_frame(frame)
        except ParseFailed as exc:
            check(False, "ws-output", f"the server's frames do not parse: {exc}")

    def _server_frame(self, frame: Any) -> None:
        ws, check = self.ws, self.check
        if self.trace is not None:
            self.log(f"  server ws: {frame.opcode.name} {str(frame.payload)[:60]} "
                     f"fin={frame.message_finished}")
        check(not ws.server_closed, "ws-after-close", f"{frame.opcode.name} after our Close")
        if frame.opcode is Opcode.CLOSE:
            code, _reason = frame.payload
            # wsproto reads an empty Close payload as 1005; a 1005 on the wire fails to parse.
            check(valid_code(int(code)) or code == 1005, "ws-close-code",
                  f"we sent close code {int(code)}")
            ws.server_closed = True
        elif frame.opcode is Opcode.PONG:
            payload = bytes(frame.payload)
            check(payload in ws.pings or not ws.clean, "ws-pong", f"unsolicited {payload!r}")
            if payload in ws.pings:
                ws.pings.remove(payload)
        elif frame.opcode is Opcode.PING:
            pass
        else:
            ws.partial.append(frame.payload)
            if frame.message_finished:
                parts, ws.partial = ws.partial, []
                message = "".join(parts) if frame.opcode is Opcode.TEXT or (
                    parts and isinstance(parts[0], str)) else b"".join(parts)
                index = len(ws.seen)
                ws.seen.append(message)
                if index >= len(ws.sent) or ws.sent[index] != message:
                    check(False, "ws-wrong-output", f"message {index}: {repr(message)[:80]} vs "
                          f"{repr(ws.sent[index:index + 1])[:80]}")

    def _frame(self, frame: Any) -> None:
        """HTTP/2: the CONNECT stream's HEADERS and DATA carry the handshake and frames."""
        super()._frame(frame)
        ws = self.ws
        if frame.stream_id != ws.sid:
            return
        view = self.views[frame.stream_id]
        if isinstance(frame, hf.HeadersFrame) and view.status is not None and not ws.accepted \
                and not ws.deny_status and view.trailers is None:
            if view.status == 200:
                self.accepted_on_wire(view.headers)
            else:
                self.denied_on_wire(view.status, view.headers)
        elif isinstance(frame, hf.DataFrame) and ws.accepted:
            self.server_bytes(bytes(frame.data))

    def _check_state(self) -> None:
        super()._check_state()
        ws = self.ws
        proto = self.conn._proto
        session = None
        if self.carrier == "h1":
            session = getattr(proto, "_ws", None)
        elif ws.sid is not None and isinstance(getattr(proto, "_ws", None), dict):
            session = proto._ws.get(ws.sid)
        if session is not None:
            bound = self.config.body_buffer_size + self.config.ws_max_message_size + 64
            queued = getattr(session, "_queued_bytes", 0)
            self.check(queued <= bound, "ws-queue-unbounded", f"{queued} > {bound}")


class H1Client:
    """The client side of an HTTP/1.1 WebSocket handshake: h11 reads the server's answer;
    after a 101 every byte is a frame for ``WSDriver.server_bytes``."""

    def __init__(self, drv: WSDriver, method: bytes) -> None:
        self.drv = drv
        self.client = h11.Connection(h11.CLIENT)
        self.client.send(h11.Request(method=method, target="/ws", headers=[
            ("Host", "a"), ("Upgrade", "websocket"), ("Connection", "Upgrade")]))
        if method != b"GET":
            self.client.send(h11.EndOfMessage())
        self.switched = False
        self.body = b""
        self.done = False

    def feed(self, data: bytes) -> None:
        drv = self.drv
        if not data:
            return
        if self.switched:
            drv.server_bytes(data)
            return
        drv.check(not self.done, "ws-output", f"{data[:60]!r} after the denial response")
        self.client.receive_data(data)
        while not self.done:
            try:
                event = self.client.next_event()
            except h11.RemoteProtocolError as exc:
                drv.check(False, "output-not-http", str(exc))
                return
            if event is h11.NEED_DATA:
                return
            if event is h11.PAUSED or isinstance(event, h11.InformationalResponse):
                if isinstance(event, h11.InformationalResponse):
                    drv.check(event.status_code == 101, "unexpected-1xx", str(event))
                    drv.accepted_on_wire(list(event.headers.raw_items()))
                self.switched = True
                drv.server_bytes(bytes(self.client.trailing_data[0]))
                return
            if isinstance(event, h11.Response):
                drv.denied_on_wire(event.status_code, list(event.headers.raw_items()))
                self.status = event.status_code
            elif isinstance(event, h11.Data):
                self.body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.done = True
                ws = drv.ws
                if ws.deny_status and self.status == ws.deny_status and ws.state == "closed" \
                        and ws.deny_status not in (204, 304):
                    drv.check(self.body == ws.deny_body, "ws-deny-body",
                              f"{self.body[:60]!r} != {ws.deny_body[:60]!r}")

    def eof(self) -> None:
        pass


def run_one(data: bytes, tolerate: Any = KNOWN_ISSUES, trace: list[str] | None = None) -> None:
    """Run one input; raises ``Violation`` (or whatever escaped the core) on failure."""
    run(provider(data), tolerate, trace)


def app_message(p: Any, drv: WSDriver) -> Any:
    """A message for the app to send: usually the natural next one, sometimes not."""
    ws = drv.ws
    kind = p.ConsumeIntInRange(0, 15)
    state = ws.state
    if kind == 15:
        return pick(p, (["not a dict"], {"type": "websocket.bogus"},
                        {"type": "http.response.start", "status": 200},
                        {"type": "websocket.send"}, {"type": "websocket.send", "bytes": "s"},
                        {"type": "websocket.send", "text": b"b"},
                        {"type": "websocket.send", "bytes": b"b", "text": "t"}))
    if state == "connecting" and kind < 9:
        return {"type": "websocket.accept", "subprotocol": pick(p, SUBPROTOCOLS),
                "headers": pick(p, ACCEPT_HEADERS)}
    if (state == "connecting" and kind < 11) or kind == 14:
        return {"type": "websocket.http.response.start", "status": pick(p, DENY_STATUSES),
                "headers": pick(p, DENY_HEADERS)}
    if state == "denying" or kind == 13:
        body = b"x" * pick(p, (0, 1, 5, 100))
        return {"type": "websocket.http.response.body", "body": body,
                "more_body": p.ConsumeIntInRange(0, 2) == 0}
    if kind < 10:
        size = pick(p, SIZES[:6])
        if p.ConsumeIntInRange(0, 1):
            return {"type": "websocket.send", "text": "t\u00e9"[: 1 + size % 2] * size}
        return {"type": "websocket.send", "bytes": b"s" * size}
    message: dict[str, Any] = {"type": "websocket.close"}
    code = pick(p, CLOSE_CODES)
    if code is not None:
        message["code"] = code
    reason = pick(p, REASONS)
    if reason:
        message["reason"] = reason
    return message


def bad_frame(p: Any) -> bytes:
    """A client frame wsproto would not write (RFC 6455 5.2 violations) or raw bytes."""
    kind = p.ConsumeIntInRange(0, 7)
    payload = p.ConsumeBytes(p.ConsumeIntInRange(0, 140))
    if kind == 7:
        return payload
    first = p.ConsumeIntInRange(0, 255)  # FIN, RSV1-3, opcode: anything
    masked = kind != 0  # 0: an unmasked client frame
    if kind == 1:
        first = 0x81  # text, invalid UTF-8 likely
        payload = b"\xff\xfe" + payload
    elif kind == 2:
        first = 0x88  # close with a 1-byte or bad-code payload
        payload = payload[:1] if p.ConsumeIntInRange(0, 1) else b"\x03\xe7" + payload[:10]
    elif kind == 3:
        first = 0x09  # a fragmented ping
    elif kind == 4:
        first = 0x80  # a continuation with nothing to continue
    n = len(payload)
    if kind == 5:  # a 64-bit length that claims a huge frame
        header = bytes([first, 0xFF]) + (2**40).to_bytes(8, "big")
    elif n < 126:
        header = bytes([first, (0x80 if masked else 0) | n])
    else:
        header = bytes([first, (0x80 if masked else 0) | 126]) + n.to_bytes(2, "big")
    return header + (b"\x00\x00\x00\x00" if masked and kind != 5 else b"") + payload


def run(p: Any, tolerate: Any = KNOWN_ISSUES, trace: list[str] | None = None) -> None:
    carrier = pick(p, CARRIERS)
    config = pick(p, CONFIGS)
    strict = p.ConsumeIntInRange(0, 1) == 1
    handshake = pick(p, HANDSHAKES)
    ending = p.ConsumeIntInRange(0, 2)
    drv = WSDriver(config, Checker(tolerate), carrier, strict, handshake, trace)
    ws = drv.ws
    client = drv.client
    while p.remaining_bytes() and not (drv.closed and not drv.any_running):
        op = p.ConsumeIntInRange(0, 31)
        if ws.sid is None and drv.apps:
            ws.sid = min(drv.apps)
        app = drv.apps.get(ws.sid) if ws.sid is not None else None
        live = app is not None and app.running
        if op < 5:  # feed part of what the client wrote (0: all of it)
            drv.flush(p.ConsumeIntInRange(0, 255))
        elif op < 9:
            text = p.ConsumeIntInRange(0, 1) == 1
            drv.message(text, pick(p, SIZES), p.ConsumeIntInRange(1, 3))
        elif op == 9:
            drv.ping(p.ConsumeBytes(p.ConsumeIntInRange(0, 8)))
        elif op == 10:
            if p.ConsumeIntInRange(0, 3) == 0:
                drv.client_frames("pong", ws.client.pong(b"unsolicited"))
            else:
                drv.close(pick(p, CLIENT_CLOSES), "client")
        elif op < 13:
            if not strict:
                drv.client_frames("bad frame", bad_frame(p), clean=False)
        elif op == 13 and carrier != "h1":  # HTTP/2: the carrier's own moves
            kind = p.ConsumeIntInRange(0, 4)
            sid = ws.sid or 1
            if kind == 0:
                unacked = drv.unacked.pop(sid, 0)
                if unacked:
                    drv.client_call(f"ack {sid} {unacked}", client.acknowledge_received_data,
                                    unacked, sid)
            elif kind == 1:
                drv.client_call("WINDOW_UPDATE", client.increment_flow_control_window,
                                pick(p, INCREMENTS), None if p.ConsumeIntInRange(0, 1) else sid)
            elif kind == 2 and drv.sendable(sid):
                ws.clean = False  # the client stops sending: no more messages to compare
                drv.client_reset.add(sid)
                drv.client_call("RST_STREAM", client.reset_stream, sid,
                                h2.errors.ErrorCodes.CANCEL)
            elif kind == 3 and drv.sendable(sid):
                drv.client_call("END_STREAM", client.end_stream, sid)
            elif kind == 4:
                drv.client_call("GOAWAY", client.close_connection)
        elif op < 17:
            if live:
                drv.receive(app)
        elif op < 24:
            if live:
                drv.send(app, app_message(p, drv))
        elif op < 26:
            if live:
                drv.app_finished(app, RuntimeError("app failed") if p.ConsumeIntInRange(0, 1)
                                 else None)
        elif op < 29:
            drv.advance(pick(p, DELTAS))
            drv.fire_timer()
        elif op == 29:
            drv.shutdown()
        elif op == 30:
            drv.eof()
        elif not strict:
            drv.client_frames("raw bytes", p.ConsumeBytes(p.ConsumeIntInRange(1, 64)),
                              clean=False)
    drv.finish(ending)


if __name__ == "__main__":
    main(run_one, "fuzz_websocket")
