"""HTTP/1.1 core: exact bytes in, exact ASGI messages and decoded responses out.

No event loop: ``Harness`` plays the driver.  Responses are decoded by h11 in client mode
(tests/helpers.py), an implementation independent of the server's wire code.
"""

from __future__ import annotations

import pytest

from asgi_sansio import (
    AppMisuseError,
    ClientDisconnected,
    ConnectionClosed,
    ServerConnection,
    StreamEnded,
    StreamReadable,
    StreamStarted,
)

from .helpers import Harness, make_conn, parse_responses, request_bytes

GET = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"


def start(status: int = 200, headers: list[tuple[bytes, bytes]] | None = None,
          **extra: object) -> dict[str, object]:
    return {"type": "http.response.start", "status": status, "headers": headers or [], **extra}


def body(data: bytes = b"", more: bool = False) -> dict[str, object]:
    return {"type": "http.response.body", "body": data, "more_body": more}


def closed(h: Harness) -> bool:
    return any(isinstance(e, ConnectionClosed) for e in h.events)


# -- scope -------------------------------------------------------------------------------------


def test_get_scope_exact() -> None:
    # ASGI: HTTP-SCOPE-01..14
    h = Harness(ServerConnection(now=0.0, client=("1.2.3.4", 1234), server=("5.6.7.8", 80),
                                 state={"db": 1}))
    h.feed(b"GET /caf%C3%A9/a%2Fb?x=%20y&z HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\n"
           b"x-a: 2\r\n\r\n")
    (ev,) = h.started()
    assert ev.scope == {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.5"},
        "http_version": "1.1",
        "server": ("5.6.7.8", 80),
        "client": ("1.2.3.4", 1234),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": "/café/a/b",  # AMB-06: %2F decoded in path, kept in raw_path
        "raw_path": b"/caf%C3%A9/a%2Fb",
        "query_string": b"x=%20y&z",
        "headers": [(b"host", b"example.com"), (b"x-a", b"1"), (b"x-a", b"2")],
        "state": {"db": 1},
        "extensions": {"http.response.early_hint": {}},
    }


def test_state_is_a_fresh_shallow_copy_per_request() -> None:
    # ASGI: LIFE-11, HTTP-SCOPE-15
    shared: dict[str, object] = {"k": [1]}
    h = Harness(ServerConnection(now=0.0, state=shared))
    h.feed(GET)
    scope = h.started()[0].scope
    assert scope["state"] == shared and scope["state"] is not shared
    assert scope["state"]["k"] is shared["k"]


def test_root_path_prefixes_path() -> None:
    # ASGI: HTTP-SCOPE-06, HTTP-SCOPE-09
    h = Harness(make_conn(root_path="/api"))
    h.feed(b"GET /items HTTP/1.1\r\nHost: a\r\n\r\n")
    scope = h.started()[0].scope
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == ("/api", "/api/items",
                                                                    b"/api/items")


def test_http10_scope_and_tls_scheme() -> None:
    # ASGI: HTTP-SCOPE-03, HTTP-SCOPE-05, EXT-TLS-01
    tls = {"server_cert": None, "tls_version": 0x0304, "cipher_suite": 0x1301}
    h = Harness(ServerConnection(now=0.0, tls=tls))
    h.feed(b"GET / HTTP/1.0\r\n\r\n")
    scope = h.started()[0].scope
    assert scope["http_version"] == "1.0" and scope["scheme"] == "https"
    assert scope["extensions"]["tls"] is tls


