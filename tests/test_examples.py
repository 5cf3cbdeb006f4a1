"""Every program in examples/ runs, and does what its docstring says.

The servers are started as their docstrings say (a subprocess, on a free 127.0.0.1 port read from
their first line of output) and are talked to with real clients: httpx over HTTP/1.1 and HTTP/2,
and raw sockets where the exact bytes matter.  The simulation runs in-process and prints the same
transcript every time.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import importlib.util
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import h11
import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
START_TIMEOUT = 10.0


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def example_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@contextlib.contextmanager
def running(name: str, *args: str) -> Iterator[str]:
    """Run examples/<name>.py; yield the http:// URL from its first line, stop it at the end."""
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=example_env(), cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
        line = process.stdout.readline().decode() if ready else ""
        if "http://" not in line:
            process.kill()
            _, err = process.communicate(timeout=5)
            pytest.fail(f"{name} did not start: {line!r} {err.decode()[-2000:]}")
        yield "http://" + line.split("http://")[1].split()[0]
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raw_exchange(url: str, data: bytes, responses: int) -> list[tuple[h11.Response, bytes]]:
    """Write ``data`` in one go on one connection; read ``responses`` answers to GETs."""
    host, port = url.removeprefix("http://").split(":")
    client = h11.Connection(h11.CLIENT)
    results = []
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        for _ in range(responses):
            # Let h11 expect a GET's response without having written the request through it.
            client.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
            client.send(h11.EndOfMessage())
            response, body = None, b""
            while True:
                event = client.next_event()
                if event is h11.NEED_DATA:
                    client.receive_data(sock.recv(65536))
                elif isinstance(event, h11.Response):
                    response = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
            assert response is not None
            results.append((response, body))
            client.start_next_cycle()
    return results


# -- examples/plain_socket_server.py ----------------------------------------------------------


@pytest.mark.network
def test_plain_socket_server_http11_keep_alive() -> None:
    with running("plain_socket_server", "0") as url, httpx.Client(base_url=url) as client:
        first = client.get("/hello")
        second = client.post("/echo", content=b"x" * 300_000)  # more than one read and write
    assert first.status_code == second.status_code == 200
    assert first.http_version == "HTTP/1.1"
    port = first.text.split("from port ")[1].split(",")[0]
    assert first.text == f"GET /hello over HTTP/1.1 from port {port}, 0 bytes of body\n"
    # The same client port: the second request came on the same, kept-alive connection.
    assert second.text == f"POST /echo over HTTP/1.1 from port {port}, 300000 bytes of body\n"
    assert first.headers["content-type"] == "text/plain"
    assert first.headers["server"] == "asgi-sansio"
    assert abs(parsedate_to_datetime(first.headers["date"]).timestamp() - time.time()) < 86400


@pytest.mark.network
def test_plain_socket_server_pipelining() -> None:
    with running("plain_socket_server") as url:
        requests = b"".join(
            b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in range(3)
        )
        answers = raw_exchange(url, requests, 3)
    assert [r.status_code for r, _ in answers] == [200, 200, 200]
    assert [body.split(b" over")[0] for _, body in answers] == [b"GET /0", b"GET /1", b"GET /2"]


@pytest.mark.network
def test_plain_socket_server_answers_a_half_closed_client() -> None:
    """The client sends its request and shuts down its side: the answer still comes, then the
    server closes."""
    with running("plain_socket_server") as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"POST /half HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
            sock.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert body.startswith(b"POST /half over HTTP/1.1 from port ")
    assert body.endswith(b", 3 bytes of body\n")


@pytest.mark.network
def test_plain_socket_server_h2c_prior_knowledge() -> None:
    with running("plain_socket_server") as url, httpx.Client(
        base_url=url, http1=False, http2=True
    ) as client:
        responses = [client.post(f"/n{n}", content=b"y" * n * 1000) for n in range(3)]
    for n, response in enumerate(responses):
        assert response.http_version == "HTTP/2"
        assert response.text.startswith(f"POST /n{n} over HTTP/2 from port ")
        assert response.text.endswith(f", {n * 1000} bytes of body\n")


# -- examples/reverse_proxy.py ----------------------------------------------------------------


