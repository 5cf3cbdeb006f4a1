"""Fuzz ServerConnection over HTTP/1.1: client bytes, app calls, timers, shutdown and EOF.

The input is a script read through a FuzzedDataProvider: feed raw bytes or canned requests split
anywhere (a WebSocket handshake among them: its app only returns or raises), the app's receive()
on a live stream, a (mostly valid) response message sent, the app finishing with or without an
exception, time advancing and timers firing, shutdown(), EOF.  After every call
(``_common.Driver``):

* nothing escapes the core but AppMisuseError or ClientDisconnected from send(), each exactly when
  the message breaks an ASGI rule or the connection is closed; DriverMisuseError never;
* every StreamStarted stream gets exactly one StreamEnded, ConnectionClosed comes once, last;
* the output decodes, with an independent h11 client, as a prefix of well-formed responses that
  carry what each app sent (or a 500 / 4xx it did not), in request order;
* core buffers stay within Config limits (queued body <= body_buffer_size + one fed chunk), the
  output within what the apps sent plus a constant per stream, and an idle connection always has
  a deadline.
"""

from __future__ import annotations

from typing import Any

from _common import KNOWN_ISSUES, App, Checker, Config, Driver, main, pick, provider

CONFIGS = (
    Config(),
    Config(max_head_size=512, max_target_length=64, max_header_count=8, max_body_size=2048,
           body_buffer_size=64, max_body_drain=128, keep_alive_timeout=5.0, head_timeout=10.0,
           body_timeout=2.5, shutdown_timeout=3.0),
    Config(max_head_size=256, max_body_size=None, body_buffer_size=16, max_body_drain=0,
           keep_alive_timeout=0.0, head_timeout=0.0, body_timeout=None, shutdown_timeout=0.0,
           date_header=False, server_header=None, root_path="/root"),
)

H = b"Host: a\r\n"
TEMPLATES = (
    b"GET / HTTP/1.1\r\n" + H + b"\r\n",
    b"HEAD /h HTTP/1.1\r\n" + H + b"\r\n",
    b"POST /p?q=1 HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST /e HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 10\r\n\r\n",
    b"POST /open HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n",
    b"PUT /big HTTP/1.1\r\n" + H + b"Content-Length: 100000\r\n\r\n",
    b"GET /old HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n",
    b"GET /t HTTP/1.1\r\n" + H + b"TE: trailers\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n",
    b"GET http://b.example:8080/x%20y?z HTTP/1.1\r\n" + H + b"\r\n",
    b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + H + b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"
    b"Connection: Upgrade, HTTP2-Settings\r\n\r\n",
    # body pieces and malformed requests
    b"hello",
    b"5\r\nhello\r\n",
    b"0\r\n\r\n",
    b"0\r\nX-Trailer: 1\r\n\r\n",
    b"\r\n",
    b"GET / HTTP/2.0\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\n" + H + b"\r\n",
    b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + H + b" folded\r\n\r\n",
    b"zzz\r\n",
    b"GET /ws HTTP/1.1\r\n" + H + b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
)
FILLER_SIZES = (1, 10, 100, 1000, 20_000, 70_000)
DELTAS = (0.0, 0.001, 1.0, 2.5, 4.999, 5.0, 10.0, 19.999, 20.0, 60.0)
STATUSES = (200, 200, 200, 201, 204, 304, 404, 500, 299, 999)
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-type", b"text/plain"),
    (b"X-Custom", b"a\tb  "),
    (b"set-cookie", b"k=v; Path=/"),
    (b"connection", b"close"),
    (b"Connection", b"keep-alive"),
    (b"transfer-encoding", b"chunked"),
    (b"server", b"app"),
    (b"date", b"today"),
    (b"x-obs", b"\x80\xff"),
    (b"vary", b""),
)
TRAILERS = ((b"x-checksum", b"abc"), (b"x-empty", b""), (b"server-timing", b"db;dur=5"),
            (b"Connection", b"close"), (b"te", b"gzip"))  # dropped: RFC 9110 6.5.1
BAD_MESSAGES: tuple[Any, ...] = (
    ["not", "a", "dict"],
    {"type": "http.response.bogus"},
    {"type": "http.response.start", "status": "200"},
    {"type": "http.response.start", "status": 101},
    {"type": "http.response.start", "status": True},
    {"type": "http.response.start", "status": 200, "headers": [(b"a b", b"c")]},
    {"type": "http.response.start", "status": 200, "headers": [(b"x", b"1\r\nInjected: 1")]},
    {"type": "http.response.start", "status": 200, "headers": [(b"x", b"\x00")]},
    {"type": "http.response.start", "status": 200, "headers": [(b":status", b"200")]},
    {"type": "http.response.start", "status": 200, "headers": [("str", "str")]},
    {"type": "http.response.start", "status": 200, "headers": [(b"x",)]},
    {"type": "http.response.start", "status": 200, "headers": 5},
    {"type": "http.response.start", "status": 200,
     "headers": [(b"content-length", b"1"), (b"content-length", b"1")]},
    {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"-1")]},
    {"type": "http.response.start", "status": 200, "trailers": True},
    {"type": "http.response.start", "status": 200, "trailers": 1},
    {"type": "http.response.body", "body": "text"},
    {"type": "http.response.body", "body": b"", "more_body": 1},
    {"type": "http.response.body", "body": bytearray(b"ba")},
    {"type": "http.response.trailers", "headers": []},
    {"type": "http.response.trailers", "headers": [(b"x", b"\r\n")], "more_trailers": False},
    {"type": "http.response.early_hint", "links": ["</s.css>; rel=preload"]},
    {"type": "http.response.early_hint", "links": [b"</a>\r\nx: y"]},
    {"type": "http.response.early_hint", "links": None},
)