def test_absolute_form_target_maps_to_path_and_host() -> None:
    # SRV-17, RFC 9112 3.2.2: the target's authority replaces Host.
    h = Harness()
    h.feed(b"GET http://Other.example:8080/p?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
    scope = h.started()[0].scope
    assert scope["path"] == "/p" and scope["query_string"] == b"q=1"
    assert scope["headers"] == [(b"host", b"Other.example:8080")]


def test_asterisk_form_options() -> None:
    # SRV-17
    h = Harness()
    h.feed(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
    assert h.started()[0].scope["path"] == "*"


def test_leading_empty_lines_are_ignored() -> None:
    # RFC 9112 2.2
    h = Harness()
    h.feed(b"\r\n\r\n" + GET)
    assert len(h.started()) == 1


def test_te_trailers_advertises_trailer_extension() -> None:
    # ASGI: EXT-TRAILERS-03
    h = Harness()
    h.feed(b"GET / HTTP/1.1\r\nHost: a\r\nTE: gzip, Trailers\r\n\r\n")
    assert "http.response.trailers" in h.started()[0].scope["extensions"]


# -- request bodies ----------------------------------------------------------------------------


def test_no_body_gives_one_empty_request_then_waits() -> None:
    # ASGI: HTTP-RX-02, HTTP-RX-06
    h = Harness()
    h.feed(GET)
    assert h.receive(1) == {"type": "http.request", "body": b"", "more_body": False}
    assert h.receive(1) is None  # blocks until the response ends or the client leaves
    h.respond(1)
    assert StreamReadable(1) in h.events and StreamEnded(1) in h.events
    assert h.receive(1) == {"type": "http.disconnect"}
    assert h.receive(1) == {"type": "http.disconnect"}  # HTTP-RX-04: on every call


def test_streamed_chunked_body_is_dechunked() -> None:
    # ASGI: HTTP-SCOPE-17, HTTP-RX-03
    h = Harness()
    h.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    assert h.receive(1) == {"type": "http.request", "body": b"abc", "more_body": True}
    assert h.receive(1) is None
    h.feed(b"2\r\nde\r\n")
    assert StreamReadable(1) in h.events
    assert h.receive(1) == {"type": "http.request", "body": b"de", "more_body": True}
    h.feed(b"0\r\n\r\n")
    assert h.receive(1) == {"type": "http.request", "body": b"", "more_body": False}


def test_body_backpressure_pauses_and_resumes_reading() -> None:
    # SRV-06: stop reading above body_buffer_size; resume once the app consumed it.
    h = Harness(make_conn(body_buffer_size=10))
    h.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 30\r\n\r\n" + b"a" * 12)
    assert not h.conn.wants_read
    h.feed(b"b" * 18)  # a driver may still deliver what it had read
    assert h.receive(1) == {"type": "http.request", "body": b"a" * 12, "more_body": True}
    # Taking the buffered chunk let the core parse what was waiting.
    assert h.receive(1) == {"type": "http.request", "body": b"b" * 18, "more_body": False}
    assert h.conn.wants_read


def test_body_over_limit_by_content_length_is_413_without_app() -> None:
    h = Harness(make_conn(max_body_size=5))
    h.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n")
    assert h.started() == [] and closed(h)
    (reply,) = parse_responses(h.out)
    assert reply.status == 413 and reply.headers[b"connection"] == b"close"


def test_chunked_body_over_limit_is_413_and_stream_ends() -> None:
    h = Harness(make_conn(max_body_size=5))
    h.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n")
    assert StreamEnded(1) in h.events and closed(h)
    assert parse_responses(h.out)[0].status == 413
    assert h.receive(1) == {"type": "http.disconnect"}
    with pytest.raises(ClientDisconnected):
        h.send(1, start())


# -- 100-continue --------------------------------------------------------------------------------


EXPECT = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"


def test_100_continue_is_lazy() -> None:
    # SRV-05: sent only when the app asks for the body.
    h = Harness()
    h.feed(EXPECT)
    assert h.out == b""
    assert h.receive(1) is None
    assert h.take_output() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert h.receive(1) is None
    assert h.out == b""  # once only
    h.feed(b"abc")
    assert h.read_body(1) == b"abc"


def test_no_100_continue_for_http10() -> None:
    h = Harness()
    h.feed(EXPECT.replace(b"HTTP/1.1", b"HTTP/1.0"))
    assert h.receive(1) is None and h.out == b""


def test_response_before_100_closes_connection() -> None:
    # RFC 9110 10.1.1: the client may never send the body; we must not wait for it.
    h = Harness()
    h.feed(EXPECT)
    h.respond(1, 417, b"no")
    (reply,) = parse_responses(h.out)
    assert reply.status == 417 and reply.informational == []
    assert reply.headers[b"connection"] == b"close" and closed(h)


# -- responses -----------------------------------------------------------------------------------


def test_exact_response_bytes_with_date_and_server() -> None:
    h = Harness(ServerConnection(now=0.0, wall_offset=1_700_000_000.0))
    h.feed(GET)
    h.send(1, start(200, [(b"content-type", b"text/plain"), (b"content-length", b"2")]))
    assert h.out == b""  # HTTP-TX-05: the head is held until the first body
    h.send(1, body(b"hi"))
    assert h.out == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n"
        b"date: Tue, 14 Nov 2023 22:13:20 GMT\r\nserver: asgi-sansio\r\n\r\nhi"
    )


def test_app_date_and_server_are_not_duplicated_and_te_is_stripped() -> None:
    # SRV-15, HTTP-TX-03
    h = Harness()
    h.feed(GET)
    h.send(1, start(200, [(b"Date", b"x"), (b"Server", b"me"),
                          (b"transfer-encoding", b"gzip")]))
    h.send(1, body(b"x"))
    reply = parse_responses(h.out)[0]
    assert [n.lower() for n, _ in reply.raw_headers].count(b"date") == 1
    assert reply.headers[b"server"] == b"me"
    assert reply.headers[b"transfer-encoding"] == b"chunked"


def test_streaming_response_is_chunked() -> None:
    # HTTP-TX-11
    h = Harness()
    h.feed(GET)
    h.send(1, start())
    h.send(1, body(b"ab", more=True))
    h.send(1, body(b"", more=True))
    h.send(1, body(b"cd"))
    reply = parse_responses(h.out)[0]
    assert reply.body == b"abcd" and reply.headers[b"transfer-encoding"] == b"chunked"
    assert h.out.endswith(b"0\r\n\r\n")


def test_http10_response_is_close_delimited() -> None:
    h = Harness()
    h.feed(b"GET / HTTP/1.0\r\n\r\n")
    h.send(1, start())
    h.send(1, body(b"abc"))
    assert b"transfer-encoding" not in h.out.lower() and h.out.endswith(b"\r\n\r\nabc")
    assert closed(h)


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)])
def test_no_body_on_the_wire(method: str, status: int) -> None:
    # SRV-03, SRV-04: body bytes are dropped; HEAD keeps the app's content-length.
    h = Harness()
    h.feed(request_bytes(method))
    h.send(1, start(status, [(b"content-length", b"5")] if method == "HEAD" else []))
    h.send(1, body(b"hello"))
    (reply,) = parse_responses(h.out, [method])
    assert reply.status == status and reply.body == b""
    assert h.out.endswith(b"\r\n\r\n")
    if method == "HEAD":
        assert reply.headers[b"content-length"] == b"5"
    h.feed(GET)  # the connection stays usable
    assert len(h.started()) == 2


