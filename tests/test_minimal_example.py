"""examples/minimal_server.py, the tutorial's server, does what the tutorial says.

It runs as a subprocess on a free 127.0.0.1 port (read from its first line of output) and is
talked to with httpx, curl and a raw socket.  It serves one connection at a time, so every client
here is closed before the next one connects.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "minimal_server.py"
BOUND = 10.0  # seconds: generous bound on any wait, never an expected duration
HELLO = b"Hello, world!\n"
BODY = bytes(range(256)) * 400  # 100 KB: more than one read, and more than an HTTP/2 window


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """Run the example (with extra arguments from an indirect parameter); yield (host, port)."""
    args: list[str] = getattr(request, "param", [])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "0", *args], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env, cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], BOUND)
        line = process.stdout.readline().decode() if ready else ""
        assert line.startswith("Serving on http://127.0.0.1:"), line
        yield "127.0.0.1", int(line.rsplit(":", 1)[1])
    finally:
        process.kill()
        process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def url(server: tuple[str, int], path: str = "/") -> str:
    return f"http://{server[0]}:{server[1]}{path}"


def local_port(response: httpx.Response) -> int:
    """The client-side port of the connection that carried ``response``."""
    sockname = response.extensions["network_stream"].get_extra_info("client_addr")
    return int(sockname[1])


def test_get_says_hello(server: tuple[str, int]) -> None:
    with httpx.Client(timeout=BOUND) as client:
        response = client.get(url(server, "/anything"))
    assert response.status_code == 200
    assert response.http_version == "HTTP/1.1"
    assert response.content == HELLO
    assert response.headers["content-type"] == "text/plain"
    assert response.headers["content-length"] == str(len(HELLO))
    assert response.headers["server"] == "asgi-sansio"  # added by the core, not the app


def test_post_echoes_a_large_body(server: tuple[str, int]) -> None:
    with httpx.Client(timeout=BOUND) as client:
        response = client.post(url(server, "/echo"), content=BODY)
    assert response.status_code == 200
    assert response.content == BODY


def test_two_requests_share_one_keep_alive_connection(server: tuple[str, int]) -> None:
    with httpx.Client(timeout=BOUND) as client:
        first = client.get(url(server, "/one"))
        first_port = local_port(first)
        second = client.post(url(server, "/two"), content=b"second")
        second_port = local_port(second)
    assert (first.content, second.content) == (HELLO, b"second")
    # The server takes one connection at a time: a second connection would not even have
    # been answered while the first stayed open.  The same local port shows it was reused.
    assert first_port == second_port


def test_http2_prior_knowledge(server: tuple[str, int]) -> None:
    """The core recognises the HTTP/2 preface by itself, and sends an echo larger than the
    client's initial window as the window opens."""
    with httpx.Client(http1=False, http2=True, timeout=BOUND) as client:
        get = client.get(url(server))
        post = client.post(url(server, "/echo"), content=BODY)
    assert get.http_version == post.http_version == "HTTP/2"
    assert get.content == HELLO
    assert post.content == BODY


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl(server: tuple[str, int]) -> None:
    result = subprocess.run(
        ["curl", "-sS", "-v", url(server, "/"), url(server, "/again")],
        capture_output=True, timeout=BOUND, check=True,
    )
    assert result.stdout == HELLO * 2
    assert b"Re-using existing connection" in result.stderr  # curl's wording for keep-alive
    echoed = subprocess.run(
        ["curl", "-sS", "--data-binary", "echo me", url(server, "/echo")],
        capture_output=True, timeout=BOUND, check=True,
    )
    assert echoed.stdout == b"echo me"


def test_bad_request_is_answered_by_the_core(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=BOUND) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):  # the server closes after a 400
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize("server", [["--keep-alive", "0.5"]], indirect=True)
def test_idle_keep_alive_connection_is_closed_then_next_client_served(
    server: tuple[str, int],
) -> None:
    with socket.create_connection(server, timeout=BOUND) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(HELLO):
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"connection: close" not in data.lower()  # kept alive after the answer...
        # ...until the keep-alive timeout fires: the server closes without another byte.  A
        # server that never closed would make recv() raise TimeoutError after BOUND seconds.
        assert sock.recv(65536) == b""
    with httpx.Client(timeout=BOUND) as client:  # and the server is free for the next one
        assert client.get(url(server)).content == HELLO