def make_message(p: Any, app: App) -> Any:
    """A response message for ``app``: usually the natural next one, sometimes not."""
    kind = p.ConsumeIntInRange(0, 11)
    if kind == 10:
        links = [b"</style.css>; rel=preload", b"</app.js>; rel=preload"]
        del links[p.ConsumeIntInRange(0, 2) :]
        return {"type": "http.response.early_hint", "links": links}
    if kind == 11:
        return pick(p, BAD_MESSAGES)
    state = app.state
    if state in ("init", "done", "broken") and kind < 9:
        headers = [pick(p, HEADERS) for _ in range(p.ConsumeIntInRange(0, 3))]
        length = p.ConsumeIntInRange(0, 5)
        if length < 4:  # declare 0, 1, 5 or 100 bytes; otherwise let the server frame it
            headers.append((b"Content-Length", b"%d" % (0, 1, 5, 100)[length]))
        if p.ConsumeIntInRange(0, 7) == 0:  # raw bytes through the header filter
            name = p.ConsumeBytes(p.ConsumeIntInRange(0, 8)) or b"x"
            headers.append((name, p.ConsumeBytes(p.ConsumeIntInRange(0, 12))))
        message: dict[str, Any] = {"type": "http.response.start", "status": pick(p, STATUSES),
                                   "headers": headers}
        if "http.response.trailers" in app.extensions and p.ConsumeIntInRange(0, 1):
            message["trailers"] = True
        return message
    if state == "trailers" or (kind == 9 and state != "init"):
        headers = [pick(p, TRAILERS) for _ in range(p.ConsumeIntInRange(0, 2))]
        return {"type": "http.response.trailers", "headers": headers,
                "more_trailers": p.ConsumeIntInRange(0, 3) == 0}
    left = None if app.declared is None or app.no_body else app.declared - app.sent
    size = pick(p, (0, 1, 5, 100, 3000, -1))
    if left is not None and p.ConsumeIntInRange(0, 7):
        size = min(size if size >= 0 else left, left)  # mostly respect content-length
    body = p.ConsumeBytes(p.ConsumeIntInRange(0, 32)) if size < 0 else b"x" * size
    more = p.ConsumeIntInRange(0, 2) > 0
    if left is not None and p.ConsumeIntInRange(0, 7):
        more = len(body) < left
    return {"type": "http.response.body", "body": body, "more_body": more}


def run_one(data: bytes, tolerate: Any = KNOWN_ISSUES, trace: list[str] | None = None) -> None:
    """Run one input; raises ``Violation`` (or whatever escaped the core) on failure."""
    run(provider(data), tolerate, trace)


def run(p: Any, tolerate: Any = KNOWN_ISSUES, trace: list[str] | None = None) -> None:
    config = pick(p, CONFIGS)
    ending = p.ConsumeIntInRange(0, 2)
    drv = Driver(config, Checker(tolerate), trace=trace)
    pending = b""
    while p.remaining_bytes() and not (drv.closed and not drv.any_running):
        op = p.ConsumeIntInRange(0, 31)
        running = drv.running
        http = [app for app in running if app.kind == "http"]  # WebSocket apps only finish
        if op < 3:  # raw bytes
            drv.feed(p.ConsumeBytes(p.ConsumeIntInRange(1, 1024)))
        elif op < 9:  # queue a canned request or body piece
            pending += pick(p, TEMPLATES)
        elif op < 15:  # feed part of what is queued (0: all of it)
            n = p.ConsumeIntInRange(0, 255) or len(pending)
            if drv.feed(pending[:n]):
                pending = pending[n:]
        elif op == 15:  # queue a large body, plain or as one chunk
            size = pick(p, FILLER_SIZES)
            filler = b"a" * size
            pending += b"%x\r\n%s\r\n" % (size, filler) if p.ConsumeIntInRange(0, 1) else filler
        elif op < 20:
            if http:
                drv.receive(pick(p, http))
        elif op < 26:
            if http:
                app = pick(p, http)
                drv.send(app, make_message(p, app))
        elif op < 28:
            if running:
                app = pick(p, running)
                drv.app_finished(app, RuntimeError("app failed") if p.ConsumeIntInRange(0, 1)
                                 else None)
        elif op < 30:
            drv.advance(pick(p, DELTAS))
            drv.fire_timer()
        elif op == 30:
            drv.shutdown()
        else:
            drv.eof()
    drv.finish(ending)


if __name__ == "__main__":
    main(run_one, "fuzz_http11")