def test_pipelined_requests_answered_in_order() -> None:
    # SRV-12: the second request starts only once the first response is complete.
    h = Harness()
    h.feed(request_bytes("GET", "/1") + request_bytes("POST", "/2", body=b"xy") +
           request_bytes("GET", "/3"))
    assert [e.scope["path"] for e in h.started()] == ["/1"]
    assert not h.conn.wants_read  # pipelined input waits; read no more
    h.respond(1, body=b"one")
    assert [e.scope["path"] for e in h.started()] == ["/1", "/2"]
    assert h.read_body(2) == b"xy"
    h.respond(2, body=b"two")
    h.respond(3, body=b"three")
    assert [r.body for r in parse_responses(h.out)] == [b"one", b"two", b"three"]
    assert h.conn.wants_read


def test_keep_alive_after_unread_small_body() -> None:
    # SRV-07: a small unread body is drained and the connection lives on.
    h = Harness()
    h.feed(request_bytes("POST", body=b"x" * 100) + GET)
    h.respond(1)
    assert len(h.started()) == 2 and not closed(h)
    h.respond(2)
    assert len(parse_responses(h.out)) == 2


def test_unread_large_body_closes_after_response() -> None:
    h = Harness(make_conn(max_body_drain=10, body_buffer_size=100))
    h.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n" + b"x" * 50)
    h.respond(1)
    reply = parse_responses(h.out)[0]
    assert reply.headers[b"connection"] == b"close" and closed(h)


