"""``python -m asgi_sansio`` run as a user would: a subprocess, real sockets, real signals.

The server binds port 0 and its startup line tells the URL, so no port is guessed.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[1]
STARTUP = re.compile(r"running on (\S+)")


class Cli:
    """One server process and the stderr lines it printed so far."""

    def __init__(self, *args: str, cwd: Path | None = None) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "asgi_sansio", *args],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, cwd=cwd or ROOT, env=env,
        )
        self.lines: list[str] = []
        self._buffer = b""

    def read_lines(self, timeout: float) -> Iterator[str]:
        """Yield stderr lines as they come, until ``timeout`` or end of output."""
        assert self.process.stderr is not None
        fd = self.process.stderr.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                if not selector.select(left):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    return
                self._buffer += chunk
                *lines, self._buffer = self._buffer.split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace")
                    self.lines.append(line)
                    yield line

    def wait_for_url(self, timeout: float = 8.0) -> str:
        for line in self.read_lines(timeout):
            match = STARTUP.search(line)
            if match:
                return match.group(1)
        raise AssertionError("no startup line:\n" + "\n".join(self.lines))

    def stop(self, sig: int = signal.SIGINT, timeout: float = 5.0) -> int:
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        finally:
            list(self.read_lines(0.5))  # keep the rest of the log for the assertion messages
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


@pytest.fixture(params=["asyncio", "trio"])
def driver(request: pytest.FixtureRequest) -> str:
    """The ``--driver`` to run the server with."""
    if request.param == "trio":
        pytest.importorskip("trio")
    return str(request.param)


@pytest.fixture
def cli() -> Iterator[type[Cli]]:
    started: list[Cli] = []

    class Tracked(Cli):
        def __init__(self, *args: str, cwd: Path | None = None) -> None:
            super().__init__(*args, cwd=cwd)
            started.append(self)

    yield Tracked
    for process in started:
        process.close()


def test_demo_app_then_sigint(cli: type[Cli], driver: str) -> None:
    server = cli("--port", "0", "--driver", driver)
    base = server.wait_for_url()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base)
    page = httpx.get(base + "/", timeout=5)
    assert page.status_code == 200
    assert "Hello from asgi-sansio" in page.text
    assert httpx.post(base + "/echo?x=1", content=b"hi", timeout=5).content == b"hi"
    assert server.stop(signal.SIGINT) == 0, "\n".join(server.lines)
    log = "\n".join(server.lines)
    assert '"GET / HTTP/1.1" 200' in log  # the access log is on by default
    assert '"POST /echo?x=1 HTTP/1.1" 200' in log
    assert "Traceback" not in log


def test_unix_socket_and_sigterm(cli: type[Cli], driver: str, tmp_path: Path) -> None:
    path = tmp_path / "demo.sock"
    server = cli("--uds", str(path), "--no-access-log", "--driver", driver)
    assert server.wait_for_url() == f"unix:{path}"
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path))) as client:
        assert client.get("http://localhost/headers", timeout=5).status_code == 200
    assert server.stop(signal.SIGTERM) == 0, "\n".join(server.lines)
    assert not path.exists()
    assert '"GET /headers' not in "\n".join(server.lines)


def test_the_served_process_freezes_what_startup_made(
    cli: type[Cli], driver: str, tmp_path: Path,
) -> None:
    # gc.freeze() once the server is up: long-lived objects leave the collector's walks.
    (tmp_path / "gcapp.py").write_text(
        "import gc\n"
        "async def app(scope, receive, send):\n"
        "    assert scope['type'] == 'http'\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'%d' % gc.get_freeze_count()})\n"
    )
    server = cli("gcapp:app", "--port", "0", "--lifespan", "off", "--driver", driver,
                 cwd=tmp_path)
    assert int(httpx.get(server.wait_for_url() + "/", timeout=5).text) > 1000
    assert server.stop() == 0, "\n".join(server.lines)


def test_user_app_from_current_directory_with_limits(cli: type[Cli], tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        raise RuntimeError('no lifespan')\n"
        "    body = (scope['root_path'] + ' ' + scope['path']).encode()\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': body})\n"
        "def make():\n"
        "    return app\n"
    )
    server = cli("myapp:make", "--factory", "--port", "0", "--root-path", "/mnt",
                 "--max-body-size", "1k", cwd=tmp_path)
    base = server.wait_for_url()
    assert httpx.get(base + "/x", timeout=5).text == "/mnt /mnt/x"
    assert httpx.post(base + "/x", content=b"a" * 2000, timeout=5).status_code == 413
    assert server.stop() == 0, "\n".join(server.lines)


def test_workers_share_one_socket(cli: type[Cli], driver: str) -> None:
    server = cli("--port", "0", "--workers", "2", "--no-access-log", "--driver", driver)
    base = server.wait_for_url()
    ready = 0
    for line in server.read_lines(8):
        ready += "Worker" in line and "ready" in line
        if ready == 2:
            break
    assert ready == 2, "\n".join(server.lines)
    for _ in range(4):
        with httpx.Client() as client:  # a new connection each time
            assert client.get(base + "/", timeout=5).status_code == 200
    assert server.stop(signal.SIGINT, timeout=8) == 0, "\n".join(server.lines)


def test_startup_failure_exits_3(cli: type[Cli], driver: str, tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text(
        "async def app(scope, receive, send):\n"
        "    await receive()\n"
        "    await send({'type': 'lifespan.startup.failed', 'message': 'no database'})\n"
    )
    server = cli("failing:app", "--port", "0", "--driver", driver, cwd=tmp_path)
    assert server.process.wait(8) == 3
    list(server.read_lines(1))
    assert "no database" in "\n".join(server.lines)


def test_bad_app_exits_1(cli: type[Cli]) -> None:
    server = cli("no_such_module_here:app", "--port", "0")
    assert server.process.wait(8) == 1
    list(server.read_lines(1))
    assert "no_such_module_here" in "\n".join(server.lines)


def test_tls_from_cert_files(cli: type[Cli], driver: str, tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    (tmp_path / "tlsapp.py").write_text(
        "import json\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        raise RuntimeError('no lifespan')\n"
        "    tls = scope['extensions']['tls']\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': json.dumps(tls).encode()})\n"
    )
    server = cli("tlsapp:app", "--port", "0", "--certfile", str(tmp_path / "cert.pem"),
                 "--keyfile", str(tmp_path / "key.pem"), "--driver", driver, cwd=tmp_path)
    base = server.wait_for_url()
    assert base.startswith("https://127.0.0.1:")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    tls = httpx.get(base + "/", verify=context, timeout=5).json()
    assert tls["server_cert"] == cert.cert_chain_pems[0].bytes().decode()
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert server.stop() == 0, "\n".join(server.lines)


def test_a_second_signal_forces_the_shutdown(
    cli: type[Cli], driver: str, tmp_path: Path
) -> None:
    (tmp_path / "stuck.py").write_text(
        "import anyio\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        raise RuntimeError('no lifespan')\n"
        "    await anyio.sleep_forever()\n"
    )
    server = cli("stuck:app", "--port", "0", "--shutdown-timeout", "60", "--driver", driver,
                 cwd=tmp_path)
    host, port = server.wait_for_url().removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # in flight for good
        time.sleep(0.2)
        server.process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert server.process.poll() is None  # waiting for the request in flight
        assert server.stop(signal.SIGINT, timeout=5) == 0, "\n".join(server.lines)
    assert "Second signal" in "\n".join(server.lines)


def test_uvloop_is_for_asyncio_only(cli: type[Cli]) -> None:
    server = cli("--port", "0", "--driver", "trio", "--uvloop")
    assert server.process.wait(8) == 2
    list(server.read_lines(1))
    assert "--uvloop goes with --driver asyncio" in "\n".join(server.lines)