class Upstream(http.server.BaseHTTPRequestHandler):
    """An independent HTTP/1.1 origin (the stdlib's) for the proxy to forward to."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return body
        return self.rfile.read(int(self.headers.get("content-length", 0)))

    def answer(self) -> None:
        body = self.read_body()
        if self.path == "/gated":
            # The second chunk waits for the client to have seen the first: only a proxy that
            # streams (rather than buffering the whole response) gets both.
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"6\r\nfirst\n\r\n")
            self.wfile.flush()
            gate: threading.Event = self.server.gate  # type: ignore[attr-defined]
            second = b"second\n" if gate.wait(5) else b"gate timed out\n"
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(second), second))
            return
        if self.path.startswith("/stream"):
            # Chunked, in pieces, with hop-by-hop fields the proxy must not pass on.
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Keep-Alive", "timeout=5")
            self.send_header("Connection", "keep-alive, X-Hop")
            self.send_header("X-Hop", "private")
            self.send_header("Set-Cookie", "a=1")
            self.send_header("Set-Cookie", "b=2")
            self.end_headers()
            for n in range(5):
                piece = b"chunk %d\n" % n * 1000
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return
        text = json.dumps({
            "method": self.command, "path": self.path,
            "headers": [[k.lower(), v] for k, v in self.headers.items()],
            "body_sha256": hashlib.sha256(body).hexdigest(), "body_length": len(body),
        }).encode()
        self.send_response(404 if self.path == "/missing" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(text)))
        self.send_header("X-Upstream", "yes")
        self.end_headers()
        self.wfile.write(text)

    do_GET = do_POST = do_PUT = answer


@pytest.fixture
def upstream_server() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    server.daemon_threads = True
    server.gate = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def upstream(upstream_server: http.server.ThreadingHTTPServer) -> tuple[str, int]:
    return "127.0.0.1", int(upstream_server.server_address[1])


def proxied(upstream: tuple[str, int]) -> Any:
    return running(
        "reverse_proxy", "--listen", "127.0.0.1:0", "--upstream", f"{upstream[0]}:{upstream[1]}"
    )


@pytest.mark.network
@pytest.mark.parametrize("http2", [False, True], ids=["http1", "h2c"])
def test_reverse_proxy_round_trip(upstream: tuple[str, int], http2: bool) -> None:
    payload = bytes(range(256)) * 1000
    with proxied(upstream) as url, httpx.Client(
        base_url=url, http1=not http2, http2=http2
    ) as client:
        # HTTP/2 has no Connection header (httpx leaves it out): x-secret is end-to-end there.
        get = client.get("/echo?a=1&b=%20", headers={
            "X-Custom": "kept", "Connection": "X-Secret", "X-Secret": "hop",
        })
        post = client.post("/upload", content=payload)
        streamed_up = client.put("/upload", content=iter([payload[:1000], payload[1000:]]))
        missing = client.get("/missing")
        stream = client.get("/stream")
    expected_version = "HTTP/2" if http2 else "HTTP/1.1"
    assert get.status_code == 200 and get.http_version == expected_version
    seen = get.json()
    assert seen["method"] == "GET" and seen["path"] == "/echo?a=1&b=%20"
    headers = dict(seen["headers"])
    assert headers["x-custom"] == "kept"
    assert "connection" not in headers
    assert headers.get("x-secret") == ("hop" if http2 else None)  # HTTP/1.1: hop-by-hop
    assert headers["host"] == url.removeprefix("http://")
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["via"] == ("2" if http2 else "1.1") + " asgi-sansio-proxy"
    assert get.headers["x-upstream"] == "yes"
    assert get.headers["server"].startswith("BaseHTTP")  # the upstream's, not ours

    digest = hashlib.sha256(payload).hexdigest()
    assert post.json()["body_sha256"] == digest and post.json()["body_length"] == len(payload)
    assert post.json()["method"] == "POST"
    # A body of unknown length is sent on chunked (HTTP/1.1) or plain DATA frames (HTTP/2).
    assert streamed_up.json()["body_sha256"] == digest
    assert streamed_up.json()["method"] == "PUT"

    assert missing.status_code == 404 and missing.json()["path"] == "/missing"

    assert stream.status_code == 200
    assert stream.content == b"".join(b"chunk %d\n" % n * 1000 for n in range(5))
    assert stream.headers.get_list("set-cookie") == ["a=1", "b=2"]
    for hop in ("keep-alive", "x-hop"):
        assert hop not in stream.headers
    if not http2:
        assert stream.headers["transfer-encoding"] == "chunked"  # re-framed by the core


@pytest.mark.network
def test_reverse_proxy_streams_the_response(
    upstream_server: http.server.ThreadingHTTPServer, upstream: tuple[str, int]
) -> None:
    with proxied(upstream) as url, httpx.Client(base_url=url) as client, client.stream(
        "GET", "/gated"
    ) as response:
        chunks = response.iter_raw()
        received = b""
        while b"\n" not in received:
            received += next(chunks)
        assert received == b"first\n"  # before the upstream has sent the rest
        upstream_server.gate.set()  # type: ignore[attr-defined]
        received += b"".join(chunks)
    assert received == b"first\nsecond\n"


@pytest.mark.network
def test_reverse_proxy_bad_gateway() -> None:
    with proxied(("127.0.0.1", free_port())) as url, httpx.Client(base_url=url) as client:
        response = client.get("/")
        again = client.get("/")  # the client connection lives on
    assert response.status_code == again.status_code == 502
    assert response.text == "502 Bad Gateway: the upstream cannot be reached\n"
    # The proxy's own answer is dated by the core, from the clock the proxy passes in.
    assert abs(parsedate_to_datetime(response.headers["date"]).timestamp() - time.time()) < 86400


# -- examples/custom_loop.py ------------------------------------------------------------------

TRANSCRIPT = """\
  0.000  A sends b'GET /slow HTTP/1.1\\r\\nHost: sim\\r\\n\\r\\n'
  0.010  server starts the app for GET /slow
  1.000  B sends b'GET /one HTTP/1.1\\r\\nHost: sim\\r\\n\\r\\n'
  1.010  server starts the app for GET /one
  1.020  B receives HTTP/1.1 200 OK b'hello from /one'
  1.500  B sends b'GET /two HTTP/1.1\\r\\nHost: sim\\r\\n\\r\\n'
  1.510  server starts the app for GET /two
  1.520  B receives HTTP/1.1 200 OK b'hello from /two'
  2.000  B sends b'GET /three HTTP/1.1\\r\\nHo'
  2.020  A receives HTTP/1.1 200 OK b'hello from /slow'
  7.010  server: the core's timer for A is due
  7.020  A sees the server close the connection
 22.010  server: the core's timer for B is due
 22.020  B receives HTTP/1.1 408 Request Timeout b'Request Timeout'
 22.020  B sees the server close the connection"""


def test_custom_loop_transcript() -> None:
    """The app's 2 s sleep, the 5 s keep-alive and the 20 s head timeout on simulated time."""
    assert "\n".join(load("custom_loop").simulate()) == TRANSCRIPT


def test_custom_loop_runs_as_a_script() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "custom_loop.py")], capture_output=True,
        env=example_env(), timeout=30, check=True,
    )
    assert result.stdout.decode() == TRANSCRIPT + "\n"
