"""HTTP/1.1 as an ASGI connection, on h11.

Two layers live here.  ``_Wire`` is the narrow seam around request parsing: it turns bytes into
request heads, body chunks, end-of-message and parse errors.  Behind it a fast strict reader
handles the common request and hands everything else to h11 (see its docstring); nothing above
it touches h11.  Responses are written
by ``_h1writer`` (see its docstring for why not by h11).  ``HTTP11Connection`` maps those
pieces to ASGI: one stream per request, answered in order (pipelined requests wait in h11's
buffer, SRV-12), with the response rules of ``_http_messages``.

Where h11 is lax we are stricter (issue #2): a request carrying both Content-Length and
Transfer-Encoding is answered and then the connection closed (RFC 9112 6.3); versions other than
1.0/1.1 get 505; a malformed Host gets 400; CONNECT gets 501; leading empty lines are skipped
(RFC 9112 2.2).

Decisions worth knowing:
* The response head is held back until the first body message (HTTP-TX-05), so an app that
  fails between ``start`` and its first body still yields a clean 500, and the head and first
  body leave in one write.
* ``100 Continue`` is lazy: sent only when the app asks for body it does not have yet (SRV-05).
* The peer half-closing (EOF) is treated as the peer leaving, as Uvicorn does.
* A body the app never read is drained after the response up to ``max_body_drain`` bytes to
  keep the connection; beyond that (or when the client still waits for ``100 Continue``) the
  response carries ``Connection: close``.
"""

from __future__ import annotations

import re
from collections import deque
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote

import h11

from . import _h1writer as writer
from . import _http_messages as msgs
from ._config import Config
from ._errors import AppMisuseError, ClientDisconnected, DriverMisuseError
from ._events import (
    ConnectionClosed,
    Event,
    StreamEnded,
    StreamReadable,
    StreamStarted,
)
from ._http_messages import Resp
from ._websocket import (
    DENY_BODY,
    DENY_START,
    WebSocketSession,
    check_handshake,
    offered_subprotocols,
)

_date_cache: tuple[int, bytes] = (-1, b"")


def http_date(unix_time: float) -> bytes:
    """RFC 9110 IMF-fixdate, cached per second: it only changes once a second."""
    global _date_cache
    second = int(unix_time)
    if _date_cache[0] != second:
        _date_cache = (second, formatdate(second, usegmt=True).encode("ascii"))
    return _date_cache[1]


# --------------------------------------------------------------------------------------------
# The h11 seam
# --------------------------------------------------------------------------------------------


