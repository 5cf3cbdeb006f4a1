"""The ASGI HTTP response state machine and message validation, shared by every HTTP version.

All response-order rules live in ``TRANSITIONS``: a missing ``(state, message type)`` entry *is*
the misuse error, as in h11's ``_state.py``.  The validators check types and values once, at the
boundary, and return plain tuples so the wire layers never look at the dict again.

States: ``INIT`` nothing accepted yet; ``HEAD`` ``http.response.start`` accepted but held back
(HTTP-TX-05: held until the first body, so a failure can still become a clean 500); ``BODY``
the head is on the wire and more body follows; ``TRAILERS`` the body is complete and trailers
are awaited (HTTP-TX-09); ``DONE`` the response is complete.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

from ._errors import AppMisuseError


class Resp(Enum):
    INIT = "INIT"
    HEAD = "HEAD"
    BODY = "BODY"
    TRAILERS = "TRAILERS"
    DONE = "DONE"


START = "http.response.start"
BODY = "http.response.body"
TRAILERS = "http.response.trailers"
EARLY_HINT = "http.response.early_hint"

# (state, message type) -> the rule a message of that type obeys in that state.  The next state
# depends on the message's flags, so the handler computes it; the table only says what is legal.
TRANSITIONS: dict[tuple[Resp, str], str] = {
    (Resp.INIT, START): "HTTP-TX-01",
    (Resp.INIT, EARLY_HINT): "EXT-HINT-04",
    (Resp.HEAD, EARLY_HINT): "EXT-HINT-04",
    (Resp.BODY, EARLY_HINT): "EXT-HINT-04",
    (Resp.HEAD, BODY): "HTTP-TX-04",
    (Resp.BODY, BODY): "HTTP-TX-06",
    (Resp.TRAILERS, TRAILERS): "EXT-TRAILERS-01",
}

_WHY_NOT: dict[Resp, tuple[str, str]] = {
    Resp.INIT: ("HTTP-TX-01", "http.response.start must be the first response message"),
    Resp.HEAD: ("HTTP-TX-04", "http.response.start must be followed by http.response.body"),
    Resp.BODY: ("HTTP-ERR-03", "only http.response.body may follow the first body"),
    Resp.TRAILERS: (
        "EXT-TRAILERS-01",
        "the response declared trailers, so only http.response.trailers may follow",
    ),
    Resp.DONE: ("HTTP-ERR-04", "the response is already complete"),
}

KNOWN_TYPES = frozenset({START, BODY, TRAILERS, EARLY_HINT})

# What every HTTP version shares.
ASGI_VERSIONS = {"version": "3.0", "spec_version": "2.5"}  # VER-05; copied into each scope
NO_BODY_STATUS = frozenset({204, 304})  # SRV-04 (HEAD is the other no-body case)
# RFC 9110 7.6.1 / RFC 9113 8.2.2: fields about one connection, never to be forwarded.
CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)


def connection_specific(name: bytes, value: bytes) -> bool:
    """Whether a field (lowercase ``name``) concerns only the hop it is on: what HTTP/2 calls
    malformed (RFC 9113 8.2.2, with ``te`` other than "trailers"), and no trailer may carry
    (RFC 9110 6.5.1: framing and connection control are settled before the content)."""
    return name in CONNECTION_SPECIFIC or (name == b"te" and value.lower() != b"trailers")


# RFC 9110 7.2 / RFC 3986 3.2.2: host = IP-literal / IPv4address / reg-name, then [":" port].
HOST_RE = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?")


def check_transition(state: Resp, message: Any, extensions: dict[str, Any]) -> str:
    """Return the message type if it may be sent in ``state``; raise ``AppMisuseError`` if not."""
    if type(message) is not dict:
        raise AppMisuseError(None, "MAIN-08", f"a message must be a dict, not {type(message)!r}")
    mtype = message.get("type")
    if (state, mtype) in TRANSITIONS:
        if mtype == EARLY_HINT and EARLY_HINT not in extensions:
            raise AppMisuseError(mtype, "MAIN-15", "extension not advertised in scope")
        return mtype  # type: ignore[return-value]
    if mtype not in KNOWN_TYPES:
        raise AppMisuseError(mtype, "MAIN-09", "unknown message type for an http scope")
    rule, why = _WHY_NOT[state]
    raise AppMisuseError(mtype, rule, why)


def _fail(mtype: str, rule: str, detail: str) -> AppMisuseError:
    return AppMisuseError(mtype, rule, detail)


def validate_headers(mtype: str, headers: Any) -> list[tuple[bytes, bytes]]:
    """Headers as a list of ``(name, value)`` bytes pairs (HTTP-TX-02, SRV-10).

    Names keep the app's case (h11 writes them as given); the wire layer checks the grammar, so
    CR/LF/NUL and non-token names are refused exactly once.  Pseudo-headers are refused here.
    """
    if headers is None:
        return []
    try:
        items = list(headers)
    except TypeError:
        raise _fail(mtype, "HTTP-TX-02", "headers must be an iterable of [name, value]") from None
    out: list[tuple[bytes, bytes]] = []
    for item in items:
        try:
            name, value = item
        except (TypeError, ValueError):
            detail = f"header {item!r} is not a [name, value] pair"
            raise _fail(mtype, "HTTP-TX-02", detail) from None
        if type(name) is not bytes or type(value) is not bytes:
            raise _fail(mtype, "HTTP-TX-02", f"header {item!r} must be a pair of bytes")
        if name[:1] == b":":
            raise _fail(mtype, "HTTP-TX-02", f"pseudo-header {name!r} is not allowed")
        out.append((name, value))
    return out


def validate_start(message: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bool]:
    status = message.get("status")
    if type(status) is not int or not 200 <= status <= 999:
        raise _fail(START, "HTTP-TX-12", f"status must be an int in 200..999, not {status!r}")
    headers = validate_headers(START, message.get("headers"))
    trailers = message.get("trailers", False)
    if type(trailers) is not bool:
        raise _fail(START, "HTTP-TX-01", "trailers must be a bool")
    return status, headers, trailers


def content_length(value: bytes, declared: int | None) -> int:
    """A response's ``content-length`` (SRV-01): digits only, and only one of them."""
    if declared is not None or not value.isdigit():
        raise _fail(START, "SRV-01", f"bad content-length {value!r}")
    return int(value)


