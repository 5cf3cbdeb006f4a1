"""Write the seed corpora and the scripted regression inputs: ``python fuzz/seeds.py``
(rewrites fuzz/corpus/<harness>/seed-*; writes fuzz/regressions/<harness>/<name> if missing).

Each input is a named scenario given as the harness's decisions, recorded through
``_common.scripted`` so that the bytes decode to exactly that run.  Rerun after changing how a
harness reads its input; ``--show NAME`` prints an input's call trace.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import fuzz_detect
import fuzz_http2
import fuzz_http11
import fuzz_lifespan
import fuzz_websocket
from _common import CORPUS_DIR, FUZZ_DIR, scripted

# --------------------------------------------------------------------------------------------
# HTTP/1.1: steps mirror fuzz_http11.run and make_message
# --------------------------------------------------------------------------------------------

Step = tuple[list[int], list[bytes]]
T = {name: i for i, name in enumerate((
    "get", "head", "post", "chunked", "expect", "open", "big", "http10", "close", "te", "options",
    "absolute", "smuggle", "h2c", "hello", "chunk", "last", "last-trailer", "crlf", "v2", "nul",
    "connect", "bad-host", "fold", "junk", "websocket",
))}
assert len(T) == len(fuzz_http11.TEMPLATES)
CL_INDEX = {0: 0, 1: 1, 5: 2, 100: 3, None: 4}
SIZE_INDEX = {0: 0, 1: 1, 5: 2, 100: 3, 3000: 4}


def req(*names: str) -> Step:
    """Queue canned requests, then feed everything queued."""
    values: list[int] = []
    for name in names:
        values += [3, T[name]]
    return [*values, 9, 0], []


def split(name: str, first: int) -> Step:
    """Queue one canned request and feed it as two reads."""
    return [3, T[name], 9, first, 9, 0], []


def raw(data: bytes) -> Step:
    return [0, len(data)], [data]


def filler(size: int, chunked: bool = False) -> Step:
    return [15, fuzz_http11.FILLER_SIZES.index(size), int(chunked), 9, 0], []


def recv() -> Step:
    return [16], []


def start(status: int = 200, length: int | None = None, trailers: bool | None = None) -> Step:
    values = [20, 0, 1, 0, CL_INDEX[length], 1, fuzz_http11.STATUSES.index(status)]
    if trailers is not None:  # only asked when the trailers extension is in scope
        values.append(int(trailers))
    return values, []


def body(size: int, more: bool, declared: bool) -> Step:
    """A body message; with a declared length the harness trims it to fit (``more`` ignored)."""
    values = [20, 0, SIZE_INDEX[size]]
    if declared:
        return [*values, 1, 2 if more else 0, 1], []
    return [*values, 2 if more else 0], []


def respond(status: int = 200, size: int = 5, no_body: bool = False) -> list[Step]:
    """Start with a content-length, then the whole body (HEAD, 204, 304: ``no_body``)."""
    return [start(status, size), body(size, False, not no_body)]


def hint(count: int = 2) -> Step:
    return [20, 10, count], []


def bad(index: int) -> Step:
    return [20, 11, index], []


def trailers(count: int = 1) -> Step:
    return [20, 0, count, *range(count), 1], []


def done(exc: bool = False, app: int | None = None) -> Step:
    """The app returns (or raises); ``app`` picks one when several still run."""
    return [26, *([] if app is None else [app]), int(exc)], []


def tick(seconds: float) -> Step:
    return [28, fuzz_http11.DELTAS.index(seconds)], []


SHUTDOWN: Step = ([30], [])
EOF: Step = ([31], [])


def h1(config: int, ending: int, *steps: Step | list[Step]) -> tuple[list[int], list[bytes]]:
    values, blobs = [config, ending], []
    for step in steps:
        for v, b in step if isinstance(step, list) else [step]:
            values += v
            blobs += b
    return values, blobs


HTTP11 = {
    "get": h1(1, 0, req("get"), recv(), respond(), done()),
    "head": h1(1, 2, req("head"), recv(), respond(200, 5, no_body=True), done()),
    "post-length": h1(1, 0, req("post"), recv(), recv(), start(201), body(1, True, False),
                      body(0, False, False), done()),
    "post-chunked": h1(1, 0, req("chunked"), recv(), recv(), respond(), done()),
    "pipelined": h1(1, 2, req("get", "head", "post"), respond(), done(app=0), recv(),
                    respond(200, 0, no_body=True), done(app=0), recv(), respond(404, 100),
                    done()),
    "expect-100": h1(1, 0, req("expect"), recv(), raw(b"0123456789"), recv(), respond(), done()),
    "http10": h1(1, 0, req("http10"), start(200), body(100, False, False), done()),
    "close": h1(1, 2, req("close", "get"), respond(), done()),
    "trailers": h1(1, 0, req("te"), start(200, None, True), body(5, False, False), trailers(1),
                   done()),
    "split": h1(1, 2, split("get", 5), respond(), done(), tick(1.0), tick(4.999), tick(1.0)),
    "big-body": h1(0, 0, req("big"), filler(70_000), recv(), recv(), respond(), done()),
    "chunked-filler": h1(1, 0, req("open"), filler(1000, True), recv(), req("last-trailer"),
                         recv(), respond(), done()),
    "app-crash": h1(1, 0, req("get", "get"), done(True), respond(), done()),
    "misuse": h1(1, 0, req("get"), bad(6), done()),
    "early-hints": h1(1, 0, req("get"), hint(2), respond(), done()),
    "head-timeout": h1(0, 2, raw(b"GET / HT"), tick(19.999), tick(0.001)),
    "shutdown": h1(1, 1, req("post"), SHUTDOWN, recv(), respond(), done()),
    "eof-mid-body": h1(1, 0, req("open"), recv(), EOF, recv(), done()),
    "bad-version": h1(1, 0, req("v2")),
    "bad-host": h1(1, 0, req("bad-host")),
    "obs-fold": h1(1, 0, req("fold")),
    "smuggle": h1(1, 0, req("smuggle"), recv(), respond(), done()),
    "connect": h1(1, 0, req("connect")),
    "h2c-upgrade": h1(1, 0, req("h2c"), respond(), done()),
    "websocket-refused": h1(1, 0, req("websocket", "get"), done(True)),
}

# --------------------------------------------------------------------------------------------
# Detection: alpn, eof, cut points, start, payload; then the mode (a PROXY header), the
# ending and the operations (fuzz_detect.run, fuzz_detect.Lockstep.run)
# --------------------------------------------------------------------------------------------

PREFACE = fuzz_detect.PREFACE


def detect(alpn: str | None, start: bytes, payload: bytes = b"", cuts: tuple[int, ...] = (),
           eof: bool = False, proxy: tuple[list[int], list[bytes]] | None = None,
           ending: int = 0, ops: tuple[Step, ...] = ()) -> tuple[list[int], list[bytes]]:
    """``proxy``: the decisions after the payload (``header()``, ``generated()``); without it
    and ``ops`` the run stops after the bytes-only checks."""
    values = [fuzz_detect.ALPNS.index(alpn), int(eof), len(cuts), *cuts,
              fuzz_detect.STARTS.index(start), len(payload)]
    blobs = [payload] if payload else []
    if proxy is not None or ops:
        mode_values, mode_blobs = proxy or ([0], [])
        values += [*mode_values, ending]
        blobs += mode_blobs
        for v, b in ops:
            values += v
            blobs += b
    return values, blobs


def header(data: bytes) -> tuple[list[int], list[bytes]]:
    """A PROXY header given as bytes (mode 3: arbitrary bytes)."""
    return [3, len(data)], [data]


def generated(*values: int, blobs: tuple[bytes, ...] = ()) -> tuple[list[int], list[bytes]]:
    """A header generated (mode 1) or mutated (mode 2) from the given decisions."""
    return list(values), list(blobs)


D_FEED: Step = ([0], [])
D_RECV: Step = ([5], [])
D_SHUTDOWN: Step = ([14], [])
D_EOF: Step = ([15], [])


def d_send(step: Step) -> Step:
    """``start()`` / ``body()`` of the HTTP/1.1 seeds, as a detect operation."""
    return [7, *step[0][1:]], step[1]


def d_done(exc: bool = False) -> Step:
    return [10, int(exc)], []


def d_tick(seconds: float) -> Step:
    return [11, fuzz_http11.DELTAS.index(seconds)], []


GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
SIG = bytes.fromhex("0d0a0d0a000d0a515549540a")
V1 = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"
V1_6 = b"PROXY TCP6 2001:db8::1 2001:DB8:0:0:0:0:0:2 65535 0\r\n"
V2 = (SIG + b"\x21\x11\x00\x13" + bytes([192, 0, 2, 1, 198, 51, 100, 2]) + b"\xdc\x04\x01\xbb"
      + b"\x04\x00\x04pad!")  # a NOOP TLV after the addresses
V2_6 = (SIG + b"\x21\x21\x00\x24" + bytes(range(16)) + bytes(15) + b"\x01" + b"\x00\x01\x00\x02")
V2_LOCAL = SIG + b"\x20\x00\x00\x05hello"
V2_SSL = (SIG + b"\x21\x11\x00\x14" + bytes([192, 0, 2, 1, 198, 51, 100, 2]) + b"\xdc\x04\x01\xbb"
          + b"\x20\x00\x05\x01\x00\x00\x00\x00")  # PP2_TYPE_SSL, PP2_CLIENT_SSL: https
V2_UNIX = SIG + b"\x21\x31\x00\xd8" + b"/a".ljust(108, b"\0") + b"/b".ljust(108, b"\0")
ANSWER = (D_FEED, D_RECV, d_send(start(200, 5)), d_send(body(5, False, True)), d_done())
DETECT = {
    "preface": detect(None, PREFACE),
    "preface-split": detect(None, PREFACE, cuts=(1, 5, 23)),
    "preface-and-frames": detect(None, PREFACE, b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"),
    "preface-prefix": detect(None, PREFACE[:14]),
    "preface-prefix-eof": detect(None, PREFACE[:23], eof=True),
    "preface-diverges": detect(None, PREFACE[:23], b"X" + GET, cuts=(23, 24)),
    "alpn-h2": detect("h2", GET),
    "alpn-http11": detect("http/1.1", PREFACE),
    "get": detect(None, GET),
    "get-split": detect(None, b"", GET, cuts=(1, 3, 16)),
    "pri-http11": detect(None, b"PRI * HTTP/1.1\r\nHost: a\r\n\r\n", eof=True),
    "crlf-get": detect(None, b"\r\n", GET),
    "garbage": detect(None, b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
    # with app calls and timers, no PROXY
    "get-answered": detect(None, GET, proxy=([0], []), ops=ANSWER),
    "preface-prefix-timer": detect(None, PREFACE[:4], proxy=([0], []), ending=2,
                                   ops=(D_FEED, d_tick(4.999), d_tick(0.001))),
    # PROXY: valid headers, then a request answered by the app
    "proxy-v1-tcp4": detect(None, GET, proxy=header(V1), ops=ANSWER),
    "proxy-v1-tcp6-split": detect(None, GET, cuts=(9, 30, 60), proxy=header(V1_6), ops=(
        D_FEED, D_FEED, D_FEED, *ANSWER)),
    "proxy-v1-unknown": detect(None, GET, proxy=header(b"PROXY UNKNOWN\r\n"), ops=ANSWER),
    "proxy-v2-tcp4-tlv": detect(None, GET, cuts=(13, 16), proxy=header(V2), ending=1,
                                ops=(D_FEED, D_FEED, *ANSWER)),
    "proxy-v2-tcp6-preface": detect(None, PREFACE, proxy=header(V2_6)),
    "proxy-v2-alpn-h2": detect("h2", b"", proxy=header(V2), ending=2),
    "proxy-v2-local": detect(None, GET, proxy=header(V2_LOCAL), ops=ANSWER),
    "proxy-v2-ssl": detect(None, GET, proxy=header(V2_SSL), ops=ANSWER),
    "proxy-v2-unix": detect(None, GET, proxy=header(V2_UNIX), ending=1),
    "proxy-generated-v2": detect(None, GET, proxy=generated(1, 1, 1, 0, 1, 2, 3, 2, 1, 3, 3,
                                                            blobs=(b"abc",)), ops=ANSWER),
    "proxy-mutated-v1": detect(None, GET, proxy=generated(2, 0, 0, 3, 0xC0000201, 2, 5, 5,
                                                          1, 41, 1)),
    # PROXY: refused, at the byte that decides it, or at the deadline
    "proxy-missing": detect(None, GET, cuts=(1,), proxy=([3, 0], [])),
    "proxy-port-65536": detect(None, GET, proxy=header(V1.replace(b"443", b"65536"))),
    "proxy-lone-lf": detect(None, b"", proxy=header(b"PROXY UNKNOWN\n")),
    "proxy-v2-bad-version": detect(None, b"", proxy=header(SIG + b"\x11\x11\x00\x0c")),
    "proxy-v2-short-block": detect(None, GET, proxy=header(SIG + b"\x21\x21\x00\x0c"
                                                           + bytes(12))),
    "proxy-v2-inet-one-short": detect(None, GET, proxy=header(SIG + b"\x21\x11\x00\x0b"
                                                              + bytes(11))),
    "proxy-deadline": detect(None, b"", cuts=(20,), proxy=header(V1), ending=2, ops=(
        D_FEED, d_tick(19.999), d_tick(0.001), D_FEED)),
    "proxy-eof-mid-header": detect(None, b"", cuts=(10,), eof=True, proxy=header(V2)),
    "proxy-shutdown-mid-header": detect(None, b"", cuts=(10,), proxy=header(V1),
                                        ops=(D_FEED, D_SHUTDOWN)),
}

# --------------------------------------------------------------------------------------------
# Lifespan: ops 0 startup, 1 shutdown, 2 receive, 4 send (+ message), 8 app_finished (+ exc)
# --------------------------------------------------------------------------------------------

M = {name: i for i, name in enumerate((
    "complete", "complete2", "complete-extra", "failed", "failed-bare", "failed-int",
    "shutdown-complete", "shutdown-complete2", "shutdown-failed", "shutdown-failed-none",
    "startup", "http", "int-type", "empty", "string", "none",
))}
assert len(M) == len(fuzz_lifespan.MESSAGES)
STARTUP, SHUT, RECV = [0], [1], [2]


def send(name: str) -> list[int]:
    return [4, M[name]]


def finish(exc: int = 0) -> list[int]:
    return [8, exc]


def life(*steps: list[int]) -> tuple[list[int], list[bytes]]:
    return [v for step in steps for v in step], []


LIFESPAN = {
    "full-cycle": life(RECV, STARTUP, RECV, send("complete"), SHUT, RECV,
                       send("shutdown-complete"), finish()),
    "startup-first": life(STARTUP, RECV, send("complete-extra"), RECV, SHUT, RECV,
                          send("shutdown-failed"), finish()),
    "startup-failed": life(STARTUP, RECV, send("failed"), RECV, finish(2)),
    "unsupported-raise": life(STARTUP, RECV, finish(2)),
    "unsupported-return": life(RECV, STARTUP, finish()),
    "errored": life(STARTUP, RECV, send("complete"), RECV, finish(3), SHUT),
    "out-of-order": life(STARTUP, RECV, send("shutdown-complete"), finish()),
    "answer-early": life(STARTUP, send("complete"), RECV, finish()),
    "not-lifespan": life(STARTUP, RECV, send("http"), finish()),
    "bad-failure-text": life(STARTUP, RECV, send("failed-int"), finish()),
    "shutdown-misuse": life(STARTUP, RECV, send("complete"), SHUT, RECV,
                            send("shutdown-failed-none"), finish()),
    "before-startup": life(SHUT, send("complete"), STARTUP, RECV, finish()),
    "garbage": life(send("none"), send("string"), send("empty"), STARTUP, finish()),
}

# --------------------------------------------------------------------------------------------
# HTTP/2: config, start, strict, ending, then ops (fuzz_http2.run); a pick among one stream or
# one app takes no value, so the steps below say which stream or app when there are several
# --------------------------------------------------------------------------------------------

R = {name: i for i, name in enumerate((
    "get", "get2", "head", "post", "open", "te", "options", "cookies", "ws", "connect",
    "connect-other", "upper", "connection", "no-path", "te-gzip", "two-paths", "bad-length",
    "host-differs", "edge-space",
))}
assert len(R) == len(fuzz_http2.REQUESTS)


def feed(n: int = 0) -> Step:
    """Feed what the client wrote (``n`` bytes of it; 0: all)."""
    return [0, n], []


def request(name: str, end: bool = True) -> Step:
    return [5, R[name], 0 if end else 1], []


def data(size: int, end: bool, sid: int | None = None) -> Step:
    return [8, *([] if sid is None else [sid]), fuzz_http2.DATA_SIZES.index(size), int(end)], []


def h2_end(sid: int | None = None, trailers: int | None = None) -> Step:
    sid_pick = [] if sid is None else [sid]
    if trailers is None:
        return [10, *sid_pick, 1], []
    return [10, *sid_pick, 0, trailers], []


def reset(sid: int | None = None) -> Step:
    return [11, *([] if sid is None else [sid]), 0], []


def window(sid: int, increment: int, ack: bool = False) -> Step:
    """WINDOW_UPDATE (``sid`` indexes [0, *open streams]), or credit back what was read."""
    values = [12, sid, fuzz_http2.INCREMENTS.index(increment)]
    if sid:
        values.append(int(ack))
    return values, []


def settings(index: int) -> Step:
    return [13, index], []


PING: Step = ([14, 1], [])
GOAWAY: Step = ([15, 0], [])


def raw_frame(kind: int, *values: int) -> Step:
    return [15, 1, kind, *values], []


def h2_recv(app: int | None = None) -> Step:
    return [16, *([] if app is None else [app])], []


def h2_send(steps: Step | list[Step], app: int | None = None) -> list[Step]:
    """HTTP/1.1 harness message steps (start, body, ...) as HTTP/2 sends to one app."""
    out = []
    for values, blobs in steps if isinstance(steps, list) else [steps]:
        assert values[0] == 20
        out.append(([19, *([] if app is None else [app]), *values[1:]], blobs))
    return out


def push(path: int = 0, headers: int = 1, app: int | None = None) -> Step:
    return [24, *([] if app is None else [app]), path, headers], []


def h2_done(exc: bool = False, app: int | None = None) -> Step:
    return [25, *([] if app is None else [app]), int(exc)], []


def h2_tick(seconds: float) -> Step:
    return [27, fuzz_http2.DELTAS.index(seconds)], []


H2_SHUTDOWN: Step = ([29], [])
H2_EOF: Step = ([30], [])


def h2(config: int, start: str, strict: bool, ending: int,
       *steps: Step | list[Step]) -> tuple[list[int], list[bytes]]:
    values = [config, fuzz_http2.STARTS.index(start), int(strict), ending]
    blobs: list[bytes] = []
    for step in steps:
        for v, b in step if isinstance(step, list) else [step]:
            values += v
            blobs += b
    return values, blobs


HTTP2 = {
    "get": h2(0, "preface", True, 0, request("get"), feed(), h2_recv(), h2_send(respond()),
              h2_done(), feed()),
    "alpn-head": h2(1, "alpn", True, 2, request("head"), feed(),
                    h2_send(respond(200, 5, no_body=True)), h2_done(), feed()),
    "h2c": h2(1, "h2c", True, 0, feed(), h2_recv(), h2_send(respond()), h2_done(), feed()),
    "h2c-split": h2(0, "h2c", True, 1, feed(30), feed(100), feed(), h2_send(respond(404, 100)),
                    h2_done(), feed()),
    "post": h2(1, "preface", True, 0, request("post", end=False), data(5, True), feed(),
               h2_recv(), h2_recv(), h2_send(respond(201)), h2_done(), feed()),
    "post-open": h2(0, "preface", True, 0, request("open", end=False), data(100, False),
                    feed(), h2_recv(), window(1, 1000, ack=True), data(1, True), feed(),
                    h2_recv(), h2_send(respond()), h2_done(), feed()),
    "trailers": h2(0, "preface", True, 0, request("te"), feed(),
                   h2_send([start(200, None, True), body(5, False, False), trailers(1)]),
                   h2_done(), feed()),
    "request-trailers": h2(0, "preface", True, 0, request("open", end=False), data(5, False),
                           h2_end(trailers=0), feed(), h2_recv(), h2_send(respond()),
                           h2_done(), feed()),
    "small-window": h2(1, "preface", True, 2, settings(1), feed(), request("get"), feed(),
                       h2_send(respond(200, 100)), h2_done(), feed(),
                       window(1, 1000), window(0, 65535), feed()),
    "zero-window-stall": h2(1, "preface", True, 2, settings(0), feed(), request("get"), feed(),
                            h2_send(respond(200, 100)), h2_done(), h2_tick(5.0), feed()),
    "client-reset": h2(0, "preface", True, 0, request("open", end=False), feed(),
                       h2_send(start(200)), reset(), feed(),
                       h2_send(body(5, True, False)), h2_done(), feed()),
    "push": h2(0, "preface", True, 0, request("get"), feed(), h2_send(start(200)), push(),
               h2_send(body(5, False, False), app=0), feed(), h2_send(respond(200, 5), app=1),
               h2_done(app=0), h2_done(), feed()),
    "websocket-refused": h2(0, "preface", True, 0, request("ws", end=False), feed(),
                            h2_done(True), feed()),
    "websocket-small-window": h2(1, "preface", True, 2, settings(1), feed(),
                                 request("ws", end=False), feed(), h2_done(True), feed(),
                                 window(1, 65535), feed()),
    "shutdown": h2(1, "preface", True, 1, request("get"), feed(), H2_SHUTDOWN,
                   request("get"), feed(), h2_send(respond()), h2_done(), feed()),
    "shutdown-deadline": h2(1, "preface", True, 1, request("get"), feed(), H2_SHUTDOWN,
                            request("get"), feed(), h2_tick(3.0), feed()),
    "client-goaway": h2(0, "preface", True, 0, request("get"), GOAWAY, feed(),
                        h2_send(respond()), h2_done(), feed()),
    "ping-idle": h2(1, "preface", True, 2, PING, feed(), h2_tick(5.0)),
    "malformed": h2(0, "preface", True, 0, request("upper"), request("connection"),
                    request("no-path"), request("te-gzip"), request("two-paths"),
                    request("host-differs"), request("options"), feed(),
                    h2_send(respond()), h2_done(), feed()),
    "connect": h2(0, "preface", True, 0, request("connect", end=False),
                  request("connect-other", end=False), feed()),
    "misuse": h2(0, "preface", True, 0, request("get"), feed(), h2_send(bad(6)), h2_done(),
                 feed()),
    "app-crash-mid-body": h2(0, "preface", True, 0, request("get"), feed(),
                             h2_send([start(200), body(5, True, False)]), h2_done(True), feed()),
    "early-hints": h2(0, "preface", True, 0, request("get"), feed(), h2_send(hint(2)),
                      h2_send(respond()), h2_done(), feed()),
    "raw-frames": h2(1, "preface", False, 0, feed(), raw_frame(0, 0, 0, 1, 1),
                     raw_frame(5, 0, 0), raw_frame(3, 0, 1, 2), raw_frame(6, 0, 1, 16),
                     raw_frame(2, 0, 8), feed()),
    "raw-continuation": h2(0, "preface", False, 0, feed(), raw_frame(0, 0, 3, 0, 0, 1),
                           feed(), h2_send(respond()), h2_done(), feed()),
    "raw-bad-hpack": h2(0, "preface", False, 0, feed(), raw_frame(8, 0, 4),
                        ([], [b"\xff\xff\xff\xff"]), feed()),
    "eof": h2(0, "preface", True, 0, request("open", end=False), feed(), h2_recv(), H2_EOF,
              h2_recv(), h2_done()),
}

# --------------------------------------------------------------------------------------------
# WebSocket: carrier, config, strict, handshake, ending, then ops (fuzz_websocket.run)
# --------------------------------------------------------------------------------------------

WS = fuzz_websocket


def ws_message(text: bool, size: int, parts: int = 1) -> Step:
    return [5, int(text), WS.SIZES.index(size), parts], []


def ws_ping(payload: bytes = b"hi") -> Step:
    return [9, len(payload)], [payload] if payload else []


def ws_client_close(code: int | None = 1000) -> Step:
    return [10, 1, WS.CLIENT_CLOSES.index(code)], []


WS_PONG: Step = ([10, 0], [])


def ws_bad(kind: int, payload: bytes, first: int = 0) -> Step:
    values = [11, kind, len(payload)]
    if kind != 7:
        values.append(first)
    if kind == 2:
        values.append(1)  # a 1-byte Close payload
    return values, [payload] if payload else []


def ws_h2(kind: int, *values: int) -> Step:
    return [13, kind, *values], []


WS_RECV: Step = ([14], [])


def ws_accept(sub: Any = None, headers: int = 0) -> Step:
    return [17, 0, WS.SUBPROTOCOLS.index(sub), headers], []


def ws_send(text: bool, size: int) -> Step:
    return [17, 0, WS.SIZES.index(size), int(text)], []


def ws_close(code: Any = 1000, reason: int = 0) -> Step:
    return [17, 11, WS.CLOSE_CODES.index(code), reason], []


def ws_deny(status: Any = 403, headers: int = 1) -> Step:
    return [17, 9, WS.DENY_STATUSES.index(status), headers], []


def ws_deny_body(size: int, more: bool) -> Step:
    return [17, 0, (0, 1, 5, 100).index(size), 0 if more else 1], []


def ws_bad_message(index: int) -> Step:
    return [17, 15, index], []


def ws_done(exc: bool = False) -> Step:
    return [24, int(exc)], []


def ws_tick(seconds: float) -> Step:
    return [26, fuzz_http2.DELTAS.index(seconds)], []


WS_SHUTDOWN: Step = ([29], [])
WS_EOF: Step = ([30], [])


def ws(carrier: str, config: int, strict: bool, handshake: int, ending: int,
       *steps: Step | list[Step]) -> tuple[list[int], list[bytes]]:
    values = [WS.CARRIERS.index(carrier), config, int(strict), handshake, ending]
    blobs: list[bytes] = []
    for step in steps:
        for v, b in step if isinstance(step, list) else [step]:
            values += v
            blobs += b
    return values, blobs


OPEN = [feed(), WS_RECV, ws_accept()]
WEBSOCKET = {
    "h1-echo": ws("h1", 0, True, 0, 0, *OPEN, ws_message(True, 5), feed(), WS_RECV,
                  ws_send(True, 5), ws_client_close(1000), feed(), WS_RECV, ws_done()),
    "h1-deflate-subprotocol": ws("h1", 0, True, 1, 0, feed(), WS_RECV, ws_accept("chat"),
                                ws_message(False, 1000, 3), ws_message(True, 126), feed(),
                                WS_RECV, WS_RECV, ws_send(False, 1000), ws_close(3000),
                                ws_client_close(3000), feed(), WS_RECV, ws_done()),
    "h1-deny": ws("h1", 0, True, 0, 0, feed(), WS_RECV, ws_deny(401, 1),
                  ws_deny_body(5, True), ws_deny_body(100, False), ws_done()),
    "h1-deny-length": ws("h1", 0, True, 0, 0, feed(), ws_deny(403, 2), ws_deny_body(0, True),
                         ws_deny_body(5, False), ws_done()),
    "h1-close-before-accept": ws("h1", 0, True, 0, 0, feed(), WS_RECV, ws_close(1000),
                                 ws_done()),
    "h1-crash-before-accept": ws("h1", 0, True, 0, 0, feed(), WS_RECV, ws_done(True)),
    "h1-bad-version": ws("h1", 0, True, 4, 0, feed()),
    "h1-post": ws("h1", 0, True, 5, 0, feed()),
    "h1-no-version": ws("h1", 0, True, 6, 0, feed()),
    "h1-ping-timeout": ws("h1", 1, True, 0, 2, *OPEN, ws_tick(5.0), ws_tick(2.999),
                          ws_tick(3.0), WS_RECV, ws_done()),
    "h1-client-ping": ws("h1", 0, True, 0, 0, *OPEN, ws_ping(), WS_PONG, feed(),
                         ws_client_close(None), feed(), WS_RECV, ws_done()),
    "h1-backpressure": ws("h1", 2, True, 0, 0, *OPEN, ws_message(True, 5),
                          ws_message(False, 5), ws_message(True, 125, 2), feed(), WS_RECV,
                          feed(), WS_RECV, WS_RECV, feed(), WS_RECV, ws_done()),
    "h1-shutdown": ws("h1", 0, True, 0, 1, *OPEN, WS_SHUTDOWN, ws_client_close(1001), feed(),
                      WS_RECV, ws_done()),
    "h1-bad-frames": ws("h1", 0, False, 0, 0, *OPEN, ws_bad(1, b"text"), feed(), WS_RECV,
                        ws_done()),
    "h1-bad-close": ws("h1", 1, False, 0, 0, *OPEN, ws_bad(2, b"\x03"), feed(), WS_RECV,
                       ws_done()),
    "h1-eof": ws("h1", 0, True, 0, 0, *OPEN, WS_EOF, WS_RECV, ws_done()),
    "h1-misuse": ws("h1", 0, True, 0, 0, *OPEN, ws_bad_message(6), ws_client_close(1002),
                    feed(), WS_RECV, ws_done()),
    "h1-too-big": ws("h1", 1, True, 2, 0, *OPEN, ws_message(False, 70_000), feed(), WS_RECV,
                     ws_done()),
    "h2-echo": ws("preface", 0, True, 0, 0, *OPEN, feed(), ws_message(True, 5), feed(),
                  WS_RECV, ws_send(True, 5), ws_client_close(1000), feed(), WS_RECV, ws_done(),
                  feed()),
    "h2-alpn-deflate": ws("alpn", 0, True, 1, 0, *OPEN, feed(), ws_message(False, 1000, 2),
                          feed(), WS_RECV, ws_send(False, 126), ws_close(1000),
                          ws_client_close(1000), feed(), WS_RECV, ws_done(), feed()),
    "h2-deny": ws("preface", 0, True, 0, 0, feed(), WS_RECV, ws_deny(401, 2),
                  ws_deny_body(5, False), ws_done(), feed()),
    "h2-bad-version": ws("preface", 0, True, 4, 0, feed()),
    "h2-small-window": ws("preface", 1, True, 0, 2, *OPEN, feed(), ws_message(True, 5),
                          ws_message(False, 5), ws_message(True, 5), ws_message(False, 5),
                          feed(), WS_RECV, ws_h2(0), feed(), WS_RECV, WS_RECV, ws_done(),
                          feed()),
    "h2-end-stream": ws("preface", 0, True, 0, 0, *OPEN, feed(), ws_h2(3), feed(), WS_RECV,
                        ws_done()),
    "h2-reset": ws("preface", 0, True, 0, 0, *OPEN, feed(), ws_h2(2), feed(), WS_RECV,
                   ws_done()),
    "h2-shutdown": ws("alpn", 1, True, 0, 1, *OPEN, feed(), WS_SHUTDOWN, ws_client_close(1001),
                      feed(), WS_RECV, ws_done(), feed()),
}

# Inputs that broke an invariant (named after it: a key of KNOWN_ISSUES while the bug is open).
# The three below found core bugs, fixed in 7ff9cff.
HTTP11_REGRESSIONS = {
    # HEAD, the app fails: the 500 carried 21 body bytes the client read as the next response.
    "head-error-body": h1(1, 0, req("head", "get"), done(True), recv(), respond(), done()),
    # The app says "connection: close" then "Connection: keep-alive": the server kept going.
    "close-ignored": h1(1, 0, req("get", "get"), ([20, 0, 2, 3, 4, 2, 1, 0], []),
                        body(5, False, True), done(app=0), respond(), done()),
    # The app answers without reading the chunked body: the drain had no deadline.
    "no-deadline": h1(1, 2, req("open"), respond(), done()),
}
REGRESSIONS = {"fuzz_http11": HTTP11_REGRESSIONS}

HARNESSES: dict[str, tuple[Any, dict[str, tuple[list[int], list[bytes]]]]] = {
    "fuzz_http11": (fuzz_http11, HTTP11),
    "fuzz_detect": (fuzz_detect, DETECT),
    "fuzz_lifespan": (fuzz_lifespan, LIFESPAN),
    "fuzz_http2": (fuzz_http2, HTTP2),
    "fuzz_websocket": (fuzz_websocket, WEBSOCKET),
}


def record(run: Callable[..., None], values: list[int], blobs: list[bytes],
           trace: list[str] | None = None) -> bytes:
    rec = scripted(values, blobs)
    run(rec, trace=trace)
    return rec.build()


def main() -> None:
    if sys.argv[1:2] == ["--show"]:
        for harness, (module, seeds) in HARNESSES.items():
            seeds = {**seeds, **REGRESSIONS.get(harness, {})}
            for name in sys.argv[2:]:
                if name in seeds:
                    trace: list[str] = []
                    record(module.run, *seeds[name], trace=trace)
                    print(f"== {module.__name__} {name}\n" + "\n".join(trace))
        return
    for harness, (module, seeds) in HARNESSES.items():
        out = CORPUS_DIR / harness
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("seed-*"):
            old.unlink()
        for name, (values, blobs) in seeds.items():
            data = record(module.run, values, blobs)
            module.run_one(data)  # the bytes replay cleanly
            (out / f"seed-{name}").write_bytes(data)
        print(f"{out}: {len(seeds)} seeds")
        regressions = REGRESSIONS.get(harness, {})
        if regressions:
            out = FUZZ_DIR / "regressions" / harness
            out.mkdir(parents=True, exist_ok=True)
            for name, (values, blobs) in regressions.items():
                if not (out / name).exists():  # kept as recorded against the buggy core
                    (out / name).write_bytes(record(module.run, values, blobs))
            print(f"{out}: {len(regressions)} scripted regression inputs")


if __name__ == "__main__":
    main()
