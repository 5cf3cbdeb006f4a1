"""Shared hypothesis strategies for the tests, valid and invalid: HTTP/1.1 requests as bytes,
pipelined sequences, byte splits and ASGI response scripts; HTTP/2 requests and frames;
WebSocket frames; and what apps send on a WebSocket or in lifespan.  (Users' strategies live
in ``asgi_sansio.testing.strategies``; nothing here repeats them.)

Requests are serialised here by hand (not through the code under test) so that header case,
optional whitespace, chunk extensions, leading empty lines and percent-encoding can vary; every
valid request also carries what the ASGI scope should say about it, computed independently of
``asgi_sansio`` (``test_strategies_are_valid_http`` checks the bytes with an h11 server).
"""

from __future__ import annotations

import itertools
import re
import string
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

# Small limits so that "oversized" inputs stay cheap; every test module using the invalid
# strategies builds its connections with ``TEST_LIMITS``.
TEST_LIMITS: dict[str, Any] = {
    "max_head_size": 2048,
    "max_target_length": 512,
    "max_header_count": 24,
    "max_body_size": 4096,
    "body_buffer_size": 256,
    "max_body_drain": 512,
}

METHODS = ("GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS")
TOKEN_CHARS = "!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters
UNRESERVED = string.ascii_letters + string.digits + "-._~"
PATH_EXTRA = "!$&'()*+,;=:@"
# Header names the generator never picks at random: they change framing, keep-alive, the
# 100-continue dance or the advertised extensions, and are added deliberately instead.
RESERVED_NAMES = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "expect", "te", "upgrade",
    "keep-alive", "trailer", "http2-settings", "proxy-connection",
})

# The statuses the core may answer bad client input with (issue #2).
CLIENT_ERROR_STATUSES = frozenset({400, 408, 413, 414, 431, 501, 505})

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

_PCT = re.compile(rb"%([0-9A-Fa-f]{2})")


def percent_decode(raw: bytes) -> str:
    """Independent of ``urllib``: %XX -> byte, then UTF-8 with replacement (AMB-06)."""
    return _PCT.sub(lambda m: bytes([int(m.group(1), 16)]), raw).decode("utf-8", "replace")


# --------------------------------------------------------------------------------------------
# Valid requests
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Req:
    """One valid request: its bytes and what the server must make of them."""

    method: str
    version: str  # "1.1" or "1.0"
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...]  # scope form: lowercased names, OWS stripped
    body: bytes
    framing: str  # "none", "length" or "chunked"
    expect_continue: bool
    closes: bool  # the connection must end after this exchange (SRV-08)
    wire: bytes
    te_trailers: bool = False  # "TE: trailers" was sent (EXT-TRAILERS-03)

    @property
    def raw_path(self) -> bytes:
        return self.target.partition(b"?")[0]

    @property
    def query_string(self) -> bytes:
        return self.target.partition(b"?")[2]

    @property
    def path(self) -> str:
        return percent_decode(self.raw_path)


def _pct_byte(draw: st.DrawFn) -> str:
    byte = draw(st.integers(0, 255))
    text = f"%{byte:02X}"
    return text.lower() if draw(st.booleans()) else text


@st.composite
def path_segments(draw: st.DrawFn) -> str:
    pieces = draw(st.lists(
        st.one_of(
            st.text(UNRESERVED, min_size=1, max_size=6),
            st.text(PATH_EXTRA, min_size=1, max_size=2),
            st.sampled_from(["%", "%%", "%2", "%g0"]),  # not an escape: stays literal
            st.just("PCT"),
        ),
        max_size=4,
    ))
    return "".join(_pct_byte(draw) if p == "PCT" else p for p in pieces)


@st.composite
def origin_targets(draw: st.DrawFn) -> bytes:
    segments = draw(st.lists(path_segments(), min_size=0, max_size=4))
    path = "/" + "/".join(segments)
    if draw(st.booleans()):
        query_pieces = draw(st.lists(
            st.one_of(st.text(UNRESERVED + "=&/?:@", min_size=1, max_size=6), st.just("PCT")),
            max_size=5,
        ))
        path += "?" + "".join(_pct_byte(draw) if p == "PCT" else p for p in query_pieces)
    return path.encode("ascii")


def _random_case(draw: st.DrawFn, name: str) -> str:
    style = draw(st.sampled_from(["lower", "title", "upper", "mixed"]))
    if style == "lower":
        return name.lower()
    if style == "title":
        return "-".join(part.capitalize() for part in name.split("-"))
    if style == "upper":
        return name.upper()
    return "".join(c.upper() if draw(st.booleans()) else c.lower() for c in name)


header_names = st.text(TOKEN_CHARS, min_size=1, max_size=12).filter(
    lambda n: n.lower() not in RESERVED_NAMES
)
# field-content: visible bytes (and obs-text) with single inner spaces or tabs.
# h11 also takes other control bytes than NUL, CR, LF, VT and FF (RFC 9110 5.5 lets a
# recipient keep them); they send the core's fast reader to its h11 fallback.
_field_vchar = st.sampled_from(
    [bytes([b]) for b in range(0x21, 0x7F)]
    + [b"\x80", b"\xc3\xa9", b"\xff", b"\x01", b"\x1f", b"\x7f"]
)
header_values = st.lists(
    st.lists(_field_vchar, min_size=1, max_size=6).map(b"".join), max_size=3
).flatmap(
    lambda words: st.lists(st.sampled_from([b" ", b"\t", b"  "]), min_size=len(words),
                           max_size=len(words)).map(
        lambda seps: b"".join(w + (s if i < len(words) - 1 else b"")
                              for i, (w, s) in enumerate(zip(words, seps, strict=True)))
    )
)
_ows = st.sampled_from([b"", b"", b" ", b"\t", b"  "])
hosts = st.sampled_from([
    b"example.com", b"localhost:8000", b"127.0.0.1", b"[::1]:443", b"a-b.c_d~e", b"x:",
])


def _chunked(draw: st.DrawFn, body: bytes) -> bytes:
    out = b""
    rest = body
    while rest:
        size = draw(st.integers(1, max(1, len(rest))))
        piece, rest = rest[:size], rest[size:]
        hexsize = f"{size:x}"
        hexsize = hexsize.upper() if draw(st.booleans()) else hexsize
        hexsize = "0" * draw(st.integers(0, 2)) + hexsize
        ext = draw(st.sampled_from([b"", b"", b";a=b", b";foo"]))
        out += hexsize.encode() + ext + b"\r\n" + piece + b"\r\n"
    out += b"0\r\n"
    if draw(st.booleans()):
        out += b"X-Trailer: done\r\n"  # request trailers are parsed and dropped
    return out + b"\r\n"


