"""Shared fuzzing machinery: the data provider, invariant checks, an h11 client oracle, an
invariant-checking ServerConnection driver, and the command line every harness uses.

A harness defines ``run_one(data, tolerate=KNOWN_ISSUES, trace=None)`` and calls
``main(run_one, name)`` when run as a script.  With atheris importable, ``main`` hands ``run_one``
to libFuzzer; without it, it replays the corpus and mutates it in a bounded loop.

Known core bugs are named in ``KNOWN_ISSUES``: their checks are tolerated by default, so the fuzzer
keeps looking for new ones, and enforced by ``tolerate=()`` (the strict xfail regression tests).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import random
import re
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

try:
    import atheris
except ImportError:  # pragma: no cover - depends on the environment
    atheris = None

# Coverage feedback for the code under test only (instrument_all() costs ~8 s per start-up).
_MAIN_FILE = getattr(sys.modules.get("__main__"), "__file__", None) or ""
_FUZZING = (
    atheris is not None
    and Path(_MAIN_FILE).name.startswith("fuzz_")
    and not {"--replay", "--no-atheris", "-h", "--help"} & set(sys.argv)
)
with (
    atheris.instrument_imports(include=["asgi_sansio", "h11"])
    if _FUZZING
    else contextlib.nullcontext()
):
    import h11

    # Imported here so that they are instrumented: nothing above imports the lifespan machine.
    import asgi_sansio._lifespan  # noqa: F401
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

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402
import h2.frame_buffer  # noqa: E402
import hpack  # noqa: E402
import hyperframe.exceptions  # noqa: E402
import hyperframe.frame  # noqa: E402

FUZZ_DIR = Path(__file__).resolve().parent
CORPUS_DIR = FUZZ_DIR / "corpus"

# Invariant name -> the core bug that currently breaks it (see tests/test_fuzz_regressions.py).
KNOWN_ISSUES: dict[str, str] = {}


class Violation(AssertionError):
    """An invariant broke; ``name`` says which (a key of ``KNOWN_ISSUES`` for known bugs)."""

    def __init__(self, name: str, detail: str) -> None:
        self.name = name
        super().__init__(f"[{name}] {detail}")


class Checker:
    """Raises ``Violation`` for a broken invariant unless its name is tolerated."""

    def __init__(self, tolerate: Iterable[str] = KNOWN_ISSUES) -> None:
        self.tolerate = frozenset(tolerate)

    def tolerated(self, name: str) -> bool:
        return name in self.tolerate

    def __call__(self, ok: object, name: str, detail: str = "") -> None:
        if not ok and name not in self.tolerate:
            raise Violation(name, detail)


# --------------------------------------------------------------------------------------------
# Data provider
# --------------------------------------------------------------------------------------------


class Provider:
    """Pure-Python twin of ``atheris.FuzzedDataProvider`` for the calls the harnesses use,
    consuming bytes exactly as atheris does (integers from the end, bytes from the front), so an
    input decodes to the same run with or without atheris (tests check this)."""

    __slots__ = ("_data", "_pos", "_remaining")

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0
        self._remaining = len(data)

    def remaining_bytes(self) -> int:
        return self._remaining

    def ConsumeBytes(self, count: int) -> bytes:  # atheris's names
        n = min(count, self._remaining)
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        self._remaining -= n
        return out

    def ConsumeBool(self) -> bool:
        if not self._remaining:
            return False
        value = bool(self._data[self._pos] & 1)
        self._pos += 1
        self._remaining -= 1
        return value

    def ConsumeIntInRange(self, lo: int, hi: int) -> int:
        delta = hi - lo
        if delta < 0:
            raise ValueError("ConsumeIntInRange: min must be <= max")
        if delta.bit_length() > 64:
            raise NotImplementedError("ranges wider than 64 bits")
        result = offset = 0
        while offset < delta.bit_length() and delta >> offset and self._remaining:
            self._remaining -= 1
            result = (result << 8) | self._data[self._pos + self._remaining]
            offset += 8
        if delta != 2**64 - 1:
            result %= delta + 1
        return lo + result


class Recorder:
    """A provider whose decisions come from ``choose(lo, hi)`` (an int, or None to stop) and
    ``blob(n)`` (exactly n bytes); ``build()`` returns the input that replays them."""

    def __init__(self, choose: Callable[[int, int], int | None],
                 blob: Callable[[int], bytes]) -> None:
        self.script = Script()
        self._choose = choose
        self._blob = blob
        self._done = False

    def remaining_bytes(self) -> int:
        return 0 if self._done else 1 << 20

    def ConsumeBytes(self, count: int) -> bytes:  # atheris's names
        if self._done or count <= 0:
            return b""
        data = self._blob(count)
        assert len(data) == count, "a recorded blob must have the requested size"
        self.script.bytes(data)
        return data

    def ConsumeBool(self) -> bool:
        value = None if self._done else self._choose(0, 1)
        if value is None:
            self._done = True
            return False
        self.script.bytes(bytes([value]))
        return bool(value)

    def ConsumeIntInRange(self, lo: int, hi: int) -> int:
        if lo == hi or self._done:
            return lo
        value = self._choose(lo, hi)
        if value is None:
            self._done = True
            return lo
        self.script.int(lo, hi, value)
        return value

    def build(self) -> bytes:
        return self.script.build()


def scripted(values: Iterable[int], blobs: Iterable[bytes] = ()) -> Recorder:
    """A recorder answering from a list (ranges with one value are answered without it)."""
    ints, datas = iter(values), iter(blobs)

    def choose(lo: int, hi: int) -> int | None:
        value = next(ints, None)
        if value is not None and not lo <= value <= hi:
            raise ValueError(f"scripted value {value} outside {lo}..{hi}")
        return value

    return Recorder(choose, lambda n: next(datas))


def randomly(rng: random.Random, steps: int) -> Recorder:
    """A recorder making ``steps`` uniform random choices (structured exploration)."""
    left = [steps]

    def choose(lo: int, hi: int) -> int | None:
        left[0] -= 1
        return rng.randint(lo, hi) if left[0] >= 0 else None

    return Recorder(choose, rng.randbytes)


def provider(data: bytes) -> Any:
    """atheris's provider when installed (fast), else ``Provider``; they decode alike."""
    return atheris.FuzzedDataProvider(data) if atheris is not None else Provider(data)


