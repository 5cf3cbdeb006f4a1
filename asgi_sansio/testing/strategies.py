"""Hypothesis strategies for fuzzing an ASGI app (or a server) with ``asgi_sansio.testing``.

Needs hypothesis: ``pip install 'asgi-sansio[testing]'``.

* ``http_requests()``: valid requests, as fields for ``AppHarness.request()`` and as raw bytes
  (``HTTPRequest.wire``) with the variety real clients show: header case, optional whitespace,
  percent-encoded targets, chunked or Content-Length bodies.
* ``malformed_requests()``: what a server must not take at face value: smuggling shapes, bad
  framing, oversize heads, control bytes.
* ``splits(data)``: one byte string cut into the chunks a network may deliver.
* ``response_messages()`` / ``misused_response_messages()``: what an app may send for one HTTP
  response, right and wrong, to fuzz the server side with a scripted app.
* ``websocket_messages()``: what a client may send on a WebSocket.

Every request is serialised here, independently of the server, so a bug cannot cancel itself
out.  The strategies draw small values by default; pass larger bounds for deep runs.
"""

from __future__ import annotations

import itertools
import string
from dataclasses import dataclass
from typing import Any

try:
    from hypothesis import strategies as st
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "asgi_sansio.testing.strategies needs hypothesis: "
        "pip install 'asgi-sansio[testing]'"
    ) from error

from .._config import Config

__all__ = [
    "HTTPRequest",
    "MalformedRequest",
    "header_names",
    "header_values",
    "http_requests",
    "malformed_requests",
    "misused_response_messages",
    "response_messages",
    "splits",
    "targets",
    "websocket_messages",
]

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_TOKEN = "!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters
_UNRESERVED = string.ascii_letters + string.digits + "-._~"
# Names that change framing or the connection; the generators add them on purpose only.
_RESERVED = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "expect", "te", "upgrade",
    "keep-alive", "trailer", "http2-settings", "proxy-connection",
})

Message = dict[str, Any]


# -- pieces ------------------------------------------------------------------------------------

header_names: st.SearchStrategy[bytes] = st.text(_TOKEN, min_size=1, max_size=16).filter(
    lambda name: name.lower() not in _RESERVED
).map(lambda name: name.encode("ascii"))
"""Header names (RFC 9110 tokens) that do not touch framing or the connection."""

_VALUE_BYTES = bytes(range(0x21, 0x7F)) + b"\x80\xc3\xa9\xff"
header_values: st.SearchStrategy[bytes] = st.binary(max_size=12).map(
    lambda raw: bytes(_VALUE_BYTES[c % len(_VALUE_BYTES)] for c in raw)
).flatmap(
    lambda word: st.sampled_from([word, word + b" x", b"a\t" + word]) if word else st.just(word)
)
"""Header values as a recipient must accept them: visible bytes, obs-text, inner whitespace."""


@st.composite
def targets(draw: st.DrawFn, max_segments: int = 4) -> str:
    """Origin-form targets: segments mixing unreserved, sub-delim and percent-encoded bytes
    (upper or lower hex), a lone ``%`` left literal, sometimes a query."""

    def piece() -> str:
        kind = draw(st.sampled_from(["plain", "plain", "pct", "delims", "literal"]))
        if kind == "plain":
            return draw(st.text(_UNRESERVED, min_size=1, max_size=6))
        if kind == "pct":
            text = f"%{draw(st.integers(0, 255)):02X}"
            return text.lower() if draw(st.booleans()) else text
        if kind == "delims":
            return draw(st.text("!$&'()*+,;=:@", min_size=1, max_size=2))
        return draw(st.sampled_from(["%", "%%", "%g1"]))

    segments = [
        "".join(piece() for _ in range(draw(st.integers(0, 3))))
        for _ in range(draw(st.integers(0, max_segments)))
    ]
    target = "/" + "/".join(segments)
    if draw(st.booleans()):
        target += "?" + "&".join(
            f"{draw(st.text(_UNRESERVED, max_size=4))}={piece()}"
            for _ in range(draw(st.integers(1, 3)))
        )
    return target


