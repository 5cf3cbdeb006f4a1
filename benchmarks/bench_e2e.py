"""End to end on loopback: the asyncio and trio drivers beside Uvicorn (h11) and Hypercorn.

Method (design.md): each server runs one worker pinned to CPU 0, wrk runs pinned to CPU 1, the
servers take turns in A B C A B C order so drift hits all alike, and the figure that matters is
the server process's own CPU time per request (utime + stime from /proc/PID/stat before and
after, divided by requests served), not requests per second.

Usage: python benchmarks/bench_e2e.py [--rounds 3] [--duration 5] [--connections 64]
                                      [--servers asgi-sansio,asgi-sansio-trio,...]
Needs wrk on PATH and uvicorn + hypercorn installed (``pip install -e '.[bench]'``); the
``asgi-sansio-trio`` entry (``--driver trio``) needs trio (``.[trio]``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")

# Lifts Hypercorn's 1000-requests-per-connection default (see the file).
HYPERCORN_CONFIG = os.path.join(ROOT, "benchmarks", "hypercorn.toml")
SERVERS: dict[str, list[str]] = {
    "asgi-sansio": [sys.executable, "-m", "asgi_sansio", "benchmarks.app:app",
                    "--no-access-log", "--log-level", "warning", "--port", "{port}"],
    "asgi-sansio-trio": [sys.executable, "-m", "asgi_sansio", "benchmarks.app:app",
                         "--driver", "trio", "--no-access-log", "--log-level", "warning",
                         "--port", "{port}"],
    "uvicorn-h11": [sys.executable, "-m", "uvicorn", "benchmarks.app:app", "--http", "h11",
                    "--loop", "asyncio", "--no-access-log", "--log-level", "warning",
                    "--port", "{port}"],
    "hypercorn": [sys.executable, "-m", "hypercorn", "benchmarks.app:app", "--log-level",
                  "warning", "--config", HYPERCORN_CONFIG, "--bind", "127.0.0.1:{port}"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its live descendants (Hypercorn serves from a child)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat(int(entry.name))[1])
            except (OSError, IndexError):
                continue
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0
    for member in tree:
        try:
            fields = _stat(member)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def wait_ready(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not come up")


@contextlib.contextmanager
def pinned_server(command: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Run one server pinned to CPU 0 (``{port}`` in ``command`` filled in); stop it after."""
    cmd = [part.format(port=port) for part in command]
    proc = subprocess.Popen(["taskset", "-c", "0", *cmd], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_one(name: str, duration: float, connections: int) -> tuple[float, int]:
    port = free_port()
    with pinned_server(SERVERS[name], port) as proc:
        wait_ready(port)
        before = cpu_seconds(proc.pid)
        out = subprocess.run(
            ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s",
             f"http://127.0.0.1:{port}/"],
            capture_output=True, text=True, check=True,
        ).stdout
        after = cpu_seconds(proc.pid)
        match = re.search(r"(\d+) requests in", out)
        requests = int(match.group(1)) if match else 0
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if errors:
            raise RuntimeError(f"{name}: {errors.group(1)} non-2xx responses")
        return after - before, requests


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--servers", default=",".join(SERVERS))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    names = args.servers.split(",")
    totals = {n: [0.0, 0] for n in names}
    for r in range(args.rounds):
        for name in names:
            cpu, reqs = run_one(name, args.duration, args.connections)
            totals[name][0] += cpu
            totals[name][1] += reqs
            print(f"round {r + 1} {name:16s} {reqs / args.duration:9.0f} req/s  "
                  f"{cpu / max(reqs, 1) * 1e6:7.1f} us CPU/req", flush=True)
    print(f"\nkeep-alive GET, {args.connections} connections, {args.rounds} x {args.duration}s")
    per = {n: t[0] / max(t[1], 1) * 1e6 for n, t in totals.items()}
    base = per.get("asgi-sansio")
    for name in names:
        ratio = f"  ({per[name] / base:.2f}x asgi-sansio)" if base and name != "asgi-sansio" else ""
        print(f"{name:16s} {per[name]:7.1f} us server CPU per request{ratio}")


if __name__ == "__main__":
    main()
