"""In-process cost of one keep-alive HTTP/1.1 request cycle: bytes -> ASGI -> bytes.

Compares asgi-sansio's core against bare h11 doing the same work (parse a ~300-byte GET, write
a small 200 with content-length), in one process, interleaved A/B rounds, reporting the best
round's microseconds per cycle and the ratio.  Usage: ``python benchmarks/bench_core.py [N]``.
"""

from __future__ import annotations

import sys
import time

import h11

from asgi_sansio import ServerConnection

REQUEST = (
    b"GET /api/items?page=2&sort=name HTTP/1.1\r\n"
    b"Host: bench.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
)
BODY = b"Hello, world!"
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())]


def bare_h11(n: int) -> float:
    conn = h11.Connection(h11.SERVER)
    t0 = time.perf_counter()
    for _ in range(n):
        conn.receive_data(REQUEST)
        conn.next_event()  # Request
        conn.next_event()  # EndOfMessage
        out = conn.send(h11.Response(status_code=200, headers=HEADERS, reason=b"OK"))
        out += conn.send(h11.Data(data=BODY))  # type: ignore[operator]
        out += conn.send(h11.EndOfMessage())  # type: ignore[operator]
        conn.start_next_cycle()
    return (time.perf_counter() - t0) / n


def core(n: int) -> float:
    conn = ServerConnection(now=0.0, client=("127.0.0.1", 5000), server=("127.0.0.1", 8000))
    start = {"type": "http.response.start", "status": 200, "headers": HEADERS}
    body = {"type": "http.response.body", "body": BODY}
    t0 = time.perf_counter()
    for i in range(n):
        now = i * 1e-5
        conn.receive_data(REQUEST, now)
        (event,) = conn.pop_events()
        sid = event.stream_id  # type: ignore[union-attr]
        conn.receive(sid)
        conn.send(sid, start, now)
        conn.send(sid, body, now)
        conn.data_to_send()
        conn.pop_events()
        conn.app_finished(sid, now)
    return (time.perf_counter() - t0) / n


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    best = {"h11": float("inf"), "core": float("inf")}
    for _ in range(5):  # interleaved rounds so drift hits both alike
        best["h11"] = min(best["h11"], bare_h11(n))
        best["core"] = min(best["core"], core(n))
    print(f"bare h11 cycle:    {best['h11'] * 1e6:7.2f} us")
    print(f"asgi-sansio cycle: {best['core'] * 1e6:7.2f} us")
    print(f"ratio core/h11:    {best['core'] / best['h11']:7.2f}x  (target <= 1.25x)")


if __name__ == "__main__":
    main()
