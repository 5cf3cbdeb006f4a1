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
import fuzz_http11
import fuzz_lifespan
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
# Detection: alpn, eof, cut points, start, payload (fuzz_detect.run)
# --------------------------------------------------------------------------------------------

PREFACE = fuzz_detect.PREFACE


def detect(alpn: str | None, start: bytes, payload: bytes = b"", cuts: tuple[int, ...] = (),
           eof: bool = False) -> tuple[list[int], list[bytes]]:
    values = [fuzz_detect.ALPNS.index(alpn), int(eof), len(cuts), *cuts,
              fuzz_detect.STARTS.index(start), len(payload)]
    return values, [payload] if payload else []


GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
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