@st.composite
def requests(
    draw: st.DrawFn,
    methods: tuple[str, ...] = METHODS,
    max_body: int = 300,
    allow_close: bool = True,
    allow_http10: bool = True,
) -> Req:
    method = draw(st.sampled_from(methods))
    version = "1.0" if allow_http10 and draw(st.integers(0, 9)) == 0 else "1.1"
    if method == "OPTIONS" and draw(st.integers(0, 3)) == 0:
        target = b"*"
    else:
        target = draw(origin_targets())

    lines: list[tuple[bytes, bytes]] = []  # as sent: (name, value)
    for _ in range(draw(st.integers(0, 5))):
        name = _random_case(draw, draw(header_names)).encode("ascii")
        lines.append((name, draw(header_values)))
    if version == "1.1" or draw(st.booleans()):
        lines.append((_random_case(draw, "host").encode(), draw(hosts)))

    framing = draw(st.sampled_from(
        ["none", "length", "chunked"] if version == "1.1" else ["none", "length"]
    ))
    body = b""
    if framing != "none":
        body = draw(st.binary(max_size=max_body))
    if framing == "length":
        zeros = b"0" * draw(st.integers(0, 1))
        lines.append((_random_case(draw, "content-length").encode(), zeros + b"%d" % len(body)))
    elif framing == "chunked":
        lines.append((_random_case(draw, "transfer-encoding").encode(), b"chunked"))

    expect_continue = version == "1.1" and draw(st.integers(0, 3)) == 0
    if expect_continue:
        lines.append((_random_case(draw, "expect").encode(), b"100-continue"))

    closes = False
    if version == "1.0":
        # h11 never keeps an HTTP/1.0 connection alive, even with "Connection: keep-alive"
        # (allowed: a server may always close), so every 1.0 exchange is the last.
        closes = True
        if draw(st.booleans()):
            lines.append((b"Connection", b"keep-alive"))
    elif allow_close and draw(st.integers(0, 4)) == 0:
        lines.append((b"Connection", draw(st.sampled_from([b"close", b"Close", b"foo, close"]))))
        closes = True

    te_trailers = draw(st.integers(0, 4)) == 0
    if te_trailers:
        value = draw(st.sampled_from([b"trailers", b"trailers, deflate", b"gzip, Trailers"]))
        lines.append((_random_case(draw, "te").encode(), value))

    lines = draw(st.permutations(lines))
    # Bare LF line ends (RFC 9112 2.2 lets a recipient accept them; h11 does).
    eol = b"\n" if draw(st.integers(0, 7)) == 0 else b"\r\n"
    head = f"{method} ".encode() + target + f" HTTP/{version}".encode() + eol
    for name, value in lines:
        head += name + b":" + draw(_ows) + value + draw(_ows) + eol
    head += eol
    wire = head + (_chunked(draw, body) if framing == "chunked" else body)
    headers = tuple((name.lower(), value) for name, value in lines)
    return Req(method, version, target, headers, body, framing, expect_continue, closes, wire,
               te_trailers)


@st.composite
def pipelines(draw: st.DrawFn, min_size: int = 1, max_size: int = 4, **kwargs: Any) -> list[Req]:
    return draw(st.lists(requests(**kwargs), min_size=min_size, max_size=max_size))


@st.composite
def pipeline_layout(draw: st.DrawFn, reqs: list[Req]) -> tuple[bytes, list[int]]:
    """The requests back to back, sometimes with the empty lines RFC 9112 2.2 lets a server
    skip before a request line; and the offset where each request ends."""
    out = b""
    ends = []
    for req in reqs:
        out += draw(st.sampled_from([b"", b"", b"", b"\r\n", b"\n", b"\r\n\r\n"])) + req.wire
        ends.append(len(out))
    return out, ends


def pipeline_bytes(reqs: list[Req]) -> st.SearchStrategy[bytes]:
    return pipeline_layout(reqs).map(lambda layout: layout[0])


def served(reqs: list[Req]) -> list[Req]:
    """The requests the server answers: everything up to the first that ends the connection."""
    out = []
    for req in reqs:
        out.append(req)
        if req.closes:
            break
    return out


# --------------------------------------------------------------------------------------------
# Byte splits
# --------------------------------------------------------------------------------------------


def cut(data: bytes, points: list[int]) -> list[bytes]:
    chunks, last = [], 0
    for point in points:
        chunks.append(data[last:point])
        last = point
    chunks.append(data[last:])
    return [c for c in chunks if c]


