"""Property-based and stateful tests of the HTTP/2 core (asgi_sansio._http2 through the
``ServerConnection`` contract).

Every test plays the driver itself, with no event loop.  The peer is h2 in *client* mode
(``tests.helpers.H2Client``): it writes the requests and decodes every byte the server writes,
so any frame it cannot accept (``h2.exceptions.ProtocolError``) fails the property.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
from h2.errors import ErrorCodes
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes
from hypothesis import event as hyp_event
from hypothesis import given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
)

from asgi_sansio import (
    AppMisuseError,
    ClientDisconnected,
    Config,
    ConnectionClosed,
    ServerConnection,
    StreamEnded,
    StreamReadable,
    StreamStarted,
    StreamWritable,
)
from tests.conftest import steps
from tests.helpers import H2Client, H2Reply, h2_frames
from tests.strategies import (
    H2_BAD_FRAMES,
    H2BadFrame,
    H2Req,
    h2_invalid_frames,
    h2_requests,
    h2_valid_frames,
    splits,
)

CLIENT = ("10.0.0.1", 5555)
SERVER = ("10.0.0.2", 80)

# --------------------------------------------------------------------------------------------
# Split invariance: the same interleaved streams, cut anywhere, give the same ASGI view and
# the same responses
# --------------------------------------------------------------------------------------------

def client_bytes(reqs: list[H2Req], order: list[int]) -> tuple[H2Client, bytes, list[int]]:
    """The client's whole byte stream: requests interleaved in ``order`` (stream indexes, one
    entry per frame group).  Deterministic, so each run rebuilds an identical client."""
    client = H2Client(settings={SettingCodes.ENABLE_PUSH: 0})
    sids: list[int] = []
    progress = [0] * len(reqs)
    for index in order:
        req = reqs[index]
        step = progress[index]
        progress[index] += 1
        last = len(req.chunks)  # steps: 0 = HEADERS, 1..n = DATA, n+1 = trailers / END
        if step == 0:
            sid = client.c.get_next_available_stream_id()
            sids.append(sid)
            fields = [(b":method", req.method), (b":scheme", b"http"),
                      (b":authority", b"example.com"), (b":path", req.path), *req.headers]
            client.raw_request(sid, fields, end=False)
        elif step <= last:
            client.c.send_data(sids[index], req.chunks[step - 1])
        elif req.trailers:
            client.c.send_headers(sids[index], [(b"x-trailer", b"t")], end_stream=True)
        else:
            client.c.end_stream(sids[index])
    return client, client.data(), sids


@st.composite
def interleavings(draw: st.DrawFn) -> tuple[list[H2Req], list[int]]:
    reqs = draw(st.lists(h2_requests(), min_size=1, max_size=5))
    remaining = [len(r.chunks) + 2 for r in reqs]
    # Streams open in order (RFC 9113 5.1.1: ids increase), the rest interleaves freely.
    order: list[int] = []
    opened = 0
    while any(remaining):
        choices = [i for i in range(opened) if remaining[i]]
        if opened < len(reqs):
            choices.append(opened)
        index = draw(st.sampled_from(choices))
        if index == opened:
            opened += 1
        remaining[index] -= 1
        order.append(index)
    return reqs, order


@st.composite
def cuts(draw: st.DrawFn, data: bytes) -> list[bytes]:
    points = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=12))))
    if draw(st.integers(0, 4)) == 0:
        points = list(range(1, min(len(data), 120)))  # byte by byte through the preface
    pieces, last = [], 0
    for point in [*points, len(data)]:
        if point > last:
            pieces.append(data[last:point])
            last = point
    return pieces


@dataclass
class AppView:
    scope: dict[str, Any]
    body: bytes = b""
    messages: list[dict[str, Any]] = field(default_factory=list)
    responded: bool = False


def echo_response(view: AppView) -> list[dict[str, Any]]:
    digest = b"%d:%s" % (len(view.body), view.scope["path"].encode())
    return [
        {"type": "http.response.start", "status": 200,
         "headers": [(b"content-type", b"text/plain"), (b"x-method",
                                                       view.scope["method"].encode())]},
        {"type": "http.response.body", "body": digest, "more_body": True},
        {"type": "http.response.body", "body": view.body},
    ]


def run_pieces(reqs: list[H2Req], order: list[int], pieces: list[bytes] | None
               ) -> tuple[dict[int, AppView], dict[int, H2Reply]]:
    client, data, sids = client_bytes(reqs, order)
    conn = ServerConnection(Config(date_header=False), now=0.0, client=CLIENT, server=SERVER)
    views: dict[int, AppView] = {}
    ended: list[int] = []

    def drive() -> None:
        for event in conn.pop_events():
            if isinstance(event, StreamStarted):
                views[event.stream_id] = AppView(event.scope)
            elif isinstance(event, StreamEnded):
                ended.append(event.stream_id)
            else:
                assert not isinstance(event, ConnectionClosed)
        for sid, view in views.items():
            while not view.responded:
                msg = conn.receive(sid)
                if msg is None:
                    break
                view.messages.append(msg)
                assert msg["type"] == "http.request", msg
                view.body += msg["body"]
                if not msg["more_body"]:
                    for message in echo_response(view):
                        conn.send(sid, message, 0.0)
                    view.responded = True
                    conn.app_finished(sid, 0.0)
        out = conn.data_to_send()
        client.feed(out)  # raises if the server wrote anything h2 cannot accept

    for piece in pieces if pieces is not None else [data]:
        conn.receive_data(piece, 0.0)
        drive()
        drive()
    assert sorted(ended) == sorted(sids) == sorted(views)
    return views, {sid: client.reply(sid) for sid in sids}


@given(data=st.data(), layout=interleavings())
def test_split_invariance(data: st.DataObject, layout: tuple[list[H2Req], list[int]]) -> None:
    # Any cut of the client's bytes (prior knowledge, so the preface sniffing too) gives the
    # same scopes, bodies and message shape per stream, and the same decoded responses.
    reqs, order = layout
    _, whole, _ = client_bytes(reqs, order)
    pieces = data.draw(cuts(whole), label="pieces")
    note(f"{len(pieces)} pieces")
    ref_views, ref_replies = run_pieces(reqs, order, None)
    views, replies = run_pieces(reqs, order, pieces)
    assert views.keys() == ref_views.keys()
    for sid, view in views.items():
        ref = ref_views[sid]
        assert view.scope == ref.scope
        assert view.body == ref.body == b"".join(reqs[sid // 2].chunks)
        # HTTP-RX-03/05: more_body=True until one final False, then nothing else before
        # the response.
        flags = [m["more_body"] for m in view.messages]
        assert flags[-1] is False and all(flags[:-1])
        headers = view.scope["headers"]
        assert headers[0] == (b"host", b"example.com")  # HTTP-SCOPE-11
        cookies = [v for n, v in reqs[sid // 2].headers if n == b"cookie"]
        joined = [v for n, v in headers if n == b"cookie"]
        assert joined == ([b"; ".join(cookies)] if cookies else [])  # AMB-07
    for sid, reply in replies.items():
        ref = ref_replies[sid]
        assert (reply.headers, reply.body, reply.ended, reply.reset) == (
            ref.headers, ref.body, ref.ended, ref.reset)
        assert reply.status == 200 and reply.ended and reply.reset is None


BODY_TIMEOUT = 5.0


@given(steps=st.lists(st.tuples(st.sampled_from(["data", "tick", "read"]),
                                st.sampled_from([0.0, 0.5, 1.0, 3.0, 4.9, 5.0, 7.0])),
                      max_size=14))
def test_body_timeout_fires_after_the_first_quiet_gap(steps: list[tuple[str, float]]) -> None:
    # Config.body_timeout over HTTP/2, against a model: with window to spare, a stream's
    # upload times out at the first timer firing body_timeout after the client's last DATA
    # (or its HEADERS), whatever the app reads, and get_timer() always names that moment.
    conn = ServerConnection(Config(body_timeout=BODY_TIMEOUT, date_header=False), now=0.0,
                            client=CLIENT, server=SERVER, alpn="h2")
    client = H2Client()
    now = last = 0.0
    timed_out = False

    def exchange() -> None:
        for _ in range(20):
            data = client.data()
            if data:
                conn.receive_data(data, now)
            out = conn.data_to_send()
            if out:
                client.feed(out)
            if not data and not out:
                return

    exchange()
    sid = client.request(b"POST", body=b"x", end=False)
    exchange()
    started = [e for e in conn.pop_events() if isinstance(e, StreamStarted)]
    assert [e.stream_id for e in started] == [sid]
    for kind, dt in steps:
        now += dt
        if kind == "data" and not timed_out:
            client.send_body(sid, b"y", end=False)
            exchange()
            last = now
        elif kind == "tick":
            conn.handle_timer(now)
            exchange()
            timed_out = timed_out or now >= last + BODY_TIMEOUT
        elif kind == "read":
            message = conn.receive(sid)
            assert message is None or message["type"] == (
                "http.disconnect" if timed_out else "http.request")
        exchange()
        reply = client.reply(sid)
        if timed_out:
            assert reply.status == 408 and reply.ended, (now, last)
            assert StreamEnded(sid) in conn.pop_events()
            break
        assert reply.status is None and reply.reset is None, (now, last)
        assert conn.get_timer() == last + BODY_TIMEOUT



# --------------------------------------------------------------------------------------------
# Invalid frames: whatever valid frames came first, the RFC's error and nothing escapes
# --------------------------------------------------------------------------------------------

# Core deviations from RFC 9113 that h2_invalid_frames() found (xfail below until fixed):
# a RST_STREAM on an idle stream is ignored (6.4 says PROTOCOL_ERROR on the connection), and a
# SETTINGS ACK with a payload is a PROTOCOL_ERROR (6.5 says FRAME_SIZE_ERROR).
H2_DEVIATIONS: frozenset[str] = frozenset()  # rules the core breaks, left out of the property


def assert_refused(bad: H2BadFrame, prefix: bytes, cut: list[int]) -> None:
    client = H2Client()
    conn = ServerConnection(Config(date_header=False), now=0.0, client=CLIENT, server=SERVER,
                            alpn="h2")
    conn.receive_data(client.data(), 0.0)  # the preface and the client's SETTINGS
    client.feed(conn.data_to_send())
    wire = client.data() + prefix + bad.wire  # the SETTINGS ACK, then the frames
    conn.data_to_send()
    out = b""
    last = 0
    for point in [*cut, len(wire)]:
        if point > last and not conn.closed:
            conn.receive_data(wire[last:point], 0.0)  # peer input never raises
            out += conn.data_to_send()
            conn.pop_events()
            last = point
    frames = h2_frames(out)
    errors = [(type(f).__name__, f.stream_id, f.error_code) for f in frames
              if type(f).__name__ in ("GoAwayFrame", "RstStreamFrame")]
    assert len(errors) == 1, (bad.name, errors)  # the valid frames before it provoke nothing
    kind, sid, code = errors[0]
    assert code in bad.codes, (bad.name, ErrorCodes(code).name)
    if kind == "GoAwayFrame":
        # A connection error (or a stream error the server chose to make one, 5.4.1): the
        # GOAWAY is the last frame and the connection is over.
        assert type(frames[-1]).__name__ == "GoAwayFrame" and conn.closed
    else:
        assert bad.stream and sid == bad.stream, (bad.name, sid)


@given(prefix=st.lists(h2_valid_frames(), max_size=6), bad=h2_invalid_frames(H2_DEVIATIONS),
       data=st.data())
def test_invalid_frames_end_in_the_rfc_error(prefix: list[bytes], bad: H2BadFrame,
                                             data: st.DataObject) -> None:
    # RFC 9113 5.4: a connection error is a GOAWAY with the section's code, a stream error an
    # RST_STREAM (or a GOAWAY); after any valid frames, however the bytes arrive.
    joined = b"".join(prefix)
    total = len(joined) + len(bad.wire) + 9  # the SETTINGS ACK first
    pieces = data.draw(splits(bytes(total)), label="pieces")
    cut = list(itertools.accumulate(len(piece) for piece in pieces))[:-1]
    assert_refused(bad, joined, cut)


@pytest.mark.parametrize("name", sorted(H2_BAD_FRAMES))
def test_each_invalid_frame_gets_its_rfc_error(name: str) -> None:
    """Every rule once, whatever the property above happens to draw.  The last to pass was a
    SETTINGS ACK with a payload (PROTOCOL_ERROR, where 6.5 asks for FRAME_SIZE_ERROR)."""
    assert_refused(H2_BAD_FRAMES[name], b"", [])

# --------------------------------------------------------------------------------------------
# The stateful machine
# --------------------------------------------------------------------------------------------

LIMITS = {
    "body_buffer_size": 4096,  # the advertised stream window
    "output_high_water": 3000,
    "h2_max_concurrent_streams": 4,
    "h2_max_resets": 12,
    "h2_max_control_frames": 60,
    "h2_flood_window": 10.0,
    "keep_alive_timeout": 15.0,
    "shutdown_timeout": 3.0,
    "max_body_size": None,
    "date_header": False,
    "body_timeout": None,  # its 408s and resets have tests of their own; not modelled here
}
WINDOW = LIMITS["body_buffer_size"]
# Core bugs (xfail in test_http2.py: test_app_returning_while_the_tail_waits_for_the_window_
# keeps_the_response, test_body_after_the_final_one_is_misuse_even_while_output_waits): while a
# final body's tail waits for the window the stream is not DONE, so app_finished() resets it and
# another body is accepted.  While they stand the machine neither checks the first nor sends the
# second; set to False once fixed.
TAIL_PENDING_BUGS = False
# About one draw in eight: for the rules that end a connection.  (st.integers(0, n) == 0 would
# fire far more often: hypothesis favours boundary values.)
RARE = st.sampled_from([False, False, False, True, False, False, False, False])
RARER = st.sampled_from([False] * 9 + [True] + [False] * 15)  # one in 25


@dataclass
class StreamModel:
    sid: int
    scope: dict[str, Any]
    sent: int = 0  # flow-controlled body bytes the client sent
    client_done: bool = False  # the client ended (or reset) its side
    read: int = 0  # body bytes the app pulled
    read_done: bool = False
    waiting: bool = False  # receive() said None; a StreamReadable is owed
    blocked: bool = False  # writable() said False; a StreamWritable is owed
    resp: str = "init"  # init -> head -> body -> done
    trailers_ok: bool = False
    declared: int | None = None
    out: int = 0
    ended: bool = False
    finished: bool = False
    failed: bool = False  # a send raised: the app stops sending and finishes


class H2Machine(RuleBasedStateMachine):
    """Interleaved streams, window updates, resets, floods, GOAWAY, slow and misbehaving apps,
    timers and shutdown, against the invariants of the connection contract."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.conn = ServerConnection(Config(**LIMITS), now=0.0, client=CLIENT, server=SERVER,
                                     alpn="h2")
        self.client = H2Client(auto_ack=False,
                               settings={SettingCodes.INITIAL_WINDOW_SIZE: 2048})
        self.streams: dict[int, StreamModel] = {}
        self.opened: list[int] = []  # every stream id the client opened
        self.closed_seen = False
        self.eof = False
        self.shutdown_at: float | None = None
        self.blocked_seen = False
        self.goaway_from_client = False
        self.exchange()
        # Ignore our MAX_CONCURRENT_STREAMS, as a client racing the preface could: the
        # server must refuse the excess streams one by one.
        self.client.c.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] = 1000
        self.client.c.remote_settings.acknowledge()

    # -- plumbing --------------------------------------------------------------------------

    def pump(self) -> bool:
        moved = False
        for event in self.conn.pop_events():
            moved = True
            note(f"event {event!r}"[:160])
            assert not self.closed_seen, f"event after ConnectionClosed: {event!r}"
            if isinstance(event, StreamStarted):
                sid = event.stream_id
                assert sid not in self.streams and sid in self.opened
                assert event.scope["http_version"] == "2"
                self.streams[sid] = StreamModel(sid, event.scope)
            elif isinstance(event, StreamEnded):
                model = self.streams[event.stream_id]
                assert not model.ended, "StreamEnded twice"
                model.ended = True
            elif isinstance(event, StreamReadable):
                self.streams[event.stream_id].waiting = False
            elif isinstance(event, StreamWritable):
                self.streams[event.stream_id].blocked = False
            elif isinstance(event, ConnectionClosed):
                self.closed_seen = True
                assert all(m.ended for m in self.streams.values()), "closed before StreamEnded"
        out = self.conn.data_to_send()
        if out:
            moved = True
            self.client.feed(out)  # the output always decodes (h2 raises ProtocolError)
        return moved

    def coverage(self) -> None:
        """Hypothesis statistics (--hypothesis-show-statistics): what the runs reached."""
        for reply in self.client.replies.values():
            if reply.reset is not None:
                hyp_event(f"server reset {ErrorCodes(reply.reset).name}")
            if reply.trailers:
                hyp_event("trailers on the wire")
        for goaway in self.client.goaways:
            hyp_event(f"GOAWAY {ErrorCodes(goaway.error_code).name}")
        if any(m.out > 2048 for m in self.streams.values()):
            hyp_event("a response larger than the client's window")
        if self.blocked_seen:
            hyp_event("writable() said False")

    def exchange(self) -> None:
        for _ in range(100):
            moved = self.pump()
            data = self.client.data()
            if data and not self.conn.closed:
                self.conn.receive_data(data, self.now)
                moved = True
            if not moved:
                return
        raise AssertionError("never went quiet")

    def client_open(self) -> list[int]:
        """Streams the client may still send on."""
        c = self.client.c
        return [sid for sid in self.opened
                if sid in c.streams and c.streams[sid].open and not c.streams[sid].closed
                and not (self.streams.get(sid) and self.streams[sid].client_done)]

    def live(self) -> list[int]:
        return sorted(sid for sid, m in self.streams.items() if not m.finished)

    def sending(self, *states: str) -> list[int]:
        """Apps that may still send, optionally only those in one of the response ``states``."""
        return [sid for sid in self.live() if not self.streams[sid].failed
                and not self.streams[sid].blocked
                and (not states or self.streams[sid].resp in states)]

    # -- the client ------------------------------------------------------------------------

    @rule(method=st.sampled_from([b"GET", b"POST", b"HEAD"]), te=st.booleans(),
          end=st.booleans(), cl=st.integers(0, 3000) | st.none())
    def open_stream(self, method: bytes, te: bool, end: bool, cl: int | None) -> None:
        if self.conn.closed or self.shutdown_at is not None or self.goaway_from_client:
            return
        headers = [(b"te", b"trailers")] if te else []
        body = b""
        if cl is not None:
            # A declared body goes out whole with the head (the known content-length bug,
            # test_http2.py, turns any mismatch into a connection error).
            headers.append((b"content-length", b"%d" % cl))
            body = b"c" * cl
            end = True
        sid = self.client.request(method, b"/s", headers=headers, body=body, end=end)
        self.opened.append(sid)
        self.exchange()
        model = self.streams.get(sid)
        if model is not None:
            model.sent = len(body)
            model.client_done = end

    @rule(data=st.data(), size=st.integers(0, 5000), end=st.booleans())
    def send_body(self, data: st.DataObject, size: int, end: bool) -> None:
        if self.conn.closed:
            return
        sids = [s for s in self.client_open() if s in self.streams]
        if not sids:
            return
        sid = data.draw(st.sampled_from(sids), label="stream")
        c = self.client.c
        size = min(size, c.local_flow_control_window(sid), c.max_outbound_frame_size)
        try:
            c.send_data(sid, b"d" * size, end_stream=end)
        except (StreamClosedError, ProtocolError):
            return
        model = self.streams[sid]
        model.sent += size
        model.client_done = end
        self.exchange()

    @rule(data=st.data())
    def fill_window(self, data: st.DataObject) -> None:
        if self.conn.closed:
            return
        # As much as the window allows: the server must not grant more than the app read.
        sids = [s for s in self.client_open() if s in self.streams]
        if not sids:
            return
        sid = data.draw(st.sampled_from(sids), label="stream")
        c = self.client.c
        total = 0
        while (window := min(c.local_flow_control_window(sid), c.max_outbound_frame_size)) > 0:
            c.send_data(sid, b"f" * window)
            total += window
        self.streams[sid].sent += total
        self.exchange()

    @rule(data=st.data())
    def client_reset(self, data: st.DataObject) -> None:
        if self.conn.closed:
            return
        sids = [s for s in self.opened if s in self.client.c.streams
                and not self.client.c.streams[s].closed]
        if not sids:
            return
        sid = data.draw(st.sampled_from(sids), label="stream")
        self.client.c.reset_stream(sid, ErrorCodes.CANCEL)
        if sid in self.streams:
            self.streams[sid].client_done = True
        self.exchange()

    @rule(data=st.data(), whole=st.booleans())
    def client_window_update(self, data: st.DataObject, whole: bool) -> None:
        if self.conn.closed:
            return
        owed = [s for s, n in self.client.unacked.items() if n]
        if not owed:
            return
        sid = data.draw(st.sampled_from(owed), label="stream")
        amount = self.client.unacked[sid]
        if not whole:
            amount = data.draw(st.integers(1, amount), label="amount")
        self.client.unacked[sid] -= amount
        c = self.client.c
        if sid in c.streams and not c.streams[sid].closed:
            c.acknowledge_received_data(amount, sid)
        else:
            c.increment_flow_control_window(amount)
        self.exchange()

    @rule(size=st.sampled_from([512, 2048, 8192, 65535]))
    def client_settings(self, size: int) -> None:
        if self.conn.closed:
            return
        # RFC 9113 6.9.2: changes every stream's send window by the difference
        self.client.c.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: size})
        self.exchange()

    @rule(count=st.integers(1, 3))
    def client_pings(self, count: int) -> None:
        if self.conn.closed:
            return
        for i in range(count):
            self.client.c.ping(i.to_bytes(8, "big"))
        self.exchange()

    @rule(kind=st.sampled_from(["eof", "goaway"]), roll=RARER)
    def client_leaves(self, kind: str, roll: bool) -> None:
        if self.conn.closed:
            return
        # Rare (it ends the run's interesting part): EOF, or a GOAWAY.
        if not roll or (kind == "goaway" and self.goaway_from_client):
            return
        if kind == "eof":
            self.eof = True
            self.conn.receive_data(b"", self.now)
            self.exchange()
            assert self.conn.closed
            return
        from hyperframe.frame import GoAwayFrame

        # Sent raw: h2's own client would stop decoding once it sent one.  RFC 9113 6.8: the
        # streams in flight finish, no new ones start, the connection closes once they are done.
        frame = GoAwayFrame(0)
        frame.last_stream_id = 0
        self.conn.receive_data(frame.serialize(), self.now)
        self.goaway_from_client = True
        self.exchange()
        if all(m.ended and m.finished for m in self.streams.values()):
            assert self.conn.closed

    # -- the apps --------------------------------------------------------------------------

    def _send(self, model: StreamModel, message: dict[str, Any]) -> bool:
        if not self.conn.writable(model.sid):
            self.blocked_seen = True
            model.blocked = True  # the driver holds send() until StreamWritable
            return False
        try:
            self.conn.send(model.sid, message, self.now)
        except AppMisuseError as exc:
            assert exc.rule, exc
            hyp_event("AppMisuseError")
            model.failed = True
            return False
        except ClientDisconnected:
            hyp_event("ClientDisconnected")
            assert model.ended, "ClientDisconnected before StreamEnded"
            model.failed = True
            return False
        finally:
            self.exchange()
        return True

    @rule(data=st.data())
    def app_receive(self, data: st.DataObject) -> None:
        if not self.live():
            return
        model = self.streams[data.draw(st.sampled_from(self.live()), label="stream")]
        if model.waiting:
            return  # a real app is parked until StreamReadable
        msg = self.conn.receive(model.sid)
        self.exchange()
        if msg is None:
            assert not model.ended, "receive() blocks on an ended stream"
            model.waiting = True
            return
        if msg["type"] == "http.disconnect":
            assert model.ended or model.resp == "done"
            return
        assert msg["type"] == "http.request" and not model.read_done, msg
        model.read += len(msg["body"])
        model.read_done = not msg["more_body"]

    @rule(data=st.data(), status=st.sampled_from([200, 204, 404]), cl=st.booleans(),
          trailers=st.booleans(), hint=st.booleans())
    def app_start(self, data: st.DataObject, status: int, cl: bool, trailers: bool,
                  hint: bool) -> None:
        if not self.sending("init"):
            return
        model = self.streams[data.draw(st.sampled_from(self.sending("init")), label="stream")]
        if hint:
            self._send(model, {"type": "http.response.early_hint", "links": [b"</a>; rel=x"]})
            if model.failed:
                return
        trailers = trailers and "http.response.trailers" in model.scope["extensions"]
        headers = []
        if cl:
            model.declared = data.draw(st.integers(0, 9000), label="content-length")
            headers.append((b"content-length", b"%d" % model.declared))
        if self._send(model, {"type": "http.response.start", "status": status,
                              "headers": headers, "trailers": trailers}):
            model.resp = "head"
            model.trailers_ok = trailers
            if status == 204 or model.scope["method"] == "HEAD":
                model.declared = None  # SRV-03/04: no body on the wire, anything goes

    @rule(data=st.data(), size=st.integers(0, 9000), more=st.booleans())
    def app_body(self, data: st.DataObject, size: int, more: bool) -> None:
        if not self.sending("head", "body"):
            return
        model = self.streams[data.draw(st.sampled_from(self.sending("head", "body")),
                                       label="stream")]
        if model.declared is not None:
            size = min(size, model.declared - model.out)
            more = more or model.out + size < model.declared
        if self._send(model, {"type": "http.response.body", "body": b"b" * size,
                              "more_body": more}):
            model.out += size
            model.resp = "body" if more else ("trailers" if model.trailers_ok else "done")

    @rule(data=st.data())
    def app_trailers(self, data: st.DataObject) -> None:
        if not self.sending("trailers"):
            return
        model = self.streams[data.draw(st.sampled_from(self.sending("trailers")), label="stream")]
        if self._send(model, {"type": "http.response.trailers",
                              "headers": [(b"x-t", b"1")]}):
            model.resp = "done"

    @rule(data=st.data(), message=st.sampled_from([
        {"type": "http.response.body", "body": b"x"},
        {"type": "http.response.start", "status": 200},
        {"type": "http.response.start", "status": 99},
        {"type": "http.response.start", "status": 200, "headers": [(b"a\n", b"b")]},
        {"type": "http.response.body", "body": "str"},
        {"type": "http.response.trailers", "headers": []},
        {"type": "http.nonsense"},
    ]), roll=RARE)
    def app_misbehaves(self, data: st.DataObject, message: dict[str, Any], roll: bool) -> None:
        if not self.sending() or not roll:
            return
        model = self.streams[data.draw(st.sampled_from(self.sending()), label="stream")]
        allowed = (
            (message["type"] == "http.response.body" and isinstance(message["body"], bytes)
             and model.resp in ("head", "body")
             and (model.declared is None or model.out + 1 <= model.declared))
            or (message["type"] == "http.response.start" and message["status"] == 200
                and "headers" not in message and model.resp == "init")
            or (message["type"] == "http.response.trailers" and model.resp == "trailers")
        )
        if allowed:
            return  # only misuse here
        reply = self.client.replies.get(model.sid)
        if TAIL_PENDING_BUGS and model.resp in ("trailers", "done") and not (
                reply is not None and (reply.ended or reply.reset is not None)):
            return
        self._send(model, message)
        if model.blocked:
            return  # not writable: the driver holds send() until StreamWritable
        assert model.failed, f"{message!r} in {model.resp} was accepted"

    @rule(data=st.data(), raised=st.booleans(), early=RARE)
    def app_finish(self, data: st.DataObject, raised: bool, early: bool) -> None:
        # Mostly apps that are done (or failed); now and then one that walks away mid-way.
        sids = [sid for sid in self.live() if early or self.streams[sid].failed
                or self.streams[sid].resp == "done"]
        if not sids:
            return
        model = self.streams[data.draw(st.sampled_from(sids), label="stream")]
        self.app_finish_now(model, raised)

    @rule(data=st.data(), steps=st.integers(1, 6))
    def app_progresses(self, data: st.DataObject, steps: int) -> None:
        """A well-behaved app takes its next natural steps: read, start, body, trailers, finish."""
        for _ in range(steps):
            sids = [sid for sid in self.live() if not self.streams[sid].blocked]
            if not sids:
                return
            model = self.streams[data.draw(st.sampled_from(sids), label="stream")]
            if model.failed or model.resp == "done" or model.ended:
                self.app_finish_now(model, raised=False)
            elif not model.read_done and not model.waiting and data.draw(st.booleans()):
                msg = self.conn.receive(model.sid)
                self.exchange()
                if msg is None:
                    model.waiting = True
                elif msg["type"] == "http.request":
                    model.read += len(msg["body"])
                    model.read_done = not msg["more_body"]
            elif model.resp == "init":
                trailers = "http.response.trailers" in model.scope["extensions"]
                if self._send(model, {"type": "http.response.start", "status": 200,
                                      "trailers": trailers}):
                    model.resp = "head"
                    model.trailers_ok = trailers
            elif model.resp in ("head", "body"):
                size = data.draw(st.integers(0, 6000), label="size")
                more = data.draw(st.booleans(), label="more")
                if self._send(model, {"type": "http.response.body", "body": b"p" * size,
                                      "more_body": more}):
                    model.out += size
                    model.resp = "body" if more else ("trailers" if model.trailers_ok else "done")
            elif model.resp == "trailers" and self._send(
                    model, {"type": "http.response.trailers", "headers": [(b"x-p", b"1")]}):
                model.resp = "done"

    def app_finish_now(self, model: StreamModel, raised: bool) -> None:
        self.conn.app_finished(model.sid, self.now, RuntimeError("app") if raised else None)
        model.finished = True
        self.exchange()
        # HTTP-ERR-01/02: whatever state it left, the stream is over on the wire now, unless
        # the response was complete and its tail still waits for the client's window (a misuse
        # after the final body fails the app, not the response it completed: HTTP-TX-07/08).
        if model.resp != "done":
            assert model.ended

    # -- time and shutdown -----------------------------------------------------------------

    @rule(dt=st.sampled_from([0.5, 1.0, 2.0, 1.0, 0.5, 4.0, 0.5, 1.0, 2.0, 0.5] * 2 + [16.0]))
    def advance(self, dt: float) -> None:
        self.now += dt
        timer = self.conn.get_timer()
        if timer is not None and timer <= self.now:
            self.conn.handle_timer(self.now)
        self.exchange()

    @rule(roll=RARER)
    def shutdown(self, roll: bool) -> None:
        if self.conn.closed or self.shutdown_at is not None or not roll:
            return  # rare: it ends the run's interesting part
        self.shutdown_at = self.now
        self.conn.shutdown(self.now)
        self.exchange()

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def closed_is_last_and_total(self) -> None:
        assert self.conn.closed == self.closed_seen
        if self.closed_seen:
            # No app waits forever: every stream ended, receive() never parks again.
            assert all(m.ended for m in self.streams.values())
            assert self.conn.get_timer() is None
        if self.eof:
            assert self.conn.closed
        if self.goaway_from_client and all(m.ended and m.finished for m in self.streams.values()):
            assert self.conn.closed  # RFC 9113 6.8: nothing left in flight
        if self.shutdown_at is not None and not self.closed_seen:
            timer = self.conn.get_timer()
            assert timer is not None and timer <= self.shutdown_at + LIMITS["shutdown_timeout"]

    @invariant()
    def running_apps_are_counted_exactly(self) -> None:
        # The core counts the streams whose app runs (the idle deadline depends on it).
        for conn in getattr(self.conn, "twins", (self.conn,)):  # both of a fast-path Twin
            proto = conn._proto
            assert proto._apps_running == sum(not s.app_done for s in proto._streams.values())

    @invariant()
    def buffered_body_within_the_window(self) -> None:
        # SRV-06: the server never lets a stream's unread body grow past the window it
        # advertised; a client filling every window it is given cannot make it buffer more.
        for model in self.streams.values():
            if not model.ended:
                assert model.sent - model.read <= WINDOW, model

    @invariant()
    def nobody_waits_on_an_ended_stream(self) -> None:
        for model in self.streams.values():
            if model.ended:
                assert not model.waiting, f"stream {model.sid}: StreamReadable never came"
                assert not model.blocked, f"stream {model.sid}: StreamWritable never came"

    @invariant()
    def completed_responses_are_never_reset(self) -> None:
        # HTTP-TX-07/08: once the app sent its final body (and trailers), the response is the
        # server's to deliver, whenever the app returns and however slowly the client reads.
        if TAIL_PENDING_BUGS:
            return
        for model in self.streams.values():
            reply = self.client.replies.get(model.sid)
            if model.resp == "done" and not model.failed and reply is not None:
                assert reply.reset != ErrorCodes.INTERNAL_ERROR, model

    @invariant()
    def finished_responses_are_on_the_wire(self) -> None:
        for model in self.streams.values():
            reply = self.client.replies.get(model.sid)
            if model.resp == "done" and not model.failed and reply is not None and (
                    reply.reset is None and not self.closed_seen and reply.ended):
                assert reply.status is not None

    def teardown(self) -> None:
        self.coverage()
        if not self.conn.closed:
            if self.shutdown_at is None:
                self.shutdown_at = self.now
                self.conn.shutdown(self.now)
                self.exchange()
            if not self.conn.closed:
                # Apps that never finish: the shutdown deadline aborts them.
                self.now = self.shutdown_at + LIMITS["shutdown_timeout"]
                self.conn.handle_timer(self.now)
                self.exchange()
        assert self.conn.closed and self.closed_seen
        for model in self.streams.values():
            assert model.ended
            if not model.finished:
                # No app waits forever: receive() answers, a send() raises, finishing is quiet.
                assert self.conn.receive(model.sid) == {"type": "http.disconnect"}
                try:
                    self.conn.send(model.sid, {"type": "http.response.body"}, self.now)
                    raise AssertionError("send() on a closed connection returned")
                except ClientDisconnected:
                    pass
                self.conn.app_finished(model.sid, self.now, None)
                model.finished = True
        self.pump()


TestH2Machine = H2Machine.TestCase
# The example count comes from the profile (tests/conftest.py): "deep" for bug hunts.
TestH2Machine.settings = settings(stateful_step_count=steps(80))
