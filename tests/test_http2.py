"""HTTP/2 core: h2 frames in, exact ASGI messages and decoded responses out.

No event loop and no sockets: ``H2Harness`` (tests/helpers.py) plays the driver, and the peer is h2
in *client* mode (``H2Client``), an implementation independent of the server's own use of h2 in
server mode.  Every byte the server writes is decoded by it, so a malformed frame, a bad header
block or a flow-control violation fails the test that produced it.
"""

from __future__ import annotations

from typing import Any

import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

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

from .helpers import H2_PREFACE, H2Client, H2Harness, goaway_frames, h2_frames, rst_frames

PROTOCOL_ERROR = int(ErrorCodes.PROTOCOL_ERROR)
INTERNAL_ERROR = int(ErrorCodes.INTERNAL_ERROR)
REFUSED_STREAM = int(ErrorCodes.REFUSED_STREAM)
ENHANCE_YOUR_CALM = int(ErrorCodes.ENHANCE_YOUR_CALM)
NO_ERROR = int(ErrorCodes.NO_ERROR)
STREAM_CLOSED = int(ErrorCodes.STREAM_CLOSED)
FRAME_SIZE_ERROR = int(ErrorCodes.FRAME_SIZE_ERROR)


def start(status: int = 200, headers: list[tuple[bytes, bytes]] | None = None,
          **extra: object) -> dict[str, object]:
    return {"type": "http.response.start", "status": status, "headers": headers or [], **extra}


def body(data: bytes = b"", more: bool = False) -> dict[str, object]:
    return {"type": "http.response.body", "body": data, "more_body": more}


def closed(h: H2Harness) -> int:
    return sum(1 for e in h.events if isinstance(e, ConnectionClosed))


def ended(h: H2Harness, sid: int) -> int:
    return sum(1 for e in h.events if e == StreamEnded(sid))


def gone_for_the_app(h: H2Harness, sid: int) -> None:
    """The stream ended once, and its app sees it: a disconnect to receive, a send that
    raises ClientDisconnected; then the app returns."""
    assert ended(h, sid) == 1
    assert h.receive(sid) == {"type": "http.disconnect"}
    with pytest.raises(ClientDisconnected):
        h.send(sid, start())
    h.finish(sid)


def check_accounting(h: H2Harness, *, all_ended: bool = True) -> None:
    """Every StreamStarted gets exactly one StreamEnded (none for streams never started), and
    ConnectionClosed, if any, comes once and last."""
    started = [e.stream_id for e in h.events if isinstance(e, StreamStarted)]
    assert len(started) == len(set(started))
    ends = [e.stream_id for e in h.events if isinstance(e, StreamEnded)]
    assert len(ends) == len(set(ends)), "a stream ended twice"
    assert set(ends) <= set(started), "StreamEnded for a stream never started"
    if all_ended:
        assert set(ends) == set(started), f"never ended: {set(started) - set(ends)}"
    if closed(h):
        assert closed(h) == 1
        after = h.events[h.events.index(ConnectionClosed()) + 1:]
        assert not after, f"events after ConnectionClosed: {after}"


def alive(h: H2Harness) -> None:
    """The connection still serves a fresh request end to end."""
    sid = h.request(path=b"/alive")
    assert h.receive(sid) == {"type": "http.request", "body": b"", "more_body": False}
    h.respond(sid, body=b"alive")
    h.finish(sid)
    reply = h.reply(sid)
    assert (reply.status, reply.body, reply.ended) == (200, b"alive", True)
    assert not h.conn.closed


# -- connection preface and settings ---------------------------------------------------------------


def _assert_our_settings(client: H2Client, config: Config) -> None:
    s = client.server_settings
    assert s[SettingCodes.MAX_CONCURRENT_STREAMS] == config.h2_max_concurrent_streams
    assert s[SettingCodes.INITIAL_WINDOW_SIZE] == config.body_buffer_size
    assert s[SettingCodes.ENABLE_CONNECT_PROTOCOL] == 1  # RFC 8441
    assert s[SettingCodes.MAX_HEADER_LIST_SIZE] == config.max_head_size


def test_alpn_h2_server_preface_settings() -> None:
    # STACK-WS-03 (ENABLE_CONNECT_PROTOCOL), SRV-06 (the window is the body buffer)
    h = H2Harness(body_buffer_size=40000, h2_max_concurrent_streams=7)
    assert h.conn.http_version == "2"
    _assert_our_settings(h.client, h.conn.config)
    # The connection window covers every stream's window, so no stream starves the others.
    assert h.client.c.outbound_flow_control_window >= 7 * 40000 - 1


def test_prior_knowledge_preface_is_sniffed_byte_by_byte() -> None:
    # RFC 9113 3.3: h2c with prior knowledge on a plain connection.
    client = H2Client()
    conn = ServerConnection(Config(), now=0.0)
    data = client.data()
    assert data.startswith(H2_PREFACE)
    for i in range(len(data)):
        conn.receive_data(data[i:i + 1], 0.0)
    assert conn.http_version == "2"
    client.feed(conn.data_to_send())
    _assert_our_settings(client, conn.config)


def test_prior_knowledge_harness_serves_a_request() -> None:
    # HTTP-SCOPE-03
    h = H2Harness(alpn=False)
    assert h.conn.http_version == "2"
    _assert_our_settings(h.client, h.conn.config)
    sid = h.request()
    assert h.scope(sid)["http_version"] == "2"
    alive(h)


def test_http11_is_not_mistaken_for_the_preface() -> None:
    conn = ServerConnection(Config(), now=0.0)
    conn.receive_data(b"PRI * HTTP/1.1\r\nHost: a\r\n\r\n", 0.0)
    assert conn.http_version == "1.1"


# -- scope -----------------------------------------------------------------------------------------


def test_scope_exact() -> None:
    # ASGI: HTTP-SCOPE-01..11, AMB-05 (one host, first), AMB-07 (cookies joined with "; ")
    client = H2Client(validate=False, settings={SettingCodes.ENABLE_PUSH: 0})
    conn = ServerConnection(Config(root_path="/api"), now=0.0, client=("1.2.3.4", 1234),
                            server=("5.6.7.8", 443), alpn="h2", state={"db": 1})
    h = H2Harness(conn, client=client)
    sid = h.request(b"POST", b"/caf%C3%A9/a%2Fb?x=%20y&z", authority=b"example.com:8443",
                    headers=[(b"x-a", b"1"), (b"cookie", b"a=1"), (b"x-a", b"2"),
                             (b"cookie", b"b=2")], end=False)
    scope = h.scope(sid)
    assert scope == {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.5"},
        "http_version": "2",
        "server": ("5.6.7.8", 443),
        "client": ("1.2.3.4", 1234),
        "scheme": "http",
        "method": "POST",
        "root_path": "/api",
        "path": "/api/café/a/b",
        "raw_path": b"/api/caf%C3%A9/a%2Fb",
        "query_string": b"x=%20y&z",
        "headers": [(b"host", b"example.com:8443"), (b"x-a", b"1"), (b"x-a", b"2"),
                    (b"cookie", b"a=1; b=2")],
        "state": {"db": 1},
        "extensions": {"http.response.early_hint": {}},  # no push: ENABLE_PUSH=0 (EXT-PUSH-01)
    }
    assert not any(name.startswith(b":") for name, _ in scope["headers"])


def test_authority_and_equal_host_give_one_host_first() -> None:
    # HTTP-SCOPE-11, AMB-05, SRV-11
    h = H2Harness()
    sid = h.request(headers=[(b"accept", b"*/*"), (b"host", b"example.com")])
    assert h.scope(sid)["headers"] == [(b"host", b"example.com"), (b"accept", b"*/*")]


def test_host_without_authority_moves_first() -> None:
    # HTTP-SCOPE-11: exactly one host, first
    h = H2Harness()
    sid = h.request(authority=None, headers=[(b"accept", b"*/*"), (b"host", b"h.example")])
    assert h.scope(sid)["headers"] == [(b"host", b"h.example"), (b"accept", b"*/*")]


def test_https_scheme_and_tls_extension() -> None:
    # HTTP-SCOPE-05, EXT-TLS-01
    tls = {"server_cert": None, "tls_version": 0x0304, "cipher_suite": 0x1301}
    h = H2Harness(ServerConnection(Config(), now=0.0, tls=tls, alpn="h2"))
    sid = h.request(scheme=b"https", headers=[(b"te", b"trailers")])
    scope = h.scope(sid)
    assert scope["scheme"] == "https"
    assert scope["extensions"]["tls"] is tls
    assert "http.response.trailers" in scope["extensions"]  # EXT-TRAILERS-03


def test_options_asterisk() -> None:
    # SRV-17
    h = H2Harness()
    sid = h.request(b"OPTIONS", b"*")
    assert h.scope(sid)["path"] == "*"


def test_state_is_a_shallow_copy_per_stream() -> None:
    # LIFE-11
    shared: dict[str, Any] = {"k": [1]}
    h = H2Harness(ServerConnection(Config(), now=0.0, alpn="h2", state=shared))
    s1, s3 = h.request(), h.request()
    a, b = h.scope(s1)["state"], h.scope(s3)["state"]
    assert a == shared and a is not shared and a is not b and a["k"] is shared["k"]


# -- request bodies --------------------------------------------------------------------------------


def test_request_body_arrives_as_several_messages() -> None:
    # HTTP-RX-01..03, HTTP-RX-05
    h = H2Harness()
    sid = h.request(b"POST", body=b"one", end=False)
    assert h.receive(sid) == {"type": "http.request", "body": b"one", "more_body": True}
    assert h.receive(sid) is None  # nothing yet: wait for StreamReadable
    h.client.send_body(sid, b"two", end=False)
    h.exchange()
    assert StreamReadable(sid) in h.events
    assert h.receive(sid) == {"type": "http.request", "body": b"two", "more_body": True}
    h.client.send_body(sid, b"three", end=True)
    h.exchange()
    assert h.receive(sid) == {"type": "http.request", "body": b"three", "more_body": False}
    h.respond(sid)
    assert h.receive(sid) == {"type": "http.disconnect"}  # HTTP-RX-04
    h.finish(sid)
    check_accounting(h)


def test_end_stream_alone_gives_an_empty_final_message() -> None:
    # HTTP-RX-02
    h = H2Harness()
    sid = h.request(b"POST", body=b"data", end=False)
    assert h.receive(sid) == {"type": "http.request", "body": b"data", "more_body": True}
    h.client.c.end_stream(sid)
    h.exchange()
    assert h.receive(sid) == {"type": "http.request", "body": b"", "more_body": False}


def test_receive_after_body_blocks_until_response_done() -> None:
    # HTTP-RX-06: long-poll apps block, then get a disconnect once the response completes
    h = H2Harness()
    sid = h.request()
    assert h.receive(sid) == {"type": "http.request", "body": b"", "more_body": False}
    assert h.receive(sid) is None
    h.respond(sid)
    assert StreamReadable(sid) in h.events
    assert h.receive(sid) == {"type": "http.disconnect"}


def test_content_length_request_body() -> None:
    h = H2Harness()
    sid = h.request(b"PUT", headers=[(b"content-length", b"5")], body=b"hello")
    assert h.read_body(sid) == b"hello"
    assert (b"content-length", b"5") in h.scope(sid)["headers"]


def test_declared_body_over_max_body_size_is_413() -> None:
    # SRV-16
    h = H2Harness(max_body_size=10)
    sid = h.request(b"POST", headers=[(b"content-length", b"11")], end=False)
    assert h.reply(sid).status == 413
    assert not h.started()
    alive(h)


def test_streamed_body_over_max_body_size_is_413_on_the_wire() -> None:
    # SRV-16
    h = H2Harness(max_body_size=10)
    sid = h.request(b"POST", body=b"x" * 11)
    reply = h.reply(sid)
    # RFC 9110's phrase on every Python (3.12 and older call it "Request Entity Too Large").
    assert (reply.status, reply.body, reply.ended) == (413, b"Content Too Large", True)
    assert not h.client.goaways