def pick(p: Any, items: list[Any] | tuple[Any, ...]) -> Any:
    return items[p.ConsumeIntInRange(0, len(items) - 1)]


class Script:
    """Builds an input that a provider decodes to the given choices (for seed corpora)."""

    def __init__(self) -> None:
        self._front: list[bytes] = []
        self._back: list[int] = []  # integer bytes in the order they are consumed

    def int(self, lo: int, hi: int, value: int) -> Script:
        assert lo <= value <= hi, (lo, value, hi)
        delta, v = hi - lo, value - lo
        width = (delta.bit_length() + 7) // 8
        self._back.extend(v.to_bytes(width, "big") if width else b"")
        return self

    def pick(self, items: list[Any] | tuple[Any, ...], item: Any) -> Script:
        return self.int(0, len(items) - 1, items.index(item))

    def bytes(self, data: bytes) -> Script:
        self._front.append(data)
        return self

    def build(self) -> bytes:
        return b"".join(self._front) + bytes(reversed(self._back))


# --------------------------------------------------------------------------------------------
# Small predicates, written independently of asgi_sansio
# --------------------------------------------------------------------------------------------

TOKEN_RE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
BAD_VALUE_RE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # CTLs but HTAB, CR and LF included
CLIENT_ERRORS = frozenset({400, 408, 413, 414, 426, 431, 501, 505})
NO_BODY_STATUS = frozenset({204, 304})
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def has_token(value: bytes, token: bytes) -> bool:
    return any(part.strip(b" \t").lower() == token for part in value.split(b","))


# RFC 9110 7.6.1, RFC 9113 8.2.2: what the server drops from an app's fields (HTTP/2 heads,
# trailers of both versions, denials): the model's own list, not the core's.
HOP_FIELDS = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"})


