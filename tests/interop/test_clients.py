"""Command-line clients against the Starlette app of test_starlette.py, on both drivers.

curl over HTTP/1.1, HTTP/2 with prior knowledge and HTTP/2 over TLS chosen by ALPN (checking
curl's own record of the protocol it used); short h2load and wrk runs that must end with every
request answered 2xx.  Each skips when its binary is missing.  No timing is asserted.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("python_multipart")

from .conftest import TLSCerts
from .test_starlette import UPLOAD, make_app

pytestmark = [pytest.mark.network, pytest.mark.usefixtures("no_server_errors")]

RUN_TIMEOUT = 60


@pytest.fixture(scope="module")
def url(start_server: Any, driver: str) -> str:
    return start_server(make_app(), driver)


@pytest.fixture(scope="module")
def tls_url(start_server: Any, driver: str) -> str:
    return start_server(make_app(), driver, tls=True)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def run(*args: str) -> str:
    result = subprocess.run(args, capture_output=True, timeout=RUN_TIMEOUT)
    assert result.returncode == 0, (args, result.returncode, result.stderr.decode()[-2000:])
    return result.stdout.decode()


CURL_MODES = {
    "http1": (["--http1.1"], "1.1"),
    "h2c": (["--http2-prior-knowledge"], "2"),
    "h2-tls": (["--http2"], "2"),  # offered by ALPN; the server picks h2
}


@pytest.mark.parametrize("mode", list(CURL_MODES))
def test_curl(
    mode: str, driver: str, request: pytest.FixtureRequest, tls_certs: TLSCerts,
    tmp_path: Path,
) -> None:
    curl = tool("curl")
    flags, version = CURL_MODES[mode]
    if mode == "h2-tls":
        base = request.getfixturevalue("tls_url")
        flags = [*flags, "--cacert", str(tls_certs.ca_file)]
    else:
        base = request.getfixturevalue("url")
    common = [curl, "-sS", "--fail", "--max-time", "20", *flags]

    # -w prints what curl negotiated after the body; the body is JSON on one line.
    out = run(*common, "-w", "\n%{http_version} %{response_code}", f"{base}/json?via=curl")
    body, _, status = out.rpartition("\n")
    assert status == f"{version} 200"
    assert json.loads(body)["http_version"] == version
    assert json.loads(body)["query"] == {"via": "curl"}

    path = tmp_path / "upload.bin"
    path.write_bytes(UPLOAD)
    out = run(*common, "-F", "name=curl", "-F", f"file=@{path};type=application/octet-stream",
              f"{base}/upload")
    assert json.loads(out) == {
        "name": "curl", "filename": "upload.bin", "content_type": "application/octet-stream",
        "size": len(UPLOAD), "sha256": hashlib.sha256(UPLOAD).hexdigest(),
    }

    out = run(*common, "-N", f"{base}/stream")
    assert out == "".join(f"line {n}\n" for n in range(10))


def test_curl_keeps_the_connection_alive(url: str) -> None:
    """Two URLs in one curl run: the second reuses the first connection (HTTP/1.1)."""
    curl = tool("curl")
    result = subprocess.run(
        [curl, "-sS", "--fail", "-v", "--http1.1", f"{url}/json", f"{url}/json"],
        capture_output=True, timeout=RUN_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(b'"hello":"world"') == 2
    assert re.search(rb"(?i)re-using existing connection", result.stderr), result.stderr


def test_h2load_smoke(url: str) -> None:
    """200 requests over 4 connections, 10 streams at a time each."""
    h2load = tool("h2load")
    out = run(h2load, "-n", "200", "-c", "4", "-m", "10", f"{url}/json")
    assert "requests: 200 total, 200 started, 200 done, 200 succeeded, 0 failed" in out, out
    assert "status codes: 200 2xx, 0 3xx, 0 4xx, 0 5xx" in out, out


def test_h2load_over_tls(tls_url: str) -> None:
    h2load = tool("h2load")
    out = run(h2load, "-n", "100", "-c", "2", "-m", "10", f"{tls_url}/json")
    assert "TLS Protocol: TLSv1.3" in out or "TLS Protocol: TLSv1.2" in out, out
    assert "Application protocol: h2" in out, out
    assert "100 succeeded, 0 failed" in out, out
    assert "status codes: 100 2xx, 0 3xx, 0 4xx, 0 5xx" in out, out


def test_wrk_smoke(url: str) -> None:
    """One second of HTTP/1.1 keep-alive load: no socket errors, no non-2xx answer."""
    wrk = tool("wrk")
    out = run(wrk, "-t", "1", "-c", "8", "-d", "1s", "--timeout", "5s", f"{url}/json")
    done = re.search(r"(\d+) requests in", out)
    assert done is not None and int(done.group(1)) > 0, out
    assert "Socket errors" not in out, out
    assert "Non-2xx" not in out, out