def test_streamed_body_over_max_body_size_ends_the_asgi_stream() -> None:
    # SRV-16, HTTP-RX-05 (a cut-short body goes straight to disconnect), SRV-13
    h = H2Harness(max_body_size=10)
    sid = h.request(b"POST", body=b"x" * 11)
    gone_for_the_app(h, sid)
    check_accounting(h)
    alive(h)


def test_request_body_that_stops_arriving_gets_408() -> None:
    # Config.body_timeout over HTTP/2: counted from the client's last DATA, per stream.
    h = H2Harness(body_timeout=10.0)
    sid = h.request(b"POST", body=b"part", end=False)
    other = h.request()
    assert h.receive(sid) == {"type": "http.request", "body": b"part", "more_body": True}
    assert h.conn.get_timer() == 10.0
    h.now = 5.0
    h.client.c.send_data(sid, b"")  # an empty DATA frame is not progress
    h.exchange()
    assert h.conn.get_timer() == 10.0
    h.tick(9.5)
    h.client.send_body(sid, b"more", end=False)  # at 9.5: the wait starts again
    h.exchange()
    assert h.conn.get_timer() == 19.5
    h.tick(19.4)
    assert h.reply(sid).status is None and not ended(h, sid)
    h.tick(19.5)
    reply = h.reply(sid)
    assert reply.status == 408 and reply.ended and reply.reset == ErrorCodes.NO_ERROR
    gone_for_the_app(h, sid)
    h.respond(other)  # the connection and its other streams live on
    h.finish(other)
    assert h.reply(other).status == 200
    check_accounting(h)


def test_body_timeout_after_the_response_started_cancels_the_stream() -> None:
    h = H2Harness(body_timeout=10.0)
    sid = h.request(b"POST", body=b"part", end=False)
    h.send(sid, start())
    h.send(sid, body(b"streaming", more=True))
    h.tick(10.0)
    reply = h.reply(sid)
    assert reply.status == 200 and reply.body == b"streaming" and reply.reset == ErrorCodes.CANCEL
    assert ended(h, sid) == 1
    h.finish(sid)
    alive(h)


def test_body_clock_stops_while_the_app_leaves_the_window_full() -> None:
    # The client has no window to send in: the wait is the app's, not the client's.
    h = H2Harness(body_timeout=10.0, body_buffer_size=1000, keep_alive_timeout=5.0)
    sid = h.request(b"POST", body=b"x" * 1000, end=False)
    assert h.conn.get_timer() is None
    h.tick(500.0)
    assert h.reply(sid).reset is None and not ended(h, sid)
    assert h.receive(sid) == {"type": "http.request", "body": b"x" * 1000, "more_body": True}
    # Read at a time the core was not told (after 500, its last): the first expiry only
    # restarts the wait, so a late driver cannot make it fire early.
    assert h.conn.get_timer() == 510.0
    h.tick(510.0)
    assert h.reply(sid).status is None and h.conn.get_timer() == 520.0
    h.tick(520.0)
    assert h.reply(sid).status == 408


def test_no_body_timeout_when_none_or_body_complete() -> None:
    h = H2Harness(body_timeout=None)
    sid = h.request(b"POST", body=b"part", end=False)
    assert h.conn.get_timer() is None
    h.tick(10_000.0)
    assert h.reply(sid).status is None and not ended(h, sid)
    h = H2Harness(body_timeout=10.0)
    sid = h.request(b"POST", body=b"part", end=False)
    h.client.send_body(sid, b"", end=True)
    h.exchange()
    assert h.conn.get_timer() is None
    assert h.read_body(sid) == b"part"


# -- responses -------------------------------------------------------------------------------------


def test_response_with_content_length() -> None:
    # HTTP-TX-01, HTTP-TX-06, SRV-15
    h = H2Harness()
    sid = h.request()
    h.send(sid, start(201, [(b"content-type", b"text/plain"), (b"content-length", b"5"),
                            (b"x-a", b"1"), (b"x-a", b"2")]))
    assert h.reply(sid).headers == []  # HTTP-TX-05: the head waits for the first body
    h.send(sid, body(b"hello"))
    h.finish(sid)
    reply = h.reply(sid)
    assert reply.status == 201 and reply.body == b"hello" and reply.ended
    names = [n for n, _ in reply.headers]
    assert names[:5] == [b":status", b"content-type", b"content-length", b"x-a", b"x-a"]
    assert reply.header(b"date") is not None and reply.header(b"server") == b"asgi-sansio"
    assert names.count(b"content-length") == 1
    check_accounting(h)


def test_streamed_response_without_length() -> None:
    # HTTP-TX-11: DATA frames until END_STREAM
    h = H2Harness()
    sid = h.request()
    h.send(sid, start())
    h.send(sid, body(b"a", more=True))
    assert h.reply(sid).status == 200 and h.reply(sid).body == b"a" and not h.reply(sid).ended
    h.send(sid, body(b"", more=True))
    h.send(sid, body(b"b", more=True))
    h.send(sid, body())
    reply = h.reply(sid)
    assert reply.body == b"ab" and reply.ended and reply.header(b"content-length") is None


def test_empty_response_ends_with_the_headers_frame() -> None:
    h = H2Harness()
    sid = h.request()
    h.send(sid, start(204))
    h.send(sid, body(b"ignored"))  # SRV-04: no body on the wire
    reply = h.reply(sid)
    assert reply.status == 204 and reply.ended and reply.body == b""


def test_204_drops_the_apps_content_length() -> None:
    # SRV-04, RFC 9110 8.6
    h = H2Harness()
    sid = h.request()
    h.send(sid, start(204, [(b"content-length", b"5")]))
    h.send(sid, body(b"hello"))  # decoding the reply raises in h2's client if the CL is sent
    reply = h.reply(sid)
    assert reply.status == 204 and reply.ended and reply.header(b"content-length") is None
    alive(h)


def test_head_response_keeps_the_apps_content_length_without_body() -> None:
    # SRV-03, RFC 9110 9.3.2
    h = H2Harness()
    sid = h.request(b"HEAD")
    h.send(sid, start(200, [(b"content-length", b"5")]))
    h.send(sid, body(b"hello"))
    reply = h.reply(sid)
    assert reply.header(b"content-length") == b"5" and reply.body == b"" and reply.ended


def test_connection_specific_response_headers_are_dropped() -> None:
    # SRV-09, HTTP-TX-03: the server owns the framing
    h = H2Harness()
    sid = h.request()
    h.send(sid, start(200, [(b"connection", b"close"), (b"transfer-encoding", b"chunked"),
                            (b"keep-alive", b"5"), (b"X-Mixed", b"v")]))
    h.send(sid, body(b"x"))
    names = [n for n, _ in h.reply(sid).headers]
    assert b"connection" not in names and b"transfer-encoding" not in names
    assert b"keep-alive" not in names and b"x-mixed" in names  # lowercased (HTTP-TX-02)


# Fields that make an HTTP/2 field block malformed (RFC 9113 8.2.2) wherever the app puts them.
_MALFORMED_IN_H2 = [(b"Connection", b"close"), (b"transfer-encoding", b"chunked"),
                    (b"upgrade", b"h2c"), (b"te", b"gzip")]


def test_connection_specific_trailers_push_and_denial_fields_are_dropped() -> None:
    # SRV-09: as for the response head, dropped rather than sent; each of these reached the
    # wire before (the client's h2 failed the connection) or raised h2's ProtocolError.
    h = H2Harness()
    sid = h.request(headers=[(b"te", b"trailers")])
    h.send(sid, start(200, trailers=True))
    h.send(sid, {"type": "http.response.push", "path": "/p",
                 "headers": [*_MALFORMED_IN_H2, (b"accept", b"*/*")]})
    h.send(sid, body(b"x"))
    h.send(sid, {"type": "http.response.trailers",
                 "headers": [*_MALFORMED_IN_H2, (b"x-sum", b"1")]})
    ((_, promised, fields),) = h.client.pushes
    assert [f for f in fields if not f[0].startswith(b":")] == [(b"accept", b"*/*")]
    assert h.reply(sid).trailers == [(b"x-sum", b"1")] and h.reply(sid).ended
    assert h.scope(promised)["headers"] == [(b"host", b"example.com"), (b"accept", b"*/*")]
    ws = ws_open(h)
    h.receive(ws)
    h.send(ws, {"type": "websocket.http.response.start", "status": 403,
                "headers": [*_MALFORMED_IN_H2, (b"x-why", b"no")]})
    h.send(ws, {"type": "websocket.http.response.body", "body": b"no"})
    assert h.reply(ws).headers == [(b":status", b"403"), (b"x-why", b"no")]
    assert h.reply(ws).status == 403 and h.reply(ws).body == b"no"
    alive(h)


@pytest.mark.parametrize("field", [(b"te", b"a\x00"), (b"connection", b"a\nb"),
                                   (b"upgrade", b"\x00")])
def test_malformed_dropped_fields_are_misuse_everywhere(field: tuple[bytes, bytes]) -> None:
    # SRV-10: checked before they are dropped, in trailers, pushes and denials too
    h = H2Harness()
    sid = h.request(headers=[(b"te", b"trailers")])
    h.send(sid, start(200, trailers=True))
    with pytest.raises(AppMisuseError, match="SRV-10"):
        h.send(sid, {"type": "http.response.push", "path": "/p", "headers": [field]})
    assert h.reply(sid).status == 500 and not h.client.pushes  # the head had not left
    sid = h.request(headers=[(b"te", b"trailers")])
    h.send(sid, start(200, trailers=True))
    h.send(sid, body(b"x"))
    with pytest.raises(AppMisuseError, match="SRV-10"):
        h.send(sid, {"type": "http.response.trailers", "headers": [field]})
    assert h.reply(sid).reset == INTERNAL_ERROR
    ws = ws_open(h)
    h.receive(ws)
    with pytest.raises(AppMisuseError, match="SRV-10"):
        h.send(ws, {"type": "websocket.http.response.start", "status": 403, "headers": [field]})
    assert h.reply(ws).status == 500
    alive(h)


def test_head_response_has_no_body_but_keeps_content_length() -> None:
    # SRV-03
    h = H2Harness()
    sid = h.request(b"HEAD")
    h.send(sid, start(200, [(b"content-length", b"10")]))
    h.send(sid, body(b"0123456789"))
    reply = h.reply(sid)
    assert reply.status == 200 and reply.header(b"content-length") == b"10"
    assert reply.body == b"" and reply.ended
    assert ended(h, sid) == 1


def test_trailers_sent_when_te_trailers() -> None:
    # EXT-TRAILERS-01, EXT-TRAILERS-03, EXT-TRAILERS-04
    h = H2Harness()
    sid = h.request(headers=[(b"te", b"trailers")])
    assert "http.response.trailers" in h.scope(sid)["extensions"]
    h.send(sid, start(200, [(b"trailer", b"x-sum")], trailers=True))
    h.send(sid, body(b"data"))
    assert not h.reply(sid).ended
    h.send(sid, {"type": "http.response.trailers", "headers": [(b"x-sum", b"1")],
                 "more_trailers": True})
    h.send(sid, {"type": "http.response.trailers", "headers": [(b"x-more", b"2")]})
    reply = h.reply(sid)
    assert reply.body == b"data" and reply.ended
    assert reply.trailers == [(b"x-sum", b"1"), (b"x-more", b"2")]
    h.finish(sid)
    check_accounting(h)


def test_trailers_without_te_are_not_offered() -> None:
    # EXT-TRAILERS-03, EXT-TRAILERS-05: no extension, so trailers=True is misuse
    h = H2Harness()
    sid = h.request()
    assert "http.response.trailers" not in h.scope(sid)["extensions"]
    with pytest.raises(AppMisuseError) as info:
        h.send(sid, start(200, trailers=True))
    assert info.value.rule == "EXT-TRAILERS-05"
    assert h.reply(sid).status == 500
    alive(h)


