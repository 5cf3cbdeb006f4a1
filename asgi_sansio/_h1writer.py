"""HTTP/1.1 response serialisation, written here rather than through h11.

Why not h11's writer: it re-validates every header we already checked, rescans them to choose the
framing, and runs its state machine per event; that was about 35 us of an 80 us request cycle.
Response framing is small and fully decided by the ASGI layer (content-length, chunked,
close-delimited, no body), so writing it directly is both faster and clearer.  h11 still parses
every request, and the test suite decodes all output with an independent h11 client.

Field checks (SRV-10, RFC 9110 5.1 and 5.5): a name must be a token; a value must not contain
control characters other than HTAB (so no CR, LF or NUL: no response splitting).
"""

from __future__ import annotations

import re
from http import HTTPStatus

from ._errors import AppMisuseError

_TOKEN_RE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters other than HTAB; CR and LF are counted separately below.
_BAD_VALUE_RE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

REASONS: dict[int, bytes] = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}
# RFC 9110's names, which Python only adopted in 3.13: the same bytes on every Python.
REASONS.update({413: b"Content Too Large", 414: b"URI Too Long", 416: b"Range Not Satisfiable",
                422: b"Unprocessable Content"})
_status_lines: dict[int, bytes] = {}
# Names seen valid before; bounded so an app echoing random names cannot grow it.
_good_names: set[bytes] = set()
_GOOD_NAMES_MAX = 1024


def status_line(status: int) -> bytes:
    line = _status_lines.get(status)
    if line is None:
        line = b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b""))
        if len(_status_lines) < 1000:
            _status_lines[status] = line
    return line


def fields(mtype: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    """Serialise header (or trailer) fields, refusing anything that breaks the grammar."""
    good = _good_names
    for name, _ in headers:
        if name not in good:
            if _TOKEN_RE.fullmatch(name) is None:
                raise AppMisuseError(mtype, "SRV-10", f"header name {name!r} is not a token")
            if len(good) < _GOOD_NAMES_MAX:
                good.add(name)
    block = b"".join([name + b": " + value + b"\r\n" for name, value in headers])
    # One scan over the whole block: the only CR/LF allowed are the ones we just added.
    if block.count(b"\n") != len(headers) or block.count(b"\r") != len(headers):
        raise AppMisuseError(mtype, "SRV-10", "CR or LF inside a header value")
    if _BAD_VALUE_RE.search(block) is not None:
        raise AppMisuseError(mtype, "SRV-10", "control character inside a header value")
    return block


def head(status: int, headers: list[tuple[bytes, bytes]], mtype: str) -> bytes:
    return status_line(status) + fields(mtype, headers) + b"\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def last_chunk(trailers: list[tuple[bytes, bytes]] | None) -> bytes:
    if trailers:
        return b"0\r\n" + fields("http.response.trailers", trailers) + b"\r\n"
    return b"0\r\n\r\n"


def error_response(
    status: int, close: bool = True, head: bool = False, extra: bytes = b""
) -> bytes:
    """A short plain-text answer, for requests the app never saw and for app failures.

    ``head``: the request was HEAD, so the body stays off the wire (RFC 9110 9.3.2), or a
    kept-alive client would read it as the next response.  ``extra`` is pre-serialised fields.
    """
    body = REASONS.get(status, b"Error")
    return b"%scontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n%s%s\r\n%s" % (
        status_line(status),
        len(body),
        extra,
        b"connection: close\r\n" if close else b"",
        b"" if head else body,
    )