def _case(draw: st.DrawFn, name: bytes) -> bytes:
    style = draw(st.sampled_from(["lower", "title", "upper", "mixed"]))
    if style == "lower":
        return name.lower()
    if style == "upper":
        return name.upper()
    if style == "title":
        return b"-".join(part.capitalize() for part in name.split(b"-"))
    mask = draw(st.integers(0, 2**len(name) - 1))
    return bytes(c ^ 0x20 if chr(c).isalpha() and mask >> i & 1 else c for i, c in enumerate(name))


# -- valid requests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HTTPRequest:
    """One valid request.  ``headers`` are what the app should see, in order, but for ``host``
    and the framing headers; ``wire`` is the same request as HTTP/1.1 bytes, varied as clients vary.
    Send the fields with ``harness.request(r.method, r.target, r.headers, r.body,
    chunked=r.chunked)`` (over either protocol), or ``wire`` through ``connect()``."""

    method: str
    target: str
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    chunked: bool
    wire: bytes


def _chunked_body(draw: st.DrawFn, body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size = draw(st.integers(1, len(rest)))
        piece, rest = rest[:size], rest[size:]
        hexsize = f"{size:x}".encode()
        out += (hexsize.upper() if draw(st.booleans()) else hexsize)
        out += draw(st.sampled_from([b"", b"", b";ext=1"])) + b"\r\n" + piece + b"\r\n"
    return out + b"0\r\n\r\n"


@st.composite
def http_requests(
    draw: st.DrawFn,
    methods: tuple[str, ...] = METHODS,
    max_body: int = 256,
    max_headers: int = 5,
) -> HTTPRequest:
    """Valid HTTP/1.1 requests with a body for the methods that usually carry one."""
    method = draw(st.sampled_from(methods))
    target = draw(targets())
    headers = tuple(
        (draw(header_names).lower(), draw(header_values))
        for _ in range(draw(st.integers(0, max_headers)))
    )
    body = b""
    if method not in ("GET", "HEAD", "OPTIONS", "DELETE") or draw(st.integers(0, 9)) == 0:
        body = draw(st.binary(max_size=max_body))
    chunked = bool(body) and draw(st.booleans())

    lines = [(_case(draw, name), value) for name, value in headers]
    lines.append((_case(draw, b"host"), b"testserver"))
    if chunked:
        lines.append((_case(draw, b"transfer-encoding"), b"chunked"))
    elif body or draw(st.booleans()):
        lines.append((_case(draw, b"content-length"), b"%d" % len(body)))
    lines = draw(st.permutations(lines))
    headers = tuple((n.lower(), v) for n, v in lines
                    if n.lower() not in (b"host", b"transfer-encoding", b"content-length"))
    ows = st.sampled_from([b"", b" ", b" ", b"\t", b"  "])
    head = f"{method} {target} HTTP/1.1\r\n".encode("ascii")
    head += b"".join(n + b":" + draw(ows) + v + draw(ows) + b"\r\n" for n, v in lines)
    wire = head + b"\r\n" + (_chunked_body(draw, body) if chunked else body)
    return HTTPRequest(method, target, headers, body, chunked, wire)


# -- invalid requests ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MalformedRequest:
    """Bytes no server may take at face value; ``kind`` names the shape.

    ``outcome`` says what a conforming server does: ``"refused"``, an error status and the app
    is never called; ``"body_refused"``, the head is valid so the app is called, but it gets
    ``http.disconnect`` instead of the body; ``"repaired"``, one of the shapes RFC 9112 lets a
    server repair (Transfer-Encoding wins over Content-Length and the connection then closes;
    an obsolete line fold becomes a space).  In every case nothing after the bad bytes is
    served as a request: that is what request smuggling needs.
    """

    kind: str
    wire: bytes
    outcome: str = "refused"


_HOST = b"Host: testserver\r\n"
_SMUGGLING = {
    "cl_and_te": b"POST / HTTP/1.1\r\n" + _HOST + b"Content-Length: 4\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
    "two_cl": b"POST / HTTP/1.1\r\n" + _HOST + b"Content-Length: 1\r\nContent-Length: 5\r\n\r\n"
              b"hello",
    "cl_list": b"POST / HTTP/1.1\r\n" + _HOST + b"Content-Length: 1, 5\r\n\r\nhello",
    "te_obfuscated": b"POST / HTTP/1.1\r\n" + _HOST + b"Transfer-Encoding: xchunked\r\n\r\n"
                     b"0\r\n\r\n",
    "te_not_last": b"POST / HTTP/1.1\r\n" + _HOST + b"Transfer-Encoding: chunked, identity\r\n"
                   b"\r\n0\r\n\r\n",
    "te_space_name": b"POST / HTTP/1.1\r\n" + _HOST + b"Transfer-Encoding : chunked\r\n\r\n"
                     b"0\r\n\r\n",
    "obs_fold": b"GET / HTTP/1.1\r\n" + _HOST + b"X-A: b\r\n c\r\n\r\n",
    "bare_cr": b"GET / HTTP/1.1\r\n" + _HOST + b"X-A: b\rc\r\n\r\n",
    "nul_in_value": b"GET / HTTP/1.1\r\n" + _HOST + b"X-A: b\x00c\r\n\r\n",
    "no_host": b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
    "two_hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "space_in_target": b"GET /a b HTTP/1.1\r\n" + _HOST + b"\r\n",
    "bad_version": b"GET / HTTP/1.7\r\n" + _HOST + b"\r\n",
    "lowercase_version": b"GET / http/1.1\r\n" + _HOST + b"\r\n",
    "negative_cl": b"POST / HTTP/1.1\r\n" + _HOST + b"Content-Length: -1\r\n\r\n",
    "plus_cl": b"POST / HTTP/1.1\r\n" + _HOST + b"Content-Length: +1\r\n\r\nx",
}
_CHUNKED_HEAD = b"POST / HTTP/1.1\r\n" + _HOST + b"Transfer-Encoding: chunked\r\n\r\n"
_BAD_FRAMING = {
    "chunk_size_not_hex": _CHUNKED_HEAD + b"zz\r\nab\r\n0\r\n\r\n",
    "chunk_size_prefixed": _CHUNKED_HEAD + b"0x2\r\nab\r\n0\r\n\r\n",
    "chunk_too_long": _CHUNKED_HEAD + b"1\r\nabc\r\n0\r\n\r\n",
    "chunk_size_overflow": _CHUNKED_HEAD + b"f" * 24 + b"\r\n",
    "chunk_no_crlf": _CHUNKED_HEAD + b"2\r\nab0\r\n\r\n",
}


@st.composite
def malformed_requests(draw: st.DrawFn, config: Config | None = None) -> MalformedRequest:
    """Requests the server must refuse.  ``config`` sets the limits the oversize shapes
    exceed (pass the one the harness uses; small limits keep them cheap)."""
    limits = config if config is not None else Config()
    kind = draw(st.sampled_from(
        sorted(_SMUGGLING) + sorted(_BAD_FRAMING)
        + ["long_target", "long_head", "many_headers", "ctl_in_name", "garbage"]
    ))
    if kind in _SMUGGLING:
        repaired = kind in ("cl_and_te", "obs_fold")
        return MalformedRequest(kind, _SMUGGLING[kind], "repaired" if repaired else "refused")
    if kind in _BAD_FRAMING:
        return MalformedRequest(kind, _BAD_FRAMING[kind], "body_refused")
    if kind == "long_target":
        # well past the limit, whatever slack a server leaves for the method and version
        size = limits.max_target_length + draw(st.integers(40, 100))
        wire = b"GET /" + b"a" * size + b" HTTP/1.1\r\n" + _HOST + b"\r\n"
    elif kind == "long_head":
        size = limits.max_head_size + draw(st.integers(1, 64))
        wire = b"GET / HTTP/1.1\r\n" + _HOST + b"X-Big: " + b"v" * size + b"\r\n\r\n"
    elif kind == "many_headers":
        count = limits.max_header_count + draw(st.integers(1, 8))
        wire = (b"GET / HTTP/1.1\r\n" + _HOST + b"".join(b"X-%d: v\r\n" % i for i in range(count))
                + b"\r\n")
    elif kind == "ctl_in_name":
        ctl = bytes([draw(st.sampled_from([0, 1, 0x7F, 0x80, ord('"'), ord("(")]))])
        wire = b"GET / HTTP/1.1\r\n" + _HOST + b"X" + ctl + b"Y: z\r\n\r\n"
    else:
        junk = draw(st.binary(min_size=1, max_size=40).filter(
            lambda b: b" HTTP/" not in b and not b.startswith(b"PRI") and b.strip(b"\r\n")
        ))
        wire = junk + b"\r\n\r\n"
    return MalformedRequest(kind, wire)


# -- transport -------------------------------------------------------------------------------------


@st.composite
def splits(draw: st.DrawFn, data: bytes, max_cuts: int = 12) -> list[bytes]:
    """``data`` as the non-empty chunks a network may deliver: whole, byte by byte, or cut at
    random points.  Joined, the chunks are ``data`` again."""
    if len(data) <= 1:
        return [data] if data else []
    how = draw(st.sampled_from(["random", "random", "random", "whole", "bytewise"]))
    if how == "whole":
        return [data]
    if how == "bytewise":
        return [data[i:i + 1] for i in range(len(data))]
    cuts = sorted(draw(st.lists(st.integers(1, len(data) - 1), unique=True, max_size=max_cuts)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# -- what apps send ------------------------------------------------------------------------------


@st.composite
def response_messages(draw: st.DrawFn, max_chunks: int = 4) -> list[Message]:
    """A valid ASGI response: ``http.response.start`` (any status 200-599, random headers,
    sometimes a matching ``content-length``), then body messages, the last without
    ``more_body``.  Optional keys are sometimes left out, as the spec allows."""
    status = draw(st.one_of(st.sampled_from([200, 201, 204, 304, 404, 500]),
                            st.integers(200, 599)))
    headers: list[tuple[bytes, bytes]] = [
        (draw(header_names).lower(), draw(header_values).strip())
        for _ in range(draw(st.integers(0, 3)))
    ]
    no_body = status in (204, 304)
    chunks = [] if no_body else draw(st.lists(st.binary(max_size=64), max_size=max_chunks))
    if draw(st.booleans()):
        headers.append((b"content-length", b"%d" % sum(map(len, chunks))))
    start: Message = {"type": "http.response.start", "status": status}
    if draw(st.booleans()) or len(headers) > 0:  # the key is optional when empty
        start["headers"] = headers
    messages = [start]
    for i, chunk in enumerate(chunks):
        body: Message = {"type": "http.response.body", "body": chunk}
        if i < len(chunks) - 1 or draw(st.booleans()):
            body["more_body"] = i < len(chunks) - 1
        messages.append(body)
    if not chunks:
        messages.append({"type": "http.response.body"})
    return messages


_START: Message = {"type": "http.response.start", "status": 200, "headers": []}
_BODY: Message = {"type": "http.response.body", "body": b"ok"}
_MISUSES: dict[str, list[Message]] = {
    "body_before_start": [_BODY],
    "two_starts": [_START, _START],
    "start_after_body": [_START, {**_BODY, "more_body": True}, _START],
    "body_after_end": [_START, _BODY, _BODY],
    "unknown_type": [{"type": "http.response.bogus"}],
    "status_as_str": [{"type": "http.response.start", "status": "200"}],
    "status_out_of_range": [{"type": "http.response.start", "status": 1000}],
    "str_headers": [{"type": "http.response.start", "status": 200,
                     "headers": [("content-type", "text/plain")]}],
    "crlf_in_header": [{"type": "http.response.start", "status": 200,
                        "headers": [(b"x-a", b"v\r\nx-injected: 1")]}],
    "body_as_str": [_START, {"type": "http.response.body", "body": "text"}],
    "too_long_for_length": [{"type": "http.response.start", "status": 200,
                             "headers": [(b"content-length", b"1")]}, _BODY],
    "too_short_for_length": [{"type": "http.response.start", "status": 200,
                              "headers": [(b"content-length", b"10")]}, _BODY],
    "websocket_message": [{"type": "websocket.send", "text": "x"}],
}


def misused_response_messages() -> st.SearchStrategy[tuple[str, list[Message]]]:
    """``(name, messages)``: a response script whose last message breaks the ASGI spec.  The
    server must answer the client sanely (a 500, or an aborted response if the body began)
    and raise ``AppMisuseError`` into the app."""
    return st.sampled_from(sorted(_MISUSES)).map(lambda name: (name, list(_MISUSES[name])))


def websocket_messages(max_size: int = 64, max_messages: int = 5) -> st.SearchStrategy[
        list[str | bytes]]:
    """What a client may send on a WebSocket: text (any Unicode) and binary messages."""
    one: st.SearchStrategy[str | bytes] = st.one_of(
        st.text(max_size=max_size), st.binary(max_size=max_size)
    )
    return st.lists(one, max_size=max_messages)