def test_early_hints_before_start() -> None:
    # EXT-HINT-01..04
    h = H2Harness()
    sid = h.request()
    assert "http.response.early_hint" in h.scope(sid)["extensions"]
    links = [b"</a.css>; rel=preload; as=style", b"</b.js>; rel=preload; as=script"]
    h.send(sid, {"type": "http.response.early_hint", "links": links})
    h.send(sid, {"type": "http.response.early_hint", "links": links[:1]})
    h.send(sid, start())
    h.send(sid, {"type": "http.response.early_hint", "links": links})  # dropped after start
    h.send(sid, body(b"x"))
    reply = h.reply(sid)
    assert reply.informational == [
        [(b":status", b"103"), (b"link", links[0]), (b"link", links[1])],
        [(b":status", b"103"), (b"link", links[0])],
    ]
    assert reply.status == 200 and reply.body == b"x"


def test_unread_request_body_is_reset_with_no_error_after_response() -> None:
    # SRV-07, RFC 9113 8.1
    h = H2Harness()
    sid = h.request(b"POST", body=b"unread", end=False)
    h.respond(sid)
    reply = h.reply(sid)
    assert reply.status == 200 and reply.ended and reply.reset == NO_ERROR
    assert ended(h, sid) == 1
    h.finish(sid)
    alive(h)


# -- malformed requests (RFC 9113 8.2, 8.3) ----------------------------------------------------

BASE = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"example.com"),
        (b":path", b"/")]

MALFORMED = {
    "uppercase field name": [*BASE, (b"X-Upper", b"1")],
    "connection": [*BASE, (b"connection", b"keep-alive")],
    "keep-alive": [*BASE, (b"keep-alive", b"5")],
    "proxy-connection": [*BASE, (b"proxy-connection", b"x")],
    "transfer-encoding": [*BASE, (b"transfer-encoding", b"chunked")],
    "upgrade": [*BASE, (b"upgrade", b"websocket")],
    "te gzip": [*BASE, (b"te", b"gzip")],
    "pseudo after regular": [*BASE[:3], (b"x-a", b"1"), BASE[3]],
    "unknown pseudo": [*BASE, (b":foo", b"bar")],
    "response pseudo": [*BASE, (b":status", b"200")],
    "repeated pseudo": [*BASE, (b":path", b"/again")],
    "missing :path": BASE[:3],
    "empty :path": [*BASE[:3], (b":path", b"")],
    "missing :scheme": [BASE[0], *BASE[2:]],
    "missing :method": BASE[1:],
    ":authority vs host": [*BASE, (b"host", b"other.example")],
    "bad :path": [*BASE[:3], (b":path", b"no-slash")],
    "asterisk not OPTIONS": [*BASE[:3], (b":path", b"*")],
    "bad :authority": [*BASE[:2], (b":authority", b"user@example.com"), BASE[3]],
    "newline in value": [*BASE, (b"x-a", b"a\nb")],
    "leading space in value": [*BASE, (b"x-a", b" a")],
    "trailing space in value": [*BASE, (b"x-a", b"a ")],
    "leading htab in value": [*BASE, (b"x-a", b"\ta")],
    "trailing htab in value": [*BASE, (b"x-a", b"a\t")],
    "nul in value": [*BASE, (b"x-a", b"a\x00b")],
    ":protocol without CONNECT": [*BASE, (b":protocol", b"websocket")],
    "CONNECT with :path": [(b":method", b"CONNECT"), (b":authority", b"a:1"), (b":path", b"/")],
}
MALFORMED_CASES = [pytest.param(v, id=k) for k, v in MALFORMED.items()] + [
    pytest.param([*BASE, (b"content-length", b"abc")], id="bad content-length"),
    pytest.param([*BASE, (b"content-length", b"1"), (b"content-length", b"2")],
                 id="two content-lengths"),
]


def test_repeated_requests_get_scopes_of_their_own() -> None:
    # The request checks are remembered per header list: what one app does to its scope (and
    # what CONNECT handling does to the pseudo-fields) never reaches the next request's.
    h = H2Harness(client=H2Client(validate=False))
    fields = [*BASE, (b"te", b"trailers"), (b"cookie", b"a=1"), (b"cookie", b"b=2")]
    scopes = []
    for _ in range(3):
        sid = h.client.c.get_next_available_stream_id()
        h.client.raw_request(sid, fields)
        h.exchange()
        scope = h.scope(sid)
        scopes.append((scope["path"], list(scope["headers"]), dict(scope["extensions"])))
        scope["headers"].append((b"x-app", b"mutated"))
        scope["headers"][0] = (b"host", b"elsewhere")
        h.respond(sid)
    assert scopes[0] == scopes[1] == scopes[2]
    assert scopes[0][1][0][0] == b"host" and (b"cookie", b"a=1; b=2") in scopes[0][1]
    assert "http.response.trailers" in scopes[0][2]
    for _ in range(2):  # a malformed list is refused each time, remembered or not
        sid = h.client.c.get_next_available_stream_id()
        h.client.raw_request(sid, MALFORMED["newline in value"])
        h.exchange()
        assert h.reply(sid).reset == PROTOCOL_ERROR
    for n in range(40):  # what is remembered stays bounded
        sid = h.request(path=b"/%d" % n)
        h.respond(sid)
        assert len(h.conn._proto._checked) <= 16  # type: ignore[attr-defined]
    alive(h)


def test_repeated_response_heads_are_answered_afresh() -> None:
    # Response heads are remembered per status and field list: each response still gets its
    # own date, a 204 still loses its content-length, a bad head is refused every time, and
    # what is remembered stays bounded.
    h = H2Harness()
    head = [(b"content-type", b"text/plain"), (b"content-length", b"5")]
    dates = []
    for n in range(3):
        h.now = 100.0 * n
        sid = h.request()
        h.send(sid, start(200, list(head)))
        h.send(sid, body(b"hello"))
        reply = h.reply(sid)
        assert [f for f in reply.headers if f[0] != b"date"] == [
            (b":status", b"200"), *head, (b"server", b"asgi-sansio")]
        assert reply.body == b"hello" and reply.ended
        dates.append(reply.header(b"date"))
    assert len(set(dates)) == 3
    for _ in range(2):
        sid = h.request()
        h.send(sid, start(204, [(b"content-length", b"5"), (b"date", b"Mon")]))
        h.send(sid, body())
        reply = h.reply(sid)
        assert reply.headers == [(b":status", b"204"), (b"date", b"Mon"),
                                 (b"server", b"asgi-sansio")]
    for _ in range(2):
        sid = h.request()
        with pytest.raises(AppMisuseError, match="SRV-01"):
            h.send(sid, start(200, [(b"content-length", b"5x")]))
        h.finish(sid)
        assert h.reply(sid).status == 500
    for n in range(40):
        sid = h.request()
        h.respond(sid, headers=[(b"x-n", b"%d" % n)])
        assert h.reply(sid).header(b"x-n") == b"%d" % n
        assert len(h.conn._proto._heads) <= 16  # type: ignore[attr-defined]
    alive(h)


@pytest.mark.parametrize("fields", MALFORMED_CASES)
def test_malformed_request_is_a_stream_error(fields: list[tuple[bytes, bytes]]) -> None:
    # SRV-09, SRV-11, RFC 9113 8.2.1, 8.2.2, 8.3.1: RST_STREAM(PROTOCOL_ERROR), the connection lives
    h = H2Harness(client=H2Client(validate=False))
    other = h.request(b"POST", body=b"in flight", end=False)  # another stream, mid-request
    sid = h.client.c.get_next_available_stream_id()
    h.client.raw_request(sid, fields)
    h.exchange()
    assert h.reply(sid).reset == PROTOCOL_ERROR
    assert h.reply(sid).status is None
    assert [e.stream_id for e in h.started()] == [other]  # the app never saw it
    assert not h.client.goaways and not h.conn.closed
    h.client.send_body(other, b" and done")
    h.exchange()
    assert h.read_body(other) == b"in flight and done"
    h.respond(other)
    h.finish(other)
    assert h.reply(other).status == 200
    alive(h)
    check_accounting(h)


def test_pseudo_header_in_trailers_is_a_stream_error() -> None:
    # RFC 9113 8.1
    h = H2Harness(client=H2Client(validate=False))
    sid = h.request(b"POST", body=b"abc", end=False)
    h.client.c.send_headers(sid, [(b":path", b"/x")], end_stream=True)
    h.exchange()
    assert h.reply(sid).reset == PROTOCOL_ERROR
    gone_for_the_app(h, sid)
    alive(h)
    check_accounting(h)


# One bad field each, after a good one: RFC 9113 8.2.1 (lowercase names; no NUL, CR or LF, no
# leading or trailing SP or HTAB in values), 8.2.2 (connection-specific fields, te other than
# "trailers") and 8.1 (pseudo-header fields) hold for a trailer section as for the header section.
BAD_TRAILERS = {
    "uppercase name": (b"X-Upper", b"1"),
    "connection": (b"connection", b"close"),
    "keep-alive": (b"keep-alive", b"5"),
    "proxy-connection": (b"proxy-connection", b"x"),
    "transfer-encoding": (b"transfer-encoding", b"chunked"),
    "upgrade": (b"upgrade", b"websocket"),
    "te gzip": (b"te", b"gzip"),
    "leading space": (b"x-sum", b" 1"),
    "trailing space": (b"x-sum", b"1 "),
    "leading htab": (b"x-sum", b"\t1"),
    "trailing htab": (b"x-sum", b"1\t"),
    "nul": (b"x-sum", b"1\x002"),
    "cr": (b"x-sum", b"1\r2"),
    "lf": (b"x-sum", b"1\n2"),
    "pseudo-header": (b":path", b"/x"),
}


@pytest.mark.parametrize("field", list(BAD_TRAILERS.values()), ids=list(BAD_TRAILERS))
def test_malformed_request_trailers_are_a_stream_error(field: tuple[bytes, bytes]) -> None:
    # A malformed trailer section makes the request malformed (RFC 9113 8.1.1): that stream
    # alone is reset with PROTOCOL_ERROR, and its app, mid-body, sees a disconnect instead of
    # the end of the body.
    h = H2Harness(client=H2Client(validate=False))
    sid = h.request(b"POST", headers=[(b"te", b"trailers")], body=b"abc", end=False)
    assert h.receive(sid) == {"type": "http.request", "body": b"abc", "more_body": True}
    h.client.c.send_headers(sid, [(b"x-ok", b"1"), field], end_stream=True)
    h.exchange()
    assert [(f.stream_id, f.error_code) for f in rst_frames(h.client.raw)] == [
        (sid, PROTOCOL_ERROR)]
    assert h.reply(sid).status is None
    gone_for_the_app(h, sid)
    assert not h.client.goaways and not closed(h)
    alive(h)
    check_accounting(h)


def test_request_trailers_are_accepted() -> None:
    # Well-formed trailers end the body; ASGI has no request trailers, so they go no further.
    # A trailer te: trailers is not malformed (RFC 9113 8.2.2 allows it in a request; RFC 9110
    # 6.5.1 only says a recipient must not act on it as a header), so it is dropped too.
    h = H2Harness()
    sid = h.request(b"POST", headers=[(b"te", b"trailers")], body=b"abc", end=False)
    h.client.c.send_headers(sid, [(b"x-checksum", b"1"), (b"x-inner", b"a b\tc"),
                                  (b"te", b"trailers")], end_stream=True)
    h.exchange()
    assert h.read_body(sid) == b"abc"
    h.respond(sid)
    assert h.reply(sid).status == 200
    assert rst_frames(h.client.raw) == [] and h.reply(sid).ended


def test_request_body_longer_than_content_length_is_a_stream_error() -> None:
    # RFC 9113 8.1.1: RST_STREAM(PROTOCOL_ERROR), the connection lives
    h = H2Harness(client=H2Client(validate=False))
    sid = h.request(b"POST", headers=[(b"content-length", b"3")], body=b"hello")
    assert h.reply(sid).reset == PROTOCOL_ERROR
    assert not h.client.goaways
    alive(h)