def without_hop_fields(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` less the fields the server drops (``te`` other than "trailers" too)."""
    return [(n, v) for n, v in headers if n.lower() not in HOP_FIELDS
            and not (n.lower() == b"te" and v.lower() != b"trailers")]


def header_problem(headers: Any, grammar: bool = True) -> str | None:
    """Why a ``headers`` field breaks ASGI rules (types) or, with ``grammar``, RFC 9110's field
    syntax (token names, no control characters in values), or None."""
    if headers is None:
        return None
    if not isinstance(headers, (list, tuple)):
        return "headers not a list"
    for item in headers:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            return f"not a pair: {item!r}"
        name, value = item
        if type(name) is not bytes or type(value) is not bytes:
            return "name/value not bytes"
        if name[:1] == b":":
            return "pseudo-header"
        if not grammar:
            continue
        if not TOKEN_RE.fullmatch(name):
            return f"bad name {name!r}"
        if BAD_VALUE_RE.search(value):
            return f"bad value {value!r}"
    return None


def norm_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(bytes(n).lower(), bytes(v).strip(b" \t")) for n, v in headers]


# --------------------------------------------------------------------------------------------
# The app side of one stream, as the driver models it
# --------------------------------------------------------------------------------------------


LONG_BODY = "body longer than content-length"
SHORT_BODY = "body shorter than content-length"


class App:
    """What the harness knows about one stream: its scope, what its app did and was told.

    A ``websocket`` stream's app only returns or raises (WebSocket is fuzzed elsewhere); the
    server answers it as an HTTP response."""

    def __init__(self, sid: int, scope: dict[str, Any]) -> None:
        self.sid = sid
        self.scope = scope
        self.kind: str = scope["type"]
        self.method: str = scope.get("method", "GET")
        self.version: str = scope["http_version"]
        self.extensions: dict[str, Any] = scope["extensions"]
        headers = scope["headers"]
        self.req_length: int | None = None
        self.req_chunked = any(n == b"transfer-encoding" for n, _ in headers)
        for n, v in headers:
            if n == b"content-length" and v.isdigit():
                self.req_length = int(v)
        self.expects_100 = self.version == "1.1" and any(
            n == b"expect" and v.lower() == b"100-continue" for n, v in headers
        )
        self.running = True  # app_finished() not called yet
        self.ended = False  # StreamEnded seen
        self.waiting = False  # receive() gave None, no StreamReadable since
        self.owed = False  # StreamReadable seen: the next receive() must give a message
        self.got_all = False  # http.request with more_body=False delivered
        self.got_disconnect = False
        self.received = 0
        # Response side: init, head, body, trailers, done; broken after a misuse or failure.
        self.state = "init"
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.declared: int | None = None
        self.trailers = False
        self.no_body = self.method == "HEAD"
        self.chunked = False
        self.flushed = False  # the head went out (first body message accepted)
        self.body = b""  # what the client should see
        self.sent = 0  # body bytes counted against content-length
        self.trailer_headers: list[tuple[bytes, bytes]] = []
        self.hints = 0  # 103 responses that must reach the wire

    @property
    def busy(self) -> bool:
        """The response is neither complete nor abandoned."""
        return self.state in ("init", "head", "body", "trailers") and self.running

    def problem(self, message: Any) -> str | None:
        """Why ``message`` is not a legal next send for this app, or None if it is."""
        if type(message) is not dict:
            return "not a dict"
        mtype = message.get("type")
        state = self.state
        if mtype == "http.response.early_hint":
            if state not in ("init", "head", "body") or mtype not in self.extensions:
                return "early hint out of order"
            links = message.get("links")
            if not isinstance(links, (list, tuple)) or any(type(x) is not bytes for x in links):
                return "links not bytes"
            if state == "init" and self.version in ("1.1", "2") and links:
                return header_problem([(b"link", x) for x in links])
            return None
        if mtype == "http.response.start":
            if state != "init":
                return "start out of order"
            status = message.get("status")
            if type(status) is not int or not 200 <= status <= 999:
                return "bad status"
            headers = message.get("headers")
            bad = header_problem(headers)
            if bad:
                return bad
            lengths = [v for n, v in headers or () if n.lower() == b"content-length"]
            if len(lengths) > 1 or any(not re.fullmatch(rb"[0-9]+", v) for v in lengths):
                return "bad content-length"
            trailers = message.get("trailers", False)
            if type(trailers) is not bool:
                return "trailers not bool"
            if trailers and "http.response.trailers" not in self.extensions:
                return "trailers without the extension"
            return None
        if mtype == "http.response.body":
            if state not in ("head", "body"):
                return "body out of order"
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if not isinstance(body, (bytes, bytearray, memoryview)) or type(more) is not bool:
                return "bad body fields"
            if self.declared is not None and not self.no_body:
                total = self.sent + len(body)
                if total > self.declared:
                    return LONG_BODY
                if not more and total < self.declared:
                    return SHORT_BODY
            return None
        if mtype == "http.response.trailers":
            if state != "trailers":
                return "trailers out of order"
            headers = message.get("headers")
            more = message.get("more_trailers", False)
            if type(more) is not bool:
                return "more_trailers not bool"
            bad = header_problem(headers, grammar=False)
            if bad:
                return bad
            if not more and self.chunked:
                # Trailer fields are checked when written, which only chunked framing does.
                return header_problem(self.trailer_headers + [tuple(h) for h in headers or ()])
            return None
        return "unknown type"

    def refused(self, message: dict[str, Any], problem: str | None) -> None:
        """Advance the model after the core refused ``message`` with ``AppMisuseError``: a
        body of the wrong length is refused before anything of it (or a held head) is
        written, so the answer is a 500 unless an earlier body sent the head."""
        self.state = "broken"

    def accepted(self, message: dict[str, Any]) -> None:
        """Advance the model after the core accepted ``message``."""
        mtype = message["type"]
        if mtype == "http.response.early_hint":
            if self.state == "init" and self.version == "1.1" and message["links"]:
                self.hints += 1
        elif mtype == "http.response.start":
            self.state = "head"
            self.status = message["status"]
            self.headers = [
                (n, v) for n, v in message.get("headers") or () if n.lower() != b"transfer-encoding"
            ]
            lengths = [int(v) for n, v in self.headers if n.lower() == b"content-length"]
            self.declared = lengths[0] if lengths else None
            self.trailers = message.get("trailers", False)
            self.no_body = self.method == "HEAD" or self.status in NO_BODY_STATUS
            self.chunked = self.declared is None and not self.no_body and self.version == "1.1"
        elif mtype == "http.response.body":
            self.flushed = True
            body = bytes(message.get("body", b""))
            if not self.no_body:
                self.body += body
                self.sent += len(body)
            more = message.get("more_body", False)
            self.state = "body" if more else ("trailers" if self.trailers else "done")
        else:
            self.trailer_headers += [tuple(h) for h in message.get("headers") or ()]
            if not message.get("more_trailers", False):
                self.state = "done"


# --------------------------------------------------------------------------------------------
# Oracle: decode the server's output with an independent h11 client
# --------------------------------------------------------------------------------------------


class _Undecodable(Violation):
    """The h11 client could not decode the output."""


class ResponseDecoder:
    """Incrementally decodes server output as consecutive HTTP/1.1 responses (h11, client
    mode) and checks each against the app that produced it."""

    def __init__(self, check: Checker, apps: dict[int, App]) -> None:
        self.check = check
        self.apps = apps
        self.index = 0  # responses completed so far; response k answers stream k + 1
        self.last = False  # a response said Connection: close
        self.client: h11.Connection | None = None
        self._new_cycle(b"")

    def _app(self) -> App | None:
        return self.apps.get(self.index + 1)

    def _new_cycle(self, pending: bytes) -> None:
        """Expect the next response; its h11 client is made at its first byte, when the
        stream it answers (and so the request method) is known."""
        self.client = None
        self.status = 0
        self.resp_headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.informational: list[int] = []
        self.started = False  # any byte of this cycle seen
        if pending:
            self.feed(pending)

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.check(not self.last, "close-ignored", f"{data[:80]!r} after Connection: close")
        if self.client is None:
            app = self._app()
            method = app.method if app is not None else "GET"
            self.client = h11.Connection(h11.CLIENT, max_incomplete_event_size=1 << 20)
            self.client.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
            self.client.send(h11.EndOfMessage())
        self.started = True
        self.client.receive_data(data)
        self._pull()

    def _pull(self) -> None:
        assert self.client is not None
        while True:
            try:
                event = self.client.next_event()
            except h11.RemoteProtocolError as exc:
                raise _Undecodable("output-not-http", f"response {self.index + 1}: {exc}") from exc
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.InformationalResponse):
                self._informational(event.status_code)
            elif isinstance(event, h11.Response):
                self.status = event.status_code
                self.resp_headers = list(event.headers.raw_items())
            elif isinstance(event, h11.Data):
                self.body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._complete(list(event.headers.raw_items()))
                pending, _closed = self.client.trailing_data
                self.index += 1
                self._new_cycle(bytes(pending))
                return
            elif isinstance(event, h11.ConnectionClosed):
                return

    def _informational(self, status: int) -> None:
        app = self._app()
        check = self.check
        check(app is not None, "unexpected-1xx", f"{status} for a request the app never saw")
        assert app is not None
        if status == 100:
            check(app.expects_100, "unexpected-1xx", "100 Continue without Expect")
            check(100 not in self.informational, "unexpected-1xx", "two 100 Continue")
        elif status == 103:
            check(self.informational.count(103) < app.hints, "unexpected-1xx", "103 not sent")
        else:
            check(False, "unexpected-1xx", f"status {status}")
        self.informational.append(status)

    def _complete(self, trailers: list[tuple[bytes, bytes]]) -> None:
        check = self.check
        app = self._app()
        headers = norm_headers(self.resp_headers)
        if any(n == b"connection" and has_token(v, b"close") for n, v in headers):
            self.last = True
        if app is None or not app.flushed:
            # Not the app's response: a failure (500), a client error (then close), or a
            # WebSocket handshake the app did not accept (403).
            ok = (self.status == 500 or self.status in CLIENT_ERRORS
                  or (self.status == 403 and app is not None and app.kind == "websocket"))
            check(ok, "wrong-status", f"stream {self.index + 1}: unexpected {self.status}")
            return
        check(self.status == app.status, "wrong-status", f"{self.status} != {app.status}")
        expected = norm_headers(app.headers)
        if app.status == 204:  # RFC 9110 8.6: the core drops the app's content-length
            expected = [(n, v) for n, v in expected if n != b"content-length"]
        check(headers[: len(expected)] == expected, "wrong-headers",
              f"stream {app.sid}: {headers!r} does not start with {expected!r}")
        check(self.body == app.body if app.state == "done" else app.body.startswith(self.body),
              "wrong-body", f"stream {app.sid}: {self.body[:80]!r} vs {app.body[:80]!r}")
        if app.chunked and app.trailer_headers and app.state == "done":
            expected = without_hop_fields(norm_headers(app.trailer_headers))
            check(norm_headers(trailers) == expected, "wrong-trailers",
                  f"{trailers!r} != {expected!r}")
        self.check(self.informational.count(103) == app.hints, "missing-103",
                   f"stream {app.sid}: {self.informational} but {app.hints} hints")

    def eof(self) -> None:
        """The server closed the connection: what is left must be a truncated response."""
        client = self.client
        if client is None:
            return
        if client.their_state is h11.SEND_BODY:
            client.receive_data(b"")
            try:
                self._pull()
                return
            except _Undecodable:
                app = self._app()
                self.check(app is None or app.state != "done", "truncated",
                           f"stream {app and app.sid}: complete response cut short")
                return
        pending = bytes(client.trailing_data[0])
        self.check(not self.started or self.status or not pending, "junk-output",
                   f"{pending[:80]!r} is not a response")


# --------------------------------------------------------------------------------------------
# The driver: plays a well-behaved driver and many apps against one ServerConnection
# --------------------------------------------------------------------------------------------


def internal_sizes(conn: ServerConnection) -> dict[str, Any] | None:
    """Peek at core buffers (private attributes); None if their names changed."""
    try:
        h1 = conn._proto  # HTTP11Connection or HTTP2Connection: both keep these names
        return {
            "sniff": len(conn._sniff or b""),
            "parser": h1._wire.buffered if hasattr(h1, "_wire") else 0,
            "out": sum(map(len, h1._out)),
            "streams": {
                sid: (s.body_bytes, bool(s.body) or (s.body_done and not s.delivered_end))
                for sid, s in h1._streams.items()
            },
        }
    except AttributeError:
        return None


class Driver:
    """Calls ``ServerConnection`` as a correct driver would, and checks the contract after
    every call.  ``trace`` (a list) collects a readable log of the calls."""

    def __init__(self, config: Config, check: Checker, now: float = 1000.0,
                 trace: list[str] | None = None, **conn_args: Any) -> None:
        self.config = config
        self.speaks_h2 = conn_args.get("alpn") == "h2"  # decoded by an h2 client, not h11
        self.h2client: Any = None
        self.h2c = False  # HTTP/2 began with an h2c upgrade: stream 1 is the upgraded request
        self.head = b""  # the first bytes fed, up to the preface's length
        self.check = check
        self.now = now
        self.trace = trace
        self.conn = ServerConnection(config, now=now, client=("10.0.0.1", 5555),
                                     server=("10.0.0.2", 80), **conn_args)
        self.apps: dict[int, App] = {}
        self.decoder = ResponseDecoder(check, self.apps)
        self.closed = False  # ConnectionClosed seen
        self.eof_sent = False
        self.max_chunk = 0
        self.budget = 1024  # output the core may write so far (amplification bound)
        self.out_total = 0
        self.events: list[Any] = []
        self.output: list[bytes] = []
        self._pump()

    def log(self, text: str) -> None:
        if self.trace is not None:
            self.trace.append(text)

    @property
    def running(self) -> list[App]:
        return [a for a in self.apps.values() if a.running]

    @property
    def any_running(self) -> bool:
        return any(a.running for a in self.apps.values())

    # -- driver calls ------------------------------------------------------------------------

    def feed(self, data: bytes, force: bool = False) -> bool:
        """Feed bytes if the connection would be read now (``force``: even if the core asked
        not to, for small inputs); returns whether they were fed."""
        if self.closed or self.eof_sent or not data or not (force or self.conn.wants_read):
            return False
        if self.trace is not None:
            self.log(f"feed {data[:200]!r}{'...' if len(data) > 200 else ''} ({len(data)} bytes)")
        self.max_chunk = max(self.max_chunk, len(data))
        if len(self.head) < len(H2_PREFACE):
            self.head += data[: len(H2_PREFACE) - len(self.head)]
            self.speaks_h2 = self.speaks_h2 or self.head == H2_PREFACE
        self.conn.receive_data(data, self.now)
        self._pump()
        return True

    def eof(self) -> None:
        if self.closed or self.eof_sent:
            return
        self.log("eof")
        self.eof_sent = True
        self.conn.receive_data(b"", self.now)
        self._pump()
        self.check(self.closed, "eof-not-closed", "EOF must close the connection")

    def receive(self, app: App) -> dict[str, Any] | None:
        check = self.check
        message = self.conn.receive(app.sid)
        if self.trace is not None:
            self.log(f"receive({app.sid}) -> {_short(message)}")
        owed, app.owed = app.owed, False
        if message is None:
            check(not owed, "lost-wakeup", f"stream {app.sid}: None after StreamReadable")
            check(not app.ended, "receive-after-end", f"stream {app.sid}: None after its end")
            app.waiting = True
        else:
            app.waiting = False
            self._check_receive(app, message)
        self._pump()
        return message

    def _check_receive(self, app: App, message: dict[str, Any]) -> None:
        check = self.check
        mtype = message.get("type")
        if mtype == "http.disconnect":
            check(app.ended, "early-disconnect", f"stream {app.sid}: disconnect before its end")
            app.got_disconnect = True
            return
        check(mtype == "http.request", "bad-receive", f"type {mtype!r}")
        check(not app.got_all and not app.got_disconnect, "request-after-end",
              f"stream {app.sid}: http.request after the last one")
        body, more = message.get("body"), message.get("more_body")
        if type(body) is not bytes or type(more) is not bool:
            check(False, "bad-receive", repr(message)[:200])
        app.received += len(body)
        limit = self.config.max_body_size
        check(limit is None or app.received <= limit, "body-over-limit", f"{app.received}")
        if app.req_length is not None and not app.req_chunked:
            check(app.received <= app.req_length, "body-length", "more body than content-length")
            if not more:
                check(app.received == app.req_length, "body-length",
                      f"stream {app.sid}: {app.received} of {app.req_length} bytes")
        if not more:
            app.got_all = True

    def send(self, app: App, message: Any) -> None:
        check = self.check
        if not self.conn.writable(app.sid):
            self.log(f"send({app.sid}) held: not writable")
            return
        problem = app.problem(message) if app.state != "broken" else "after a failure"
        if self.trace is not None:
            self.log(f"send({app.sid}, {_short(message)})  # {problem or 'valid'}")
        was_closed = self.closed
        try:
            self.conn.send(app.sid, message, self.now)
        except ClientDisconnected:
            self.log("  -> ClientDisconnected")
            # HTTP/1.1: only once the connection closed.  HTTP/2: a reset stream ends alone.
            check(was_closed or (self.speaks_h2 and app.ended), "bad-disconnected",
                  f"stream {app.sid}: connection still open")
            app.state = "broken"
        except AppMisuseError as exc:
            self.log(f"  -> AppMisuseError {exc}")
            if problem is None:
                check(False, "valid-refused", f"{_short(message)} refused: {exc}")
            check(not was_closed, "misuse-after-close", "should be ClientDisconnected")
            app.refused(message, problem)
        else:
            check(not was_closed, "send-after-close", "no ClientDisconnected")
            if problem is not None:
                check(False, "invalid-accepted", f"{_short(message)}: {problem}")
            app.accepted(message)
            self._count_output(message)
        self._pump()

    def _count_output(self, message: dict[str, Any]) -> None:
        size = 128
        for name, value in message.get("headers") or ():
            size += len(name) + len(value) + 4
        for link in message.get("links") or ():
            size += len(link) + 8
        body = message.get("body", b"")
        size += 2 * len(body) + 32  # chunk framing of a 1-byte body is 6 bytes
        self.budget += size

    def app_finished(self, app: App, exc: BaseException | None) -> None:
        self.log(f"app_finished({app.sid}, {exc!r})")
        app.running = False
        if app.state != "done":
            app.state = "broken"
        self.conn.app_finished(app.sid, self.now, exc)
        self._pump()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.log(f"now += {seconds}")

    def fire_timer(self) -> None:
        """Call ``handle_timer(now)`` as a driver's timer would (also early: it must be
        harmless), then check that nothing due is left."""
        self.log(f"handle_timer({self.now}) (timer {self.conn.get_timer()})")
        self.conn.handle_timer(self.now)
        self._pump()
        timer = self.conn.get_timer()
        self.check(timer is None or timer > self.now, "timer-stuck",
                   f"timer {timer} still due at {self.now}")

    def shutdown(self) -> None:
        self.log("shutdown")
        self.conn.shutdown(self.now)
        self._pump()

    # -- after every call --------------------------------------------------------------------

    def _pump(self) -> None:
        conn, check = self.conn, self.check
        events = conn.pop_events()
        out = conn.data_to_send()
        check(conn.data_to_send() == b"" and conn.pop_events() == [], "not-drained",
              "a second drain returned more")
        if self.closed:
            if events or out:
                check(False, "after-close", f"{events!r} {out[:80]!r}")
            return
        if self.trace is not None and events:
            self.log("  events: " + ", ".join(_event_name(e) for e in events))
        ended_now: set[int] = set()
        for event in events:
            self._on_event(event, ended_now)
        self.events.extend(events)
        self.out_total += len(out)
        self.output.append(out)
        if not self.speaks_h2 and conn.http_version == "2":
            # An h2c upgrade: the 101 ends HTTP/1.1, HTTP/2 frames follow (RFC 7540 3.2).
            self.speaks_h2 = self.h2c = True
            head, sep, out = out.partition(b"\r\n\r\n")
            check(head.startswith(b"HTTP/1.1 101 ") and bool(sep), "h2c-101", repr(head[:80]))
        if not self.speaks_h2:
            self.decoder.feed(out)
        elif out:
            self._check_h2_output(out)
        if self.out_total > self.budget:
            check(False, "output-unbounded",
                  f"{self.out_total} bytes written, budget {self.budget}")
        self._check_state()
        if self.closed and not self.speaks_h2:
            self.decoder.eof()

    def _check_h2_output(self, out: bytes) -> None:
        """HTTP/2: every byte we write parses as frames (hyperframe, via h2's frame buffer),
        the first is our SETTINGS (RFC 9113 3.4), and every header block decodes with one
        HPACK decoder kept across the connection.  Frame level on purpose: an h2 client's
        state machine would also judge the fuzzed client's own frames, which it never sent."""
        state = self.h2client
        if state is None:
            buffer = h2.frame_buffer.FrameBuffer(server=False)
            buffer.max_frame_size = 16384
            state = self.h2client = [buffer, hpack.Decoder(), True]
        buffer, decoder, first = state
        buffer.add_data(out)
        try:
            for frame in buffer:
                if first:
                    self.check(isinstance(frame, hyperframe.frame.SettingsFrame), "h2-output",
                               f"no SETTINGS first: {frame!r}")
                    first = state[2] = False
                if isinstance(frame, (hyperframe.frame.HeadersFrame,
                                      hyperframe.frame.PushPromiseFrame)):
                    decoder.decode(frame.data, raw=True)
        except (h2.exceptions.ProtocolError, hpack.HPACKError,
                hyperframe.exceptions.HyperframeError) as exc:
            self.check(False, "h2-output", f"our bytes do not decode: {exc!r}")

    def _on_event(self, event: Any, ended_now: set[int]) -> None:
        check, apps = self.check, self.apps
        if self.closed:
            check(False, "event-after-close", repr(event))
        if isinstance(event, StreamStarted):
            sid = event.stream_id
            check(sid == len(apps) + 1, "stream-ids", f"started {sid} after {len(apps)}")
            check(not apps or apps[sid - 1].ended, "pipelining",
                  f"stream {sid} started before stream {sid - 1} ended")
            _check_scope(check, event.scope)
            apps[sid] = App(sid, event.scope)
            self.budget += 512  # an error response or 100 Continue may follow
        elif isinstance(event, StreamEnded):
            app = apps.get(event.stream_id)
            if app is None:
                check(False, "unknown-stream", repr(event))
            assert app is not None
            check(not app.ended, "double-end", f"stream {app.sid} ended twice")
            app.ended = True
            ended_now.add(app.sid)
        elif isinstance(event, StreamReadable):
            # A finished app may have been waiting (a cancelled task): drivers ignore those.
            app = apps.get(event.stream_id)
            check(app is not None and (app.waiting or not app.running), "spurious-readable",
                  f"stream {event.stream_id} was not waiting")
            if app is not None:
                app.waiting, app.owed = False, app.running
        elif isinstance(event, ConnectionClosed):
            self.closed = True
        else:
            if not isinstance(event, StreamWritable):
                check(False, "unknown-event", repr(event))

    def _check_state(self) -> None:
        # Runs after every call: details are formatted only for a failing check.
        check, conn, closed = self.check, self.conn, self.closed
        if conn.closed != closed:
            check(False, "closed-flag", f"{conn.closed} vs {closed}")
        if closed:
            for app in self.apps.values():
                if not app.ended:
                    check(False, "end-before-close", f"stream {app.sid} has no StreamEnded")
            if conn.wants_read or conn.get_timer() is not None:
                check(False, "closed-but-live",
                      f"wants_read={conn.wants_read} timer={conn.get_timer()}")
        else:
            for app in self.apps.values():
                if (app.ended and app.running and app.kind == "http"
                        and app.state not in ("done", "broken") and not self.may_end_early(app)):
                    check(False, "spurious-end",
                          f"stream {app.sid} ended while its response is {app.state}")
        self._check_sizes()
        if not closed and not self.any_running:
            # Nothing runs: only the peer or a timer can move this connection on.
            check(conn.wants_read, "stalled", "no app running and not reading")
            check(conn.get_timer() is not None, "no-deadline",
                  "an idle connection without any deadline")

    def _check_sizes(self) -> None:
        """Core buffers within Config limits: ``internal_sizes`` inlined (it runs after every
        call), the same checks."""
        check, conn = self.check, self.conn
        try:
            proto = conn._proto
            sniff = len(conn._sniff or b"")
            parser = proto._wire.buffered if hasattr(proto, "_wire") else 0
            out = sum(map(len, proto._out))
            streams = [(sid, s.body_bytes, bool(s.body) or (s.body_done and not s.delivered_end))
                       for sid, s in proto._streams.items()]
        except AttributeError:
            return
        cfg = self.config
        if sniff >= 24:
            check(False, "sniff-unbounded", str(sniff))
        if out:
            check(False, "out-not-drained", str(out))
        bound = cfg.max_head_size + cfg.body_buffer_size + 2 * self.max_chunk + 1024
        if parser > bound:
            check(False, "parser-unbounded", f"{parser} > {bound}")
        limit = cfg.body_buffer_size + self.max_chunk
        for sid, queued, pending in streams:
            if queued > limit:
                check(False, "body-unbounded", f"stream {sid}: {queued} bytes queued")
            app = self.apps.get(sid)
            if app is not None and app.waiting and pending:
                check(False, "lost-wakeup", f"stream {sid} has a message but no wakeup")

    def may_end_early(self, app: App) -> bool:
        """Whether ``app``'s stream may end before its response is complete while the
        connection lives (never on HTTP/1.1; HTTP/2 overrides this for reset streams)."""
        return False

    def finish(self, how: int) -> None:
        """End the connection (0: EOF, 1: shutdown, 2: idle timers) with every app returning,
        then check every stream ended once and the connection closed."""
        self.log(f"-- finish ({('eof', 'shutdown', 'idle')[how]})")
        for _ in range(1000):
            for app in self.running:
                self.app_finished(app, None)
            if self.closed:
                break
            if how == 0 or self.eof_sent:
                self.eof()
            elif how == 1:
                self.shutdown()
                if not self.closed and not self.any_running:
                    self._fire_next(force_eof=True)
            else:
                self._fire_next(force_eof=True)
        self.check(self.closed, "never-closed", "the connection did not close")
        self.check(all(a.ended for a in self.apps.values()), "missing-end", "a stream never ended")
        ends = [e.stream_id for e in self.events if isinstance(e, StreamEnded)]
        self.check(sorted(ends) == sorted(self.apps), "end-count", f"ends {ends}")
        self.check([e for e in self.events if isinstance(e, ConnectionClosed)]
                   == [ConnectionClosed()], "close-count", "ConnectionClosed not exactly once")

    def _fire_next(self, force_eof: bool) -> None:
        timer = self.conn.get_timer()
        if timer is None:
            if force_eof:
                self.eof()
            return
        self.now = max(self.now, timer)
        self.fire_timer()


def _check_scope(check: Checker, scope: dict[str, Any]) -> None:
    if not _scope_ok(scope):
        check(False, "bad-scope", repr(scope)[:300])


def _scope_ok(scope: dict[str, Any]) -> bool:
    kind = scope.get("type")
    ok = (
        kind in ("http", "websocket")
        and scope.get("http_version") in ("1.0", "1.1", "2")
        and (kind == "websocket" or (
            isinstance(scope.get("method"), str)
            and TOKEN_RE.fullmatch(scope["method"].encode("latin-1")) is not None))
        and isinstance(scope.get("path"), str)
        and isinstance(scope.get("raw_path"), bytes)
        and b"?" not in scope["raw_path"]
        and isinstance(scope.get("query_string"), bytes)
        and isinstance(scope.get("extensions"), dict)
        and all(
            type(n) is bytes and type(v) is bytes and n == n.lower()
            for n, v in scope.get("headers", [None])
        )
    )
    return ok


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def _event_name(event: Any) -> str:
    sid = getattr(event, "stream_id", None)
    return type(event).__name__ + (f"({sid})" if sid is not None else "")


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

USAGE = """\
usage: python fuzz/{name}.py [libFuzzer args] [CORPUS_DIR ...]
       python fuzz/{name}.py --replay FILE|DIR ...   (run inputs once; --trace prints calls)
       python fuzz/{name}.py --no-atheris [-max_total_time=N] [-artifact_prefix=P] [DIR ...]
"""


def main(run_one: Callable[..., None], name: str) -> None:
    """The command line (see ``USAGE``); ``FUZZ_STRICT=1`` enforces the known issues too."""
    args = sys.argv[1:]
    tolerate = () if os.environ.get("FUZZ_STRICT") == "1" else KNOWN_ISSUES
    if "-h" in args or "--help" in args:
        print(USAGE.format(name=name))
        return
    if "--replay" in args:
        trace = "--trace" in args
        files = _inputs([a for a in args if not a.startswith("--")])
        failed = 0
        for path in files:
            log: list[str] | None = [] if trace else None
            try:
                run_one(path.read_bytes(), tolerate=tolerate, trace=log)
                status = "ok"
            except Exception:
                status = "FAIL\n" + traceback.format_exc()
                failed += 1
            if log is not None:
                print("\n".join(log))
            print(f"{path}: {status}")
        sys.exit(1 if failed else 0)
    if atheris is not None and "--no-atheris" not in args:
        # libFuzzer re-runs argv[0] through the shell for -jobs, -fork and -minimize_crash:
        # name the interpreter too, so the harness needs no shebang or executable bit.
        argv0 = shlex.join([sys.executable, str(Path(sys.argv[0]).resolve())])
        atheris.Setup([argv0, *args], lambda data: run_one(data, tolerate=tolerate))
        atheris.Fuzz()
        return
    _fallback([a for a in args if a != "--no-atheris"],
              lambda data: run_one(data, tolerate=tolerate), name)


def _inputs(paths: Iterable[str]) -> list[Path]:
    files: list[Path] = []
    for arg in paths:
        path = Path(arg)
        files.extend(sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path])
    return files


def _fallback(args: list[str], run_one: Callable[..., None], name: str) -> None:
    """Without atheris: replay the corpus, then mutate it at random for the time budget."""
    opts = dict(a[1:].split("=", 1) for a in args if a.startswith("-") and "=" in a)
    budget = float(opts.get("max_total_time", os.environ.get("FUZZ_SECONDS", "20")))
    prefix = opts.get("artifact_prefix", "./")
    seed = int(opts.get("seed", time.time_ns() % 2**32))
    corpus = [p.read_bytes() for p in _inputs(a for a in args if not a.startswith("-"))]
    corpus = corpus or [b""]
    rng = random.Random(seed)
    print(f"{name}: no atheris; replaying {len(corpus)} inputs, then random mutations for "
          f"{budget:g}s (seed {seed})", flush=True)
    deadline = time.monotonic() + budget
    runs = 0
    for data in _candidates(corpus, rng):
        if runs >= len(corpus) and time.monotonic() >= deadline:
            break
        runs += 1
        try:
            run_one(data)
        except Exception:
            traceback.print_exc()
            path = Path(f"{prefix}crash-{hashlib.sha1(data).hexdigest()}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(f"==CRASH== {name}: input written to {path}", flush=True)
            if len(data) <= 4096:
                print(f"base64: {base64.b64encode(data).decode()}", flush=True)
            sys.exit(1)
    print(f"{name}: {runs} runs, no failure (stat::number_of_executed_units: {runs})")


def _candidates(corpus: list[bytes], rng: random.Random) -> Iterable[bytes]:
    yield from corpus
    while True:
        data = bytearray(rng.choice(corpus))
        for _ in range(rng.randint(1, 8)):
            op = rng.randrange(5)
            pos = rng.randint(0, len(data))
            if op == 0 and data:
                data[min(pos, len(data) - 1)] ^= 1 << rng.randrange(8)
            elif op == 1:
                data[pos:pos] = rng.randbytes(rng.randint(1, 16))
            elif op == 2:
                del data[pos : pos + rng.randint(1, 16)]
            elif op == 3:
                other = rng.choice(corpus)
                start = rng.randint(0, len(other))
                data[pos:pos] = other[start : start + rng.randint(1, 64)]
            else:
                data = bytearray(rng.randbytes(rng.randint(0, 256)))
        yield bytes(data)
