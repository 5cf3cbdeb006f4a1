"""The fast request-head reader against h11, its differential oracle.

Whenever ``parse_head`` accepts a head, h11 must parse exactly the same request from it; when
it declines, the connection falls back to h11, so any answer is h11's.  Heads are generated
near the grammar's edges (odd whitespace, control bytes, bare LF, duplicate framing headers)
so that both branches are exercised.
"""

from __future__ import annotations

import h11
import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from asgi_sansio._http11 import RequestHead, parse_head

from .helpers import Harness, parse_responses

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=12).map(str.encode)
odd_bytes = st.sampled_from(
    [b" ", b"\t", b"\x00", b"\x01", b"\x7f", b"\x80", b"\xff", b"\r", b"\n", b":", b",", b"\x0b"]
)
plain_values = st.text("abcXYZ019 -_/;=\t", max_size=12).map(str.encode)
values = st.one_of(
    plain_values,
    plain_values,
    plain_values,
    st.lists(st.one_of(plain_values, odd_bytes), max_size=4).map(b"".join),
)
names = st.one_of(
    tokens,
    tokens,
    st.sampled_from([b"Content-Length", b"Transfer-Encoding", b"Expect", b"Connection",
                     b"Upgrade", b"te", b"HOST"]),
    st.builds(lambda a, b: a + b, tokens, odd_bytes),
)
fields = st.builds(
    lambda host, rest: host + rest,
    st.one_of(st.just([(b"Host", b"example.com")]), st.just([(b"host", b" a:1 ")]),
              st.just([])),
    st.lists(st.tuples(names, values), max_size=8),
)
targets = st.one_of(
    st.sampled_from([b"/", b"/a?b=c", b"*", b"http://x/y", b"/%41"]),
    st.builds(lambda a, b: b"/" + a + b, tokens, st.one_of(st.just(b""), odd_bytes)),
)
versions = st.sampled_from([b"1.1", b"1.1", b"1.0", b"2.0", b"0.9", b"1.x"])
methods = st.one_of(st.sampled_from([b"GET", b"POST", b"HEAD", b"get"]), tokens,
                    st.builds(lambda a, b: a + b, tokens, odd_bytes))


def h11_parse(head: bytes) -> RequestHead | str:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(head + b"\r\n\r\n")
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        return f"error {exc.error_status_hint}"
    if not isinstance(event, h11.Request):
        return repr(event)
    return RequestHead(event.method, event.target, event.http_version, list(event.headers))


@given(methods, targets, versions, fields, st.sampled_from([b" ", b" ", b" ", b"  ", b"\t"]))
@example(b"GET", b"/", b"1.1", [(b"Host", b"a"), (b"Content-Length", b"5")], b" ")
@example(b"GET", b"/", b"1.1", [(b"Host", b"a"), (b"X", b" padded \t")], b" ")
def test_fast_head_matches_h11(method: bytes, target: bytes, version: bytes,
                               headers: list[tuple[bytes, bytes]], sep: bytes) -> None:
    head = sep.join([method, target, b"HTTP/" + version]) + b"".join(
        b"\r\n" + name + b":" + value for name, value in headers
    )
    fast = parse_head(head)
    event("fast reader accepted" if fast is not None else "declined to h11")
    if fast is None:
        return  # declined: h11 decides, as the connection does
    oracle = h11_parse(head)
    assert isinstance(oracle, RequestHead), (head, oracle)
    assert (fast.method, fast.target, fast.version, fast.headers) == (
        oracle.method, oracle.target, oracle.version, oracle.headers
    )


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\n folded",  # obs-fold
        b"GET / HTTP/1.1\nHost: a",  # bare LF
        b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1",
        b"GET / HTTP/1.1",  # no Host
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: \x01",
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: 1",
    ],
)
def test_unusual_heads_go_to_h11(head: bytes) -> None:
    assert parse_head(head) is None


@pytest.mark.parametrize(
    "wire",
    [
        b"GET / HTTP/1.1\nHost: a\n\n",  # bare-LF head, which h11 accepts
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
    ],
)
def test_fallback_requests_are_served_and_the_next_uses_the_fast_path(wire: bytes) -> None:
    h = Harness()
    h.feed(wire + b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    assert h.read_body(1) in (b"", b"x")
    h.respond(1)
    assert h.started()[1].scope["path"] == "/next"
    h.respond(2)
    assert [r.status for r in parse_responses(h.out)] == [200, 200]


@given(
    tokens,
    st.lists(tokens, max_size=4).map(lambda parts: b"/" + b"/".join(parts)),
    st.sampled_from([b"1.1", b"1.0"]),
    st.lists(st.tuples(tokens.filter(lambda n: n.lower() not in (
        b"host", b"content-length", b"transfer-encoding")), plain_values), max_size=10),
)
def test_valid_heads_take_the_fast_path_and_match_h11(
    method: bytes, target: bytes, version: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    head = b"%s %s HTTP/%s\r\nHost: example.com" % (method, target, version) + b"".join(
        b"\r\n" + name + b":" + value for name, value in headers
    )
    fast = parse_head(head)
    assert fast is not None, head
    oracle = h11_parse(head)
    assert isinstance(oracle, RequestHead)
    assert (fast.method, fast.target, fast.version, fast.headers) == (
        oracle.method, oracle.target, oracle.version, oracle.headers
    )