class RequestHead:
    __slots__ = ("headers", "method", "target", "version")

    def __init__(
        self, method: bytes, target: bytes, version: bytes, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers


class ParseError:
    __slots__ = ("detail", "status")

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA = _Marker("NEED_DATA")  # feed more bytes
PAUSED = _Marker("PAUSED")  # the request is complete; the next one waits for the response
END = _Marker("END")  # the request body is complete
CLOSED = _Marker("CLOSED")  # the peer closed cleanly between requests

WireItem = RequestHead | bytes | ParseError | _Marker


# The common request head, read without h11 (see ``_Wire``).  The grammar is h11's own.
_REQUEST_LINE_RE = re.compile(
    rb"([-!#$%&'*+.^_`|~0-9a-zA-Z]+) ([\x21-\x7e]+) HTTP/([0-9]\.[0-9])"
)
_TOKEN_RE = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
# Control characters other than HTAB, CR and LF; CR and LF are counted separately.
_CTL_RE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLANK_LINE_RE = re.compile(rb"\n\r?\n")
_good_names: set[bytes] = set()  # header names seen to be tokens; bounded below
_GOOD_NAMES_MAX = 1024


def parse_head(head: bytes) -> RequestHead | None:
    """Parse a CRLF-delimited request head (without its blank line), or return None to let
    h11 decide: anything unusual (obs-fold, bare LF, control bytes, Transfer-Encoding, odd
    Content-Length or Host counts) goes to h11, which either parses it or refuses it with
    the right status.  What this accepts, h11 parses identically (tests/test_h1_fastpath.py
    checks that differentially)."""
    lines = head.split(b"\r\n")
    count = len(lines) - 1
    if head.count(b"\n") != count or head.count(b"\r") != count or _CTL_RE.search(head):
        return None
    match = _REQUEST_LINE_RE.fullmatch(lines[0])
    if match is None:
        return None
    method, target, version = match.groups()
    headers: list[tuple[bytes, bytes]] = []
    hosts = lengths = 0
    good = _good_names
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if name not in good:
            if not colon or _TOKEN_RE.fullmatch(name) is None:
                return None
            if len(good) < _GOOD_NAMES_MAX:
                good.add(name)
        elif not colon:
            return None
        name = name.lower()
        value = value.strip(b" \t")
        if name == b"host":
            hosts += 1
        elif name == b"content-length":
            lengths += 1
            if not value.isdigit() or len(value) > 18:
                return None
        elif name == b"transfer-encoding":
            return None
        headers.append((name, value))
    if lengths > 1 or hosts > 1 or (hosts == 0 and version == b"1.1"):
        return None
    return RequestHead(method, target, version, headers)


class _Wire:
    """Bytes to request pieces: ``next_item()`` returns a ``RequestHead``, a body chunk
    (``bytes``), ``END``, ``NEED_DATA``, ``PAUSED``, ``CLOSED`` or a ``ParseError`` with the
    status to answer.  Responses are written by ``_h1writer``.

    Two readers sit behind this seam.  The fast one reads the common request (a CRLF head, no
    body or a Content-Length body) with one split and a few regexes, about a tenth of h11's
    cost.  Whatever it does not fully understand it hands, bytes and all, to h11 for the rest
    of that request, so h11 decides every unusual case (and every error).  Each cycle starts
    on the fast reader again.
    """

    __slots__ = (
        "_at_line_start", "_buf", "_config", "_conn", "_eof", "_error", "_expect_100", "_left",
        "_line_bytes", "_phase",
    )

    def __init__(self, config: Config) -> None:
        self._config = config
        self._conn: h11.Connection | None = None  # set while h11 reads the current request
        self._buf = bytearray()
        self._eof = False
        self._phase = 0  # fast reader: 0 head, 1 body, 2 done
        self._left = 0  # fast reader: body bytes still to come
        self._expect_100 = False
        self._at_line_start = True  # no byte of the current request line seen yet
        self._line_bytes = 0  # bytes of the request line seen so far, for the 414 check
        self._error: ParseError | None = None  # found in pipelined bytes, reported when read

    def _to_h11(self) -> None:
        """Hand the current request, and every byte after it, to h11."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._config.max_head_size)
        if self._buf:
            conn.receive_data(bytes(self._buf))
            self._buf.clear()
        if self._eof:
            conn.receive_data(b"")
        self._conn = conn

    def feed(self, data: bytes) -> ParseError | None:
        conn = self._conn
        if not data:
            self._eof = True
            if conn is not None:
                conn.receive_data(b"")
            return None
        if self._phase == 0 and (conn is None or conn.their_state is h11.IDLE):
            if self._at_line_start:
                # RFC 9112 2.2: ignore empty lines before a request line.
                data = data.lstrip(b"\r\n")
                if not data:
                    return None
                self._at_line_start = False
            if self._line_bytes >= 0:
                newline = data.find(b"\n")
                if newline < 0:
                    self._line_bytes += len(data)
                else:
                    self._line_bytes = -(self._line_bytes + newline) - 1  # line complete
                # Method, spaces and "HTTP/1.1" take a few bytes beyond the target itself.
                line = self._line_bytes if self._line_bytes >= 0 else -self._line_bytes - 1
                if line > self._config.max_target_length + 32:
                    return ParseError(414, "request target too long")
        if conn is not None:
            conn.receive_data(data)
        else:
            self._buf += data
        return None

    def next_item(self) -> WireItem:
        if self._error is not None:
            return self._error
        if self._conn is not None:
            return self._next_h11()
        buf = self._buf
        phase = self._phase
        if phase == 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if (
                    self._eof
                    or len(buf) > self._config.max_head_size
                    or _BLANK_LINE_RE.search(buf) is not None
                    or (buf and _TOKEN_RE.match(buf, 0, 1) is None)
                ):
                    self._to_h11()  # let h11 find the error, or the bare-LF head
                    return self._next_h11()
                return NEED_DATA
            head = parse_head(bytes(buf[:end]))
            if head is None:
                self._to_h11()
                return self._next_h11()
            del buf[: end + 4]
            left = 0
            for name, value in head.headers:
                if name == b"content-length":
                    left = int(value)
                elif name == b"expect" and head.version == b"1.1":
                    self._expect_100 = value.lower() == b"100-continue"
            self._left = left
            self._phase = 1
            return head
        if phase == 1:
            left = self._left
            if left == 0:
                self._phase = 2
                return END
            if not buf:
                if self._eof:
                    return ParseError(400, "peer closed in the middle of the body")
                return NEED_DATA
            self._expect_100 = False
            if len(buf) <= left:
                chunk = bytes(buf)
                buf.clear()
            else:
                chunk = bytes(buf[:left])
                del buf[:left]
            self._left = left - len(chunk)
            return chunk
        return PAUSED if buf else (CLOSED if self._eof else NEED_DATA)

    def _next_h11(self) -> WireItem:
        conn = self._conn
        assert conn is not None
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            return ParseError(exc.error_status_hint, str(exc))
        etype = type(event)
        if etype is h11.Data:
            return bytes(event.data)  # type: ignore[union-attr]
        if etype is h11.Request:
            req: h11.Request = event  # type: ignore[assignment]
            # ``_full_items`` holds (raw name, lowercased name, value): reading it directly
            # skips h11's per-item Sequence protocol (h11 is pinned below 0.17 for this).
            headers = [(name, value) for _, name, value in req.headers._full_items]
            return RequestHead(req.method, req.target, req.http_version, headers)
        if etype is h11.EndOfMessage:
            return END
        if event is h11.NEED_DATA:
            return NEED_DATA
        if event is h11.PAUSED:
            return PAUSED
        return CLOSED  # h11.ConnectionClosed

    @property
    def client_waits_for_100(self) -> bool:
        """The request said ``Expect: 100-continue`` (HTTP/1.1 only) and no body came yet."""
        conn = self._conn
        return self._expect_100 if conn is None else conn.they_are_waiting_for_100_continue

    @property
    def buffered(self) -> int:
        """Bytes received but not yet parsed (pipelined input waiting for its turn); an error
        found in such bytes counts as one."""
        conn = self._conn
        if self._error is not None:
            return 1
        return len(self._buf) if conn is None else len(conn._receive_buffer)

    @property
    def request_line_seen(self) -> bool:
        return not self._at_line_start

    def take_pending(self) -> bytes:
        """Hand over the bytes after the request (the protocol switched, RFC 9110 15.2.2)."""
        conn = self._conn
        pending = bytes(self._buf) if conn is None else conn.trailing_data[0]
        self._buf.clear()
        self._conn = None
        return pending

    def next_cycle(self) -> None:
        """Start reading the next request, on the fast reader again."""
        conn = self._conn
        if conn is not None:
            # We write responses ourselves, so h11's own cycle never completes: take over the
            # bytes it had not parsed.
            pending, _ = conn.trailing_data
            self._conn = None
            self._buf = bytearray(pending)
        self._phase = 0
        self._left = 0
        self._expect_100 = False
        self._at_line_start = True
        self._line_bytes = 0
        buf = self._buf
        if buf:
            # Apply the start-of-request checks (empty lines, 414) to what is waiting.
            pending = bytes(buf)
            buf.clear()
            self._error = self.feed(pending)


# --------------------------------------------------------------------------------------------
# ASGI over HTTP/1.1
# --------------------------------------------------------------------------------------------


class H2cUpgrade:
    """What an ``Upgrade: h2c`` request hands to the HTTP/2 connection that follows it."""

    __slots__ = ("eof", "headers", "method", "path", "pending", "query", "raw_path", "settings")

    def __init__(
        self,
        settings: bytes,
        method: bytes,
        path: str,
        raw_path: bytes,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        pending: bytes,
        eof: bool,
    ) -> None:
        self.settings = settings
        self.method = method
        self.path = path
        self.raw_path = raw_path
        self.query = query
        self.headers = headers
        self.pending = pending  # bytes after the request: the client's HTTP/2 preface onward
        self.eof = eof


class _Stream:
    """One request/response exchange and the app instance serving it."""

    __slots__ = (
        "body",
        "body_bytes",
        "body_done",
        "chunked",
        "close_after",
        "declared_length",
        "delivered_end",
        "drain_left",
        "ended",
        "extensions",
        "gone",
        "head_bytes",
        "is_head",
        "no_body",
        "received",
        "resp",
        "sent",
        "sent_100",
        "stream_id",
        "trailer_headers",
        "trailers",
        "version",
        "waiting",
    )

    def __init__(self, stream_id: int, version: bytes, is_head: bool) -> None:
        self.stream_id = stream_id
        self.version = version
        self.is_head = is_head
        # Request side.
        self.body: deque[bytes] = deque()
        self.body_bytes = 0  # queued for the app, not yet received
        self.received = 0  # total body bytes read from the wire
        self.body_done = False  # the parser saw the end of the request body
        self.delivered_end = False  # the app got http.request with more_body=False
        self.waiting = False  # receive() returned None, so a StreamReadable is owed
        self.drain_left = -1  # >= 0: the response is done, discard up to this many bytes
        # Response side.
        self.resp = Resp.INIT
        self.head_bytes: bytes | None = None  # the serialised head, held until the first body
        self.chunked = False
        self.sent_100 = False
        self.declared_length: int | None = None
        self.sent = 0
        self.no_body = False  # HEAD, 204, 304: body bytes are dropped (SRV-03, SRV-04)
        self.trailers = False  # the app declared trailers=True
        self.trailer_headers: list[tuple[bytes, bytes]] = []
        self.extensions: dict[str, Any] = {}
        self.close_after = False
        # Both.
        self.ended = False  # StreamEnded was emitted
        self.gone = False  # the peer left or the exchange was aborted


class HTTP11Connection:
    """ASGI over one HTTP/1.1 connection.  See ``ServerConnection`` for the contract."""

    def __init__(
        self,
        config: Config,
        *,
        now: float,
        client: tuple[str, int] | None,
        server: tuple[str, int | None] | None,
        tls: dict[str, Any] | None,
        state: dict[str, Any] | None,
        wall_offset: float,
        secure: bool = False,
    ) -> None:
        self.config = config
        self._wire = _Wire(config)
        self._client = client
        self._server = server
        # ``secure``: TLS ended before us, at a balancer that said so (a PROXY header's field).
        self._scheme = "https" if tls is not None or secure else "http"
        self._tls = tls
        self._state = state
        self._wall_offset = wall_offset
        self._root_path = config.root_path
        self._root_path_raw = config.root_path.encode("utf-8")
        self._streams: dict[int, _Stream] = {}
        self.upgrade_h2c: H2cUpgrade | None = None  # set when the connection switches to h2c
        # A WebSocket takes the whole connection: after its Upgrade no request follows.
        self._ws: WebSocketSession | None = None
        self._ws_open = False  # accepted: bytes from the peer are frames for the session
        self._ws_deny_chunked = False
        self._ws_deny_left = -1  # content-length bytes a denial still owes; -1: no count
        self._current: _Stream | None = None  # the exchange being read or answered
        self._next_id = 1
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self.closed = False
        self._now = now  # the latest time the driver told us, for calls that take none
        self._eof = False
        self._shutting_down = False
        self._idle_deadline: float | None = now + config.keep_alive_timeout
        self._head_deadline: float | None = None
        self._shutdown_deadline: float | None = None
        # Config.body_timeout counts from the client's last bytes; ``_body_restamp``: reading
        # resumed at a time this connection was not told, so the next firing only restamps.
        self._body_seen = now
        self._body_restamp = False

    # -- contract: output ------------------------------------------------------------------

    def pop_events(self) -> list[Event]:
        events = self._events
        self._events = []
        return events

    def data_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    def abandon(self) -> None:
        """Drop this connection without a word (another protocol took the socket)."""
        self.closed = True
        self._idle_deadline = self._head_deadline = self._shutdown_deadline = None

    @property
    def wants_read(self) -> bool:
        if self.closed or self._eof:
            return False
        ws = self._ws
        if ws is not None:
            # Before the accept, hold early frames back in the parser (a few bytes at most).
            return ws.wants_read if self._ws_open else not self._wire.buffered
        stream = self._current
        if stream is None:
            return True
        if stream.body_done:
            # Keep reading to notice the client leaving (HTTP-RX-06), but not to pile up
            # pipelined requests.
            return not self._wire.buffered
        return stream.body_bytes < self.config.body_buffer_size

    def writable(self, stream_id: int) -> bool:
        # The driver takes the output after every call, or once the app's calls have added
        # about output_high_water (DriverConnection.flush_soon); it adds its transport's own
        # high-water mark.
        return True

    # -- contract: input -------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        if self.closed:
            return
        self._now = now
        ws = self._ws
        if ws is not None:
            if self._ws_open or not data:
                ws.receive_data(data, now)
                if not data:
                    self._close()
            else:
                self._wire.feed(data)  # the client may send frames before our 101
            return
        if not data:
            self._eof = True
            self._wire.feed(b"")
            self._process(now)
            # A half-close counts as the client leaving (see the module docstring).
            self._close()
            return
        self._body_seen = now
        self._body_restamp = False
        if self._current is None and self._head_deadline is None:
            # The first byte of a request head starts its deadline (slowloris defence).
            self._head_deadline = now + self.config.head_timeout
            self._idle_deadline = None
        error = self._wire.feed(data)
        if error is not None:
            self._parse_error(error)
            return
        self._process(now)

    def _process(self, now: float) -> None:
        """Pull items from the parser while the current exchange can take them."""
        wire = self._wire
        limit = self.config.body_buffer_size
        while not self.closed and self._ws is None:
            stream = self._current
            if stream is not None and (stream.body_done or stream.body_bytes >= limit):
                return
            item = wire.next_item()
            itype = type(item)
            if itype is bytes:
                assert stream is not None
                self._body_chunk(stream, item)  # type: ignore[arg-type]
            elif item is END:
                assert stream is not None
                stream.body_done = True
                if stream.drain_left >= 0:
                    self._next_cycle(now)
                elif stream.waiting:
                    stream.waiting = False
                    self._events.append(StreamReadable(stream.stream_id))
            elif itype is RequestHead:
                self._request_head(item)  # type: ignore[arg-type]
            elif itype is ParseError:
                self._parse_error(item)  # type: ignore[arg-type]
                return
            elif item is CLOSED:
                self._close()
                return
            else:  # NEED_DATA or PAUSED
                return

    def _body_chunk(self, stream: _Stream, data: bytes) -> None:
        stream.received += len(data)
        if stream.drain_left >= 0:
            stream.drain_left -= len(data)
            if stream.drain_left < 0:
                self._close()  # more unread body than we are willing to throw away
            return
        max_body = self.config.max_body_size
        if max_body is not None and stream.received > max_body:
            # Past the limit: 413 if the response has not started, else abort.
            stream.body.clear()
            stream.body_bytes = 0
            if stream.resp in (Resp.INIT, Resp.HEAD):
                self._out.append(writer.error_response(413, head=stream.is_head))
            self._close()
            return
        stream.body.append(data)
        stream.body_bytes += len(data)
        if stream.waiting:
            stream.waiting = False
            self._events.append(StreamReadable(stream.stream_id))

    # -- request heads ---------------------------------------------------------------------

    def _request_head(self, head: RequestHead) -> None:
        self._head_deadline = None
        self._idle_deadline = None
        if head.version not in (b"1.1", b"1.0"):
            self._reject(505, head)
            return
        headers = head.headers
        if len(headers) > self.config.max_header_count:
            self._reject(431, head)
            return
        method = head.method
        target = head.target
        if method == b"CONNECT":
            self._reject(501, head)  # SRV-17: we are not a proxy
            return
        host_index = -1
        te_trailers = False
        content_length: int | None = None
        transfer_encoding = wants_close = wants_upgrade = upgrade_websocket = False
        upgrade_h2c = lists_settings = False
        h2_settings: list[bytes] = []
        head_size = len(target)
        for index, (name, value) in enumerate(headers):
            head_size += len(name) + len(value)
            if name == b"host":
                host_index = index
                if msgs.HOST_RE.fullmatch(value) is None:
                    self._reject(400, head)
                    return
            elif name == b"te":
                te_trailers = msgs.has_token(value, b"trailers")
            elif name == b"content-length":
                content_length = int(value)  # h11 checked it is digits
            elif name == b"transfer-encoding":
                transfer_encoding = True
            elif name == b"connection":
                wants_close = wants_close or msgs.has_token(value, b"close")  # SRV-08
                wants_upgrade = wants_upgrade or msgs.has_token(value, b"upgrade")
                lists_settings = lists_settings or msgs.has_token(value, b"http2-settings")
            elif name == b"upgrade":
                upgrade_websocket = upgrade_websocket or msgs.has_token(value, b"websocket")
                upgrade_h2c = upgrade_h2c or msgs.has_token(value, b"h2c")
            elif name == b"http2-settings":
                h2_settings.append(value)
        if head_size > self.config.max_head_size:
            # h11 bounds only a head that is still incomplete; one that arrived whole is
            # measured here.
            self._reject(431, head)
            return
        max_body = self.config.max_body_size
        if (
            content_length is not None
            and not transfer_encoding
            and max_body is not None
            and content_length > max_body
        ):
            self._reject(413, head)
            return
        if target[:1] != b"/":
            if target == b"*" and method == b"OPTIONS":
                pass  # SRV-17: path "*"
            elif target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
                # Absolute form (RFC 9112 3.2.2): the target's authority replaces Host.
                rest = target.split(b"://", 1)[1]
                cut = len(rest)
                for sep in (b"/", b"?"):
                    found = rest.find(sep)
                    if 0 <= found < cut:
                        cut = found
                authority, target = rest[:cut], rest[cut:]
                if not authority or msgs.HOST_RE.fullmatch(authority) is None:
                    self._reject(400, head)
                    return
                if target[:1] != b"/":
                    target = b"/" + target
                headers = list(headers)
                if host_index >= 0:
                    headers[host_index] = (b"host", authority)
                else:
                    headers.insert(0, (b"host", authority))
            else:
                self._reject(400, head)
                return

        raw_path, _, query = target.partition(b"?")
        if b"%" in raw_path:
            path = unquote(raw_path.decode("ascii"), errors="replace")
        else:
            path = raw_path.decode("ascii")
        if wants_upgrade and upgrade_websocket:
            # RFC 9110 7.8: Upgrade counts only when Connection lists it; otherwise this is
            # plain HTTP and the header is ignored.
            has_body = transfer_encoding or bool(content_length)
            self._websocket(head, headers, path, raw_path, query, has_body)
            return
        if (
            wants_upgrade
            and upgrade_h2c
            and lists_settings
            and len(h2_settings) == 1
            and self._tls is None  # RFC 7540 3.2: h2c is for cleartext only
            and head.version == b"1.1"
            and not (transfer_encoding or content_length)
            and self._next_id == 1  # the first request: it becomes HTTP/2 stream 1
        ):
            # RFC 7540 3.2: 101, then HTTP/2 with this request as stream 1.  A request with a
            # body, or over TLS, is served as HTTP/1.1 (ignoring an Upgrade is always allowed).
            self._out.append(
                b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"
            )
            self.upgrade_h2c = H2cUpgrade(
                h2_settings[0], method, path, raw_path, query, headers,
                self._wire.take_pending(), self._eof,
            )
            self.closed = True  # this object is done; ServerConnection hands over to HTTP/2
            self._idle_deadline = self._head_deadline = self._shutdown_deadline = None
            return
        stream = _Stream(self._next_id, head.version, method == b"HEAD")
        self._next_id += 1
        # RFC 9112 6.3: both framings at once is a smuggling attempt or a broken proxy.
        stream.close_after = wants_close or (content_length is not None and transfer_encoding)
        extensions: dict[str, Any] = {"http.response.early_hint": {}}
        if te_trailers and head.version == b"1.1":
            extensions["http.response.trailers"] = {}
        if self._tls is not None:
            extensions["tls"] = self._tls
        stream.extensions = extensions
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": dict(msgs.ASGI_VERSIONS),
            "http_version": "1.1" if head.version == b"1.1" else "1.0",
            "server": self._server,
            "client": self._client,
            "scheme": self._scheme,
            "method": method.decode("ascii"),
            "root_path": self._root_path,
            "path": self._root_path + path,
            "raw_path": self._root_path_raw + raw_path,
            "query_string": query,
            "headers": headers,
            "extensions": extensions,
        }
        if self._state is not None:
            scope["state"] = self._state.copy()  # LIFE-11: a shallow copy per request
        self._streams[stream.stream_id] = stream
        self._current = stream
        self._events.append(StreamStarted(stream.stream_id, scope))

    def _websocket(
        self,
        head: RequestHead,
        headers: list[tuple[bytes, bytes]],
        path: str,
        raw_path: bytes,
        query: bytes,
        has_body: bool,
    ) -> None:
        """An Upgrade to WebSocket: validate the handshake (WS-18), then hand the connection
        to a ``WebSocketSession`` with this connection as its carrier."""
        status = check_handshake(headers, head.method)
        if head.version != b"1.1" or has_body:
            status = 400
        if status is not None:
            extra = b"sec-websocket-version: 13\r\n" if status == 426 else b""
            self._out.append(writer.error_response(status, extra=extra))
            self._close()
            return
        stream_id = self._next_id
        self._next_id += 1
        extensions: dict[str, Any] = {"websocket.http.response": {}}
        if self._tls is not None:
            extensions["tls"] = self._tls
        scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": dict(msgs.ASGI_VERSIONS),
            "http_version": "1.1",
            "server": self._server,
            "client": self._client,
            "scheme": "wss" if self._scheme == "https" else "ws",
            "root_path": self._root_path,
            "path": self._root_path + path,
            "raw_path": self._root_path_raw + raw_path,
            "query_string": query,
            "headers": headers,
            "subprotocols": offered_subprotocols(headers),
            "extensions": extensions,
        }
        if self._state is not None:
            scope["state"] = self._state.copy()
        self._ws = WebSocketSession(self.config, stream_id, self, headers, self._now)
        self._events.append(StreamStarted(stream_id, scope))

    # -- the WebSocket carrier (see _websocket.Carrier) ----------------------------------------

    def ws_accept(self, session: WebSocketSession, headers: list[tuple[bytes, bytes]]) -> None:
        fields = [(b"upgrade", b"websocket"), (b"connection", b"Upgrade"), *headers]
        self._out.append(writer.head(101, self._decorate(fields), "websocket.accept"))
        self._ws_open = True
        # Frames the client sent before our answer wait in the parser: they are the session's.
        pending = self._wire.take_pending()
        if pending:
            session.receive_data(pending, self._now)

    def ws_deny(
        self, session: WebSocketSession, status: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        declared: int | None = None
        fields: list[tuple[bytes, bytes]] = []
        for name, value in headers:
            lname = name.lower()
            if lname == b"transfer-encoding":
                # HTTP-TX-03: the framing is ours.  Dropped, but checked as any field is.
                writer.fields(DENY_START, [(name, value)])
                continue
            if lname == b"content-length":
                if declared is not None or not value.isdigit():
                    raise AppMisuseError(DENY_START, "SRV-01", f"bad content-length {value!r}")
                declared = int(value)
            fields.append((name, value))
        no_body = status in msgs.NO_BODY_STATUS  # SRV-04: nothing on the wire, whatever is sent
        self._ws_deny_chunked = declared is None and not no_body
        self._ws_deny_left = -1 if no_body or declared is None else declared
        if self._ws_deny_chunked:
            fields.append((b"transfer-encoding", b"chunked"))
        fields.append((b"connection", b"close"))  # the connection ends with the denial
        self._out.append(writer.head(status, self._decorate(fields), DENY_START))

    def ws_deny_body(self, session: WebSocketSession, data: bytes, more: bool) -> None:
        if self._ws_deny_chunked:
            if data:
                self._out.append(writer.chunk(data))
            if not more:
                self._out.append(b"0\r\n\r\n")
            return
        left = self._ws_deny_left
        if left < 0:
            return  # 204 or 304: no body
        left -= len(data)
        if left < 0:
            raise AppMisuseError(DENY_BODY, "SRV-01", "body exceeds its content-length")
        if not more and left:
            raise AppMisuseError(DENY_BODY, "SRV-02", f"body ended {left} bytes short")
        self._ws_deny_left = left
        if data:
            self._out.append(data)

    def ws_write(self, session: WebSocketSession, data: bytes) -> None:
        if not self.closed:  # frames parsed after the transport closed go nowhere
            self._out.append(data)

    def ws_finished(self, session: WebSocketSession, abort: bool) -> None:
        self._close()

    def emit(self, event: Event) -> None:
        self._events.append(event)

    def _decorate(self, fields: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """Add the date and server fields every response of ours carries (SRV-15)."""
        names = {n.lower() for n, _ in fields}
        if self.config.date_header and b"date" not in names:
            fields.append((b"date", http_date(self._now + self._wall_offset)))
        if self.config.server_header is not None and b"server" not in names:
            fields.append((b"server", self.config.server_header))
        return fields

    def _reject(self, status: int, head: RequestHead | None = None) -> None:
        """Answer a request the app will never see, then close (issue #2: bad input)."""
        is_head = head is not None and head.method == b"HEAD"
        self._out.append(writer.error_response(status, head=is_head))
        self._close()

    def _parse_error(self, error: ParseError) -> None:
        stream = self._current
        # Nothing to say to a peer that already left; otherwise answer if no response began.
        if not self._eof and (stream is None or stream.resp in (Resp.INIT, Resp.HEAD)):
            # A body that breaks its framing can follow a HEAD request too: no body then.
            head = stream is not None and stream.is_head
            self._out.append(writer.error_response(error.status, head=head))
        self._close()

    # -- contract: the app's receive ---------------------------------------------------------

    def receive(self, stream_id: int) -> dict[str, Any] | None:
        stream = self._streams.get(stream_id)
        if stream is None:
            ws = self._ws
            if ws is not None and ws.stream_id == stream_id:
                return ws.receive()
            raise DriverMisuseError(f"no stream {stream_id} on this connection")
        if stream.ended:
            return {"type": "http.disconnect"}  # HTTP-RX-04: on every call once over
        if stream.body:
            body = stream.body
            data = body.popleft() if len(body) == 1 else b"".join(body)
            body.clear()
            was_full = stream.body_bytes >= self.config.body_buffer_size
            stream.body_bytes = 0
            if was_full:
                self._body_restamp = True  # the body timeout did not run while paused
                self._process(self._now)  # room again: parse what the parser holds
            more = not stream.body_done or bool(stream.body)
            if not more:
                stream.delivered_end = True
            return {"type": "http.request", "body": data, "more_body": more}
        if not stream.body_done:
            if self._waits_for_100(stream):
                # SRV-05: lazy 100 Continue, only now that the app asks for the body.
                stream.sent_100 = True
                self._body_restamp = True  # the body timeout starts now, at a time unknown
                self._out.append(b"HTTP/1.1 100 Continue\r\n\r\n")
            stream.waiting = True
            return None
        if not stream.delivered_end:
            # HTTP-RX-02: at least one http.request, even for an empty body.
            stream.delivered_end = True
            return {"type": "http.request", "body": b"", "more_body": False}
        stream.waiting = True  # HTTP-RX-06: wait for the response to end or the client to go
        return None

    # -- contract: the app's send ------------------------------------------------------------

    def send(self, stream_id: int, message: dict[str, Any], now: float) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            ws = self._ws
            if ws is not None and ws.stream_id == stream_id:
                self._now = now
                ws.send(message, now)
                return
            raise DriverMisuseError(f"no stream {stream_id} on this connection")
        if stream.gone:
            raise ClientDisconnected(f"stream {stream_id}: the client disconnected")
        self._now = now
        try:
            mtype = msgs.check_transition(stream.resp, message, stream.extensions)
            if mtype == msgs.BODY:
                self._send_body(stream, message, now)
            elif mtype == msgs.START:
                self._send_start(stream, message, now)
            elif mtype == msgs.TRAILERS:
                self._send_trailers(stream, message, now)
            else:
                self._send_early_hint(stream, message)
        except AppMisuseError:
            self._fail(stream, now)
            raise

    def _waits_for_100(self, stream: _Stream) -> bool:
        return (
            stream.resp is Resp.INIT and not stream.sent_100 and self._wire.client_waits_for_100
        )

    def _send_start(self, stream: _Stream, message: dict[str, Any], now: float) -> None:
        status, headers, trailers = msgs.validate_start(message)
        config = self.config
        has_date = has_server = has_close = False
        declared: int | None = None
        clean: list[tuple[bytes, bytes]] = []
        for name, value in headers:
            lname = name.lower()
            if lname == b"transfer-encoding":
                # HTTP-TX-03: the server owns the framing.  Dropped, but a malformed one is
                # still the app's error, as any other field would be.
                writer.fields(msgs.START, [(name, value)])
                continue
            if lname == b"content-length":
                declared = msgs.content_length(value, declared)
                if status == 204:
                    continue  # RFC 9110 8.6: never on a 204
            elif lname == b"date":
                has_date = True
            elif lname == b"server":
                has_server = True
            elif lname == b"connection":
                has_close = has_close or msgs.has_token(value, b"close")
            clean.append((name, value))
        if trailers and "http.response.trailers" not in stream.extensions:
            raise AppMisuseError(
                msgs.START, "EXT-TRAILERS-05", "trailers=True but the extension is not in scope"
            )
        if not has_date and config.date_header:
            clean.append((b"date", http_date(now + self._wall_offset)))
        if not has_server and config.server_header is not None:
            clean.append((b"server", config.server_header))
        no_body = stream.is_head or status in msgs.NO_BODY_STATUS
        chunked = declared is None and not no_body and stream.version == b"1.1"
        if chunked:
            clean.append((b"transfer-encoding", b"chunked"))
        close = (
            has_close
            or stream.close_after
            or self._shutting_down
            or stream.version != b"1.1"  # HTTP/1.0: no keep-alive (as h11)
            or (
                not stream.body_done
                and (self._waits_for_100(stream) or stream.received > config.max_body_drain)
            )
        )
        if close:
            stream.close_after = True
            if not has_close:
                # We already know the connection ends after this response: say so.
                clean.append((b"connection", b"close"))
        stream.head_bytes = writer.head(status, clean, msgs.START)
        stream.no_body = no_body
        stream.chunked = chunked
        stream.declared_length = declared
        stream.trailers = trailers
        stream.resp = Resp.HEAD

    def _send_body(self, stream: _Stream, message: dict[str, Any], now: float) -> None:
        body, more = msgs.validate_body(message)
        declared = stream.declared_length
        if declared is not None and not stream.no_body:
            # Checked before anything is written: while the head is still held, a wrong
            # length is a 500, not an abort (HTTP-ERR-01), as over HTTP/2.
            sent = stream.sent + len(body)
            if sent > declared:
                raise AppMisuseError(msgs.BODY, "SRV-01", f"body exceeds content-length {declared}")
            if not more and sent < declared:
                raise AppMisuseError(
                    msgs.BODY, "SRV-02", f"response ended after {sent} of {declared} bytes"
                )
        out = self._out
        if stream.resp is Resp.HEAD:
            head = stream.head_bytes
            assert head is not None
            stream.head_bytes = None
            out.append(head)
            stream.resp = Resp.BODY
        if body and not stream.no_body:
            stream.sent += len(body)
            out.append(writer.chunk(body) if stream.chunked else body)
        if more:
            return
        if stream.trailers:
            stream.resp = Resp.TRAILERS  # HTTP-TX-09: wait for http.response.trailers
            return
        if stream.chunked:
            out.append(b"0\r\n\r\n")
        self._response_done(stream, now)

    def _send_trailers(self, stream: _Stream, message: dict[str, Any], now: float) -> None:
        headers, more = msgs.validate_trailers(message)
        stream.trailer_headers.extend(headers)
        if more:
            return
        if stream.chunked:
            trailers = stream.trailer_headers
            kept = [f for f in trailers if not msgs.connection_specific(f[0].lower(), f[1])]
            if len(kept) < len(trailers):
                writer.fields(msgs.TRAILERS, trailers)  # checked before dropped (SRV-10)
            self._out.append(writer.last_chunk(kept))
        # else EXT-TRAILERS-04: without chunked framing there is nowhere to put them.
        self._response_done(stream, now)

    def _send_early_hint(self, stream: _Stream, message: dict[str, Any]) -> None:
        links = msgs.validate_early_hint(message)
        if stream.resp is not Resp.INIT or stream.version != b"1.1" or not links:
            return  # EXT-HINT-04: after start (or to HTTP/1.0) it is dropped, never raised
        self._out.append(writer.head(103, [(b"link", x) for x in links], msgs.EARLY_HINT))

    def _response_done(self, stream: _Stream, now: float) -> None:
        stream.resp = Resp.DONE
        self._end_stream(stream)
        if stream.close_after or self._shutting_down:
            self._close()
        elif not stream.body_done:
            # SRV-07: the app left body unread; throw it away (bounded) before the next request.
            stream.body.clear()
            stream.body_bytes = 0
            stream.drain_left = self.config.max_body_drain
            # A client that stops sending must not hold the connection: the drain gets the
            # keep-alive timeout as a fixed deadline.
            self._idle_deadline = now + self.config.keep_alive_timeout
            self._process(now)
        else:
            self._next_cycle(now)

    def _next_cycle(self, now: float) -> None:
        self._current = None
        if self._shutting_down:
            self._close()  # SRV-14: no new request once shutting down
            return
        self._wire.next_cycle()
        self._idle_deadline = now + self.config.keep_alive_timeout
        if self._wire.request_line_seen:
            self._head_deadline = now + self.config.head_timeout
            self._idle_deadline = None
        if self._wire.buffered or self._eof:
            self._process(now)  # a pipelined request is already waiting

    # -- the app's end ---------------------------------------------------------------------

    def app_finished(self, stream_id: int, now: float, exc: BaseException | None) -> None:
        stream = self._streams.get(stream_id)
        self._now = now
        if stream is None:
            ws = self._ws
            if ws is not None and ws.stream_id == stream_id:
                ws.app_finished(exc, now)
                return
            raise DriverMisuseError(f"no stream {stream_id} on this connection")
        self._fail(stream, now)
        del self._streams[stream_id]

    def _fail(self, stream: _Stream, now: float) -> None:
        """The app broke or abandoned the exchange: a 500 if nothing went out yet, else an
        abort (HTTP-ERR-01/02).  A no-op once the response is complete or the peer is gone."""
        if stream.gone or stream.resp is Resp.DONE:
            return
        if stream.resp in (Resp.INIT, Resp.HEAD):
            stream.head_bytes = None
            close = (
                not stream.body_done
                or stream.close_after
                or self._shutting_down
                or stream.version != b"1.1"
            )
            self._out.append(writer.error_response(500, close=close, head=stream.is_head))
            stream.close_after = close
            self._response_done(stream, now)
            return
        # Abort: close with no chunked terminator, so the client sees a truncated response.
        self._close()

    # -- ending ----------------------------------------------------------------------------

    def _end_stream(self, stream: _Stream) -> None:
        if not stream.ended:
            stream.ended = True
            self._events.append(StreamEnded(stream.stream_id))
        if stream.waiting:
            stream.waiting = False
            self._events.append(StreamReadable(stream.stream_id))

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for stream in self._streams.values():
            stream.gone = True
            self._end_stream(stream)
        if self._ws is not None:
            self._ws.peer_lost()
        self._current = None
        self._idle_deadline = self._head_deadline = self._shutdown_deadline = None
        self._events.append(ConnectionClosed())

    # -- timers ----------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        timer = self._idle_deadline
        ws_timer = self._ws.get_timer() if self._ws is not None and not self.closed else None
        body = self._body_deadline()
        for deadline in (self._head_deadline, self._shutdown_deadline, ws_timer, body):
            if deadline is not None and (timer is None or deadline < timer):
                timer = deadline
        return timer

    def _body_deadline(self) -> float | None:
        """When the client must have sent more of the request body, if we are waiting for it:
        not while the app leaves the body unread (reading is paused), nor while the client
        waits for our ``100 Continue``, nor once the response is done (the drain has its own
        bound)."""
        stream, timeout = self._current, self.config.body_timeout
        if (
            timeout is None or stream is None or self.closed or self._ws is not None
            or stream.body_done or stream.resp is Resp.DONE
            or stream.body_bytes >= self.config.body_buffer_size or self._waits_for_100(stream)
        ):
            return None
        return self._body_seen + timeout

    def handle_timer(self, now: float) -> None:
        if self.closed:
            return
        self._now = now
        if self._shutdown_deadline is not None and now >= self._shutdown_deadline:
            self._close()
        elif self._ws is not None:
            self._ws.handle_timer(now)
        elif self._head_deadline is not None and now >= self._head_deadline:
            self._out.append(writer.error_response(408))
            self._close()
        elif self._idle_deadline is not None and now >= self._idle_deadline:
            self._close()
        elif (body := self._body_deadline()) is not None and now >= body:
            stream = self._current
            assert stream is not None
            if self._body_restamp:
                self._body_seen, self._body_restamp = now, False  # the wait starts now
            elif stream.resp in (Resp.INIT, Resp.HEAD):
                stream.head_bytes = None  # the app's own answer never started: 408
                self._out.append(writer.error_response(408, head=stream.is_head))
                self._close()
            else:
                self._close()  # the response is under way: cut it (the client is too slow)

    def shutdown(self, now: float, restart: bool = False) -> None:
        if self.closed or self._shutting_down:
            return
        self._now = now
        self._shutting_down = True
        if self._ws is not None:
            # WS-20: going away (1001), or 1012 when the server restarts.
            self._ws.shutdown(now, 1012 if restart else 1001)
            self._shutdown_deadline = now + self.config.shutdown_timeout
        elif self._current is None or self._current.resp is Resp.DONE:
            # Idle, a head half-read, or only an unread body left to drain: nothing to finish.
            self._close()
        else:
            self._shutdown_deadline = now + self.config.shutdown_timeout
