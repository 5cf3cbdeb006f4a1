"""Instructions the HTTP/2 core spends per simple GET, counted by valgrind (callgrind).

Timings on a shared VM drift by half from one hour to the next; instruction counts do not.
This script counts the instructions of ``ServerConnection`` alone: the client's bytes (an
h2load-like client, batches of 10 GETs with a window so large that no reply needs reading)
are generated first, in another process, and the app answers each stream with a 13-byte 200.
It runs 300 and then 1,300 requests under callgrind and reports the difference per request,
so start-up and imports cancel out.

Usage: python benchmarks/h2_core_instructions.py [SRC ...]
SRC: directories that hold an ``asgi_sansio`` package (default: this checkout), to compare
code versions, e.g. ``git worktree add /tmp/old v0.1.0`` then ``... /tmp/old .``.
Needs valgrind (``apt-get install valgrind``).
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADERS = [(":method", "GET"), (":path", "/"), (":scheme", "http"),
           (":authority", "127.0.0.1:8000"), ("user-agent", "h2load nghttp2/1.52.0"),
           ("accept", "*/*")]
START = {"type": "http.response.start", "status": 200,
         "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")]}
BODY = {"type": "http.response.body", "body": b"Hello, world!"}


def generate(path: str, requests: int) -> None:
    """The client's bytes: its preface, its answer to the server's SETTINGS, then batches."""
    import h2.config
    import h2.connection
    import h2.settings

    from asgi_sansio import ServerConnection

    codes = h2.settings.SettingCodes
    client = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.local_settings = h2.settings.Settings(
        client=True, initial_values={codes.INITIAL_WINDOW_SIZE: 2**31 - 1, codes.ENABLE_PUSH: 0})
    client.initiate_connection()
    client.increment_flow_control_window(2**31 - 1 - 65535)
    server = ServerConnection(now=0.0, client=("127.0.0.1", 5000), server=("127.0.0.1", 8000))
    handshake = [client.data_to_send()]
    server.receive_data(handshake[0], 0.0)
    client.receive_data(server.data_to_send())
    handshake.append(client.data_to_send())
    batches = []
    for _ in range(requests // 10):
        for _ in range(10):
            client.send_headers(client.get_next_available_stream_id(), HEADERS, end_stream=True)
        batches.append(client.data_to_send())
        client.streams.clear()  # never read the replies: forget the streams, not the ids
    with open(path, "wb") as file:
        pickle.dump((handshake, batches), file)


def serve(path: str) -> None:
    """Feed the stored bytes to one connection, answering every stream."""
    from asgi_sansio import ServerConnection, StreamStarted

    with open(path, "rb") as file:
        handshake, batches = pickle.load(file)
    conn = ServerConnection(now=0.0, client=("127.0.0.1", 5000), server=("127.0.0.1", 8000))
    for chunk in handshake:
        conn.receive_data(chunk, 0.0)
        conn.pop_events()
        conn.data_to_send()
    for i, data in enumerate(batches):
        conn.receive_data(data, i * 0.001)
        for event in conn.pop_events():
            if type(event) is StreamStarted:
                sid = event.stream_id
                conn.receive(sid)
                conn.send(sid, START, 0.0)
                conn.send(sid, BODY, 0.0)
                conn.app_finished(sid, 0.0, None)
        conn.pop_events()
        conn.data_to_send()


def count(src: str, path: str) -> int:
    env = {**os.environ, "PYTHONPATH": src, "PYTHONSAFEPATH": "1", "PYTHONHASHSEED": "0"}
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         __file__, "--serve", path],
        env=env, capture_output=True, text=True, check=True,
    ).stderr
    found = re.search(r"Collected : (\d+)", out)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{out}")
    return int(found.group(1))


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2])
        return
    if sys.argv[1:2] == ["--generate"]:
        generate(sys.argv[2], int(sys.argv[3]))
        return
    sources = [str(Path(s).resolve()) for s in sys.argv[1:]] or [str(HERE.parent)]
    with tempfile.TemporaryDirectory() as tmp:
        small, large = f"{tmp}/300.pickle", f"{tmp}/1300.pickle"
        for path, requests in ((small, 300), (large, 1300)):
            subprocess.run([sys.executable, __file__, "--generate", path, str(requests)],
                           env={**os.environ, "PYTHONPATH": str(HERE.parent)}, check=True)
        for src in sources:
            per_request = (count(src, large) - count(src, small)) / 1000
            print(f"{src}: {per_request:,.0f} instructions per HTTP/2 GET in the core")


if __name__ == "__main__":
    main()