@st.composite
def splits(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut into non-empty chunks: whole, byte by byte, or at random points."""
    if len(data) <= 1:
        return [data] if data else []
    kind = draw(st.sampled_from(["random", "random", "random", "whole", "bytewise"]))
    if kind == "whole":
        return [data]
    if kind == "bytewise":
        return [data[i:i + 1] for i in range(len(data))]
    points = draw(st.lists(st.integers(1, len(data) - 1), unique=True, max_size=12))
    return cut(data, sorted(points))


# --------------------------------------------------------------------------------------------
# Invalid requests
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BadReq:
    """A request the server must refuse.  ``statuses``: what it may answer.  ``head_ok``: the
    head itself is valid (the app is called, and the body is what is wrong); otherwise the app
    must never see it."""

    name: str
    wire: bytes
    statuses: frozenset[int]
    head_ok: bool = False


def _bad(name: str, wire: bytes, *statuses: int, head_ok: bool = False) -> BadReq:
    return BadReq(name, wire, frozenset(statuses), head_ok)


@st.composite
def bad_requests(draw: st.DrawFn) -> BadReq:
    lim = TEST_LIMITS
    host = b"Host: example.com\r\n"
    kind = draw(st.sampled_from([
        "version_505", "version_400", "missing_host", "two_hosts", "bad_host", "ctl_target",
        "ctl_method", "ctl_name", "nul_value", "cr_value", "no_colon", "space_before_colon",
        "leading_ws_line", "bad_request_line", "long_target", "long_head", "many_headers",
        "bad_cl", "two_cl", "te_gzip", "cl_too_big", "connect", "relative_target",
        "bad_chunk_size", "bad_chunk_footer", "huge_chunk", "chunked_too_big", "garbage_line",
    ]))
    if kind == "version_505":
        version = draw(st.sampled_from([b"1.2", b"2.0", b"0.9", b"3.0", b"9.9"]))
        return _bad(kind, b"GET / HTTP/" + version + b"\r\n" + host + b"\r\n", 505)
    if kind == "version_400":
        version = draw(st.sampled_from([b"HTTP/11", b"http/1.1", b"HTTP/1.1x", b"HTTPS/1.1",
                                        b"HTTP/1", b"HTTP/1.1 "]))
        return _bad(kind, b"GET / " + version + b"\r\n" + host + b"\r\n", 400)
    if kind == "missing_host":
        return _bad(kind, b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400)
    if kind == "two_hosts":
        return _bad(kind, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400)
    if kind == "bad_host":
        value = draw(st.sampled_from([b"a b", b"a/b", b"a@b:c/", b"[zz]", b"a?b", b"a\"b"]))
        return _bad(kind, b"GET / HTTP/1.1\r\nHost: " + value + b"\r\n\r\n", 400)
    if kind == "ctl_target":
        ctl = bytes([draw(st.sampled_from([0, 1, 8, 0x0B, 0x0C, 0x1F, 0x7F]))])
        return _bad(kind, b"GET /a" + ctl + b"b HTTP/1.1\r\n" + host + b"\r\n", 400)
    if kind == "ctl_method":
        ctl = bytes([draw(st.sampled_from([0, 1, 0x7F, 0x80]))])
        return _bad(kind, b"G" + ctl + b"T / HTTP/1.1\r\n" + host + b"\r\n", 400)
    if kind == "ctl_name":
        ctl = bytes([draw(st.sampled_from([0, 1, 0x7F, 0x80, 0x22, 0x28]))])
        return _bad(kind, b"GET / HTTP/1.1\r\n" + host + b"X" + ctl + b"Y: z\r\n\r\n", 400)
    if kind == "nul_value":
        return _bad(kind, b"GET / HTTP/1.1\r\n" + host + b"X-A: b\x00c\r\n\r\n", 400)
    if kind == "cr_value":
        return _bad(kind, b"GET / HTTP/1.1\r\n" + host + b"X-A: b\rc\r\n\r\n", 400)
    if kind == "no_colon":
        return _bad(kind, b"GET / HTTP/1.1\r\n" + host + b"foo\r\n\r\n", 400)
    if kind == "space_before_colon":
        return _bad(kind, b"GET / HTTP/1.1\r\n" + host + b"X-A : b\r\n\r\n", 400)
    if kind == "leading_ws_line":
        return _bad(kind, b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400)
    if kind == "bad_request_line":
        line = draw(st.sampled_from([b"GET  / HTTP/1.1", b"GET /", b"GET", b" GET / HTTP/1.1",
                                     b"GET / HTTP/1.1 x", b"/ HTTP/1.1"]))
        return _bad(kind, line + b"\r\n" + host + b"\r\n", 400)
    if kind == "long_target":
        size = draw(st.integers(lim["max_target_length"] + 40, lim["max_head_size"] - 100))
        return _bad(kind, b"GET /" + b"a" * size + b" HTTP/1.1\r\n" + host + b"\r\n", 414)
    if kind == "long_head":
        size = draw(st.integers(lim["max_head_size"] + 1, 2 * lim["max_head_size"]))
        return _bad(kind, b"GET / HTTP/1.1\r\n" + host + b"X-Big: " + b"v" * size
                    + b"\r\n\r\n", 431)
    if kind == "many_headers":
        count = draw(st.integers(lim["max_header_count"] + 1, lim["max_header_count"] + 20))
        lines = b"".join(b"X-%d: v\r\n" % i for i in range(count))
        return _bad(kind, b"GET / HTTP/1.1\r\n" + host + lines + b"\r\n", 431)
    if kind == "bad_cl":
        value = draw(st.sampled_from([b"x", b"-1", b"1.0", b"0x10", b"1 2", b"+1"]))
        return _bad(kind, b"POST / HTTP/1.1\r\n" + host + b"Content-Length: " + value
                    + b"\r\n\r\nab", 400)
    if kind == "two_cl":
        return _bad(kind, b"POST / HTTP/1.1\r\n" + host
                    + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400)
    if kind == "te_gzip":
        value = draw(st.sampled_from([b"gzip", b"gzip, chunked", b"chunked, gzip", b"identity"]))
        return _bad(kind, b"POST / HTTP/1.1\r\n" + host + b"Transfer-Encoding: " + value
                    + b"\r\n\r\n0\r\n\r\n", 501, 400)
    if kind == "cl_too_big":
        size = draw(st.integers(lim["max_body_size"] + 1, 10**12))
        return _bad(kind, b"POST / HTTP/1.1\r\n" + host + b"Content-Length: %d\r\n\r\n" % size,
                    413)
    if kind == "connect":
        return _bad(kind, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
                    501, 405)
    if kind == "relative_target":
        target = draw(st.sampled_from([b"foo", b"*", b"?a", b"ftp://x/", b"//x"]))
        if target == b"//x":
            # "//x" is an origin-form path; only the ones that are not stay here.
            target = b"foo/bar"
        return _bad(kind, b"GET " + target + b" HTTP/1.1\r\n" + host + b"\r\n", 400)
    chunked_head = b"POST / HTTP/1.1\r\n" + host + b"Transfer-Encoding: chunked\r\n\r\n"
    if kind == "bad_chunk_size":
        size = draw(st.sampled_from([b"zz", b"-1", b"", b"0x1", b" 1", b"1 1", b"g"]))
        return _bad(kind, chunked_head + size + b"\r\nabc\r\n0\r\n\r\n", 400, head_ok=True)
    if kind == "bad_chunk_footer":
        return _bad(kind, chunked_head + b"1\r\nabc\r\n0\r\n\r\n", 400, head_ok=True)
    if kind == "huge_chunk":
        return _bad(kind, chunked_head + b"f" * 21 + b"\r\n", 400, head_ok=True)
    if kind == "chunked_too_big":
        size = lim["max_body_size"] + draw(st.integers(1, 200))
        return _bad(kind, chunked_head + b"%x\r\n" % size + b"x" * size + b"\r\n0\r\n\r\n", 413,
                    head_ok=True)
    # garbage_line: printable junk that cannot be a request line
    junk = draw(st.binary(min_size=1, max_size=40).filter(
        lambda b: b" HTTP/" not in b and not H2_PREFACE.startswith(b[:24])
        and b.strip(b"\r\n") != b""
    ))
    return _bad(kind, junk + b"\r\n\r\n", 400, 505, 414, 431)


def arbitrary_bytes(max_size: int = 300) -> st.SearchStrategy[bytes]:
    """Raw junk, sometimes glued to a plausible request-line start so the parser gets further.
    Never the HTTP/2 preface (that switches protocol; tested elsewhere)."""
    prefixes = st.sampled_from([b"", b"", b"GET / HTTP/1.1\r\n", b"POST /x HTTP/1.1\r\nHost: a\r\n",
                                b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                                b"PRI * HTTP/2.0\r\n"])
    return st.tuples(prefixes, st.binary(max_size=max_size)).map(b"".join).filter(
        lambda b: not b.startswith(H2_PREFACE)
    )


# --------------------------------------------------------------------------------------------
# ASGI response scripts
# --------------------------------------------------------------------------------------------


@dataclass
class Resp:
    """A valid response as the app sends it, and the wire view the client must decode."""

    status: int
    headers: list[tuple[bytes, bytes]]  # the app's headers, content-length excluded
    body_chunks: list[bytes]
    with_length: bool
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(self.body_chunks)


_resp_header_names = header_names.map(str.lower).filter(
    lambda n: n not in ("date", "server")
).map(str.encode)
_resp_header_values = st.binary(max_size=12).map(
    lambda b: bytes(c for c in b if 0x21 <= c <= 0x7E)
)


@st.composite
def responses(draw: st.DrawFn, statuses: st.SearchStrategy[int] | None = None) -> Resp:
    status = draw(statuses if statuses is not None else st.one_of(
        st.sampled_from([200, 201, 204, 301, 304, 404, 500]), st.integers(200, 999)
    ))
    headers = draw(st.lists(st.tuples(_resp_header_names, _resp_header_values), max_size=4))
    if draw(st.integers(0, 5)) == 0:
        # HTTP-TX-03: an app transfer-encoding must be ignored; the server owns framing.
        headers.append((b"transfer-encoding", b"chunked"))
    if draw(st.integers(0, 5)) == 0:
        headers.append((b"server", b"app-server"))  # SRV-15: never duplicated
    chunks = draw(st.lists(st.binary(max_size=64), max_size=4))
    with_length = draw(st.booleans())
    resp = Resp(status, headers, chunks, with_length)
    all_headers = list(headers)
    if with_length:
        pos = draw(st.integers(0, len(all_headers)))
        all_headers.insert(pos, (b"content-length", b"%d" % len(resp.body)))
    start: dict[str, Any] = {"type": "http.response.start", "status": status}
    if all_headers or draw(st.booleans()):
        start["headers"] = [list(h) if draw(st.booleans()) else h for h in all_headers]
    if draw(st.integers(0, 4)) == 0:
        start["x-unknown-key"] = "ignored"  # MAIN-10: unknown keys never raise
    messages = [start]
    for i, chunk in enumerate(chunks):
        msg: dict[str, Any] = {"type": "http.response.body"}
        if chunk or draw(st.booleans()):
            msg["body"] = chunk
        more = i < len(chunks) - 1
        if more or draw(st.booleans()):
            msg["more_body"] = more
        messages.append(msg)
    if not chunks:
        messages.append({"type": "http.response.body"})  # HTTP-TX-06: both keys optional
    resp.messages = messages
    return resp


@dataclass(frozen=True)
class Misuse:
    """An app script whose last message breaks a rule.  ``rules``: the checklist IDs the
    error may name.  ``head_sent``: True if a body went out before the bad message (abort
    expected), False if nothing did (500 expected), None if the bad message itself decides."""

    name: str
    messages: tuple[Any, ...]
    rules: frozenset[str]
    head_sent: bool | None


_START = {"type": "http.response.start", "status": 200, "headers": []}
_START_CL = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]}
_MORE = {"type": "http.response.body", "body": b"ab", "more_body": True}
_FINAL = {"type": "http.response.body", "body": b"cd"}


@st.composite
def misuses(draw: st.DrawFn) -> Misuse:
    def m(name: str, msgs: list[Any], rules: set[str], head_sent: bool | None) -> Misuse:
        return Misuse(name, tuple(msgs), frozenset(rules), head_sent)

    # Where in the response the bad message lands: nothing sent, head held back, body begun.
    prefix_kind = draw(st.sampled_from(["none", "start", "body"]))
    prefix: list[Any] = {"none": [], "start": [_START], "body": [_START, _MORE]}[prefix_kind]
    sent = prefix_kind == "body"
    kind = draw(st.sampled_from([
        "not_dict", "no_type", "unknown_type", "ws_type", "order", "bad_status", "str_headers",
        "headers_not_iterable", "pseudo_header", "crlf_header", "bad_name", "body_type",
        "more_body_type", "cl_overflow", "cl_underflow", "bad_cl", "trailers_no_ext",
        "trailers_type", "after_done", "hint_links",
    ]))
    start_rules = {"HTTP-TX-01", "HTTP-TX-04", "HTTP-ERR-03"}
    if kind == "not_dict":
        bad = draw(st.sampled_from([None, "http.response.body", [("type", "x")], 42]))
        return m(kind, [*prefix, bad], {"MAIN-08", "MAIN-09"}, sent)
    if kind == "no_type":
        return m(kind, [*prefix, {"body": b"x"}], {"MAIN-09", "MAIN-08"}, sent)
    if kind == "unknown_type":
        return m(kind, [*prefix, {"type": draw(st.sampled_from(
            ["http.response.bogus", "http.request", "http.disconnect", "", "HTTP.RESPONSE.BODY"]
        ))}], {"MAIN-09"}, sent)
    if kind == "ws_type":
        return m(kind, [*prefix, {"type": "websocket.send", "text": "x"}], {"MAIN-09"}, sent)
    if kind == "order":
        # A body before start, a second start, a start after the body began.
        bad = _FINAL if prefix_kind == "none" else _START
        return m(kind, [*prefix, bad], start_rules, sent)
    if kind == "after_done":
        return m(kind, [_START, _FINAL, _FINAL], {"HTTP-ERR-04"}, True)
    if kind == "hint_links":
        bad_hint = {"type": "http.response.early_hint", "links": [draw(st.sampled_from(
            ["</a>; rel=preload", 5, None]))]}
        if prefix_kind != "none":
            # EXT-HINT-04: after start a hint is dropped; a malformed one may still raise.
            return m(kind, [*prefix, bad_hint], {"EXT-HINT-01"}, sent)
        return m(kind, [bad_hint], {"EXT-HINT-01"}, False)
    if kind in ("body_type", "more_body_type"):
        start = [_START] if prefix_kind == "none" else []
        if kind == "body_type":
            bad = {"type": "http.response.body",
                   "body": draw(st.sampled_from(["text", 5, None, [b"a"]]))}
        else:
            bad = {"type": "http.response.body", "body": b"x",
                   "more_body": draw(st.sampled_from([1, 0, "yes", None]))}
        return m(kind, [*prefix, *start, bad], {"HTTP-TX-06"}, sent)
    if kind == "cl_overflow":
        over = {"type": "http.response.body", "body": b"abcde"}
        if prefix_kind == "body":
            return m(kind, [_START_CL, _MORE, over], {"SRV-01"}, True)
        return m(kind, [_START_CL, over], {"SRV-01"}, None)
    if kind == "cl_underflow":
        short = {"type": "http.response.body", "body": b"a"}
        if prefix_kind == "body":
            return m(kind, [_START_CL, _MORE, short], {"SRV-02"}, True)
        return m(kind, [_START_CL, short], {"SRV-02"}, None)
    # The rest are bad http.response.start messages: after the body began they are an order
    # error first; before, the start message itself is checked.
    rules_if_started = start_rules if prefix_kind != "none" else set()
    base_prefix = prefix
    if kind == "bad_status":
        status = draw(st.sampled_from(["200", 200.0, True, 199, 100, 103, 1000, -1, None, 0]))
        bad = {"type": "http.response.start", "status": status}
        return m(kind, [*base_prefix, bad], rules_if_started or {"HTTP-TX-12"}, sent)
    if kind == "str_headers":
        headers = draw(st.sampled_from([
            [("content-type", "text/plain")], [(b"content-type", "text/plain")],
            [("content-type", b"text/plain")], [(bytearray(b"a"), b"b")],
        ]))
        rules = rules_if_started or {"HTTP-TX-02"}
    elif kind == "headers_not_iterable":
        headers = draw(st.sampled_from([5, [b"ab"], [(b"a", b"b", b"c")], [(b"a",)]]))
        rules = rules_if_started or {"HTTP-TX-02"}
    elif kind == "pseudo_header":
        headers = [(draw(st.sampled_from([b":status", b":path", b":authority"])), b"x")]
        rules = rules_if_started or {"HTTP-TX-02"}
    elif kind == "crlf_header":
        value = draw(st.sampled_from([b"a\r\nx-injected: 1", b"a\nb", b"a\rb", b"a\x00b"]))
        headers = [(b"x-a", value)]
        rules = rules_if_started or {"SRV-10", "HTTP-TX-02"}
    elif kind == "bad_name":
        name = draw(st.sampled_from([b"bad name", b"", b"a:b", b"x\r\ny", b"\xff"]))
        headers = [(name, b"v")]
        rules = rules_if_started or {"SRV-10", "HTTP-TX-02"}
    elif kind == "bad_cl":
        value = draw(st.sampled_from([b"abc", b"-1", b"1,1", b""]))
        headers = [(b"content-length", value)]
        rules = rules_if_started or {"SRV-01", "SRV-10"}
    elif kind == "trailers_no_ext":
        bad = {"type": "http.response.start", "status": 200, "trailers": True}
        return m(kind, [*base_prefix, bad], rules_if_started or {"EXT-TRAILERS-05"}, sent)
    else:  # trailers_type
        bad = {"type": "http.response.start", "status": 200, "trailers": "yes"}
        return m(kind, [*base_prefix, bad], rules_if_started or {"HTTP-TX-01"}, sent)
    bad = {"type": "http.response.start", "status": 200, "headers": headers}
    return m(kind, [*base_prefix, bad], rules, sent)


# --------------------------------------------------------------------------------------------
# HTTP/2: requests and frames
# --------------------------------------------------------------------------------------------

_H2_NAMES = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=8).map(lambda s: "x-" + s)
_H2_VALUES = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ;=,/",
                     max_size=20).map(str.strip)


@dataclass(frozen=True)
class H2Req:
    """One valid HTTP/2 request, as fields for an h2 client (``tests.helpers.H2Client``)."""

    method: bytes
    path: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    chunks: tuple[bytes, ...]  # request body as the client sends it, one DATA frame each
    trailers: bool  # end the request with a trailers block instead of END_STREAM on DATA


@st.composite
def h2_requests(draw: st.DrawFn) -> H2Req:
    """Valid HTTP/2 requests: lowercase names, split cookies, a body in 0-4 DATA frames."""
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"OPTIONS"]))
    segments = draw(st.lists(st.text("abcXYZ019-._~%20", min_size=1, max_size=6), max_size=3))
    path = ("/" + "/".join(segments)).encode()
    if draw(st.booleans()):
        path += b"?" + draw(st.text("a=1&b%20", max_size=8)).encode()
    headers = draw(st.lists(st.tuples(_H2_NAMES, _H2_VALUES), max_size=4))
    cookies = draw(st.lists(st.text("abc=123", min_size=1, max_size=6), max_size=3))
    fields = [(n.encode(), v.encode()) for n, v in headers]
    fields += [(b"cookie", c.encode()) for c in cookies]
    chunks = draw(st.lists(st.binary(min_size=0, max_size=600), max_size=4))
    return H2Req(method, path, tuple(fields), tuple(chunks), draw(st.booleans()))


def h2_frame(kind: int, flags: int, sid: int, payload: bytes) -> bytes:
    """One HTTP/2 frame built by hand (RFC 9113 4.1), for frames hyperframe will not write."""
    return (len(payload).to_bytes(3, "big") + bytes([kind, flags]) + sid.to_bytes(4, "big")
            + payload)


def _hpack_literal(name: bytes, value: bytes) -> bytes:
    # RFC 7541 6.2.2: a literal field without indexing, new name, no Huffman: no table state.
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def h2_header_block(fields: list[tuple[bytes, bytes]]) -> bytes:
    """An HPACK block of literals that touches no table, so any decoder state reads it alike."""
    return b"".join(_hpack_literal(n, v) for n, v in fields)


_H2_REQUEST = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/"),
               (b":authority", b"example.com")]
H2_DATA, H2_HEADERS, H2_PRIORITY, H2_RST_STREAM, H2_SETTINGS = 0x0, 0x1, 0x2, 0x3, 0x4
H2_PUSH_PROMISE, H2_PING, H2_GOAWAY, H2_WINDOW_UPDATE, H2_CONTINUATION = 0x5, 0x6, 0x7, 0x8, 0x9
END_STREAM, END_HEADERS, PADDED, PRIORITY_FLAG, ACK = 0x1, 0x4, 0x8, 0x20, 0x1


def h2_open(sid: int, extra: list[tuple[bytes, bytes]] | None = None, end: bool = False,
            flags: int = 0, prefix: bytes = b"") -> bytes:
    """A HEADERS frame opening stream ``sid`` with a POST (plus ``extra`` fields)."""
    block = prefix + h2_header_block([*_H2_REQUEST, *(extra or [])])
    return h2_frame(H2_HEADERS, END_HEADERS | (END_STREAM if end else 0) | flags, sid, block)


@st.composite
def h2_valid_frames(draw: st.DrawFn) -> bytes:
    """Valid client frames that open no stream (hyperframe builds most): PING, SETTINGS with
    legal values or an unknown identifier, WINDOW_UPDATE, PRIORITY (on idle streams too),
    and frames of unknown types, which RFC 9113 5.5 says a receiver must ignore."""
    from hyperframe.frame import (
        PingFrame,
        PriorityFrame,
        SettingsFrame,
        WindowUpdateFrame,
    )

    kind = draw(st.sampled_from(["ping", "settings", "window", "priority", "unknown"]))
    if kind == "ping":
        ping = PingFrame(0)
        ping.opaque_data = draw(st.binary(min_size=8, max_size=8))
        return bytes(ping.serialize())
    if kind == "settings":
        values = draw(st.dictionaries(st.sampled_from([
            SettingsFrame.HEADER_TABLE_SIZE, SettingsFrame.ENABLE_PUSH,
            SettingsFrame.MAX_CONCURRENT_STREAMS, SettingsFrame.INITIAL_WINDOW_SIZE,
            SettingsFrame.MAX_FRAME_SIZE, SettingsFrame.MAX_HEADER_LIST_SIZE, 0x4A4A,
        ]), st.integers(0, 2**31 - 1), max_size=3))
        legal = {SettingsFrame.ENABLE_PUSH: (0, 1),
                 SettingsFrame.MAX_FRAME_SIZE: (2**14, 2**24 - 1)}
        for setting, (low, high) in legal.items():
            if setting in values:
                values[setting] = low + values[setting] % (high - low + 1)
        return bytes(SettingsFrame(0, settings=values).serialize())
    if kind == "window":
        # The connection's window only: on a stream still idle it would be an error (5.1).
        return bytes(WindowUpdateFrame(0, window_increment=draw(st.integers(1, 2**16)))
                     .serialize())
    if kind == "priority":
        sid = draw(st.sampled_from([1, 3, 5, 7, 9]))
        depends = draw(st.sampled_from([0, 1, 3, 5, 7, 9]).filter(lambda d: d != sid))
        frame = PriorityFrame(sid, depends_on=depends, stream_weight=draw(st.integers(0, 255)),
                              exclusive=draw(st.booleans()))
        return bytes(frame.serialize())
    # By hand: hyperframe's ExtensionFrame writes a zero length whatever its body.
    return h2_frame(draw(st.integers(0x20, 0xFF)), draw(st.integers(0, 255)),
                    draw(st.sampled_from([0, 1, 3])), draw(st.binary(max_size=16)))


@dataclass(frozen=True)
class H2BadFrame:
    """Client bytes that end in the frame RFC 9113 says a server must refuse, sent after the
    preface and SETTINGS with no stream open.  ``codes``: the error codes the RFC allows;
    ``stream``: 0 for a connection error (a GOAWAY), else the stream of a stream error (an
    RST_STREAM there, or a GOAWAY: RFC 9113 5.4.1 lets any stream error end the connection)."""

    name: str
    wire: bytes
    codes: frozenset[int]
    stream: int = 0
    rfc: str = ""


PROTOCOL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED = 0x1, 0x3, 0x5
FRAME_SIZE_ERROR, COMPRESSION_ERROR = 0x6, 0x9


def _h2_bad_frames() -> dict[str, H2BadFrame]:
    f, o = h2_frame, h2_open
    p, fs, fc, sc = PROTOCOL_ERROR, FRAME_SIZE_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED
    max_wu = (2**31 - 1).to_bytes(4, "big")
    table = [
        # (name, wire, code, stream of a stream error or 0, RFC 9113 section)
        ("data_on_stream_0", f(H2_DATA, END_STREAM, 0, b"x"), p, 0, "6.1"),
        ("data_on_idle_stream", f(H2_DATA, END_STREAM, 7, b"x"), p, 0, "5.1"),
        ("padding_too_long", o(1) + f(H2_DATA, PADDED, 1, b"\x05abc"), p, 0, "6.1"),
        ("headers_on_stream_0", o(0), p, 0, "6.2"),
        ("headers_on_even_stream", o(2), p, 0, "5.1.1"),
        ("bad_hpack", f(H2_HEADERS, END_HEADERS | END_STREAM, 1, b"\xff" * 5),
         COMPRESSION_ERROR, 0, "4.3"),
        ("continuation_alone", f(H2_CONTINUATION, END_HEADERS, 1, b""), p, 0, "6.10"),
        ("oversized_frame", o(1) + f(H2_DATA, 0, 1, b"x" * (2**14 + 1)), fs, 0, "4.2"),
        ("priority_on_stream_0", f(H2_PRIORITY, 0, 0, b"\0\0\0\0\x10"), p, 0, "6.3"),
        ("priority_bad_length", f(H2_PRIORITY, 0, 3, b"\0\0\0\0"), fs, 3, "6.3"),
        ("self_dependency", o(1, flags=PRIORITY_FLAG, prefix=b"\0\0\0\x01\x10"), p, 1,
         "5.3.1"),
        ("rst_on_stream_0", f(H2_RST_STREAM, 0, 0, b"\0\0\0\x08"), p, 0, "6.4"),
        ("rst_on_idle_stream", f(H2_RST_STREAM, 0, 5, b"\0\0\0\x08"), p, 0, "6.4"),
        ("rst_bad_length", o(1) + f(H2_RST_STREAM, 0, 1, b"\0\0\x08"), fs, 0, "6.4"),
        ("settings_on_stream", f(H2_SETTINGS, 0, 1, b""), p, 0, "6.5"),
        ("settings_bad_length", f(H2_SETTINGS, 0, 0, b"\0\x01\0\0\0"), fs, 0, "6.5"),
        ("settings_ack_with_payload", f(H2_SETTINGS, ACK, 0, b"\0\x01\0\0\x10\0"), fs, 0,
         "6.5"),
        ("settings_enable_push_2", f(H2_SETTINGS, 0, 0, b"\0\x02\0\0\0\x02"), p, 0, "6.5.2"),
        ("settings_window_too_big", f(H2_SETTINGS, 0, 0, b"\0\x04\x80\0\0\0"), fc, 0,
         "6.5.2"),
        ("settings_frame_size_small", f(H2_SETTINGS, 0, 0, b"\0\x05\0\0\x3f\xff"), p, 0,
         "6.5.2"),
        ("settings_frame_size_big", f(H2_SETTINGS, 0, 0, b"\0\x05\x01\0\0\0"), p, 0, "6.5.2"),
        ("push_promise_from_client", o(1) + f(H2_PUSH_PROMISE, END_HEADERS, 1, b"\0\0\0\x02"
                                              + h2_header_block(_H2_REQUEST)), p, 0, "8.4"),
        ("ping_bad_length", f(H2_PING, 0, 0, b"1234567"), fs, 0, "6.7"),
        ("ping_on_stream", f(H2_PING, 0, 1, b"12345678"), p, 0, "6.7"),
        ("goaway_on_stream", f(H2_GOAWAY, 0, 1, bytes(8)), p, 0, "6.8"),
        ("window_update_zero", f(H2_WINDOW_UPDATE, 0, 0, bytes(4)), p, 0, "6.9"),
        ("window_update_zero_on_stream", o(1) + f(H2_WINDOW_UPDATE, 0, 1, bytes(4)), p, 1,
         "6.9"),
        ("window_update_bad_length", f(H2_WINDOW_UPDATE, 0, 0, bytes(3)), fs, 0, "6.9"),
        ("window_overflow", f(H2_WINDOW_UPDATE, 0, 0, max_wu) * 2, fc, 0, "6.9.1"),
        ("window_overflow_on_stream", o(1) + f(H2_WINDOW_UPDATE, 0, 1, max_wu) * 2, fc, 1,
         "6.9.1"),
        ("data_after_end_stream", o(1, end=True) + f(H2_DATA, END_STREAM, 1, b"x"), sc, 1,
         "5.1"),
        ("uppercase_field_name", o(1, [(b"X-Up", b"1")], end=True), p, 1, "8.2.1"),
        ("connection_field", o(1, [(b"connection", b"close")], end=True), p, 1, "8.2.2"),
        ("te_not_trailers", o(1, [(b"te", b"gzip")], end=True), p, 1, "8.2.2"),
        ("unknown_pseudo_field", o(1, [(b":foo", b"1")], end=True), p, 1, "8.3"),
        ("missing_path", f(H2_HEADERS, END_HEADERS | END_STREAM, 1, h2_header_block(
            [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a")])), p, 1,
         "8.3.1"),
        ("pseudo_after_regular", f(H2_HEADERS, END_HEADERS | END_STREAM, 1, h2_header_block(
            [(b":method", b"GET"), (b"x-a", b"1"), (b":scheme", b"http"), (b":path", b"/")])),
         p, 1, "8.3"),
        ("content_length_mismatch", o(1, [(b"content-length", b"5")])
         + f(H2_DATA, END_STREAM, 1, b"abc"), p, 1, "8.1.1"),
    ]
    return {name: H2BadFrame(name, wire, frozenset({code}), stream, rfc)
            for name, wire, code, stream, rfc in table}


H2_BAD_FRAMES = _h2_bad_frames()


def h2_invalid_frames(exclude: frozenset[str] = frozenset()) -> st.SearchStrategy[H2BadFrame]:
    """Invalid client frame sequences, one per rule of RFC 9113 a server must enforce, each
    with the GOAWAY or RST_STREAM code the RFC prescribes (``exclude``: names to leave out)."""
    return st.sampled_from(sorted(set(H2_BAD_FRAMES) - exclude)).map(H2_BAD_FRAMES.__getitem__)


# --------------------------------------------------------------------------------------------
# WebSocket frames (client to server, RFC 6455 5)
# --------------------------------------------------------------------------------------------

WS_MASK = b"\x9a\x0b\x5c\xe1"  # fixed, so that every generated byte string is reproducible


def ws_frame(first: int, payload: bytes, length_form: int | None = None,
             mask: bool = True) -> bytes:
    """One client frame by hand: ``first`` is the FIN/RSV/opcode byte; ``length_form`` forces
    the 16- (126) or 64-bit (127) length; ``mask=False`` writes the unmasked frame a client must
    not send."""
    size = len(payload)
    bit = 0x80 if mask else 0
    if length_form == 126 or (length_form is None and 126 <= size < 65536):
        head = bytes([first, bit | 126]) + size.to_bytes(2, "big")
    elif length_form == 127 or (length_form is None and size >= 65536):
        head = bytes([first, bit | 127]) + size.to_bytes(8, "big")
    else:
        head = bytes([first, bit | size])
    if not mask:
        return head + payload
    return head + WS_MASK + bytes(b ^ WS_MASK[i % 4] for i, b in enumerate(payload))


@dataclass(frozen=True)
class WSUnit:
    """Client frames that make one unit: a whole message (``message``) or a control frame."""

    wire: bytes
    message: str | bytes | None = None  # what the app must receive; None for PING and PONG


@st.composite
def ws_valid_frames(draw: st.DrawFn, max_size: int = 60) -> WSUnit:
    """Valid uncompressed client frames, no Close: a text or binary message in 1-3 fragments
    (text cut anywhere, inside a UTF-8 sequence too), a PING or PONG maybe between them."""
    kind = draw(st.sampled_from(["text", "text", "binary", "binary", "ping", "pong"]))
    if kind in ("ping", "pong"):
        return WSUnit(ws_frame(0x89 if kind == "ping" else 0x8A,
                               draw(st.binary(max_size=min(max_size, 125)))))
    message: str | bytes
    if kind == "text":
        message = draw(st.text(max_size=max_size // 4))
        raw = message.encode()
    else:
        message = raw = draw(st.binary(max_size=max_size))
    points = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=2)))
    parts = [raw[a:b] for a, b in itertools.pairwise([0, *points, len(raw)])]
    control = draw(st.sampled_from([None, None, 0x89, 0x8A]))
    wire = b""
    for i, part in enumerate(parts):
        opcode = (0x1 if kind == "text" else 0x2) if i == 0 else 0x0
        wire += ws_frame((0x80 if i == len(parts) - 1 else 0) | opcode, part)
        if control is not None and i < len(parts) - 1:
            wire += ws_frame(control, b"mid")  # RFC 6455 5.4: control frames interleave
    return WSUnit(wire, message)


@dataclass(frozen=True)
class WSBadFrame:
    """Client frames a server must fail the connection on, and the code its Close must carry
    (RFC 6455 7.4.1): 1002 protocol error, 1007 bad UTF-8, 1009 too big."""

    name: str
    wire: bytes
    code: int


def _close(payload: bytes) -> bytes:
    return ws_frame(0x88, payload)


_WS_BAD_FRAMES = [
    WSBadFrame("unmasked", ws_frame(0x81, b"hi", mask=False), 1002),
    *(WSBadFrame(f"opcode_{op:x}", ws_frame(0x80 | op, b"x"), 1002)
      for op in (0x3, 0x7, 0xB, 0xF)),
    WSBadFrame("rsv2", ws_frame(0xA1, b"x"), 1002),
    WSBadFrame("rsv3", ws_frame(0x92, b"x"), 1002),
    WSBadFrame("fragmented_ping", ws_frame(0x09, b"p"), 1002),
    WSBadFrame("ping_over_125", ws_frame(0x89, b"p" * 126), 1002),
    WSBadFrame("close_over_125", _close(b"\x03\xe8" + b"r" * 124), 1002),
    WSBadFrame("continuation_alone", ws_frame(0x80, b"x"), 1002),
    WSBadFrame("data_inside_fragments", ws_frame(0x01, b"a") + ws_frame(0x82, b"b"), 1002),
    WSBadFrame("bad_utf8", ws_frame(0x81, b"ok\xff"), 1007),
    WSBadFrame("bad_utf8_across_fragments", ws_frame(0x01, b"\xe2\x82") + ws_frame(0x80, b"("),
               1007),
    WSBadFrame("close_one_byte", _close(b"\x03"), 1002),
    *(WSBadFrame(f"close_code_{code}", _close(code.to_bytes(2, "big")), 1002)
      for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535)),
    WSBadFrame("close_reason_bad_utf8", _close(b"\x03\xe8\xff"), 1007),
    WSBadFrame("length_not_minimal_16", ws_frame(0x81, b"short", length_form=126), 1002),
    WSBadFrame("length_not_minimal_64", ws_frame(0x82, b"x", length_form=127), 1002),
    WSBadFrame("length_msb_set", bytes([0x82, 0xFF, 0x80]) + bytes(7) + WS_MASK, 1002),
]


def ws_invalid_frames(max_message_size: int | None = None) -> st.SearchStrategy[WSBadFrame]:
    """Invalid client frames (RFC 6455 5.2-5.5, 7.4, 8.1), each with the Close code the server
    must answer; with ``max_message_size`` (the server's ``ws_max_message_size``) also
    messages one byte too big, whole or in fragments (1009)."""
    bad = list(_WS_BAD_FRAMES)
    if max_message_size is not None:
        over = max_message_size + 1
        half = over // 2
        bad += [WSBadFrame("too_big", ws_frame(0x82, b"x" * over), 1009),
                WSBadFrame("too_big_in_fragments", ws_frame(0x02, b"x" * half)
                           + ws_frame(0x80, b"x" * (over - half)), 1009)]
    return st.sampled_from(bad)


# --------------------------------------------------------------------------------------------
# ASGI messages an app sends: WebSocket and lifespan
# --------------------------------------------------------------------------------------------

# RFC 6455 7.4: close codes an app may send (WS-19), and codes it may not.
WS_APP_CLOSE_CODES = (1000, 1001, 1003, 1008, 1011, 3000, 4000, 4999)
WS_BAD_CLOSE_CODES = (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000)


def ws_app_messages(max_size: int = 200) -> st.SearchStrategy[dict[str, Any]]:
    """Valid ``websocket.send`` messages: text or bytes, the other key absent or None."""
    def build(payload: str | bytes, other: bool) -> dict[str, Any]:
        key, unused = ("text", "bytes") if isinstance(payload, str) else ("bytes", "text")
        return {"type": "websocket.send", key: payload, **({unused: None} if other else {})}

    return st.builds(build, st.one_of(st.text(max_size=max_size), st.binary(max_size=max_size)),
                     st.booleans())


@st.composite
def ws_app_closes(draw: st.DrawFn) -> dict[str, Any]:
    """Valid ``websocket.close`` messages: a sendable code (or none: 1000), a reason of at most
    123 UTF-8 bytes (or none)."""
    message: dict[str, Any] = {"type": "websocket.close"}
    if draw(st.booleans()):
        message["code"] = draw(st.sampled_from(WS_APP_CLOSE_CODES))
    if draw(st.booleans()):
        message["reason"] = draw(st.text(max_size=30).filter(lambda r: len(r.encode()) <= 123))
    return message


@dataclass(frozen=True)
class Misused:
    """An app message that breaks the spec, and the checklist rule the error must name."""

    name: str
    message: Any
    rule: str


_WS_MISUSES = [
    Misused("text_and_bytes", {"type": "websocket.send", "text": "a", "bytes": b"b"}, "WS-08"),
    Misused("neither", {"type": "websocket.send"}, "WS-08"),
    Misused("both_none", {"type": "websocket.send", "text": None, "bytes": None}, "WS-08"),
    Misused("text_not_str", {"type": "websocket.send", "text": b"a"}, "WS-08"),
    Misused("bytes_not_bytes", {"type": "websocket.send", "bytes": "a"}, "WS-08"),
    *(Misused(f"close_code_{code}", {"type": "websocket.close", "code": code}, "WS-19")
      for code in WS_BAD_CLOSE_CODES),
    Misused("close_code_str", {"type": "websocket.close", "code": "1000"}, "WS-19"),
    Misused("reason_too_long", {"type": "websocket.close", "reason": "é" * 62}, "WS-19"),
    Misused("reason_bytes", {"type": "websocket.close", "reason": b"x"}, "WS-19"),
    Misused("accept_again", {"type": "websocket.accept"}, "WS-08"),
    Misused("unknown_type", {"type": "websocket.bogus"}, "MAIN-09"),
    Misused("http_message", {"type": "http.response.start", "status": 200}, "MAIN-09"),
    Misused("no_type", {"text": "a"}, "MAIN-09"),
    Misused("not_a_dict", None, "MAIN-08"),
]


def ws_misused_app_messages() -> st.SearchStrategy[Misused]:
    """Invalid messages from an app whose WebSocket is open (accepted), with the rule named."""
    return st.sampled_from(_WS_MISUSES)


LIFESPAN_ANSWERS = ("lifespan.startup.complete", "lifespan.startup.failed",
                    "lifespan.shutdown.complete", "lifespan.shutdown.failed")


def lifespan_answers(types: tuple[str, ...] | list[str] = LIFESPAN_ANSWERS
                     ) -> st.SearchStrategy[dict[str, Any]]:
    """Well-formed lifespan answers of the given types (valid when the status expects them):
    a str ``message`` or none, and extra keys, which MAIN-10 says are ignored."""
    return st.fixed_dictionaries(
        {"type": st.sampled_from(list(types))},
        optional={"message": st.text("ab é", max_size=3), "x-extra": st.integers()},
    )


_LIFESPAN_MISUSES = [
    Misused("receive_message", {"type": "lifespan.startup"}, "MAIN-09"),
    Misused("http_message", {"type": "http.response.start", "status": 200}, "MAIN-09"),
    Misused("misspelt", {"type": "lifespan.startup.completed"}, "MAIN-09"),
    Misused("bytes_type", {"type": b"lifespan.startup.complete"}, "MAIN-09"),
    Misused("int_type", {"type": 1}, "MAIN-09"),
    Misused("unhashable_type", {"type": ["x"]}, "MAIN-09"),
    Misused("no_type", {}, "MAIN-09"),
    Misused("not_a_dict", None, "MAIN-09"),
    Misused("a_str", "lifespan.startup.complete", "MAIN-09"),
]


@st.composite
def lifespan_misused_messages(draw: st.DrawFn) -> Misused:
    """Invalid lifespan send-messages: not a lifespan answer (MAIN-09 in any status), or a
    failure whose ``message`` is not a str (MAIN-09 where that failure is expected, else the
    order is what is wrong first: LIFE-09)."""
    if draw(st.integers(0, 3)) == 0:
        text = draw(st.one_of(st.integers(), st.none(), st.just(b"x")))
        kind = draw(st.sampled_from(["lifespan.startup.failed", "lifespan.shutdown.failed"]))
        return Misused("failure_text_not_str", {"type": kind, "message": text}, "MAIN-09")
    return draw(st.sampled_from(_LIFESPAN_MISUSES))