def test_unread_body_larger_than_drain_limit_closes_during_drain() -> None:
    h = Harness(make_conn(max_body_drain=10))
    h.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    h.respond(1)
    assert not closed(h)
    h.feed(b"14\r\n" + b"x" * 20 + b"\r\n")
    assert closed(h)


def test_connection_close_request_closes_after_response() -> None:
    # SRV-08
    h = Harness()
    h.feed(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    h.respond(1)
    assert closed(h) and parse_responses(h.out)[0].headers[b"connection"] == b"close"


def test_content_length_and_transfer_encoding_close_after_answer() -> None:
    # RFC 9112 6.3 / SRV-16: answered (chunked wins), then the connection closes.
    h = Harness()
    h.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked"
           b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + GET)
    assert h.read_body(1) == b"abc"
    h.respond(1)
    assert closed(h) and len(h.started()) == 1
    assert parse_responses(h.out)[0].headers[b"connection"] == b"close"


def test_trailers_sent_when_client_accepts_them() -> None:
    # ASGI: EXT-TRAILERS-01..04
    h = Harness()
    h.feed(b"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n")
    h.send(1, start(200, [(b"trailer", b"x-checksum")], trailers=True))
    h.send(1, body(b"data"))
    assert not any(isinstance(e, StreamEnded) for e in h.events)
    h.send(1, {"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")],
               "more_trailers": False})
    reply = parse_responses(h.out)[0]
    assert reply.body == b"data" and reply.trailers == {b"x-checksum": b"abc"}
    assert StreamEnded(1) in h.events


def test_connection_specific_trailers_are_checked_then_dropped() -> None:
    # RFC 9110 6.5.1 and 7.6.1: no trailer may carry framing or connection control; as over
    # HTTP/2 (RFC 9113 8.2.2) they are dropped, after the same SRV-10 check as the rest.
    h = Harness()
    h.feed(b"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n")
    h.send(1, start(200, [], trailers=True))
    h.send(1, body(b"data"))
    h.send(1, {"type": "http.response.trailers", "more_trailers": True, "headers": [
        (b"Connection", b"close"), (b"x-checksum", b"abc"), (b"transfer-encoding", b"gzip"),
        (b"TE", b"gzip"), (b"te", b"trailers"), (b"keep-alive", b"1"), (b"Upgrade", b"h2c"),
        (b"proxy-connection", b"x")]})
    h.send(1, {"type": "http.response.trailers", "headers": [(b"x-last", b"1")]})
    assert h.out.endswith(b"0\r\nx-checksum: abc\r\nte: trailers\r\nx-last: 1\r\n\r\n")
    reply = parse_responses(h.out)[0]
    assert reply.body == b"data" and reply.trailers == {
        b"x-checksum": b"abc", b"te": b"trailers", b"x-last": b"1"}
    h.finish(1)
    h2 = Harness()
    h2.feed(b"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n")
    h2.send(1, start(200, [], trailers=True))
    h2.send(1, body(b"data"))
    with pytest.raises(AppMisuseError, match="SRV-10"):
        h2.send(1, {"type": "http.response.trailers",
                    "headers": [(b"connection", b"close\r\nx-evil: 1")]})
    assert b"x-evil" not in h2.out


def test_trailers_dropped_with_content_length() -> None:
    # EXT-TRAILERS-04
    h = Harness()
    h.feed(b"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\n\r\n")
    h.send(1, start(200, [(b"content-length", b"1")], trailers=True))
    h.send(1, body(b"d"))
    h.send(1, {"type": "http.response.trailers", "headers": [(b"x", b"y")]})
    assert parse_responses(h.out)[0].trailers == {}


def test_trailers_without_extension_is_misuse_and_500() -> None:
    # EXT-TRAILERS-05
    h = Harness()
    h.feed(GET)
    with pytest.raises(AppMisuseError) as info:
        h.send(1, start(200, trailers=True))
    assert info.value.rule == "EXT-TRAILERS-05"
    assert parse_responses(h.out)[0].status == 500