def validate_body(message: dict[str, Any]) -> tuple[bytes, bool]:
    body = message.get("body", b"")
    if type(body) is not bytes:
        if isinstance(body, (bytearray, memoryview)):
            body = bytes(body)
        else:
            raise _fail(BODY, "HTTP-TX-06", f"body must be bytes, not {type(body).__name__}")
    more = message.get("more_body", False)
    if type(more) is not bool:
        raise _fail(BODY, "HTTP-TX-06", "more_body must be a bool")
    return body, more


def validate_trailers(message: dict[str, Any]) -> tuple[list[tuple[bytes, bytes]], bool]:
    headers = validate_headers(TRAILERS, message.get("headers"))
    more = message.get("more_trailers", False)
    if type(more) is not bool:
        raise _fail(TRAILERS, "EXT-TRAILERS-01", "more_trailers must be a bool")
    return headers, more


def validate_early_hint(message: dict[str, Any]) -> list[bytes]:
    links = message.get("links")
    try:
        items = list(links)  # type: ignore[arg-type]
    except TypeError:
        raise _fail(EARLY_HINT, "EXT-HINT-01", "links must be an iterable of bytes") from None
    for link in items:
        if type(link) is not bytes:
            raise _fail(EARLY_HINT, "EXT-HINT-01", f"link {link!r} must be bytes")
    return items


def has_token(value: bytes, token: bytes) -> bool:
    """True if the comma-separated header ``value`` lists ``token`` (case-insensitive)."""
    return any(part.strip().lower() == token for part in value.split(b","))
