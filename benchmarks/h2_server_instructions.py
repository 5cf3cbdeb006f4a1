"""Instructions the whole server spends per HTTP/2 GET under h2load, counted by callgrind.

``h2_core_instructions.py`` counts the core alone; this counts everything the server process
does for a request: the asyncio driver, the event loop, the app and the core.  The server
(``python -m asgi_sansio benchmarks.app:app``) runs under valgrind, pinned to CPU 0, and
h2load (16 connections x 10 streams, h2c) sends 1,000 and then 4,000 requests to a fresh
server each time; the difference per request cancels start-up and imports.  Under valgrind
the server is the bottleneck, so every read brings whole batches and the count repeats to
about 0.3 % from run to run, where a timing would drift with the machine.

Usage: python benchmarks/h2_server_instructions.py [SRC ...]
SRC: directories that hold an ``asgi_sansio`` package (default: this checkout), to compare
code versions.  Needs valgrind and h2load (``apt-get install valgrind nghttp2-client``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from bench_e2e import free_port

ROOT = Path(__file__).resolve().parent.parent
SMALL, LARGE = 1000, 4000


def h2load(port: int, requests: int) -> bool:
    run = subprocess.run(
        ["taskset", "-c", "1", "h2load", "-n", str(requests), "-c", "16", "-m", "10",
         f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=False)
    return f"{requests} succeeded" in run.stdout


def count(src: str, requests: int) -> int:
    """The server's instructions for a run that serves ``requests`` requests (plus a few
    hundred to see it up)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT}", "PYTHONSAFEPATH": "1",
           "PYTHONHASHSEED": "0"}
    server = subprocess.Popen(
        ["taskset", "-c", "0", "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, "-m", "asgi_sansio", "benchmarks.app:app", "--no-access-log",
         "--log-level", "warning", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120  # valgrind starts Python slowly
        while not h2load(port, 160):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not come up under valgrind")
            time.sleep(1)
        if not h2load(port, requests):
            raise RuntimeError(f"h2load did not get {requests} answers")
    finally:
        server.send_signal(2)  # SIGINT: a graceful stop, then valgrind prints its total
        _, err = server.communicate(timeout=120)
    found = re.search(r"Collected : (\d+)", err)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{err}")
    return int(found.group(1))


def main() -> None:
    sources = [str(Path(s).resolve()) for s in sys.argv[1:]] or [str(ROOT)]
    for src in sources:
        per_request = (count(src, LARGE) - count(src, SMALL)) / (LARGE - SMALL)
        print(f"{src}: {per_request:,.0f} instructions per HTTP/2 GET in the whole server")


if __name__ == "__main__":
    main()