def test_request_body_shorter_than_content_length_is_a_stream_error() -> None:
    # RFC 9113 8.1.1
    h = H2Harness(client=H2Client(validate=False))
    sid = h.request(b"POST", headers=[(b"content-length", b"10")], body=b"hello")
    assert h.reply(sid).reset == PROTOCOL_ERROR
    assert not h.client.goaways
    alive(h)


def test_plain_connect_is_405() -> None:
    # SRV-17: we are not a proxy
    h = H2Harness(client=H2Client(validate=False))
    sid = h.client.c.get_next_available_stream_id()
    h.client.raw_request(sid, [(b":method", b"CONNECT"), (b":authority", b"example.com:443")],
                         end=False)
    h.exchange()
    assert h.reply(sid).status == 405 and h.reply(sid).ended
    assert not h.started()
    alive(h)


def test_unknown_connect_protocol_is_501() -> None:
    # RFC 8441 4
    h = H2Harness()
    sid = h.request(b"CONNECT", b"/", protocol=b"webtransport", end=False)
    assert h.reply(sid).status == 501 and h.reply(sid).ended
    assert not h.started()
    alive(h)


# -- app misuse and app failure (HTTP-ERR) --------------------------------------------------------


def test_misuse_before_head_is_500_and_the_connection_lives() -> None:
    # HTTP-ERR-03, HTTP-ERR-01
    h = H2Harness()
    sid = h.request()
    with pytest.raises(AppMisuseError) as info:
        h.send(sid, body(b"body before start"))
    assert info.value.rule.startswith("HTTP-TX")
    reply = h.reply(sid)
    assert reply.status == 500 and reply.ended and reply.body == b"Internal Server Error"
    assert reply.header(b"content-length") == b"21"
    assert ended(h, sid) == 1
    h.finish(sid, info.value)
    alive(h)
    check_accounting(h)


def test_misuse_while_head_held_back_is_still_500() -> None:
    # HTTP-TX-05, HTTP-ERR-03: the head was not on the wire yet, so it can be replaced
    h = H2Harness()
    sid = h.request()
    h.send(sid, start(200, [(b"x-a", b"1")]))
    with pytest.raises(AppMisuseError):
        h.send(sid, start(200))
    assert h.reply(sid).status == 500
    assert h.reply(sid).header(b"x-a") is None


def test_misuse_after_head_is_rst_internal_error() -> None:
    # HTTP-ERR-02, HTTP-ERR-03, AMB-09: only the stream
    h = H2Harness()
    other = h.request()
    sid = h.request()
    h.send(sid, start())
    h.send(sid, body(b"partial", more=True))
    with pytest.raises(AppMisuseError):
        h.send(sid, start())
    reply = h.reply(sid)
    assert reply.status == 200 and reply.body == b"partial" and reply.reset == INTERNAL_ERROR
    assert ended(h, sid) == 1
    with pytest.raises(ClientDisconnected):
        h.send(sid, body(b"more"))
    h.finish(sid)
    h.respond(other)
    assert h.reply(other).status == 200
    alive(h)


def test_bad_header_from_app_is_misuse() -> None:
    # SRV-10, HTTP-TX-02
    h = H2Harness()
    for headers in ([(b"x-a", b"a\r\nb")], [(b"bad name", b"v")], [(b":status", b"200")],
                    # Fields HTTP/2 drops are still checked (fuzz_http11, over an h2c upgrade).
                    [(b"te", b".1\xec\x00")], [(b"connection", b"a\nb")]):
        sid = h.request()
        with pytest.raises(AppMisuseError):
            h.send(sid, start(200, headers))
            h.send(sid, body(b"x"))
        assert h.reply(sid).status == 500
        h.finish(sid)
    alive(h)


def test_send_after_response_complete_is_misuse() -> None:
    # HTTP-ERR-04, AMB-01: the stream is over, the client is gone from it
    h = H2Harness()
    sid = h.request()
    h.respond(sid)
    with pytest.raises((AppMisuseError, ClientDisconnected)):
        h.send(sid, body(b"late"))
    assert h.reply(sid).reset is None
    alive(h)


@pytest.mark.parametrize("exc", [None, RuntimeError("boom")], ids=["returned", "raised"])
def test_app_ends_before_start_gives_500(exc: BaseException | None) -> None:
    # HTTP-ERR-01, MAIN-11
    h = H2Harness()
    sid = h.request()
    h.finish(sid, exc)
    reply = h.reply(sid)
    assert reply.status == 500 and reply.ended
    check_accounting(h)
    alive(h)


def test_app_ends_before_start_of_head_request_gives_500_without_body() -> None:
    # HTTP-ERR-01, SRV-03
    h = H2Harness()
    sid = h.request(b"HEAD")
    h.finish(sid, RuntimeError())
    reply = h.reply(sid)
    assert reply.status == 500 and reply.ended and reply.body == b""


@pytest.mark.parametrize("exc", [None, RuntimeError("boom")], ids=["returned", "raised"])
def test_app_ends_mid_response_resets_the_stream(exc: BaseException | None) -> None:
    # HTTP-ERR-02, AMB-09
    h = H2Harness()
    sid = h.request()
    h.send(sid, start())
    h.send(sid, body(b"half", more=True))
    h.finish(sid, exc)
    reply = h.reply(sid)
    assert reply.body == b"half" and reply.reset == INTERNAL_ERROR and not reply.ended
    check_accounting(h)
    alive(h)


def test_app_raises_after_the_response_is_harmless() -> None:
    # HTTP-ERR-06
    h = H2Harness()
    sid = h.request()
    h.respond(sid)
    h.finish(sid, RuntimeError("after"))
    assert h.reply(sid).reset is None and h.reply(sid).status == 200
    alive(h)


def test_app_content_length_overflow_on_first_body_is_500() -> None:
    # SRV-01, HTTP-TX-05: the head was still held back
    h = H2Harness()
    sid = h.request()
    h.send(sid, start(200, [(b"content-length", b"3")]))
    with pytest.raises(AppMisuseError) as info:
        h.send(sid, body(b"too long"))
    assert info.value.rule == "SRV-01"
    assert h.reply(sid).status == 500


def test_app_content_length_overflow_later_resets() -> None:
    # SRV-01: never more than declared on the wire
    h = H2Harness()
    sid = h.request()
    h.send(sid, start(200, [(b"content-length", b"5")]))
    h.send(sid, body(b"abc", more=True))
    with pytest.raises(AppMisuseError) as info:
        h.send(sid, body(b"def", more=True))
    assert info.value.rule == "SRV-01"
    reply = h.reply(sid)
    assert reply.body == b"abc" and reply.reset == INTERNAL_ERROR
    h.finish(sid)
    alive(h)


def test_app_content_length_underflow_resets() -> None:
    # SRV-02
    h = H2Harness()
    sid = h.request()
    h.send(sid, start(200, [(b"content-length", b"10")]))
    h.send(sid, body(b"abc", more=True))
    with pytest.raises(AppMisuseError) as info:
        h.send(sid, body(b"de"))
    assert info.value.rule == "SRV-02"
    reply = h.reply(sid)
    assert reply.body == b"abc" and reply.reset == INTERNAL_ERROR and not reply.ended
    h.finish(sid)
    alive(h)


def test_app_content_length_underflow_on_first_body_is_500() -> None:
    # SRV-02, HTTP-TX-05
    h = H2Harness()
    sid = h.request()
    h.send(sid, start(200, [(b"content-length", b"10")]))
    with pytest.raises(AppMisuseError):
        h.send(sid, body(b"abc"))
    assert h.reply(sid).status == 500


def test_bad_app_content_length_value_is_misuse() -> None:
    # SRV-01
    h = H2Harness()
    sid = h.request()
    with pytest.raises(AppMisuseError):
        h.send(sid, start(200, [(b"content-length", b"-1")]))
    assert h.reply(sid).status == 500


def _outbound_harness(**config: Any) -> H2Harness:
    # A small stream window and a large connection window: streams block on their own window.
    client = H2Client(auto_ack=False, settings={SettingCodes.INITIAL_WINDOW_SIZE: 16_384},
                      connection_window=1 << 24)
    return H2Harness(client=client, **config)


# -- client resets ---------------------------------------------------------------------------------


def test_client_reset_disconnects_the_app() -> None:
    # SRV-13, HTTP-RX-04, HTTP-TX-10
    h = H2Harness()
    sid = h.request(b"POST", body=b"part", end=False)
    other = h.request()
    assert h.receive(sid) == {"type": "http.request", "body": b"part", "more_body": True}
    assert h.receive(sid) is None
    h.client.c.reset_stream(sid, ErrorCodes.CANCEL)
    h.exchange()
    assert ended(h, sid) == 1 and StreamReadable(sid) in h.events  # the waiting app wakes
    assert h.receive(sid) == {"type": "http.disconnect"}
    assert h.receive(sid) == {"type": "http.disconnect"}
    with pytest.raises(ClientDisconnected):
        h.send(sid, start())
    assert isinstance(ClientDisconnected(), OSError)
    h.finish(sid, None)
    assert not rst_frames(h.client.raw)  # nothing answered on the reset stream
    h.respond(other)
    assert h.reply(other).status == 200
    alive(h)
    check_accounting(h)


def test_client_reset_mid_response_discards_pending_output() -> None:
    # SRV-13
    h = _outbound_harness()
    sid = h.request()
    h.send(sid, start())
    h.send(sid, body(b"x" * 200_000, more=True))  # most of it waits for the window
    assert not h.conn.writable(sid)
    h.client.c.reset_stream(sid)
    h.exchange()
    assert StreamWritable(sid) in h.events  # a held send() is released, then raises
    with pytest.raises(ClientDisconnected):
        h.send(sid, body(b"more"))
    h.finish(sid)
    check_accounting(h)
    alive(h)


# -- flow control ---------------------------------------------------------------------------------


def test_window_update_only_after_the_app_reads() -> None:
    # SRV-06: the stream window is credited as the app consumes http.request (h2 batches the
    # WINDOW_UPDATE until half a window was consumed)
    h = H2Harness()
    sid = h.request(b"POST", end=False)
    window = h.client.c.local_flow_control_window(sid)
    assert window == h.conn.config.body_buffer_size
    h.client.send_body(sid, b"x" * 20_000, end=False)
    h.exchange()
    h.client.send_body(sid, b"x" * 20_000, end=False)
    h.exchange()
    h.tick(1.0)
    assert h.client.c.local_flow_control_window(sid) == window - 40_000  # not credited yet
    msg = h.receive(sid)
    assert msg == {"type": "http.request", "body": b"x" * 40_000, "more_body": True}
    assert h.client.c.local_flow_control_window(sid) == window  # credited on consumption
    h.client.send_body(sid, b"y" * window, end=True)  # the whole window again
    h.exchange()
    assert h.client.c.local_flow_control_window(sid) == 0
    assert h.read_body(sid) == b"y" * window


def test_slow_stream_with_full_window_does_not_stop_another() -> None:
    # SRV-13, SRV-06: a stream that does not read stalls only itself
    h = H2Harness()
    window = h.conn.config.body_buffer_size
    slow = h.request(b"POST", end=False)
    h.client.send_body(slow, b"s" * window, end=False)
    h.exchange()
    assert h.client.c.local_flow_control_window(slow) == 0
    fast = h.request(b"POST", end=False)
    for _ in range(4):  # four windows' worth through the fast stream while slow sits full
        h.client.send_body(fast, b"f" * window, end=False)
        h.exchange()
        msg = h.receive(fast)
        assert msg is not None and msg["body"] == b"f" * window
    assert h.client.c.local_flow_control_window(slow) == 0
    h.client.c.end_stream(fast)
    h.exchange()
    assert h.receive(fast) == {"type": "http.request", "body": b"", "more_body": False}
    h.respond(fast)
    assert h.reply(fast).status == 200
    msg = h.receive(slow)
    assert msg is not None and msg["body"] == b"s" * window
    assert h.client.c.local_flow_control_window(slow) == window


