"""HTTP/2 request limits, graceful shutdown's two GOAWAYs, and PRIORITY_UPDATE floods.

Raw frames (or h2 in *client* mode, ``tests.helpers.H2Client``) go in; the exact frames the
server writes come back decoded by that independent client.  The limits are HTTP/1.1's
(``max_header_count`` 431, ``max_target_length`` 414, ``max_head_size`` 431), answered on the
offending stream alone.
"""

from __future__ import annotations

from typing import Any

import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import DataFrame, GoAwayFrame, PingFrame
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.events import CloseConnection

from asgi_sansio import ConnectionClosed, StreamEnded, StreamStarted
from asgi_sansio._http2 import SHUTDOWN_PING_WAIT

from .conftest import examples
from .helpers import H2Harness, goaway_frames, h2_frames, rst_frames
from .test_http2 import ws_accepted

NO_ERROR = int(ErrorCodes.NO_ERROR)
REFUSED_STREAM = int(ErrorCodes.REFUSED_STREAM)
# What the h2 client sends besides the fields a test adds: :method, :scheme, :authority, :path.
BASE_FIELDS = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"example.com"),
               (b":path", b"/")]


def closed(h: H2Harness) -> int:
    return sum(1 for e in h.events if isinstance(e, ConnectionClosed))


def started(h: H2Harness) -> list[int]:
    return [e.stream_id for e in h.events if isinstance(e, StreamStarted)]


def alive(h: H2Harness, path: bytes = b"/alive") -> int:
    """The connection still serves a fresh request end to end."""
    sid = h.request(path=path)
    assert h.receive(sid) == {"type": "http.request", "body": b"", "more_body": False}
    h.respond(sid, body=b"alive")
    h.finish(sid)
    reply = h.reply(sid)
    assert (reply.status, reply.body, reply.ended) == (200, b"alive", True)
    assert not h.conn.closed
    return sid


def refused_with(h: H2Harness, sid: int, status: int, *, request_open: bool = False) -> None:
    """A complete short response on ``sid``, the app never called, the connection untouched.

    A request still sending its body also gets RST_STREAM(NO_ERROR) after the response (SRV-07).
    """
    reply = h.reply(sid)
    assert reply.status == status and reply.ended
    assert reply.reset == (NO_ERROR if request_open else None)
    assert int(reply.header(b"content-length") or -1) == len(reply.body) > 0
    assert sid not in started(h)
    assert not h.client.goaways and not h.conn.closed


def list_size(fields: list[tuple[bytes, bytes]]) -> int:
    """RFC 9113 6.5.2: the size SETTINGS_MAX_HEADER_LIST_SIZE bounds."""
    return sum(32 + len(n) + len(v) for n, v in fields)


# -- max_header_count -------------------------------------------------------------------------


def test_header_count_at_the_limit_is_served_one_more_is_431() -> None:
    h = H2Harness(max_header_count=5)
    # :authority becomes the host field, as HTTP/1.1's Host counts: 1 + 4 = the limit.
    ok = h.request(headers=[(b"x-%d" % i, b"v") for i in range(4)])
    assert ok in started(h)
    assert [n for n, _ in h.scope(ok)["headers"]] == [b"host", b"x-0", b"x-1", b"x-2", b"x-3"]
    over = h.request(headers=[(b"x-%d" % i, b"v") for i in range(5)])
    refused_with(h, over, 431)
    assert h.reply(over).body == b"Request Header Fields Too Large"
    h.respond(ok)
    h.finish(ok)
    assert h.reply(ok).status == 200
    alive(h)


def test_cookie_crumbs_count_as_one_field() -> None:
    # RFC 9113 8.2.3: a browser sends one cookie field per cookie; HTTP/1.1 would carry one line
    h = H2Harness(max_header_count=3)
    sid = h.request(headers=[(b"cookie", b"c%d=%d" % (i, i)) for i in range(20)])
    assert sid in started(h)
    headers = h.scope(sid)["headers"]
    assert headers == [(b"host", b"example.com"),
                       (b"cookie", b"; ".join(b"c%d=%d" % (i, i) for i in range(20)))]