def test_early_hint_before_start_is_103() -> None:
    # EXT-HINT-01..04
    h = Harness()
    h.feed(GET)
    h.send(1, {"type": "http.response.early_hint", "links": [b"</a.css>; rel=preload"]})
    h.respond(1)
    assert h.out.startswith(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n")
    assert parse_responses(h.out)[0].informational == [103]


def test_early_hint_after_start_is_dropped() -> None:
    h = Harness()
    h.feed(GET)
    h.send(1, start())
    h.send(1, {"type": "http.response.early_hint", "links": [b"</a>"]})
    h.send(1, body(b"x"))
    assert b"103" not in h.out.split(b"\r\n")[0]


# -- the app failing ---------------------------------------------------------------------------


def test_app_raises_before_start_gives_500_and_keeps_alive() -> None:
    # HTTP-ERR-01, AMB-09: body fully read, so keep-alive survives.
    h = Harness()
    h.feed(GET + GET)
    h.finish(1, RuntimeError("boom"))
    reply = parse_responses(h.out)[0]
    assert reply.status == 500 and reply.body == b"Internal Server Error"
    assert len(h.started()) == 2 and not closed(h)


def test_app_raises_after_start_aborts_without_terminator() -> None:
    # HTTP-ERR-02
    h = Harness()
    h.feed(GET)
    h.send(1, start())
    h.send(1, body(b"partial", more=True))
    h.finish(1, RuntimeError("boom"))
    assert closed(h) and not h.out.endswith(b"0\r\n\r\n")


def test_app_returns_after_start_without_body_gives_500() -> None:
    # The head was still held back (HTTP-TX-05), so a clean 500 is possible.
    h = Harness()
    h.feed(GET)
    h.send(1, start(200))
    h.finish(1)
    assert parse_responses(h.out)[0].status == 500


@pytest.mark.parametrize(
    ("messages", "rule"),
    [
        ([body(b"x")], "HTTP-TX-01"),
        ([start(), start()], "HTTP-TX-04"),
        ([{"type": "http.response.nope"}], "MAIN-09"),
        (["not a dict"], "MAIN-08"),
        ([start(200, [("a", "b")])], "HTTP-TX-02"),  # type: ignore[list-item]
        ([start(200, [(b":status", b"200")])], "HTTP-TX-02"),
        ([start(200, [(b"x", b"a\r\nInjected: 1")])], "SRV-10"),
        ([start(200, [(b"bad name", b"1")])], "SRV-10"),
        ([start(200, [(b"transfer-encoding", b"x\x00")])], "SRV-10"),  # dropped, still checked
        ([start(101)], "HTTP-TX-12"),
        ([start(True)], "HTTP-TX-12"),  # type: ignore[arg-type]
        ([start(200, [(b"content-length", b"x")])], "SRV-01"),
        ([start(), body("str")], "HTTP-TX-06"),  # type: ignore[arg-type]
    ],
)
def test_misuse_before_the_head_left_gives_500(messages: list[object], rule: str) -> None:
    # HTTP-ERR-03: the error names the rule; the client gets a well-formed 500.
    h = Harness()
    h.feed(GET)
    with pytest.raises(AppMisuseError) as info:
        for m in messages:
            h.send(1, m)  # type: ignore[arg-type]
    assert info.value.rule == rule
    assert rule in str(info.value)
    assert parse_responses(h.out)[0].status == 500
    with pytest.raises(AppMisuseError):  # HTTP-ERR-04: the response is complete
        h.send(1, body(b"late"))


@pytest.mark.parametrize(("data", "rule"), [(b"abcd", "SRV-01"), (b"ab", "SRV-02")])
def test_wrong_length_in_the_first_body_is_a_500(data: bytes, rule: str) -> None:
    # SRV-01, SRV-02, HTTP-ERR-01: the head is still held, so the client gets a 500 (and the
    # connection lives on for the next request), never the app's 200 with a wrong length.
    h = Harness()
    h.feed(GET + GET)
    h.send(1, start(200, [(b"content-length", b"3")]))
    with pytest.raises(AppMisuseError) as info:
        h.send(1, body(data))
    assert info.value.rule == rule
    (reply,) = parse_responses(h.out)
    assert reply.status == 500 and data not in h.out
    h.finish(1)
    assert len(h.started()) == 2 and not closed(h)


@pytest.mark.parametrize(("first", "second", "rule"), [(b"ab", b"cd", "SRV-01"),
                                                      (b"a", b"b", "SRV-02")])
def test_wrong_length_after_the_head_aborts_never_desyncs(
    first: bytes, second: bytes, rule: str,
) -> None:
    # SRV-01, SRV-02, HTTP-ERR-02: the head and the first body went out, then the connection
    # closes; nothing of the offending body is written, and the pipelined GET never starts.
    h = Harness()
    h.feed(GET + GET)
    h.send(1, start(200, [(b"content-length", b"3")]))
    h.send(1, body(first, more=True))
    with pytest.raises(AppMisuseError) as info:
        h.send(1, body(second))
    assert info.value.rule == rule and closed(h) and len(h.started()) == 1
    assert h.out.endswith(b"\r\n\r\n" + first)


# -- the client leaving -------------------------------------------------------------------------


def test_client_close_gives_disconnect_and_send_raises_oserror() -> None:
    # HTTP-RX-04, HTTP-TX-10
    h = Harness()
    h.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    assert h.receive(1) == {"type": "http.request", "body": b"abc", "more_body": True}
    assert h.receive(1) is None
    h.feed(b"")
    assert StreamReadable(1) in h.events and StreamEnded(1) in h.events and closed(h)
    assert h.receive(1) == {"type": "http.disconnect"}  # HTTP-RX-05: abort mid-body
    with pytest.raises(ClientDisconnected) as info:
        h.send(1, start())
    assert isinstance(info.value, OSError)
    assert h.out == b""


def test_eof_between_requests_closes_quietly() -> None:
    h = Harness()
    h.feed(b"")
    assert closed(h) and h.out == b""


def test_eof_mid_head_closes_without_answer() -> None:
    h = Harness()
    h.feed(b"GET / HTT")
    h.feed(b"")
    assert closed(h) and h.out == b""


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # Host missing
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),  # Host duplicated
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),  # Host malformed
        (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
        (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501),
        (b"GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET http://u@h/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"garbage\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 70000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: 1\r\n" * 101 + b"\r\n", 431),
    ],
)
def test_bad_requests_get_4xx_and_close_without_app(data: bytes, status: int) -> None:
    for split in (len(data), 1):  # all at once and byte by byte
        h = Harness()
        for i in range(0, len(data), split):
            h.feed(data[i : i + split])
            if closed(h):
                break
        assert h.started() == [] and closed(h)
        (reply,) = parse_responses(h.out)
        assert reply.status == status
        assert reply.headers[b"connection"] == b"close"
        assert [type(e) for e in h.events] == [ConnectionClosed]