def test_many_unread_streams_cannot_exhaust_the_connection_window() -> None:
    # SRV-06: the connection window is h2_max_concurrent_streams stream windows
    h = H2Harness(h2_max_concurrent_streams=4, body_buffer_size=16_384)
    sids = [h.request(b"POST", end=False) for _ in range(3)]
    for sid in sids:
        h.client.send_body(sid, b"z" * 16_384, end=False)
    h.exchange()
    last = h.request(b"POST", end=False)
    assert h.client.c.local_flow_control_window(last) == 16_384
    h.client.send_body(last, b"w" * 16_384)
    h.exchange()
    assert h.read_body(last) == b"w" * 16_384


def test_response_larger_than_window_waits_and_resumes() -> None:
    # SRV-06, SRV-13, HTTP-TX-07
    h = _outbound_harness(output_high_water=32_768)
    big = h.request()
    other = h.request()
    payload = bytes(range(256)) * 400  # 102400 bytes
    h.send(big, start())
    h.send(big, body(payload, more=True))
    assert len(h.reply(big).body) == 16_384
    assert not h.conn.writable(big)  # above output_high_water: the driver holds send()
    # The other stream is not blocked behind it.
    h.respond(other, body=b"quick")
    assert h.reply(other).body == b"quick" and h.reply(other).ended
    writable_at = None
    for round_ in range(10):
        h.client.ack(big)
        h.exchange()
        if writable_at is None and StreamWritable(big) in h.events:
            writable_at = round_
            assert h.conn.writable(big)
        if len(h.reply(big).body) == len(payload):
            break
    assert writable_at is not None
    assert h.reply(big).body == payload and not h.reply(big).ended
    h.send(big, body(b"!"))
    for _ in range(3):
        h.client.ack(big)
        h.exchange()
    assert h.reply(big).body == payload + b"!" and h.reply(big).ended
    assert ended(h, big) == 1


def test_app_returning_while_the_tail_waits_for_the_window_keeps_the_response() -> None:
    # HTTP-TX-07/08: send() returned, the response is complete; the app may return at once
    h = _outbound_harness()
    sid = h.request()
    h.send(sid, start())
    h.send(sid, body(b"t" * 20_000))  # final: 16384 go now, the rest waits for the window
    assert len(h.reply(sid).body) == 16_384
    h.finish(sid)  # the app returns normally
    assert h.reply(sid).reset is None
    for _ in range(3):
        h.client.ack(sid)
        h.exchange()
    reply = h.reply(sid)
    assert reply.body == b"t" * 20_000 and reply.ended and reply.reset is None
    assert ended(h, sid) == 1


def test_stall_deadline_waits_for_every_running_app_pushed_ones_too() -> None:
    # Output held only by the client's window gets the keep-alive deadline, but not while
    # any app still runs: here the app of a pushed stream.
    h = _outbound_harness(keep_alive_timeout=5.0)
    sid = h.request()
    h.send(sid, start())
    h.send(sid, {"type": "http.response.push", "path": "/a.css", "headers": []})
    ((_, promised, _),) = h.client.pushes
    h.send(sid, body(b"t" * 20_000))  # the tail waits for the window
    h.finish(sid)
    h.tick(50.0)
    assert h.conn.get_timer() is None and not h.conn.closed
    h.respond(promised)
    h.finish(promised)
    assert h.conn.get_timer() == 55.0
    h.tick(55.0)
    assert closed(h) == 1 and len(h.reply(sid).body) == 16_384


def test_body_after_the_final_one_is_misuse_even_while_output_waits() -> None:
    # HTTP-TX-08, HTTP-ERR-04, AMB-01
    h = _outbound_harness()
    sid = h.request()
    h.send(sid, start())
    h.send(sid, body(b"t" * 20_000))
    with pytest.raises(AppMisuseError):
        h.send(sid, body(b"EXTRA"))
    for _ in range(3):
        h.client.ack(sid)
        h.exchange()
    assert h.reply(sid).body == b"t" * 20_000


def test_connection_window_from_settings_change_resumes_output() -> None:
    # RFC 9113 6.9.2: a SETTINGS_INITIAL_WINDOW_SIZE raise opens every stream's window
    h = _outbound_harness()
    sid = h.request()
    h.send(sid, start())
    h.send(sid, body(b"q" * 50_000))
    assert len(h.reply(sid).body) == 16_384
    h.client.c.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    h.exchange()
    assert h.reply(sid).body == b"q" * 50_000 and h.reply(sid).ended


def test_output_respects_the_client_max_frame_size() -> None:
    h = H2Harness()
    sid = h.request()
    h.send(sid, start())
    h.send(sid, body(b"m" * 40_000))
    sizes = [len(f.data) for f in h2_frames(h.client.raw) if isinstance(f, DataFrame)]
    assert sizes and max(sizes) <= 16_384 and sum(sizes) == 40_000


# -- concurrency limits and floods ----------------------------------------------------------------


def test_stream_beyond_max_concurrent_is_refused_and_the_connection_lives() -> None:
    # RFC 9113 5.1.2: REFUSED_STREAM, not a connection error (Hypercorn#335)
    h = H2Harness()
    limit = h.conn.config.h2_max_concurrent_streams
    # Pretend the client missed our SETTINGS, as a client racing the preface would.
    h.client.c.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] = 10_000
    h.client.c.remote_settings.acknowledge()
    sids = [h.client.request() for _ in range(limit + 1)]
    h.exchange()
    assert [e.stream_id for e in h.started()] == sids[:limit]
    assert h.reply(sids[-1]).reset == REFUSED_STREAM
    assert not h.client.goaways and not h.conn.closed
    h.respond(sids[0])
    h.finish(sids[0])
    late = h.request()  # a slot is free again
    assert h.started()[-1].stream_id == late
    h.respond(late)
    assert h.reply(late).status == 200
    for sid in sids[1:limit]:
        h.respond(sid)
        h.finish(sid)
    h.finish(late)
    check_accounting(h)


def test_refused_stream_headers_keep_hpack_in_sync() -> None:
    # RFC 9113 4.3: a refused stream's header block still updates the decoder's table
    h = H2Harness(h2_max_concurrent_streams=1)
    h.client.c.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] = 100
    h.client.c.remote_settings.acknowledge()
    first = h.client.request(headers=[(b"x-new-1", b"v1")])
    refused = h.client.request(headers=[(b"x-new-2", b"v2")])  # indexed into the table
    h.exchange()
    assert h.reply(refused).reset == REFUSED_STREAM
    h.respond(first)
    h.finish(first)
    again = h.request(headers=[(b"x-new-2", b"v2")])  # now sent as a table reference
    assert (b"x-new-2", b"v2") in h.scope(again)["headers"]


def test_rapid_reset_gets_enhance_your_calm() -> None:
    # CVE-2023-44487: more than h2_max_resets live streams reset inside h2_flood_window
    h = H2Harness()
    limit = h.conn.config.h2_max_resets
    for i in range(limit + 1):
        sid = h.client.request()
        h.client.c.reset_stream(sid, ErrorCodes.CANCEL)
        if i % 50 == 0 and i < limit:
            h.exchange()
            assert not h.client.goaways
    h.exchange()
    assert [g.error_code for g in h.client.goaways] == [ErrorCodes.ENHANCE_YOUR_CALM]
    assert closed(h) == 1 and h.events[-1] == ConnectionClosed()
    check_accounting(h)
    for event in h.started():
        h.finish(event.stream_id)  # after the close: no error


def test_resets_spread_over_flood_windows_are_allowed() -> None:
    # h2_flood_window: the budget is per window, browsers cancel streams all the time
    h = H2Harness(h2_max_resets=20, h2_flood_window=1.0)
    for second in range(5):
        h.now = second * 1.5
        for _ in range(15):
            sid = h.client.request()
            h.client.c.reset_stream(sid, ErrorCodes.CANCEL)
            h.exchange()
    assert not h.client.goaways and not h.conn.closed
    alive(h)


def test_flood_counter_rolls_over_before_counting_a_new_batch() -> None:
    # h2_flood_window: 15 resets in one window and 15 in the next are each within the budget
    h = H2Harness(h2_max_resets=20, h2_flood_window=1.0)
    for when in (0.0, 1.5):
        h.now = when
        for _ in range(15):
            sid = h.client.request()
            h.client.c.reset_stream(sid, ErrorCodes.CANCEL)
        h.exchange()  # one read carrying all fifteen
    assert not h.client.goaways


def test_refused_streams_count_as_resets() -> None:
    # Flood accounting: streams we refuse cost as much as resets
    h = H2Harness(h2_max_concurrent_streams=1, h2_max_resets=5)
    h.client.c.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] = 100
    h.client.c.remote_settings.acknowledge()
    for _ in range(7):
        h.client.request()
    h.exchange()
    assert [g.error_code for g in h.client.goaways] == [ErrorCodes.ENHANCE_YOUR_CALM]


@pytest.mark.parametrize("kind", ["ping", "settings", "empty-data", "priority"])
def test_control_frame_flood_gets_enhance_your_calm(kind: str) -> None:
    # h2_max_control_frames per h2_flood_window
    h = H2Harness()
    limit = h.conn.config.h2_max_control_frames
    sid = h.request(b"POST", end=False)
    for i in range(limit + 1):
        if kind == "ping":
            h.client.c.ping(i.to_bytes(8, "big"))
        elif kind == "settings":
            h.client.c.update_settings({SettingCodes.HEADER_TABLE_SIZE: 4096})
        elif kind == "empty-data":
            h.client.c.send_data(sid, b"")
        else:
            h.client.c.prioritize(sid, weight=1 + i % 200)
    h.exchange()
    assert [g.error_code for g in h.client.goaways] == [ErrorCodes.ENHANCE_YOUR_CALM]
    assert closed(h) == 1
    assert ended(h, sid) == 1
    assert h.receive(sid) == {"type": "http.disconnect"}


def test_a_few_pings_are_answered() -> None:
    h = H2Harness()
    for i in range(10):
        h.client.c.ping(i.to_bytes(8, "big"))
    h.exchange()
    assert h.client.ping_acks == 10 and not h.client.goaways
    alive(h)


def test_oversized_header_list_is_refused() -> None:
    # RFC 9113 10.5.1: 431, or a connection error (h2 raises DenialOfServiceError)
    h = H2Harness(max_head_size=4096)
    sid = h.request(headers=[(b"x-big-%d" % i, b"v" * 200) for i in range(40)])
    codes = [g.error_code for g in h.client.goaways]
    if codes:
        assert codes[0] in (ErrorCodes.COMPRESSION_ERROR, ErrorCodes.PROTOCOL_ERROR,
                            ErrorCodes.ENHANCE_YOUR_CALM)
        assert closed(h) == 1
    else:
        assert h.reply(sid).status == 431
    assert not h.started()


def test_hpack_garbage_closes_the_connection() -> None:
    # RFC 9113 4.3: a decoding error is a connection error
    h = H2Harness()
    frame = HeadersFrame(1, flags=["END_HEADERS", "END_STREAM"])
    frame.data = b"\x80"  # indexed field 0: an HPACK decoding error (RFC 7541 6.1)
    h.feed(frame.serialize())
    h.exchange()
    assert len(goaway_frames(h.client.raw)) == 1 and closed(h) == 1
    assert not h.started()


def test_hpack_garbage_is_a_compression_error() -> None:
    # RFC 9113 4.3
    h = H2Harness()
    frame = HeadersFrame(1, flags=["END_HEADERS", "END_STREAM"])
    frame.data = b"\xff\x00"  # index 127: beyond the static table and an empty dynamic table
    h.feed(frame.serialize())
    h.exchange()
    assert [g.error_code for g in goaway_frames(h.client.raw)] == [ErrorCodes.COMPRESSION_ERROR]


