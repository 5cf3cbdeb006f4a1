"""HTTP/2 end to end: h2load against asgi-sansio and Hypercorn, side by side in one run.

h2c with prior knowledge, 16 connections x 10 concurrent streams, GET of a small body.  Same
method as bench_e2e.py: server pinned to CPU 0, h2load to CPU 1, servers alternating, and the
server process tree's own CPU time per request as the stable figure (plus requests per second
of wall time, which on one core is roughly its inverse).

Usage: python benchmarks/bench_h2.py [--rounds 3] [--requests 20000]
Needs h2load (Debian's nghttp2-client) and hypercorn (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time

from bench_e2e import HYPERCORN_CONFIG, cpu_seconds, free_port, pinned_server

SERVERS: dict[str, list[str]] = {
    "asgi-sansio": [sys.executable, "-m", "asgi_sansio", "benchmarks.app:app",
                    "--no-access-log", "--log-level", "warning", "--port", "{port}"],
    "hypercorn": [sys.executable, "-m", "hypercorn", "benchmarks.app:app", "--log-level",
                  "warning", "--config", HYPERCORN_CONFIG, "--bind", "127.0.0.1:{port}"],
}


def h2load(port: int, requests: int) -> tuple[int, float]:
    out = subprocess.run(
        ["taskset", "-c", "1", "h2load", "-n", str(requests), "-c", "16", "-m", "10",
         f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True,
    ).stdout
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    if done is None or rate is None:
        raise RuntimeError(f"cannot read h2load's output:\n{out}")
    if int(done.group(2)) != requests:
        raise RuntimeError(f"only {done.group(2)} of {requests} succeeded:\n{out}")
    return int(done.group(2)), float(rate.group(1))


def run_one(name: str, requests: int) -> tuple[float, int, float]:
    port = free_port()
    with pinned_server(SERVERS[name], port) as proc:
        deadline = time.monotonic() + 15
        while True:  # ready when h2load gets an answer
            try:
                h2load(port, 160)
                break
            except (subprocess.CalledProcessError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        before = cpu_seconds(proc.pid)
        done, rate = h2load(port, requests)
        return cpu_seconds(proc.pid) - before, done, rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--servers", default=",".join(SERVERS))
    args = parser.parse_args()
    if shutil.which("h2load") is None:
        sys.exit("h2load not found: apt-get install nghttp2-client")
    names = args.servers.split(",")
    totals = {n: [0.0, 0, 0.0] for n in names}
    for r in range(args.rounds):
        for name in names:
            cpu, done, rate = run_one(name, args.requests)
            totals[name][0] += cpu
            totals[name][1] += done
            totals[name][2] += rate
            print(f"round {r + 1} {name:12s} {rate:9.0f} req/s  "
                  f"{cpu / max(done, 1) * 1e6:7.1f} us CPU/req", flush=True)
    print(f"\nh2c GET, 16 connections x 10 streams, {args.rounds} x {args.requests} requests")
    per = {n: t[0] / max(t[1], 1) * 1e6 for n, t in totals.items()}
    base = per.get("asgi-sansio")
    for name in names:
        rate = totals[name][2] / args.rounds
        ratio = f"  ({per[name] / base:.2f}x asgi-sansio)" if base and name != "asgi-sansio" else ""
        print(f"{name:12s} {per[name]:7.1f} us server CPU per request, {rate:8.0f} req/s{ratio}")


if __name__ == "__main__":
    main()