def test_431_leaves_other_streams_alone() -> None:
    h = H2Harness(max_header_count=4)
    upload = h.request(b"POST", body=b"first", end=False)
    over = h.request(headers=[(b"x-%d" % i, b"v") for i in range(10)])
    refused_with(h, over, 431)
    h.client.send_body(upload, b" second")
    h.exchange()
    assert h.read_body(upload) == b"first second"
    h.respond(upload, body=b"done")
    h.finish(upload)
    assert (h.reply(upload).status, h.reply(upload).body) == (200, b"done")
    assert started(h) == [upload]
    alive(h)


def test_431_on_an_open_request_resets_the_rest_of_it() -> None:
    # SRV-07: the answer is complete; the body the client still sends is not wanted
    h = H2Harness(max_header_count=2)
    sid = h.request(b"POST", headers=[(b"x-%d" % i, b"v") for i in range(3)], end=False)
    refused_with(h, sid, 431, request_open=True)
    assert [f.error_code for f in rst_frames(h.client.raw) if f.stream_id == sid] == [NO_ERROR]
    late = DataFrame(sid, flags=["END_STREAM"])
    late.data = b"late body"  # raw: the client library knows the stream is closed
    h.feed(late.serialize())
    h.exchange()
    assert not h.client.goaways
    alive(h)


@settings(max_examples=examples(30))
@given(limit=st.integers(1, 12), extra=st.integers(0, 24))
def test_header_count_boundary(limit: int, extra: int) -> None:
    h = H2Harness(max_header_count=limit)
    sid = h.request(headers=[(b"x-f%d" % i, b"v") for i in range(extra)])
    fields = extra + 1  # and host, from :authority
    if fields > limit:
        refused_with(h, sid, 431)
    else:
        assert len(h.scope(sid)["headers"]) == fields
    alive(h)


# -- max_target_length ------------------------------------------------------------------------


def test_path_at_the_limit_is_served_one_longer_is_414() -> None:
    h = H2Harness(max_target_length=32)
    target = b"/" + b"a" * 20 + b"?q=" + b"b" * 8  # the query counts, as on HTTP/1.1
    assert len(target) == 32
    ok = h.request(path=target)
    assert h.scope(ok)["query_string"] == b"q=" + b"b" * 8
    over = h.request(path=target + b"b")
    refused_with(h, over, 414)
    assert h.reply(over).body == b"URI Too Long"  # RFC 9110 15.5.15
    h.respond(ok)
    h.finish(ok)
    assert h.reply(ok).status == 200


@settings(max_examples=examples(30))
@given(limit=st.integers(8, 64), length=st.integers(1, 80))
def test_path_length_boundary(limit: int, length: int) -> None:
    h = H2Harness(max_target_length=limit)
    sid = h.request(path=b"/" + b"p" * (length - 1))
    if length > limit:
        refused_with(h, sid, 414)
    else:
        assert sid in started(h)


def test_websocket_connect_is_held_to_the_same_limits() -> None:
    # RFC 8441 extended CONNECT carries a :path too
    h = H2Harness(max_target_length=16, max_header_count=3)
    ws = [(b"sec-websocket-version", b"13")]
    long_path = h.request(b"CONNECT", path=b"/" + b"w" * 16, protocol=b"websocket",
                          scheme=b"https", headers=ws, end=False)
    refused_with(h, long_path, 414, request_open=True)
    many = h.request(b"CONNECT", path=b"/ws", protocol=b"websocket", scheme=b"https",
                     headers=ws + [(b"x-%d" % i, b"v") for i in range(3)], end=False)
    refused_with(h, many, 431, request_open=True)
    fine = h.request(b"CONNECT", path=b"/ws", protocol=b"websocket", scheme=b"https",
                     headers=ws, end=False)
    assert h.scope(fine)["type"] == "websocket"