def test_garbage_after_the_preface_is_a_connection_error() -> None:
    h = H2Harness()
    h.feed(b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00")  # WINDOW_UPDATE +0 on stream 0
    h.exchange()
    assert [g.error_code for g in goaway_frames(h.client.raw)] == [ErrorCodes.PROTOCOL_ERROR]
    assert closed(h) == 1


# -- timers, GOAWAY and shutdown -------------------------------------------------------------------


def test_idle_timeout_sends_goaway_no_error() -> None:
    # SRV-14
    h = H2Harness(keep_alive_timeout=3.0)
    assert h.conn.get_timer() == 3.0
    h.tick(2.9)
    assert not h.conn.closed
    h.tick(3.0)
    assert [(g.error_code, g.last_stream_id) for g in h.client.goaways] == [
        (ErrorCodes.NO_ERROR, 0)]
    assert h.events == [ConnectionClosed()]


def test_idle_timer_waits_for_streams_and_rearms() -> None:
    h = H2Harness(keep_alive_timeout=3.0)
    sid = h.request()
    assert h.conn.get_timer() is None
    h.tick(100.0)
    assert not h.conn.closed
    h.respond(sid)
    h.finish(sid)
    assert h.conn.get_timer() == 103.0
    h.tick(103.0)
    assert [g.last_stream_id for g in h.client.goaways] == [sid]
    assert closed(h) == 1


def test_shutdown_finishes_in_flight_and_refuses_newer() -> None:
    # SRV-14, RFC 9113 6.8
    h = H2Harness(shutdown_timeout=10.0)
    s1 = h.request(b"POST", body=b"a", end=False)
    s3 = h.request()
    newer = h.client.request()  # in flight towards us while we shut down
    in_flight = h.client.data()
    h.conn.shutdown(h.now)
    h.pump()
    h.exchange()  # GOAWAY(2^31-1) and a PING; on its ACK the GOAWAY naming s3
    assert [(g.error_code, g.last_stream_id) for g in h.client.goaways] == [
        (ErrorCodes.NO_ERROR, 2**31 - 1), (ErrorCodes.NO_ERROR, s3)]
    h.feed(in_flight)
    h.exchange()
    assert h.reply(newer).reset == REFUSED_STREAM
    assert [e.stream_id for e in h.started()] == [s1, s3]
    # The streams the GOAWAY named still work, both ways.
    h.client.send_body(s1, b"b")
    h.exchange()
    assert h.read_body(s1) == b"ab"
    h.respond(s1)
    h.finish(s1)
    assert h.reply(s1).status == 200 and not h.conn.closed
    h.respond(s3, body=b"last")
    assert not closed(h)
    h.finish(s3)
    assert h.reply(s3).body == b"last"
    assert closed(h) == 1 and h.events[-1] == ConnectionClosed()
    check_accounting(h)


def test_shutdown_goaway_last_stream_id_never_increases() -> None:
    # RFC 9113 6.8: "Endpoints MUST NOT increase the value they send in the last stream
    # identifier"
    h = H2Harness()
    s1 = h.request()
    newer = h.client.request()
    in_flight = h.client.data()
    h.conn.shutdown(h.now)
    h.pump()
    h.exchange()  # the PING's ACK: the second GOAWAY names s1
    h.feed(in_flight)  # refused: above the GOAWAY's last stream id
    h.exchange()
    assert h.reply(newer).reset == REFUSED_STREAM
    h.respond(s1)
    h.finish(s1)
    ids = [g.last_stream_id for g in goaway_frames(h.client.raw)]
    assert ids[:2] == [2**31 - 1, s1] and newer > s1
    assert ids == sorted(ids, reverse=True), ids


def test_shutdown_with_no_streams_closes_at_once() -> None:
    h = H2Harness()
    h.conn.shutdown(h.now)
    h.pump()
    h.exchange()
    assert closed(h) == 1
    assert goaway_frames(h.client.raw)[0].error_code == ErrorCodes.NO_ERROR


def test_shutdown_deadline_aborts_what_is_left() -> None:
    # SRV-14
    h = H2Harness(shutdown_timeout=2.0)
    sid = h.request(b"POST", end=False)
    assert h.receive(sid) is None
    h.conn.shutdown(h.now)
    h.pump()
    h.exchange()  # the PING's ACK: only the deadline is left
    assert h.conn.get_timer() == 2.0
    h.tick(1.9)
    assert not h.conn.closed
    h.tick(2.0)
    assert closed(h) == 1 and h.events[-1] == ConnectionClosed()
    assert ended(h, sid) == 1 and StreamReadable(sid) in h.events
    assert h.receive(sid) == {"type": "http.disconnect"}
    with pytest.raises(ClientDisconnected):
        h.send(sid, start())
    h.finish(sid)
    check_accounting(h)


def test_shutdown_twice_is_harmless() -> None:
    h = H2Harness()
    sid = h.request()
    h.conn.shutdown(0.0)
    h.conn.shutdown(1.0)
    h.pump()
    h.exchange()
    assert [g.last_stream_id for g in h.client.goaways] == [2**31 - 1, sid]  # one pair
    h.respond(sid)
    h.finish(sid)
    assert closed(h) == 1


def test_client_eof_ends_every_stream() -> None:
    h = H2Harness()
    s1 = h.request(b"POST", end=False)
    s3 = h.request()
    h.feed(b"")
    assert closed(h) == 1 and h.events[-1] == ConnectionClosed()
    assert ended(h, s1) == ended(h, s3) == 1
    for sid in (s1, s3):
        assert h.receive(sid) == {"type": "http.disconnect"}
        with pytest.raises(ClientDisconnected):
            h.send(sid, start())
        h.finish(sid)
    check_accounting(h)


def _client_goaway(last_stream_id: int = 0) -> bytes:
    frame = GoAwayFrame(0)
    frame.last_stream_id = last_stream_id
    frame.error_code = 0
    return frame.serialize()


def test_client_goaway_with_no_streams_closes() -> None:
    # RFC 9113 6.8
    h = H2Harness()
    h.feed(_client_goaway())
    h.exchange()
    assert closed(h) == 1


def test_client_goaway_lets_in_flight_streams_finish() -> None:
    # RFC 9113 6.8: the client's GOAWAY stops new streams, not ours in flight
    h = H2Harness()
    sid = h.request()
    h.feed(_client_goaway())  # sent raw: h2's own client would stop decoding after it
    h.exchange()
    assert not h.conn.closed
    h.respond(sid, body=b"still here")
    h.finish(sid)
    assert h.reply(sid).body == b"still here" and h.reply(sid).ended
    assert closed(h) == 1
    check_accounting(h)


def test_shutdown_after_client_goaway_still_arms_the_deadline() -> None:
    # SRV-14: the deadline aborts what is left, whoever said GOAWAY first
    h = H2Harness(shutdown_timeout=2.0)
    sid = h.request()
    h.feed(_client_goaway())
    h.exchange()
    h.conn.shutdown(h.now)
    h.pump()
    assert h.conn.get_timer() == 2.0
    h.tick(2.0)
    assert closed(h) == 1 and ended(h, sid) == 1


def test_unknown_stream_id_is_a_driver_error() -> None:
    from asgi_sansio import DriverMisuseError

    h = H2Harness()
    with pytest.raises(DriverMisuseError):
        h.conn.receive(99)
    with pytest.raises(DriverMisuseError):
        h.conn.send(99, start(), 0.0)


# -- WebSocket over HTTP/2 (RFC 8441) ------------------------------------------------------------


class H2WS:
    """A wsproto client endpoint speaking through one extended-CONNECT stream's DATA."""

    def __init__(self, h: H2Harness, sid: int) -> None:
        self.h = h
        self.sid = sid
        self.ws = Connection(ConnectionType.CLIENT)
        self.offset = 0
        self.events: list[Any] = []

    def send(self, event: Any, end: bool = False) -> None:
        self.h.client.c.send_data(self.sid, self.ws.send(event), end_stream=end)
        self.h.exchange()

    def poll(self) -> list[Any]:
        body = self.h.reply(self.sid).body
        data, self.offset = body[self.offset:], len(body)
        if data:
            self.ws.receive_data(data)
        events = list(self.ws.events())
        self.events += events
        return events


def ws_open(h: H2Harness, path: bytes = b"/chat", headers: list[tuple[bytes, bytes]] | None = None,
            scheme: bytes = b"https") -> int:
    return h.request(b"CONNECT", path, scheme=scheme, protocol=b"websocket", end=False,
                     headers=[(b"sec-websocket-version", b"13"), *(headers or [])])


def ws_accepted(h: H2Harness, accept: dict[str, Any] | None = None, **kwargs: Any) -> H2WS:
    sid = ws_open(h, **kwargs)
    assert h.receive(sid) == {"type": "websocket.connect"}
    h.send(sid, accept or {"type": "websocket.accept"})
    assert h.reply(sid).status == 200 and not h.reply(sid).ended
    return H2WS(h, sid)


def test_ws_scope_exact() -> None:
    # WS-SCOPE-01..13, WS-SCOPE-03 ("2"), WS-SCOPE-08 (:protocol removed), WS-SCOPE-10
    conn = ServerConnection(Config(root_path="/r"), now=0.0, client=("1.2.3.4", 1),
                            server=("5.6.7.8", 443), alpn="h2")
    h = H2Harness(conn)
    sid = ws_open(h, b"/chat%20room?x=1", headers=[
        (b"sec-websocket-protocol", b"chat, superchat"), (b"sec-websocket-protocol", b"v2"),
        (b"origin", b"https://example.com")])
    assert h.scope(sid) == {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.5"},
        "http_version": "2",
        "server": ("5.6.7.8", 443),
        "client": ("1.2.3.4", 1),
        "scheme": "wss",
        "root_path": "/r",
        "path": "/r/chat room",
        "raw_path": b"/r/chat%20room",
        "query_string": b"x=1",
        "headers": [(b"host", b"example.com"), (b"sec-websocket-version", b"13"),
                    (b"sec-websocket-protocol", b"chat, superchat"),
                    (b"sec-websocket-protocol", b"v2"), (b"origin", b"https://example.com")],
        "subprotocols": ["chat", "superchat", "v2"],
        "extensions": {"websocket.http.response": {}},
    }
    sid2 = ws_open(h, scheme=b"http")
    assert h.scope(sid2)["scheme"] == "ws"


def test_ws_accept_frames_both_ways_and_app_close() -> None:
    # WS-01, WS-03, WS-06, WS-07, WS-08, WS-09, WS-14, STACK-WS-03
    h = H2Harness()
    ws = ws_accepted(h, {"type": "websocket.accept", "subprotocol": "chat",
                         "headers": [(b"x-hello", b"1")]},
                     headers=[(b"sec-websocket-protocol", b"chat")])
    reply = h.reply(ws.sid)
    assert reply.headers[:3] == [(b":status", b"200"), (b"sec-websocket-protocol", b"chat"),
                                 (b"x-hello", b"1")]
    ws.send(TextMessage("héllo"))
    assert h.receive(ws.sid) == {"type": "websocket.receive", "bytes": None, "text": "héllo"}
    ws.send(BytesMessage(b"\x00\x01" * 5000))
    assert h.receive(ws.sid) == {"type": "websocket.receive", "bytes": b"\x00\x01" * 5000,
                                 "text": None}
    ws.send(TextMessage("frag-", message_finished=False))
    assert h.receive(ws.sid) is None  # WS-10: whole messages only
    ws.send(TextMessage("ment"))
    assert h.receive(ws.sid) == {"type": "websocket.receive", "bytes": None, "text": "frag-ment"}
    ws.send(Ping(b"p"))
    h.send(ws.sid, {"type": "websocket.send", "text": "out"})
    h.send(ws.sid, {"type": "websocket.send", "bytes": b"bin"})
    events = ws.poll()
    assert Pong(b"p") in events
    assert [e.data for e in events if isinstance(e, (TextMessage, BytesMessage))] == ["out",
                                                                                    b"bin"]
    h.send(ws.sid, {"type": "websocket.close", "code": 4000, "reason": "bye"})
    (close,) = [e for e in ws.poll() if isinstance(e, CloseConnection)]
    assert (close.code, close.reason) == (4000, "bye")
    assert ended(h, ws.sid) == 0
    ws.send(close.response(), end=True)
    assert h.receive(ws.sid) == {"type": "websocket.disconnect", "code": 4000, "reason": "bye"}
    assert ended(h, ws.sid) == 1
    h.finish(ws.sid)
    assert h.reply(ws.sid).ended and h.reply(ws.sid).reset is None
    alive(h)
    check_accounting(h)


def test_ws_client_close_first() -> None:
    # WS-11, WS-12
    h = H2Harness()
    ws = ws_accepted(h)
    ws.send(CloseConnection(code=1001, reason="tab closed"))
    assert h.receive(ws.sid) == {"type": "websocket.disconnect", "code": 1001,
                                 "reason": "tab closed"}
    (close,) = [e for e in ws.poll() if isinstance(e, CloseConnection)]
    assert close.code == 1001
    assert h.reply(ws.sid).ended
    with pytest.raises(ClientDisconnected):
        h.send(ws.sid, {"type": "websocket.send", "text": "late"})
    h.finish(ws.sid)
    assert ended(h, ws.sid) == 1
    alive(h)
    check_accounting(h)


@pytest.mark.parametrize("with_close", [True, False])
def test_ws_end_stream_behind_held_frames_keeps_the_clients_close(with_close: bool) -> None:
    # WS-11/12 over RFC 8441: a client may send its Close and END_STREAM at once.  While the
    # app is behind, the frames wait in the server; END_STREAM must not overtake them: the app
    # reads every message, then the client's own code (1006 only when no Close came at all).
    h = H2Harness(body_buffer_size=1024)
    ws = ws_accepted(h)
    messages = [f"{i:02}" + "x" * 98 for i in range(12)]  # past the queue bound, not the window
    for text in messages:
        ws.send(TextMessage(text))
    if with_close:
        ws.send(CloseConnection(code=4001, reason="bye"), end=True)
    else:
        h.client.c.end_stream(ws.sid)
        h.exchange()
    got = []
    while True:
        message = h.receive(ws.sid)
        if message["type"] != "websocket.receive":
            break
        got.append(message["text"])
    assert got == messages
    if with_close:
        assert message == {"type": "websocket.disconnect", "code": 4001, "reason": "bye"}
        (close,) = [e for e in ws.poll() if isinstance(e, CloseConnection)]
        assert close.code == 4001  # RFC 6455 5.5.1: the peer's code echoed
    else:
        assert message == {"type": "websocket.disconnect", "code": 1006, "reason": ""}
    assert h.reply(ws.sid).ended and h.reply(ws.sid).reset is None  # our half ends cleanly
    h.finish(ws.sid)
    assert ended(h, ws.sid) == 1
    alive(h)
    check_accounting(h)


def test_ws_frames_before_accept_are_delivered_after() -> None:
    # WS-02: no websocket.receive before the handshake is answered
    h = H2Harness()
    sid = ws_open(h)
    ws = H2WS(h, sid)
    ws.send(TextMessage("early"))
    assert h.receive(sid) == {"type": "websocket.connect"}
    assert h.receive(sid) is None
    h.send(sid, {"type": "websocket.accept"})
    assert h.receive(sid) == {"type": "websocket.receive", "bytes": None, "text": "early"}


def test_ws_close_before_accept_is_403() -> None:
    # WS-05, EXT-WSDENY-04: a 403 on the CONNECT stream, the connection lives
    h = H2Harness()
    sid = ws_open(h)
    assert h.receive(sid) == {"type": "websocket.connect"}
    h.send(sid, {"type": "websocket.close"})
    reply = h.reply(sid)
    assert reply.status == 403 and reply.ended and reply.body == b""
    assert ended(h, sid) == 1
    assert h.receive(sid)["type"] == "websocket.disconnect"  # type: ignore[index]
    h.finish(sid)
    alive(h)
    check_accounting(h)


def test_ws_denial_response() -> None:
    # EXT-WSDENY-01..03: a non-2xx response on the CONNECT stream, only the stream ends
    h = H2Harness()
    sid = ws_open(h)
    assert h.receive(sid) == {"type": "websocket.connect"}
    h.send(sid, {"type": "websocket.http.response.start", "status": 401,
                 "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Basic")]})
    h.send(sid, {"type": "websocket.http.response.body", "body": b"who ", "more_body": True})
    assert h.reply(sid).status == 401 and not h.reply(sid).ended
    h.send(sid, {"type": "websocket.http.response.body", "body": b"are you?"})
    reply = h.reply(sid)
    assert reply.body == b"who are you?" and reply.ended
    assert reply.header(b"www-authenticate") == b"Basic"
    assert ended(h, sid) == 1
    assert h.receive(sid)["type"] == "websocket.disconnect"  # type: ignore[index]
    h.finish(sid)
    alive(h)
    check_accounting(h)