def test_bad_chunk_in_body_ends_stream() -> None:
    h = Harness()
    h.feed(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert StreamEnded(1) in h.events and closed(h)
    assert parse_responses(h.out)[0].status == 400


def test_http2_preface_switches_to_http2() -> None:
    # RFC 9113 3.3: prior knowledge.  Nothing is decided until the whole preface is in.
    h = Harness()
    h.feed(b"PRI * HTTP/2.0\r\n\r\n")
    assert h.out == b"" and h.events == []
    h.feed(b"SM\r\n\r\n")
    assert h.conn.http_version == "2"
    # The server preface: a SETTINGS frame (type 4) on stream 0 comes first.
    assert h.out[3:4] == b"\x04" and h.out[5:9] == b"\x00\x00\x00\x00"
    assert h.events == []


def test_preface_prefix_then_other_bytes_is_http1() -> None:
    h = Harness()
    h.feed(b"P")
    h.feed(b"OST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    assert h.started()[0].scope["method"] == "POST"


# -- timers ------------------------------------------------------------------------------------


def test_idle_keep_alive_timeout() -> None:
    h = Harness(make_conn(keep_alive_timeout=5.0))
    assert h.conn.get_timer() == 5.0
    h.feed(GET)
    assert h.conn.get_timer() is None  # a request is in flight: no idle timer
    h.now = 3.0
    h.respond(1)
    assert h.conn.get_timer() == 8.0
    h.conn.handle_timer(7.9)
    h.pump()
    assert not closed(h)
    h.conn.handle_timer(8.0)
    h.pump()
    assert closed(h) and h.conn.get_timer() is None


def test_slow_head_gets_408_at_fixed_deadline() -> None:
    # Slowloris: trickling bytes does not extend the head deadline.
    h = Harness(make_conn(head_timeout=10.0))
    for i, byte in enumerate(b"GET / HTTP/1.1\r\nHost: a\r\n"):
        h.now = 1.0 + i * 0.2
        h.feed(bytes([byte]))
    assert h.conn.get_timer() == 11.0
    h.conn.handle_timer(11.0)
    h.pump()
    assert parse_responses(h.out)[0].status == 408 and closed(h)


POST_10 = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n"


def test_stalled_body_gets_408_and_the_app_a_disconnect() -> None:
    # Config.body_timeout: the deadline counts from the client's last bytes, and each new
    # piece of body moves it (nginx's client_body_timeout).
    h = Harness(make_conn(body_timeout=30.0))
    h.feed(POST_10 + b"abc")
    assert h.receive(1) == {"type": "http.request", "body": b"abc", "more_body": True}
    assert h.receive(1) is None and h.conn.get_timer() == 30.0
    h.now = 20.0
    h.feed(b"de")
    assert h.conn.get_timer() == 50.0
    h.conn.handle_timer(49.9)
    h.pump()
    assert not closed(h)
    h.conn.handle_timer(50.0)
    h.pump()
    assert parse_responses(h.out)[0].status == 408 and closed(h)
    assert StreamEnded(1) in h.events
    assert h.receive(1) == {"type": "http.disconnect"}  # HTTP-RX-04
    with pytest.raises(ClientDisconnected):
        h.send(1, start())


@pytest.mark.parametrize("started", [False, True])
def test_a_408_or_413_to_head_carries_no_body(started: bool) -> None:
    # RFC 9110 9.3.2: fuzz_detect found the body timeout's 408 to a HEAD carrying its text
    # (with the app's head held or not), and the 413 for a body past the limit did too; a
    # client reads such bytes as the next response.
    for config, data, when, status in (
        ({"body_timeout": 30.0}, b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab",
         30.0, 408),
        ({"max_body_size": 4}, b"HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked"
         b"\r\n\r\n3\r\nabc\r\n", None, 413),
    ):
        h = Harness(make_conn(**config))
        h.feed(data[: data.index(b"\r\n\r\n") + 4])
        if started:
            h.send(1, start(200))  # held until a body: never written
        h.feed(data[data.index(b"\r\n\r\n") + 4 :] + (b"2\r\nde\r\n" if status == 413 else b""))
        if when is not None:
            h.conn.handle_timer(when)
            h.pump()
        [reply] = parse_responses(h.out, ["HEAD"])
        assert reply.status == status and closed(h)
        assert h.out.endswith(b"\r\n\r\n")  # the head alone: nothing after it


def test_stalled_body_after_the_response_started_is_cut() -> None:
    # The app answered before reading all of it; the response is under way: no 408 can follow.
    h = Harness(make_conn(body_timeout=30.0))
    h.feed(POST_10 + b"abc")
    h.send(1, start(200))
    h.send(1, body(b"partial", more=True))
    h.conn.handle_timer(30.0)
    h.pump()
    assert closed(h) and StreamEnded(1) in h.events
    assert b"408" not in h.out and h.out.endswith(b"partial\r\n")


def test_no_body_timeout_while_the_app_leaves_the_body_unread() -> None:
    # Backpressure is the app's doing, not the client's: reading is paused, and so is the
    # timeout; it starts again when the app reads (at a time the core learns on its next call).
    h = Harness(make_conn(body_timeout=30.0, body_buffer_size=4))
    h.feed(POST_10 + b"abcd")
    assert not h.conn.wants_read and h.conn.get_timer() is None
    h.now = 1000.0
    assert h.receive(1) == {"type": "http.request", "body": b"abcd", "more_body": True}
    assert h.conn.get_timer() == 30.0  # stale: firing only restamps the wait
    h.conn.handle_timer(1000.0)
    h.pump()
    assert not closed(h) and h.conn.get_timer() == 1030.0
    h.conn.handle_timer(1030.0)
    h.pump()
    assert parse_responses(h.out)[0].status == 408 and closed(h)


def test_no_body_timeout_while_the_client_waits_for_100_continue() -> None:
    # SRV-05: the client waits for us; the wait for its body starts with our 100.
    h = Harness(make_conn(body_timeout=30.0, keep_alive_timeout=5.0))
    h.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    assert h.conn.get_timer() is None
    assert h.receive(1) is None and b"100 Continue" in h.out  # at t=100, unknown to the core
    assert h.conn.get_timer() == 30.0  # stale: firing only restamps the wait
    h.conn.handle_timer(100.0)
    h.pump()
    assert not closed(h) and h.conn.get_timer() == 130.0
    h.now = 110.0
    h.feed(b"abc")
    assert h.receive(1) == {"type": "http.request", "body": b"abc", "more_body": False}
    assert h.conn.get_timer() is None  # the body is complete


def test_body_timeout_none_waits_forever() -> None:
    h = Harness(make_conn(body_timeout=None))
    h.feed(POST_10 + b"abc")
    assert h.conn.get_timer() is None


def test_shutdown_when_idle_closes_now() -> None:
    h = Harness()
    h.conn.shutdown(0.0)
    h.pump()
    assert closed(h) and h.out == b""


def test_shutdown_in_flight_finishes_with_connection_close() -> None:
    # SRV-14
    h = Harness(make_conn(shutdown_timeout=30.0))
    h.feed(GET + GET)
    h.conn.shutdown(1.0)
    h.pump()
    assert not closed(h) and h.conn.get_timer() == 31.0
    h.respond(1)
    reply = parse_responses(h.out)[0]
    assert reply.status == 200 and reply.headers[b"connection"] == b"close"
    assert closed(h) and len(h.started()) == 1


def test_shutdown_deadline_aborts() -> None:
    h = Harness(make_conn(shutdown_timeout=2.0))
    h.feed(GET)
    h.conn.shutdown(0.0)
    h.conn.handle_timer(2.0)
    h.pump()
    assert StreamEnded(1) in h.events and closed(h)
    assert h.receive(1) == {"type": "http.disconnect"}


def test_events_order_stream_ended_before_connection_closed() -> None:
    h = Harness()
    h.feed(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    h.respond(1)
    kinds = [type(e) for e in h.events]
    assert kinds == [StreamStarted, StreamEnded, ConnectionClosed]


# -- found by fuzzing (fuzz/regressions) ----------------------------------------------------------


def test_500_to_head_request_has_no_body_and_keeps_framing() -> None:
    # RFC 9110 9.3.2: otherwise a kept-alive client reads the body as the next response.
    h = Harness()
    h.feed(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" + GET)
    h.finish(1, RuntimeError("boom"))
    h.respond(2, body=b"two")
    replies = parse_responses(h.out, ["HEAD", "GET"])
    assert [(r.status, r.body) for r in replies] == [(500, b""), (200, b"two")]


def test_app_connection_close_wins_over_a_later_connection_header() -> None:
    # RFC 9112 9.6
    h = Harness()
    h.feed(GET + GET)
    h.respond(1, headers=[(b"connection", b"close"), (b"connection", b"keep-alive"),
                          (b"content-length", b"2")])
    assert closed(h) and len(h.started()) == 1


def test_draining_an_unread_body_has_a_deadline() -> None:
    h = Harness(make_conn(keep_alive_timeout=5.0))
    h.feed(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    h.now = 1.0
    h.respond(1)
    h.finish(1)
    assert not closed(h) and h.conn.get_timer() == 6.0
    h.conn.handle_timer(6.0)
    h.pump()
    assert closed(h)