# -- max_head_size (SETTINGS_MAX_HEADER_LIST_SIZE) --------------------------------------------


def test_header_list_at_the_advertised_size_is_served_one_byte_more_is_431() -> None:
    # RFC 9113 10.5.1: 431 on the stream; the connection (and its HPACK state) lives on
    limit = 4096
    h = H2Harness(max_head_size=limit)
    pad = limit - list_size([*BASE_FIELDS, (b"x-pad", b"")])
    ok = h.request(headers=[(b"x-pad", b"p" * pad)])
    assert ok in started(h)
    over = h.request(headers=[(b"x-pad", b"p" * (pad + 1))])
    refused_with(h, over, 431)
    assert h.reply(over).body == b"Request Header Fields Too Large"
    h.respond(ok)
    h.finish(ok)
    assert h.reply(ok).status == 200
    alive(h)


def test_oversized_header_block_keeps_hpack_in_sync() -> None:
    # The client's encoder adds every field of the refused block to its dynamic table; the
    # next request refers to the newest by index, which only decodes if ours did the same.
    h = H2Harness(max_head_size=2048)
    big = [(b"x-big-%d" % i, b"v" * 100) for i in range(20)]
    over = h.request(headers=[*big, (b"x-sync", b"indexed-value")])
    refused_with(h, over, 431)
    h.client.request(headers=[(b"x-sync", b"indexed-value")])
    block = h.client.data()
    assert b"indexed-value" not in block  # sent as an index into the dynamic table
    h.feed(block)
    h.exchange()
    (sid,) = started(h)
    assert h.scope(sid)["headers"][-1] == (b"x-sync", b"indexed-value")


def test_oversized_header_block_on_a_refused_stream_is_still_refused() -> None:
    # Beyond SETTINGS_MAX_CONCURRENT_STREAMS the stream is refused whatever its size, and
    # its block still goes through the decoder
    h = H2Harness(max_head_size=2048, h2_max_concurrent_streams=1)
    first = h.request(b"POST", end=False)
    # Ignore our SETTINGS_MAX_CONCURRENT_STREAMS, as a client racing the preface could.
    h.client.c.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] = 10
    h.client.c.remote_settings.acknowledge()
    extra = h.request(headers=[(b"x-big-%d" % i, b"v" * 100) for i in range(20)])
    assert h.reply(extra).reset == REFUSED_STREAM and h.reply(extra).status is None
    assert not h.client.goaways
    h.respond(first)
    h.finish(first)
    alive(h)


def test_oversized_trailers_are_dropped_with_the_rest_of_the_trailers() -> None:
    # Request trailers never reach an ASGI app: past the limit they change nothing
    h = H2Harness(max_head_size=2048)
    sid = h.request(b"POST", body=b"body", end=False)
    h.client.c.send_headers(sid, [(b"x-trailer-%d" % i, b"t" * 100) for i in range(30)],
                            end_stream=True)
    h.exchange()
    assert h.read_body(sid) == b"body"
    h.respond(sid)
    h.finish(sid)
    assert h.reply(sid).status == 200 and not h.client.goaways
    alive(h)


def test_header_list_far_past_the_limit_is_still_a_connection_error() -> None:
    # Beyond 4x the advertised size the decoding work itself is the attack: ENHANCE_YOUR_CALM,
    # as h2 always answered
    limit = 1024
    h = H2Harness(max_head_size=limit)
    ok = h.request(b"POST", end=False)
    pad = 4 * limit - list_size([*BASE_FIELDS, (b"x-pad", b"")])
    at_bound = h.request(headers=[(b"x-pad", b"p" * pad)])
    refused_with(h, at_bound, 431)
    h.request(headers=[(b"x-pad", b"p" * (pad + 1))])
    assert [(g.error_code, g.last_stream_id) for g in h.client.goaways] == [
        (ErrorCodes.ENHANCE_YOUR_CALM, at_bound)]
    assert closed(h) == 1 and StreamEnded(ok) in h.events