def test_ws_app_raises_before_accept_is_500() -> None:
    # WS-17
    h = H2Harness()
    sid = ws_open(h)
    h.finish(sid, RuntimeError("boom"))
    assert h.reply(sid).status == 500 and h.reply(sid).ended
    assert ended(h, sid) == 1
    alive(h)


def test_ws_app_raises_after_accept_is_1011() -> None:
    # WS-17, AMB-10
    h = H2Harness()
    ws = ws_accepted(h)
    h.finish(ws.sid, RuntimeError("boom"))
    (close,) = [e for e in ws.poll() if isinstance(e, CloseConnection)]
    assert close.code == 1011
    ws.send(close.response(), end=True)
    assert ended(h, ws.sid) == 1 and h.reply(ws.sid).ended
    alive(h)
    check_accounting(h)


def test_ws_unanswered_close_times_out_with_a_reset() -> None:
    # WS-06, Config.ws_close_timeout: only the stream is cut, with RST_STREAM
    h = H2Harness(ws_close_timeout=2.0)
    ws = ws_accepted(h)
    h.send(ws.sid, {"type": "websocket.close"})
    assert h.conn.get_timer() == 2.0
    h.tick(2.0)
    assert ended(h, ws.sid) == 1
    assert h.reply(ws.sid).reset is not None and not h.reply(ws.sid).ended
    assert h.receive(ws.sid) == {"type": "websocket.disconnect", "code": 1000, "reason": ""}
    h.finish(ws.sid)
    alive(h)
    check_accounting(h)


def test_ws_app_returns_after_accept_is_1000() -> None:
    # AMB-10
    h = H2Harness()
    ws = ws_accepted(h)
    h.finish(ws.sid)
    (close,) = [e for e in ws.poll() if isinstance(e, CloseConnection)]
    assert close.code == 1000
    ws.send(close.response(), end=True)
    assert ended(h, ws.sid) == 1
    alive(h)
    check_accounting(h)


def test_ws_client_reset_is_1006() -> None:
    # WS-13, SRV-13
    h = H2Harness()
    ws = ws_accepted(h)
    assert h.receive(ws.sid) is None
    h.client.c.reset_stream(ws.sid, ErrorCodes.CANCEL)
    h.exchange()
    assert StreamReadable(ws.sid) in h.events
    assert h.receive(ws.sid) == {"type": "websocket.disconnect", "code": 1006, "reason": ""}
    with pytest.raises(ClientDisconnected):
        h.send(ws.sid, {"type": "websocket.send", "text": "x"})
    h.finish(ws.sid)
    assert ended(h, ws.sid) == 1
    alive(h)
    check_accounting(h)


def test_ws_misuse_is_app_misuse() -> None:
    # WS-08
    h = H2Harness()
    ws = ws_accepted(h)
    with pytest.raises(AppMisuseError):
        h.send(ws.sid, {"type": "websocket.send", "text": "a", "bytes": b"b"})
    h.finish(ws.sid)
    alive(h)


def test_ws_connect_with_end_stream_is_400() -> None:
    # RFC 8441 4: the tunnel needs its stream open
    h = H2Harness()
    sid = h.request(b"CONNECT", b"/chat", protocol=b"websocket",
                    headers=[(b"sec-websocket-version", b"13")])
    assert h.reply(sid).status == 400
    assert not h.started()
    alive(h)


def test_ws_unsupported_version_is_426() -> None:
    # WS-18
    h = H2Harness()
    sid = h.request(b"CONNECT", b"/chat", protocol=b"websocket", end=False,
                    headers=[(b"sec-websocket-version", b"8")])
    assert h.reply(sid).status == 426
    assert not h.started()
    alive(h)


def test_ws_output_waits_for_the_stream_window() -> None:
    # SRV-06 for WebSocket streams: frames wait for the window, in order, nothing dropped
    h = _outbound_harness()
    ws = ws_accepted(h)
    big = "w" * 50_000
    h.send(ws.sid, {"type": "websocket.send", "text": big})
    h.send(ws.sid, {"type": "websocket.send", "text": "after"})
    assert len(h.reply(ws.sid).body) == 16_384
    for _ in range(6):
        h.client.ack(ws.sid)
        h.exchange()
    texts = [e.data for e in ws.poll() if isinstance(e, TextMessage)]
    assert texts == [big, "after"]


def test_ws_inbound_is_bounded_when_the_app_does_not_read() -> None:
    # SRV-06 for WebSocket streams: messages nobody reads stop the peer (window) eventually
    h = H2Harness()
    ws = ws_accepted(h)
    c = h.client.c
    config = h.conn.config
    bound = config.body_buffer_size + config.body_buffer_size + 65_536  # queue + window + slack
    sent = 0
    while sent < 4 * bound:
        frame = ws.ws.send(BytesMessage(b"z" * 1000))
        if c.local_flow_control_window(ws.sid) < len(frame):
            break
        c.send_data(ws.sid, frame)
        sent += len(frame)
        h.exchange()
    assert sent <= bound, f"the server took {sent} bytes for an app that reads nothing"
    # ... and reading resumes the flow.
    for _ in range(5):
        assert h.receive(ws.sid)["type"] == "websocket.receive"  # type: ignore[index]


def test_ws_and_http_streams_share_a_connection() -> None:
    h = H2Harness()
    ws = ws_accepted(h)
    sid = h.request(b"POST", body=b"req")
    ws.send(TextMessage("ws"))
    assert h.read_body(sid) == b"req"
    assert h.receive(ws.sid) == {"type": "websocket.receive", "bytes": None, "text": "ws"}
    h.respond(sid)
    h.send(ws.sid, {"type": "websocket.send", "text": "pong"})
    assert h.reply(sid).status == 200
    assert [e.data for e in ws.poll() if isinstance(e, TextMessage)] == ["pong"]


def test_ws_shutdown_sends_1001_and_closes_when_done() -> None:
    # WS-20, SRV-14
    h = H2Harness()
    ws = ws_accepted(h)
    h.conn.shutdown(h.now)
    h.pump()
    h.exchange()
    (close,) = [e for e in ws.poll() if isinstance(e, CloseConnection)]
    assert close.code == 1001
    assert [g.last_stream_id for g in h.client.goaways] == [2**31 - 1, ws.sid]
    ws.send(close.response(), end=True)
    assert h.receive(ws.sid) == {"type": "websocket.disconnect", "code": 1001, "reason": ""}
    h.finish(ws.sid)
    assert closed(h) == 1 and h.events[-1] == ConnectionClosed()
    check_accounting(h)


