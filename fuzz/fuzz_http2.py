"""Fuzz ServerConnection over HTTP/2: client frames, app calls, timers, shutdown and EOF.

The input picks how HTTP/2 starts (prior-knowledge preface, TLS ALPN ``h2``, or an h2c
Upgrade), whether the client stays well-behaved, and a script read through a FuzzedDataProvider:
an h2 client (``h2`` in client mode) opens requests, sends DATA, trailers, RST_STREAM,
WINDOW_UPDATE, SETTINGS, PING, PRIORITY and GOAWAY, and its bytes are fed to the server split
anywhere; unless well-behaved, hand-built malformed frames and raw bytes are mixed in.  Apps
pull ``receive()``, send (mostly valid) responses, pushes and misuse, and return or raise
mid-response (which resets their stream); time advances, timers fire, shutdown() and EOF come.
After every call (``_common.Driver`` plus the HTTP/2 checks here):

* nothing escapes the core but AppMisuseError or ClientDisconnected from send(), each exactly
  when the message breaks an ASGI rule or the stream or connection is gone; DriverMisuseError
  never;
* every StreamStarted stream gets exactly one StreamEnded, ConnectionClosed comes once, last;
  client streams start in increasing odd order, even ones only for pushes the app made, none
  above a GOAWAY we sent;
* the output parses as HTTP/2 frames whose header blocks decode with one HPACK decoder; while the
  client is well-behaved, the h2 client accepts every byte (state machine, flow control,
  response header validation, content-length); per stream, a response's status, headers, body
  and trailers are what its app sent (or a 500 / 4xx it did not), nothing follows END_STREAM
  or RST_STREAM but RST_STREAM, and HEAD / 204 / 304 carry no DATA;
* core buffers stay within Config limits: queued request body <= body_buffer_size + one fed
  chunk, outbound DATA waiting for window <= output_high_water + one app message, output bounded
  by what the apps sent plus a constant per input byte and per stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.frame_buffer
import h2.settings
import h2.stream
import hpack
import hyperframe.exceptions
import hyperframe.frame as hf
from _common import (
    KNOWN_ISSUES,
    App,
    Checker,
    Config,
    Driver,
    StreamStarted,
    _check_scope,
    header_problem,
    main,
    norm_headers,
    pick,
    provider,
    without_hop_fields,
)
from fuzz_http11 import make_message

CONFIGS = (
    Config(),
    Config(body_buffer_size=64, output_high_water=256, h2_max_concurrent_streams=3,
           h2_max_resets=4, h2_max_control_frames=12, keep_alive_timeout=5.0, body_timeout=None,
           shutdown_timeout=3.0, max_head_size=1024, max_body_size=4096),
    Config(body_buffer_size=16, output_high_water=1, h2_max_concurrent_streams=1, body_timeout=None,
           max_body_size=None, keep_alive_timeout=0.0, shutdown_timeout=0.0, date_header=False,
           server_header=None, root_path="/root", ws_ping_interval=None),
)
STARTS = ("preface", "alpn", "h2c")
# 408: Config.body_timeout; 414 and 431: a raw HEADERS frame whose :path or header list
# decodes past the limits (the second config's max_head_size, or any config's header count).
ERROR_STATUSES = frozenset({400, 405, 408, 413, 414, 426, 431, 500, 501})

# Request header blocks (after the pseudo-header fields every request needs).
BASE = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a"), (b":path", b"/")]
REQUESTS: tuple[list[tuple[bytes, bytes]], ...] = (
    BASE,
    BASE,
    [(b":method", b"HEAD"), *BASE[1:3], (b":path", b"/h")],
    [(b":method", b"POST"), *BASE[1:3], (b":path", b"/p?q=1"), (b"content-length", b"5")],
    [(b":method", b"POST"), *BASE[1:3], (b":path", b"/open")],
    [*BASE[:3], (b":path", b"/t"), (b"te", b"trailers")],
    [(b":method", b"OPTIONS"), *BASE[1:3], (b":path", b"*")],
    [*BASE, (b"cookie", b"a=1"), (b"cookie", b"b=2"), (b"x-long", b"v" * 300)],
    [(b":method", b"CONNECT"), (b":protocol", b"websocket"), *BASE[1:],
     (b"sec-websocket-version", b"13")],
    [(b":method", b"CONNECT"), (b":authority", b"a:443")],
    [(b":method", b"CONNECT"), (b":protocol", b"other"), *BASE[1:]],
    # malformed (RFC 9113 8.2/8.3): a stream error each
    [*BASE, (b"Upper", b"x")],
    [*BASE, (b"connection", b"close")],
    [(b":method", b"GET"), (b":scheme", b"http")],
    [*BASE, (b"te", b"gzip")],
    [*BASE, (b":path", b"/again")],
    [*BASE, (b"content-length", b"x")],
    [*BASE[:3], (b":path", b"/"), (b"host", b"b")],
    [*BASE, (b"x", b" edge ")],
)
TRAILER_BLOCKS = (
    [(b"x-checksum", b"abc")], [(b"x-empty", b""), (b"te", b"trailers")],
    # malformed (RFC 9113 8.2.1/8.2.2): a stream error each
    [(b":status", b"200")], [(b"X-Upper", b"1")], [(b"connection", b"close")],
    [(b"te", b"gzip")], [(b"x-sum", b"a "), (b"x-b", b"1")],
)
DATA_SIZES = (0, 1, 5, 100, 1000, 20_000, 70_000)
DELTAS = (0.0, 0.001, 1.0, 2.999, 3.0, 5.0, 10.0, 20.0, 60.0)
INCREMENTS = (1, 16, 1000, 65535, 2**31 - 1)
SETTINGS = (
    {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0},
    {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 10},
    {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1},
    {h2.settings.SettingCodes.MAX_FRAME_SIZE: 32768},
    {h2.settings.SettingCodes.ENABLE_PUSH: 0},
    {h2.settings.SettingCodes.ENABLE_PUSH: 1},
    {h2.settings.SettingCodes.HEADER_TABLE_SIZE: 0},
    {h2.settings.SettingCodes.HEADER_TABLE_SIZE: 65536},
    {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 0},
)
PUSH_PATHS = ("/style.css", "/a b?c=1", "relative", 5)
PUSH_HEADERS = ([], [(b"accept", b"text/css")], [(b"Bad Name", b"x")], [(b"x", b"\x00")])
# The client's configuration, shared by every run (an H2Connection never changes it).
CLIENT_CONFIG = h2.config.H2Configuration(
    client_side=True, header_encoding=None, validate_outbound_headers=False,
    normalize_outbound_headers=False, validate_inbound_headers=True)


class Client(h2.connection.H2Connection):
    """h2 in client mode, judging every byte the server writes.  GOAWAY (either way) leaves
    the streams it names free to finish (RFC 9113 6.8): h2 would refuse their frames.

    hpack's encoder (the server's, through h2) signals every header table size change in
    order, where RFC 7541 4.2 asks for the smallest and the last: a client that shrinks the
    table after growing it would refuse the first.  So the decoder's limit is the largest size
    this client ever announced.  Informational responses on a stream the client reset are
    ignored, not refused, as are the responses to pushes promised on a stream the client reset
    and a response on a stream it reset and h2 forgot (h2 would count it against the client's
    MAX_CONCURRENT_STREAMS), and a 304 is complete without the content-length it names.
    Sending request trailers makes h2 forget the request's method (it stores the trailers'
    ``:method``, none), so the answer to a HEAD with trailers would be held to its
    content-length (RFC 9113 8.1.1 exempts it): the method is kept across trailers."""

    max_table = 4096

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refused_pushes: set[int] = set()

    def send_headers(self, stream_id: int, headers: Any, *args: Any, **kwargs: Any) -> Any:
        stream = self.streams.get(stream_id)
        method = getattr(stream, "request_method", None)
        result = super().send_headers(stream_id, headers, *args, **kwargs)
        if method is not None:
            self.streams[stream_id].request_method = method  # trailers carry no :method
        return result

    def _receive_push_promise_frame(self, frame: Any) -> Any:
        frames, events = super()._receive_push_promise_frame(frame)
        if any(isinstance(f, hf.RstStreamFrame) for f in frames):
            # Promised on a stream we reset: h2 refuses the push but forgets it, and would
            # take the pushed response's HEADERS for a new stream.
            sid = frame.promised_stream_id
            self.refused_pushes.add(sid)
            self._closed_streams[sid] = h2.stream.StreamClosedBy.SEND_RST_STREAM
            self.highest_inbound_stream_id = max(self.highest_inbound_stream_id, sid)
        return frames, events

    def _receive_headers_frame(self, frame: Any) -> Any:
        if frame.stream_id in self.refused_pushes:
            h2.connection._decode_headers(self.decoder, frame.data)  # HPACK stays in step
            return [], []
        stream = self.streams.get(frame.stream_id)
        reset = stream is not None and (
            stream.state_machine.stream_closed_by is h2.stream.StreamClosedBy.SEND_RST_STREAM)
        try:
            frames, events = super()._receive_headers_frame(frame)
        except h2.exceptions.TooManyStreamsError:
            if stream is not None or self._closed_streams.get(frame.stream_id) \
                    is not h2.stream.StreamClosedBy.SEND_RST_STREAM:
                raise
            # A stream we reset that h2 already forgot: h2 takes the HEADERS for a new inbound
            # stream and refuses it under our MAX_CONCURRENT_STREAMS, before decoding it.
            h2.connection._decode_headers(self.decoder, frame.data)  # HPACK stays in step
            return [], []
        except h2.exceptions.ProtocolError:
            if not reset:
                raise
            # RFC 9113 5.4.2: frames the server sent before our RST_STREAM reached it (a 103
            # here) are ignored; h2 refuses them.  The header block was decoded first.
            return [], []
        for event in events:
            if isinstance(event, h2.events.ResponseReceived) and (event.headers or [(0, 0)])[0] \
                    == (b":status", b"304"):
                # RFC 9110 8.6: a 304's content-length describes the resource, not the response;
                # h2 would wait for that many bytes.
                self.streams[frame.stream_id]._expected_content_length = 0
        return frames, events

    def _local_settings_acked(self) -> Any:
        changed = super()._local_settings_acked()
        self.decoder.max_allowed_table_size = self.max_table
        return changed

    def _receive_goaway_frame(self, frame: Any) -> Any:
        result = super()._receive_goaway_frame(frame)
        self.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        return result

    def close_connection(self, *args: Any, **kwargs: Any) -> None:
        super().close_connection(*args, **kwargs)
        self.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN


class H2App(App):
    """The HTTP/2 side of the ASGI rules where they differ from HTTP/1.1: connection-specific
    response fields are checked, then dropped; trailers and 103 links are checked as fields,
    and server push exists."""

    def __init__(self, sid: int, scope: dict[str, Any]) -> None:
        super().__init__(sid, scope)
        self.h2_hints = 0  # 103 responses that must reach the wire

    def problem(self, message: Any) -> str | None:
        mtype = message.get("type") if type(message) is dict else None
        if mtype == "http.response.push":
            if "http.response.push" not in self.extensions:
                return "push without the extension"
            if self.state not in ("head", "body"):
                return "push out of order"
            path = message.get("path")
            if type(path) is not str or not path.startswith("/"):
                return "bad push path"
            return header_problem(message.get("headers"))
        if mtype == "http.response.start" and self.state == "init":
            headers = message.get("headers")
            bad = header_problem(headers)
            if bad:
                return bad
            kept = without_hop_fields(headers or ())
            return super().problem({**message, "headers": kept})
        if mtype == "http.response.trailers" and self.state == "trailers":
            return super().problem(message) or header_problem(message.get("headers"))
        return super().problem(message)

    def refused(self, message: dict[str, Any], problem: str | None) -> None:
        # HTTP/2 checks content-length before the head leaves: a refused body gets the 500.
        # Misuse after the response completed changes nothing on the wire.
        if self.state != "done":
            self.state = "broken"

    def accepted(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.push":
            return
        if message["type"] == "http.response.early_hint" and self.state == "init":
            self.h2_hints += bool(message["links"])
        super().accepted(message)


class View:
    """What the client saw of one stream."""

    def __init__(self) -> None:
        self.status: int | None = None  # the final status
        self.informational: list[int] = []
        self.headers: list[tuple[bytes, bytes]] = []
        self.data = b""
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.ended = False  # END_STREAM seen
        self.reset = False  # RST_STREAM seen


class H2Driver(Driver):
    """``Driver`` with an HTTP/2 client on the other end (see the module docstring)."""

    def __init__(self, config: Config, check: Checker, start: str, strict: bool,
                 trace: list[str] | None) -> None:
        self.client = Client(CLIENT_CONFIG)
        self.judging = True  # the client's state still models the server's (no raw frames)
        self.strict = strict
        self.views: dict[int, View] = {}
        self.promised: set[int] = set()
        self.pushes: list[int] = []  # even streams started, checked once the output is read
        self.last_started = 0  # the highest client stream the server started
        self.client_reset: set[int] = set()  # streams the client reset (or may have)
        self.unacked: dict[int, int] = {}  # DATA the client received and did not credit back
        # h2 applies a SETTINGS change at the first ACK, even one for an earlier frame: the
        # client changes settings only with none unacknowledged.
        self.settings_unacked = 1
        self.grew_stream = False  # the client opened a stream's window past the initial size
        self.goaway_last: int | None = None
        self.frames = h2.frame_buffer.FrameBuffer(server=False)
        self.frames.max_frame_size = 16384
        self.hpack = hpack.Decoder()
        self.first_frame = True
        self.pending = b""
        self.max_message = 0
        self.carrier = start
        if start in ("preface", "alpn"):
            self.client.initiate_connection()  # before the server's SETTINGS arrive
            self.take_client_output()
        super().__init__(config, check, trace=trace, alpn="h2" if start == "alpn" else None)
        if start == "h2c":
            # RFC 7540 3.2: the request, then (with no wait for the 101) the preface.
            settings = self.client.initiate_upgrade_connection() or b""
            self.pending = (
                b"GET /up HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nHTTP2-Settings: "
                + settings.rstrip(b"=") + b"\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n"
            )
            self.take_client_output()
            self.views[1] = View()

    # -- the client --------------------------------------------------------------------------

    def take_client_output(self) -> None:
        self.pending += self.client.data_to_send()

    def sendable(self, sid: int) -> bool:
        """The client may still send on ``sid`` (h2 closes a stream it is asked to misuse)."""
        stream = self.client.streams.get(sid)
        return stream is not None and stream.state_machine.state in (
            h2.stream.StreamState.OPEN, h2.stream.StreamState.HALF_CLOSED_REMOTE)

    def client_call(self, what: str | Callable[[], str], call: Any, *args: Any,
                    **kwargs: Any) -> bool:
        """Make the h2 client write something; False if h2 refuses (the op is skipped, and a
        refusal may have changed h2's state, so its verdict on our output stops counting).
        ``what`` names the call in the trace (a callable: formatted only when tracing)."""
        try:
            call(*args, **kwargs)
        except (h2.exceptions.H2Error, ValueError, KeyError) as exc:
            if self.trace is not None:
                self.log(f"client {_text(what)}: refused by h2 ({type(exc).__name__}); "
                         "no longer judging")
            self.judging = False
            self.take_client_output()
            return False
        if self.trace is not None:
            self.log(f"client {_text(what)}")
        self.take_client_output()
        return True

    def raw(self, what: str, data: bytes) -> None:
        """Bytes the h2 client did not write: from now on its verdict is no longer ours."""
        if self.trace is not None:
            self.log(f"client raw {what}: {data[:60]!r}")
        self.judging = False
        self.pending += data

    def flush(self, n: int) -> None:
        """Feed the first ``n`` pending client bytes (0: all of them)."""
        n = n or len(self.pending)
        if self.feed(self.pending[:n]):
            self.pending = self.pending[n:]

    def feed(self, data: bytes, force: bool = False) -> bool:
        if self.closed or self.eof_sent or not data:
            return False
        self.budget += 8 * len(data) + 128  # answers to PING, SETTINGS, refused streams ...
        return super().feed(data, force)

    def _count_output(self, message: dict[str, Any]) -> None:
        super()._count_output(message)
        if message.get("type") == "http.response.push":
            self.budget += 512
        self.max_message = max(self.max_message, len(message.get("body", b"")))

    # -- checks ------------------------------------------------------------------------------

    def _on_event(self, event: Any, ended_now: set[int]) -> None:
        if not isinstance(event, StreamStarted):
            super()._on_event(event, ended_now)
            return
        check, sid = self.check, event.stream_id
        if self.closed:
            check(False, "event-after-close", repr(event))
        check(sid not in self.apps, "stream-ids", f"stream {sid} started twice")
        if sid % 2:
            check(sid > self.last_started, "stream-ids",
                  f"client stream {sid} after {self.last_started}")
            self.last_started = sid
            check(self.goaway_last is None or sid <= self.goaway_last, "started-after-goaway",
                  f"stream {sid} above our GOAWAY's {self.goaway_last}")
        else:
            self.pushes.append(sid)
        _check_scope(check, event.scope)
        self.apps[sid] = H2App(sid, event.scope)
        self.budget += 512

    def _check_h2_output(self, out: bytes) -> None:
        buffer = self.frames
        buffer.add_data(out)
        try:
            for frame in buffer:
                self._frame(frame)
        except (h2.exceptions.ProtocolError, hpack.HPACKError,
                hyperframe.exceptions.HyperframeError) as exc:
            self.check(False, "h2-output", f"our bytes do not decode: {exc!r}")
        if self.judging:
            try:
                for event in self.client.receive_data(out):
                    if isinstance(event, h2.events.SettingsAcknowledged):
                        self.settings_unacked -= 1
                    if isinstance(event, h2.events.DataReceived) and event.stream_id:
                        sid = event.stream_id
                        self.unacked[sid] = self.unacked.get(sid, 0) + (
                            event.flow_controlled_length or 0)
            except h2.exceptions.ProtocolError as exc:
                self.check(False, "h2-client-rejects", f"the h2 client refused: {exc!r}")
                self.judging = False
            self.take_client_output()  # SETTINGS and PING acknowledgements

    def _frame(self, frame: Any) -> None:
        check = self.check
        if self.trace is not None:
            self.log(f"  server: {type(frame).__name__}({frame.stream_id}) {sorted(frame.flags)}")
        if self.first_frame:
            check(isinstance(frame, hf.SettingsFrame), "h2-output", f"not SETTINGS: {frame!r}")
            self.first_frame = False
        sid = frame.stream_id
        if isinstance(frame, hf.GoAwayFrame):
            last = frame.last_stream_id
            check(self.goaway_last is None or last <= self.goaway_last, "goaway-grows",
                  f"{last} after {self.goaway_last}")
            self.goaway_last = last
            return
        if not sid:
            return
        view = self.views.get(sid)
        if isinstance(frame, hf.PushPromiseFrame):
            promised = frame.promised_stream_id
            check(promised % 2 == 0 and promised not in self.promised, "bad-push",
                  f"promised {promised}")
            self.hpack.decode(frame.data, raw=True)
            self.promised.add(promised)
            self.views[promised] = View()
            return
        if view is None:
            check(False, "unknown-stream-frame", f"{frame!r} on a stream never opened")
            return
        if isinstance(frame, hf.RstStreamFrame):
            view.reset = True
            return
        if isinstance(frame, hf.WindowUpdateFrame):
            return  # the client may still send on a stream we ended (half-closed)
        if view.ended or view.reset:
            check(False, "frame-after-end", f"{type(frame).__name__} on stream {sid} after its end")
        app = self.apps.get(sid)
        if isinstance(frame, hf.HeadersFrame):
            fields = self.hpack.decode(frame.data, raw=True)
            if view.status is None:
                if not (fields[:1] and fields[0][0] == b":status"):
                    check(False, "bad-response-head", repr(fields))
                status = int(fields[0][1])
                if 100 <= status < 200:
                    view.informational.append(status)
                else:
                    view.status = status
                    view.headers = list(fields[1:])
                    self._check_head(view, app, sid)
            else:
                view.trailers = list(fields)
        elif isinstance(frame, hf.DataFrame):
            check(view.status is not None and view.trailers is None, "data-out-of-place",
                  f"DATA on stream {sid} before a response head or after trailers")
            view.data += frame.data
            if app is not None and app.flushed:
                check(not app.no_body or not frame.data, "body-not-allowed",
                      f"stream {sid}: DATA for HEAD, 204 or 304")
                if not app.body.startswith(view.data):
                    check(False, "wrong-body",
                          f"stream {sid}: {view.data[:80]!r} vs {app.body[:80]!r}")
        if "END_STREAM" in frame.flags:
            view.ended = True
            self._check_complete(view, app, sid)

    def _check_head(self, view: View, app: App | None, sid: int) -> None:
        check = self.check
        if app is None or not app.flushed or app.kind != "http":
            ok = view.status in ERROR_STATUSES or (app is not None and app.kind == "websocket")
            check(ok, "wrong-status", f"stream {sid}: unexpected {view.status}")
            return
        check(view.status == app.status, "wrong-status", f"{view.status} != {app.status}")
        expected = [(n, v) for n, v in without_hop_fields(norm_headers(app.headers))
                    if not (app.status == 204 and n == b"content-length")]
        check(view.headers[: len(expected)] == expected, "wrong-headers",
              f"stream {sid}: {view.headers!r} does not start with {expected!r}")
        hints = view.informational.count(103)
        check(hints == getattr(app, "h2_hints", 0), "missing-103",
              f"stream {sid}: {view.informational}")

    def _check_complete(self, view: View, app: App | None, sid: int) -> None:
        if app is None or not app.flushed or app.kind != "http":
            return
        check = self.check
        check(app.state == "done", "early-end", f"stream {sid} ended while the app is {app.state}")
        if app.state == "done":
            check(view.data == app.body, "wrong-body",
                  f"stream {sid}: {view.data[:80]!r} != {app.body[:80]!r}")
            expected = without_hop_fields(norm_headers(app.trailer_headers))
            if app.trailers and expected:
                check(norm_headers(view.trailers or []) == expected,
                      "wrong-trailers", f"{view.trailers!r} != {expected!r}")

    def may_end_early(self, app: App) -> bool:
        view = self.views.get(app.sid)
        return (app.sid in self.client_reset or app.sid in self.client.refused_pushes
                or (view is not None and view.reset)
                # Config.body_timeout (the first config only): a 408 or RST_STREAM(CANCEL)
                # for a body the app has not had whole (the model does not time the client).
                or (self.config.body_timeout is not None and not app.got_all))

    def _check_state(self) -> None:
        super()._check_state()
        for sid in self.pushes:
            self.check(sid in self.promised, "stream-ids", f"stream {sid} was never promised")
        self.pushes.clear()
        proto = self.conn._proto
        streams = getattr(proto, "_streams", None)
        if streams is None or self.conn.http_version != "2":
            return
        bound = self.config.output_high_water + self.max_message + 128  # + our 500's body
        for sid, stream in streams.items():
            if len(stream.out) > bound:
                self.check(False, "output-queue-unbounded",
                           f"stream {sid}: {len(stream.out)} bytes wait for the window")

    # -- client frame helpers ---------------------------------------------------------------

    def open_sids(self) -> list[int]:
        return sorted(s for s in self.views if s % 2 and not self.views[s].reset)


def request_frame(p: Any, drv: H2Driver) -> None:
    """A well-formed request from the h2 client (headers may still be malformed HTTP)."""
    client = drv.client
    headers = list(pick(p, REQUESTS))
    end = p.ConsumeIntInRange(0, 2) == 0
    try:
        sid = client.get_next_available_stream_id()
    except h2.exceptions.H2Error:
        return
    if drv.client_call(lambda: f"HEADERS {sid} {headers[:4]!r} end={end}", client.send_headers,
                       sid, headers, end_stream=end):
        drv.views.setdefault(sid, View())


def data_frame(p: Any, drv: H2Driver, sid: int) -> None:
    client = drv.client
    size = pick(p, DATA_SIZES)
    end = p.ConsumeIntInRange(0, 1) == 1
    if not drv.sendable(sid):
        return
    size = min(size, client.local_flow_control_window(sid))
    drv.client_call(f"DATA {sid} {size} end={end}", client.send_data, sid, b"d" * size,
                    end_stream=end)


def raw_frame(p: Any, drv: H2Driver) -> None:
    """A frame the h2 client would not write: bad ids, flags, lengths, sizes or HPACK."""
    kind = p.ConsumeIntInRange(0, 11)
    sids = drv.open_sids() or [1]
    # 31 bits, as on the wire (RFC 9113 4.1): past 2^31-1 the id wraps to a live stream.
    sid = pick(p, [*sids, 0, 2, 0x7FFFFFFF, max(sids) + 2]) & 0x7FFFFFFF
    drv.client_reset.add(sid)  # whatever this frame does, the stream may end early
    if sid % 2:
        drv.views.setdefault(sid, View())  # the server may answer any frame with RST_STREAM
    if kind == 0:  # HEADERS, never indexed (the server's HPACK table stays as the client's)
        enc = hpack.Encoder()
        block = enc.encode([hpack.NeverIndexedHeaderTuple(n, v) for n, v in pick(p, REQUESTS)])
        frame: Any = _frame(hf.HeadersFrame, sid, block)
        frame.flags.add("END_HEADERS")
        if p.ConsumeIntInRange(0, 1):
            frame.flags.add("END_STREAM")
        if p.ConsumeIntInRange(0, 3) == 0:  # split into CONTINUATION frames
            frame.flags.discard("END_HEADERS")
            frame.data, rest = block[:3], block[3:]
            cont = _frame(hf.ContinuationFrame, sid, rest)
            if p.ConsumeIntInRange(0, 3):
                cont.flags.add("END_HEADERS")
            drv.raw("HEADERS+CONTINUATION", frame.serialize() + cont.serialize())
            drv.views.setdefault(sid, View())
            return
        drv.views.setdefault(sid, View())
        data = frame.serialize()
    elif kind == 1:
        frame = _frame(hf.DataFrame, sid, b"x" * pick(p, DATA_SIZES[:5]))
        if p.ConsumeIntInRange(0, 1):
            frame.flags.add("END_STREAM")
        if p.ConsumeIntInRange(0, 1):
            frame.flags.add("PADDED")
            frame.pad_length = p.ConsumeIntInRange(0, 255)
        data = frame.serialize()
    elif kind == 2:
        frame = _frame(hf.RstStreamFrame, sid)
        frame.error_code = p.ConsumeIntInRange(0, 14)
        data = frame.serialize()
    elif kind == 3:
        frame = hf.WindowUpdateFrame(pick(p, [0, *sids]))
        frame.window_increment = pick(p, (0, *INCREMENTS))
        data = frame.serialize()
    elif kind == 4:
        frame = hf.SettingsFrame(0)
        frame.settings = {p.ConsumeIntInRange(0, 9): p.ConsumeIntInRange(0, 2**32 - 1)}
        if p.ConsumeIntInRange(0, 3) == 0:
            frame.flags.add("ACK")
            frame.settings = {}
        data = frame.serialize()
    elif kind == 5:
        frame = hf.PingFrame(0, b"12345678")
        if p.ConsumeIntInRange(0, 1):
            frame.flags.add("ACK")
        data = frame.serialize()
    elif kind == 6:
        frame = _frame(hf.PriorityFrame, sid)
        frame.depends_on = pick(p, [sid, 0, 1])
        frame.stream_weight = p.ConsumeIntInRange(0, 255)
        data = frame.serialize()
    elif kind == 7:
        frame = _frame(hf.PushPromiseFrame, sid, 2, b"")
        frame.flags.add("END_HEADERS")
        data = frame.serialize()
    elif kind == 8:  # an undecodable or oversized header block
        frame = _frame(hf.HeadersFrame, sid, p.ConsumeBytes(p.ConsumeIntInRange(0, 64)))
        frame.flags.add("END_HEADERS")
        data = frame.serialize()
    elif kind == 9:  # a frame of an unknown type (must be ignored) or a bad length
        body = p.ConsumeBytes(p.ConsumeIntInRange(0, 16))
        ftype = p.ConsumeIntInRange(0, 255)
        data = len(body).to_bytes(3, "big") + bytes([ftype, p.ConsumeIntInRange(0, 255)])
        data += sid.to_bytes(4, "big") + body
    elif kind == 10:
        frame = hf.GoAwayFrame(0)
        frame.last_stream_id = pick(p, [0, *sids])
        frame.error_code = p.ConsumeIntInRange(0, 14)
        data = frame.serialize()
    else:
        data = p.ConsumeBytes(p.ConsumeIntInRange(1, 256))
    drv.raw(f"frame {kind}", data)


def _text(what: str | Callable[[], str]) -> str:
    return what if isinstance(what, str) else what()


def _frame(cls: Any, sid: int, *args: Any) -> Any:
    """A hyperframe frame on any stream id, 0 included where the frame type forbids it."""
    frame = cls(sid or 1, *args)
    frame.stream_id = sid
    return frame


def push_message(p: Any) -> dict[str, Any]:
    return {"type": "http.response.push", "path": pick(p, PUSH_PATHS),
            "headers": pick(p, PUSH_HEADERS)}


def run_one(data: bytes, tolerate: Any = KNOWN_ISSUES, trace: list[str] | None = None) -> None:
    """Run one input; raises ``Violation`` (or whatever escaped the core) on failure."""
    run(provider(data), tolerate, trace)


def run(p: Any, tolerate: Any = KNOWN_ISSUES, trace: list[str] | None = None) -> None:
    config = pick(p, CONFIGS)
    start = pick(p, STARTS)
    strict = p.ConsumeIntInRange(0, 1) == 1
    ending = p.ConsumeIntInRange(0, 2)
    drv = H2Driver(config, Checker(tolerate), start, strict, trace)
    client = drv.client
    while p.remaining_bytes() and not (drv.closed and not drv.any_running):
        op = p.ConsumeIntInRange(0, 31)
        # What an op chooses from, computed only for the ops that choose (no side effects).
        sids = drv.open_sids() if 8 <= op < 16 else []
        running = drv.running if 16 <= op < 27 else []
        http = [app for app in running if app.kind == "http"]
        if op < 5:  # feed part of what the client wrote (0: all of it)
            drv.flush(p.ConsumeIntInRange(0, 255))
        elif op < 8:
            request_frame(p, drv)
        elif op < 10:
            if sids:
                data_frame(p, drv, pick(p, sids))
        elif op == 10:
            if sids:
                sid = pick(p, sids)
                if not drv.sendable(sid):
                    continue
                if p.ConsumeIntInRange(0, 1):
                    drv.client_call(f"END_STREAM {sid}", client.end_stream, sid)
                else:
                    block = pick(p, TRAILER_BLOCKS)
                    drv.client_call(f"trailers {sid} {block!r}", client.send_headers, sid,
                                    block, end_stream=True)
        elif op == 11:
            if sids:
                sid = pick(p, sids)
                code = pick(p, (h2.errors.ErrorCodes.CANCEL, h2.errors.ErrorCodes.NO_ERROR))
                stream = client.streams.get(sid)
                if stream is not None and not stream.closed:
                    drv.client_reset.add(sid)
                    drv.client_call(f"RST_STREAM {sid}", client.reset_stream, sid, code)
        elif op == 12:  # window: give back what was read, or open more
            sid = pick(p, [0, *sids])
            increment = pick(p, INCREMENTS)
            stream = client.streams.get(sid)
            if sid and (stream is None or stream.closed):
                continue
            if sid and p.ConsumeIntInRange(0, 1):
                unacked = drv.unacked.pop(sid, 0)
                if unacked:
                    drv.client_call(f"ack {sid} {unacked}", client.acknowledge_received_data,
                                    unacked, sid)
            elif sid and drv.settings_unacked:
                continue  # a pending INITIAL_WINDOW_SIZE could make the increment overflow
            else:
                drv.grew_stream = drv.grew_stream or bool(sid)
                drv.client_call(f"WINDOW_UPDATE {sid} +{increment}",
                                client.increment_flow_control_window, increment, sid or None)
        elif op == 13:
            settings = pick(p, SETTINGS)
            if drv.settings_unacked or (
                    drv.grew_stream and h2.settings.SettingCodes.INITIAL_WINDOW_SIZE in settings):
                continue  # h2 would overflow the client's own window (its refusal, not ours)
            drv.settings_unacked += 1
            table = settings.get(h2.settings.SettingCodes.HEADER_TABLE_SIZE)
            if table is not None:
                client.max_table = max(client.max_table, table)
                drv.hpack.max_allowed_table_size = client.max_table
            size = settings.get(h2.settings.SettingCodes.MAX_FRAME_SIZE)
            if size is not None:
                drv.frames.max_frame_size = max(drv.frames.max_frame_size, size)
            drv.client_call(f"SETTINGS {dict(settings)}", client.update_settings, settings)
        elif op == 14:
            if p.ConsumeIntInRange(0, 1) or not sids:
                drv.client_call("PING", client.ping, b"fuzzping")
            else:
                sid = pick(p, sids)
                drv.client_call(f"PRIORITY {sid}", client.prioritize, sid, weight=32)
        elif op == 15:
            if p.ConsumeIntInRange(0, 3) == 0:
                drv.client_call("GOAWAY", client.close_connection)
            elif not strict:
                raw_frame(p, drv)
        elif op < 19:
            if http:
                drv.receive(pick(p, http))
        elif op < 24:
            if http:
                app = pick(p, http)
                drv.send(app, make_message(p, app))
        elif op == 24:
            if http:
                drv.send(pick(p, http), push_message(p))
        elif op < 27:
            if running:
                app = pick(p, running)
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
            drv.raw("bytes", p.ConsumeBytes(p.ConsumeIntInRange(1, 512)))
    drv.finish(ending)


if __name__ == "__main__":
    main(run_one, "fuzz_http2")