@settings(max_examples=examples(30))
@given(pad=st.integers(0, 5000), split=st.booleans())
def test_header_list_size_boundary(pad: int, split: bool) -> None:
    limit = 1024
    h = H2Harness(max_head_size=limit, max_header_count=1000)
    fields = [(b"x-pad", b"p" * pad)]
    if split:  # the same bytes over many small fields
        fields = [(b"x-p%d" % i, b"p" * 8) for i in range(pad // 48)]
    size = list_size([*BASE_FIELDS, *fields])
    sid = h.request(headers=fields)
    if size <= limit:
        assert sid in started(h) and not h.client.goaways
    elif size <= 4 * limit:
        refused_with(h, sid, 431)
        alive(h)
    else:
        assert [g.error_code for g in h.client.goaways] == [ErrorCodes.ENHANCE_YOUR_CALM]
        assert sid not in started(h)


# -- PRIORITY_UPDATE (RFC 9218): read, ignored, counted -----------------------------------------


def priority_update(prioritized: int, value: bytes = b"u=1, i") -> bytes:
    """RFC 9218 7.1: frame type 0x10 on stream 0, the prioritized stream id, a Priority value."""
    payload = prioritized.to_bytes(4, "big") + value
    return len(payload).to_bytes(3, "big") + b"\x10\x00" + b"\x00" * 4 + payload


def fresh_flood_window(h: H2Harness) -> None:
    """Start a new accounting window, so the client's SETTINGS at the preface do not count."""
    h.now = h.conn.config.h2_flood_window


def test_a_few_priority_updates_are_harmless() -> None:
    h = H2Harness(h2_max_control_frames=10)
    sid = h.request(b"POST", end=False)
    h.take_output()
    # For the open stream, and one for a stream not opened yet (RFC 9218 7.1 allows it).
    h.feed(priority_update(sid, b"u=0") + priority_update(sid, b"u=7, i")
           + priority_update(sid + 2))
    assert h.take_output() == b""  # nothing to answer
    h.client.send_body(sid, b"body")
    h.exchange()
    assert h.read_body(sid) == b"body"
    h.respond(sid, body=b"answer")
    h.finish(sid)
    assert (h.reply(sid).status, h.reply(sid).body) == (200, b"answer")
    alive(h)


def test_priority_update_flood_is_enhance_your_calm() -> None:
    h = H2Harness(h2_max_control_frames=10)
    sid = h.request(b"POST", end=False)
    fresh_flood_window(h)
    h.feed(priority_update(sid) * 10)  # exactly the allowance
    h.exchange()
    assert not h.client.goaways and not h.conn.closed
    h.feed(priority_update(sid))
    h.exchange()
    assert [(g.error_code, g.last_stream_id) for g in goaway_frames(h.client.raw)] == [
        (ErrorCodes.ENHANCE_YOUR_CALM, sid)]
    assert closed(h) == 1 and StreamEnded(sid) in h.events
    assert h.receive(sid) == {"type": "http.disconnect"}


def test_priority_updates_are_counted_per_flood_window() -> None:
    h = H2Harness(h2_max_control_frames=10, h2_flood_window=5.0)
    sid = h.request(b"POST", end=False)
    fresh_flood_window(h)
    h.feed(priority_update(sid) * 10)
    h.now = 10.0  # a new accounting window
    h.feed(priority_update(sid) * 10)
    h.exchange()
    assert not h.client.goaways and not h.conn.closed


@settings(max_examples=examples(30))
@given(kinds=st.lists(st.sampled_from(["priority_update", "ping", "grease"]), max_size=16))
def test_control_frames_share_one_allowance(kinds: list[str]) -> None:
    # PRIORITY_UPDATE, PING and unknown (GREASE, RFC 9113 5.5) frames cost us work and the peer
    # nothing: past h2_max_control_frames of them together, ENHANCE_YOUR_CALM.
    h = H2Harness(h2_max_control_frames=8)
    fresh_flood_window(h)
    data = b""
    for i, kind in enumerate(kinds):
        if kind == "priority_update":
            data += priority_update(1 + 2 * i)
        elif kind == "ping":
            data += b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + i.to_bytes(8, "big")
        else:
            data += b"\x00\x00\x02\x2b\x00\x00\x00\x00\x00ab"  # type 0x2b: reserved GREASE
    if data:
        h.feed(data)
    h.exchange()
    if len(kinds) > 8:
        assert [g.error_code for g in h.client.goaways] == [ErrorCodes.ENHANCE_YOUR_CALM]
    else:
        assert not h.client.goaways
        assert h.client.ping_acks == kinds.count("ping")
        alive(h)


# -- graceful shutdown with two GOAWAYs (RFC 9113 6.8) ----------------------------------------

LAST = 2**31 - 1  # the first GOAWAY's last-stream-id: it refuses nothing


def harness(**config: Any) -> H2Harness:
    return H2Harness(h2_shutdown_ping=True, **config)


def goaways(h: H2Harness) -> list[tuple[int, int]]:
    return [(g.error_code, g.last_stream_id) for g in goaway_frames(h.client.raw)]


def serve(h: H2Harness, sid: int, body: bytes = b"ok") -> None:
    h.respond(sid, body=body)
    h.finish(sid)
    assert (h.reply(sid).status, h.reply(sid).body, h.reply(sid).ended) == (200, body, True)


def test_first_goaway_names_no_stream_and_carries_a_ping() -> None:
    h = harness(shutdown_timeout=10.0)
    sid = h.request()
    h.conn.shutdown(h.now)
    h.pump()
    goaway, ping = h2_frames(h.take_output())
    assert isinstance(goaway, GoAwayFrame) and isinstance(ping, PingFrame)
    assert (goaway.stream_id, goaway.last_stream_id, goaway.error_code) == (0, LAST, NO_ERROR)
    assert (ping.stream_id, ping.flags, ping.opaque_data) == (0, set(), b"shutdown")
    assert h.conn.get_timer() == SHUTDOWN_PING_WAIT
    assert not h.conn.closed and sid in started(h)


def test_without_h2_shutdown_ping_one_goaway() -> None:
    h = H2Harness(h2_shutdown_ping=False)
    sid = h.request()
    h.conn.shutdown(h.now)
    h.pump()
    assert [type(f) for f in h2_frames(h.take_output())] == [GoAwayFrame]
    assert h.conn.get_timer() == h.conn.config.shutdown_timeout
    h.exchange()
    assert sid in started(h)


def test_streams_opened_before_the_client_saw_the_goaway_are_served() -> None:
    h = harness(shutdown_timeout=10.0)
    s1 = h.request(b"POST", body=b"a", end=False)
    h.conn.shutdown(h.now)
    h.pump()
    first = h.take_output()  # GOAWAY + PING, still on their way to the client
    late = h.client.request(path=b"/late")
    h.feed(h.client.data())
    assert started(h) == [s1, late]
    assert goaway_frames(h.take_output()) == []  # nothing more until the ACK
    h.client.feed(first)
    h.exchange()  # the client's PING ACK goes back; the second GOAWAY names ``late``
    assert [(g.error_code, g.last_stream_id) for g in h.client.goaways] == [
        (NO_ERROR, LAST), (NO_ERROR, late)]
    newer = h.request()  # opened after a GOAWAY, which a client MUST NOT do
    assert h.reply(newer).reset == REFUSED_STREAM and newer not in started(h)
    serve(h, late, b"late")
    assert not h.conn.closed
    h.client.send_body(s1, b"b")
    h.exchange()
    assert h.read_body(s1) == b"ab"
    serve(h, s1)
    assert closed(h) == 1 and h.events[-1] == ConnectionClosed()
    ids = [last for _, last in goaways(h)]
    assert ids == [LAST, late, late], ids  # the closing GOAWAY repeats the second


def test_a_stream_behind_the_ack_in_the_same_read_is_refused() -> None:
    h = harness()
    s1 = h.request(b"POST", end=False)
    h.conn.shutdown(h.now)
    h.pump()
    h.client.feed(h.take_output())  # the client queues its PING ACK
    newer = h.client.request()  # and, against RFC 9113 6.8, a new stream behind it
    h.feed(h.client.data())
    h.exchange()
    assert h.reply(newer).reset == REFUSED_STREAM and started(h) == [s1]
    assert goaways(h) == [(NO_ERROR, LAST), (NO_ERROR, s1)]


def test_without_an_ack_the_second_goaway_follows_the_wait() -> None:
    h = harness(shutdown_timeout=10.0)
    s1 = h.request(b"POST", end=False)
    h.conn.shutdown(0.0)
    h.pump()
    h.take_output()  # the client never reads it
    h.conn.handle_timer(SHUTDOWN_PING_WAIT - 0.01)
    h.pump()
    assert h.take_output() == b"" and h.conn.get_timer() == SHUTDOWN_PING_WAIT
    h.conn.handle_timer(SHUTDOWN_PING_WAIT)
    h.pump()
    (second,) = goaway_frames(h.take_output())
    assert (second.last_stream_id, second.error_code) == (s1, NO_ERROR)
    assert h.conn.get_timer() == 10.0  # the shutdown deadline, as ever
    h.now = SHUTDOWN_PING_WAIT
    newer = h.request()
    assert h.reply(newer).reset == REFUSED_STREAM and started(h) == [s1]
    h.tick(10.0)
    assert closed(h) == 1 and StreamEnded(s1) in h.events


def test_the_wait_never_outlasts_the_shutdown_deadline() -> None:
    h = harness(shutdown_timeout=0.25)
    s1 = h.request(b"POST", end=False)
    h.conn.shutdown(0.0)
    h.pump()
    assert h.conn.get_timer() == 0.25
    h.conn.handle_timer(0.25)
    h.pump()
    assert closed(h) == 1 and StreamEnded(s1) in h.events
    assert [g.last_stream_id for g in goaway_frames(h.take_output())] == [LAST, s1]
    assert h.conn.get_timer() is None


def test_no_streams_closes_once_the_ping_is_back() -> None:
    h = harness()
    h.conn.shutdown(h.now)
    h.pump()
    first = h.take_output()
    assert not h.conn.closed  # a stream may still be on its way
    h.client.feed(first)
    h.exchange()
    assert closed(h) == 1
    assert goaways(h) == [(NO_ERROR, LAST), (NO_ERROR, 0)]


def test_no_streams_and_no_ack_closes_after_the_wait() -> None:
    h = harness()
    h.conn.shutdown(0.0)
    h.pump()
    h.conn.handle_timer(SHUTDOWN_PING_WAIT)
    h.pump()
    assert closed(h) == 1
    assert [g.last_stream_id for g in goaway_frames(h.take_output())] == [LAST, 0]


def test_a_client_goaway_during_the_wait_closes_an_idle_connection() -> None:
    # No new streams will come from a client that said GOAWAY itself: no need for the ACK
    h = harness()
    h.conn.shutdown(h.now)
    h.pump()
    client_goaway = GoAwayFrame(0)
    client_goaway.last_stream_id = 0
    h.feed(client_goaway.serialize())
    assert closed(h) == 1 and h.conn.get_timer() is None
    assert [g.last_stream_id for g in goaway_frames(h.take_output())] == [LAST, 0]


def test_only_our_ping_ack_counts() -> None:
    h = harness()
    s1 = h.request(b"POST", end=False)
    h.conn.shutdown(h.now)
    h.pump()
    h.take_output()
    h.feed(b"\x00\x00\x08\x06\x01\x00\x00\x00\x00" + b"notours!")  # an ACK of no PING of ours
    assert h.take_output() == b""
    h.feed(b"\x00\x00\x08\x06\x01\x00\x00\x00\x00" + b"shutdown")
    (second,) = goaway_frames(h.take_output())
    assert second.last_stream_id == s1
    h.feed(b"\x00\x00\x08\x06\x01\x00\x00\x00\x00" + b"shutdown")  # a repeat changes nothing
    assert h.take_output() == b"" and not h.conn.closed


def test_shutdown_twice_sends_one_pair() -> None:
    h = harness()
    sid = h.request()
    h.conn.shutdown(0.0)
    h.conn.shutdown(0.5)
    h.pump()
    h.exchange()
    assert goaways(h) == [(NO_ERROR, LAST), (NO_ERROR, sid)]
    serve(h, sid)
    assert closed(h) == 1


def test_websocket_gets_1001_and_the_goaways_name_it() -> None:
    h = harness()
    ws = ws_accepted(h)
    h.conn.shutdown(h.now, restart=False)
    h.pump()
    h.exchange()
    (close,) = [e for e in ws.poll() if isinstance(e, CloseConnection)]
    assert close.code == 1001
    assert [g.last_stream_id for g in h.client.goaways] == [LAST, ws.sid]
    ws.send(close.response(), end=True)
    assert h.receive(ws.sid) == {"type": "websocket.disconnect", "code": 1001, "reason": ""}
    h.finish(ws.sid)
    assert closed(h) == 1


@settings(max_examples=examples(40))
@given(before=st.integers(0, 3), between=st.integers(0, 3), after=st.integers(0, 2),
       acks=st.booleans())
def test_two_phase_shutdown_serves_exactly_what_came_before_the_ack(
        before: int, between: int, after: int, acks: bool) -> None:
    h = harness(shutdown_timeout=30.0)
    kept = [h.request(b"POST", end=False) for _ in range(before)]
    h.conn.shutdown(h.now)
    h.pump()
    first = h.take_output()
    kept += [h.client.request() for _ in range(between)]  # before it sees the GOAWAY
    if between:
        h.feed(h.client.data())
    if not acks:  # the wait runs out first; the client reads (and answers) late
        h.conn.handle_timer(SHUTDOWN_PING_WAIT)
        h.pump()
    h.client.feed(first)  # its ACK goes first, the later streams behind it
    late = [h.client.request() for _ in range(after)]
    data = h.client.data()
    assert data  # the ACK at least
    h.feed(data)
    h.exchange()
    assert started(h) == kept
    for sid in late:  # refused, unless the connection was gone before they came
        assert h.reply(sid).reset == (REFUSED_STREAM if kept or acks else None)
        assert h.reply(sid).status is None
    assert h.conn.closed == (not kept)
    for sid in kept:
        serve(h, sid)
    h.exchange()
    assert closed(h) == 1
    ids = [last for _, last in goaways(h)]
    assert ids[0] == LAST and set(ids[1:]) == {max(kept, default=0)}, ids
    assert ids == sorted(ids, reverse=True)




@pytest.mark.parametrize(("config", "kwargs", "status"), [
    ({"max_header_count": 2}, {"headers": [(b"x-a", b"1"), (b"x-b", b"2")]}, 431),
    ({"max_target_length": 8}, {"path": b"/" + b"t" * 8}, 414),
    ({"max_head_size": 1024}, {"headers": [(b"x-pad", b"p" * 1024)]}, 431),
    ({"max_body_size": 10}, {"headers": [(b"content-length", b"11")], "end": False}, 413),
])
def test_a_head_request_refused_by_a_limit_gets_no_body(
        config: dict[str, Any], kwargs: dict[str, Any], status: int) -> None:
    # RFC 9110 9.3.2: the same head as a GET would get, and no content
    h = H2Harness(**config)
    sid = h.request(b"HEAD", **kwargs)
    reply = h.reply(sid)
    assert (reply.status, reply.body, reply.ended) == (status, b"", True)
    assert int(reply.header(b"content-length") or 0) > 0
    data = [f for f in h2_frames(h.client.raw) if f.type == 0x0 and f.stream_id == sid]
    assert data == []
    assert sid not in started(h) and not h.client.goaways
    alive(h)