@pytest.mark.parametrize("restart", [False, True])
def test_ws_opened_after_the_first_goaway_closes_once_accepted(restart: bool) -> None:
    # WS-20 with RFC 9113 6.8's two GOAWAYs: a websocket the client opened before it saw the
    # first one is served, and, the server going away, closed with 1001 (1012) right after
    # the accept, as over HTTP/1.1.  It stayed open until the shutdown deadline aborted it.
    h = H2Harness()
    h.conn.shutdown(h.now, restart=restart)  # GOAWAY(2^31-1) and PING, not read by the client
    ws = ws_accepted(h)  # ...before its CONNECT is sent
    h.exchange()
    assert [g.last_stream_id for g in h.client.goaways] == [2**31 - 1, ws.sid]
    assert [e.code for e in ws.poll() if isinstance(e, CloseConnection)] == [
        1012 if restart else 1001]
    with pytest.raises(ClientDisconnected):  # WS-15: the server closed it
        h.send(ws.sid, {"type": "websocket.send", "text": "late"})


def test_ws_send_held_for_a_slow_reader_is_released_by_stream_writable() -> None:
    # The driver holds the app's send() while writable() is False and waits for StreamWritable:
    # a WebSocket stream over HTTP/2 must queue one when its frames have left (it never did,
    # so the app waited until the stream ended; found by the WebSocket-over-HTTP/2 machine).
    client = H2Client(auto_ack=False, settings={SettingCodes.INITIAL_WINDOW_SIZE: 2048})
    h = H2Harness(client=client, output_high_water=3000)
    ws = ws_accepted(h)
    h.send(ws.sid, {"type": "websocket.send", "bytes": b"x" * 8000})
    assert not h.conn.writable(ws.sid)
    assert StreamWritable(ws.sid) not in h.events
    for _ in range(10):
        h.client.ack(ws.sid)
        h.exchange()
    assert h.conn.writable(ws.sid)
    assert h.events.count(StreamWritable(ws.sid)) == 1


def test_ws_restart_shutdown_sends_1012() -> None:
    # WS-20
    h = H2Harness()
    ws = ws_accepted(h)
    h.conn.shutdown(h.now, restart=True)
    h.pump()
    h.exchange()
    assert [e.code for e in ws.poll() if isinstance(e, CloseConnection)] == [1012]


# -- server push (EXT-PUSH) ------------------------------------------------------------------------


def test_push_promise_runs_a_new_app_instance() -> None:
    # EXT-PUSH-01..04
    h = H2Harness()
    sid = h.request(path=b"/page", authority=b"example.com:8443")
    assert "http.response.push" in h.scope(sid)["extensions"]  # the client allows push
    h.send(sid, start(200, [(b"content-type", b"text/html")]))
    h.send(sid, {"type": "http.response.push", "path": "/style.css",
                 "headers": [(b"accept", b"text/css")]})
    ((parent, promised, fields),) = h.client.pushes
    assert parent == sid and promised % 2 == 0
    pseudo = dict(f for f in fields if f[0].startswith(b":"))
    assert pseudo == {b":method": b"GET", b":scheme": b"http", b":path": b"/style.css",
                      b":authority": b"example.com:8443"}
    scope = h.scope(promised)
    assert (scope["method"], scope["path"], scope["http_version"]) == ("GET", "/style.css", "2")
    assert scope["headers"][0] == (b"host", b"example.com:8443")
    assert (b"accept", b"text/css") in scope["headers"]
    assert "http.response.push" not in scope["extensions"]
    assert h.receive(promised) == {"type": "http.request", "body": b"", "more_body": False}
    h.respond(promised, body=b"body{}")
    h.send(sid, body(b"<html>"))
    h.finish(promised)
    h.finish(sid)
    assert h.reply(promised).status == 200 and h.reply(promised).body == b"body{}"
    assert h.reply(sid).body == b"<html>"
    check_accounting(h)
    alive(h)


def test_push_path_is_percent_encoded_on_the_wire() -> None:
    # EXT-PUSH-04: the scope path is decoded, :path re-encoded
    h = H2Harness()
    sid = h.request()
    h.send(sid, start())
    h.send(sid, {"type": "http.response.push", "path": "/a b/é", "headers": []})
    ((_, promised, fields),) = h.client.pushes
    assert dict(fields)[b":path"] == b"/a%20b/%C3%A9"
    assert h.scope(promised)["path"] == "/a b/é"


def test_push_not_advertised_when_the_client_disables_it() -> None:
    # EXT-PUSH-01, MAIN-15
    h = H2Harness(client=H2Client(settings={SettingCodes.ENABLE_PUSH: 0}))
    sid = h.request()
    assert "http.response.push" not in h.scope(sid)["extensions"]
    h.send(sid, start())
    with pytest.raises(AppMisuseError):
        h.send(sid, {"type": "http.response.push", "path": "/x", "headers": []})


def test_push_dropped_when_the_client_disables_it_later() -> None:
    # EXT-PUSH-04: refused or disabled -> dropped silently
    h = H2Harness()
    sid = h.request()
    h.client.c.update_settings({SettingCodes.ENABLE_PUSH: 0})
    h.exchange()
    h.send(sid, start())
    h.send(sid, {"type": "http.response.push", "path": "/x", "headers": []})
    assert not h.client.pushes and len(h.started()) == 1
    h.send(sid, body(b"ok"))
    assert h.reply(sid).body == b"ok"


def test_push_after_the_response_ended_is_misuse() -> None:
    # EXT-PUSH-02
    h = H2Harness()
    sid = h.request()
    h.respond(sid)
    with pytest.raises((AppMisuseError, ClientDisconnected)):
        h.send(sid, {"type": "http.response.push", "path": "/x", "headers": []})
    assert not h.client.pushes


def test_push_before_start_is_misuse() -> None:
    # EXT-PUSH-02
    h = H2Harness()
    sid = h.request()
    with pytest.raises(AppMisuseError):
        h.send(sid, {"type": "http.response.push", "path": "/x", "headers": []})
    assert h.reply(sid).status == 500


def test_client_resets_a_pushed_stream() -> None:
    # SRV-13 for pushed streams
    h = H2Harness()
    sid = h.request()
    h.send(sid, start())
    h.send(sid, {"type": "http.response.push", "path": "/p", "headers": []})
    ((_, promised, _),) = h.client.pushes
    h.client.c.reset_stream(promised, ErrorCodes.CANCEL)
    h.exchange()
    assert ended(h, promised) == 1
    assert h.receive(promised) == {"type": "http.disconnect"}
    with pytest.raises(ClientDisconnected):
        h.send(promised, start())
    h.finish(promised)
    h.send(sid, body(b"parent"))
    h.finish(sid)
    assert h.reply(sid).body == b"parent"
    check_accounting(h)


def test_no_push_during_shutdown() -> None:
    # EXT-PUSH-04, SRV-14
    h = H2Harness()
    sid = h.request()
    h.conn.shutdown(h.now)
    h.pump()
    h.exchange()
    h.send(sid, start())
    h.send(sid, {"type": "http.response.push", "path": "/x", "headers": []})
    assert not h.client.pushes
    h.send(sid, body(b"ok"))
    h.finish(sid)
    assert closed(h) == 1


# -- misbehaving peers at the frame level ----------------------------------------------------------


def test_data_beyond_the_advertised_window_is_a_flow_control_error() -> None:
    # RFC 9113 6.9.1: the bound on what a stream can buffer is only as good as this check
    h = H2Harness()
    sid = h.request(b"POST", end=False)
    window = h.conn.config.body_buffer_size
    h.client.send_body(sid, b"a" * window, end=False)
    h.exchange()
    frame = DataFrame(sid)
    frame.data = b"over"
    h.feed(frame.serialize())  # past the window, behind the client library's back
    h.exchange()
    assert [g.error_code for g in goaway_frames(h.client.raw)] == [ErrorCodes.FLOW_CONTROL_ERROR]
    assert closed(h) == 1 and ended(h, sid) == 1
    assert not h.conn.wants_read and h.conn.get_timer() is None


def test_window_update_overflow_is_a_flow_control_error() -> None:
    # RFC 9113 6.9.1: a window above 2^31-1
    h = H2Harness()
    h.feed(b"\x00\x00\x04\x08\x00\x00\x00\x00\x00" + (2**31 - 1).to_bytes(4, "big"))
    h.exchange()
    assert [g.error_code for g in goaway_frames(h.client.raw)] == [ErrorCodes.FLOW_CONTROL_ERROR]
    assert closed(h) == 1


def test_continuation_flood_is_bounded() -> None:
    # CVE-2024-27316 style: a header block that never ends must not grow without limit
    h = H2Harness()
    frame = HeadersFrame(1)
    frame.data = b"\x82"  # :method GET, and END_HEADERS never comes
    h.feed(frame.serialize())
    cont = b"\x00\x40\x00\x09\x00\x00\x00\x00\x01" + b"\x00" * 0x4000  # CONTINUATION, 16 KiB
    fed = 0
    while not h.conn.closed and fed < 64 * 1024 * 1024:
        h.feed(cont * 4)  # 64 KiB reads, as a driver does
        fed += 4 * len(cont)
    h.exchange()
    assert closed(h) == 1
    assert fed <= 2 * 1024 * 1024, f"{fed} bytes of one header block accepted"
    # h2 stops at its CONTINUATION backlog (64 frames here, 1 MiB).  Stream 1 never opened, so
    # the GOAWAY names stream 0 (RFC 9113 6.8).
    assert [(g.error_code, g.last_stream_id) for g in goaway_frames(h.client.raw)] == [
        (PROTOCOL_ERROR, 0)]
    assert not h.started()


def test_data_frame_past_our_max_frame_size_is_a_frame_size_error() -> None:
    # RFC 9113 4.2: a frame over SETTINGS_MAX_FRAME_SIZE is a FRAME_SIZE_ERROR; we make it a
    # connection error, which 4.2 allows for any frame and 5.4.1 lets name the last stream.
    h = H2Harness()
    max_frame = h.client.server_settings.get(SettingCodes.MAX_FRAME_SIZE, 16384)
    sid = h.request(b"POST", end=False)
    frame = DataFrame(sid)
    frame.data = b"a" * (max_frame + 1)
    h.feed(frame.serialize())  # the h2 client would split it
    h.exchange()
    assert [(g.error_code, g.last_stream_id) for g in goaway_frames(h.client.raw)] == [
        (FRAME_SIZE_ERROR, sid)]
    assert closed(h) == 1 and ended(h, sid) == 1
    assert h.receive(sid) == {"type": "http.disconnect"}
    check_accounting(h)


def test_data_after_the_clients_end_stream_is_a_stream_closed_error() -> None:
    # RFC 9113 5.1, half-closed (remote): any frame but WINDOW_UPDATE, PRIORITY or RST_STREAM
    # "MUST" get a stream error (5.4.2) of type STREAM_CLOSED; the connection lives.
    h = H2Harness()
    sid = h.request(b"POST", body=b"done")
    assert h.receive(sid) == {"type": "http.request", "body": b"done", "more_body": False}
    frame = DataFrame(sid)
    frame.data = b"late"
    h.feed(frame.serialize())  # the h2 client refuses to send it
    h.exchange()
    assert [(f.stream_id, f.error_code) for f in rst_frames(h.client.raw)] == [
        (sid, STREAM_CLOSED)]
    assert not h.client.goaways and not closed(h)
    gone_for_the_app(h, sid)
    alive(h)
    check_accounting(h)


def test_data_on_a_closed_stream_after_the_response_is_harmless() -> None:
    # RFC 9113 5.1: DATA racing our RST_STREAM(NO_ERROR) (SRV-07) must not kill the connection
    h = H2Harness()
    sid = h.request(b"POST", body=b"first", end=False)
    h.respond(sid)
    assert h.reply(sid).reset == NO_ERROR
    frame = DataFrame(sid)
    frame.data = b"late"
    h.feed(frame.serialize())
    h.exchange()
    h.finish(sid)
    alive(h)


def test_input_after_close_is_ignored() -> None:
    h = H2Harness(keep_alive_timeout=1.0)
    h.tick(1.0)
    assert closed(h) == 1
    h.feed(h.client.c.data_to_send() + b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + b"12345678")
    h.conn.handle_timer(50.0)
    h.conn.shutdown(50.0)
    assert h.pump() == [] and closed(h) == 1
