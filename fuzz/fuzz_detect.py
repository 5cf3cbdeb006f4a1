"""Fuzz protocol detection: the first bytes of a connection choose HTTP/1.1 or HTTP/2.

The input picks the ALPN protocol, a start (often a prefix of the HTTP/2 client preface), then
arbitrary bytes, the points where they are split into reads, and whether EOF follows.  The same
bytes are fed split and in one piece.  Invariants:

* while the bytes are a proper prefix of the preface, nothing happens: no event, no output, the
  connection keeps reading, and the held bytes never exceed the preface;
* ALPN ``h2`` or a whole preface: HTTP/2, whose output an h2 client decodes, starting with
  our SETTINGS;
* anything else gives exactly the events and output of HTTP11Connection fed the same bytes in one
  piece, however the bytes are split;
* and every ``_common.Driver`` invariant (output decodes with h11, streams end once, ...).
"""

from __future__ import annotations

import itertools
from typing import Any

from _common import H2_PREFACE as PREFACE
from _common import KNOWN_ISSUES, Checker, Config, Driver, main, pick, provider

from asgi_sansio._http11 import HTTP11Connection

STARTS = (
    b"", b"", PREFACE[:1], PREFACE[:3], PREFACE[:4], PREFACE[:14], PREFACE[:16], PREFACE[:18],
    PREFACE[:20], PREFACE[:23], PREFACE, PREFACE, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"PRI * HTTP/1.1\r\nHost: a\r\n\r\n", b"\r\n", b"PRI",
)
ALPNS = (None, None, "http/1.1", "h2")


def run_one(data: bytes, tolerate: Any = KNOWN_ISSUES, trace: list[str] | None = None) -> None:
    """Run one input; raises ``Violation`` (or whatever escaped the core) on failure."""
    run(provider(data), tolerate, trace)


def run(p: Any, tolerate: Any = KNOWN_ISSUES, trace: list[str] | None = None) -> None:
    check = Checker(tolerate)
    alpn = pick(p, ALPNS)
    eof = p.ConsumeIntInRange(0, 1) == 1
    cuts = [p.ConsumeIntInRange(0, 600) for _ in range(p.ConsumeIntInRange(0, 6))]
    payload = pick(p, STARTS) + p.ConsumeBytes(p.ConsumeIntInRange(0, 512))
    cuts = sorted({min(c, len(payload)) for c in cuts} | {0, len(payload)})
    pieces = [payload[a:b] for a, b in itertools.pairwise(cuts)]
    speaks_h2 = alpn == "h2" or payload.startswith(PREFACE)
    config = Config()

    results = []
    for split in (pieces, [payload]):
        if trace is not None:
            trace.append(f"-- alpn={alpn!r} pieces={[len(x) for x in split]} eof={eof}")
        drv = Driver(config, check, trace=trace, alpn=alpn)
        seen = b""
        for piece in split:
            drv.feed(piece, force=True)
            seen += piece
            if alpn != "h2" and len(seen) < len(PREFACE) and PREFACE.startswith(seen):
                check(not drv.events and not drv.out_total and drv.conn.wants_read
                      and not drv.closed, "preface-prefix", f"{seen!r} acted on")
        if eof:
            drv.eof()
        results.append((list(drv.events), b"".join(drv.output)))
        drv.finish(0)
    if speaks_h2:
        # After a connection error h2 may or may not have flushed the frames earlier input
        # queued (a RST_STREAM before the GOAWAY): the events must agree, the bytes may not.
        check(results[0][0] == results[1][0], "split-differs",
              f"{results[0][0]!r} != {results[1][0]!r}")
    else:
        check(results[0] == results[1], "split-differs", f"{results[0]!r} != {results[1]!r}")

    holding = alpn != "h2" and not eof and PREFACE.startswith(payload)
    if not speaks_h2 and not holding:
        check(results[1] == reference(config, payload, eof), "not-like-h1",
              f"{results[1]!r} differs from HTTP11Connection")


def reference(config: Config, payload: bytes, eof: bool) -> tuple[list[Any], bytes]:
    """What HTTP/1.1 alone does with these bytes, fed at once (the driver's defaults)."""
    h1 = HTTP11Connection(config, now=1000.0, client=("10.0.0.1", 5555),
                          server=("10.0.0.2", 80), tls=None, state=None, wall_offset=0.0)
    if payload:
        h1.receive_data(payload, 1000.0)
    if eof:
        h1.receive_data(b"", 1000.0)
    return h1.pop_events(), h1.data_to_send()


if __name__ == "__main__":
    main(run_one, "fuzz_detect")
