"""A real browser against ``python -m asgi_sansio``: headless Chromium, driven over DevTools.

Each test starts the CLI serving the built-in demo app (both drivers), then has Chromium load a
page, POST with ``fetch`` and talk to the ``/ws`` echo from page JavaScript, over plain HTTP and
over TLS.  Over TLS the page must come over HTTP/2 (ALPN), and a WebSocket opened from it may
ride that connection (RFC 8441, since the server advertises SETTINGS_ENABLE_CONNECT_PROTOCOL) or
get its own HTTP/1.1 upgrade: which one happened is recorded (``record_property``, and a warning
when Chromium did not use RFC 8441), and both must echo exactly.

Skipped without Debian's ``chromium`` at /usr/bin/chromium.  Every wait is bounded, and the
browser and the server are killed whatever happens.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop._cdp import CHROMIUM, Browser, Page

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"no {CHROMIUM}"),
]

ROOT = Path(__file__).resolve().parents[2]
STARTUP = re.compile(r"running on (\S+)")
TEST_TIMEOUT = 90.0  # one test, browser launch included: far above what it needs

_rng = random.Random(8441)
# Text and binary, empty ones, non-ASCII, and messages larger than the 64 KiB the HTTP/2 flow
# control window starts with; the random ones do not shrink much under permessage-deflate.
MESSAGES: list[dict[str, str]] = [
    {"text": "hello"},
    {"text": ""},
    {"text": "héllo wörld ✓ 🚀"},
    {"bytes": base64.b64encode(bytes(range(256))).decode()},
    {"bytes": ""},
    {"text": "".join(_rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(100_000))},
    {"bytes": base64.b64encode(_rng.randbytes(70_000)).decode()},
    {"text": "z" * 200_000},
    {"text": "bye"},
]

# Page JavaScript.  ``until`` bounds every wait inside the page, so a stuck exchange fails with
# a message instead of at the DevTools timeout.
JS_UNTIL = """
const until = (test, what, ms = 15000) => new Promise((ok, bad) => {
  const start = performance.now();
  const tick = () => {
    const value = test();
    if (value) ok(value);
    else if (performance.now() - start > ms) bad(new Error("timed out waiting for " + what));
    else setTimeout(tick, 10);
  };
  tick();
});
"""

# Sends every message at once, collects as many echoes, closes with 1000: resolves with what
# came back and how the socket closed.  Binary goes both ways as base64.
JS_ECHO = JS_UNTIL + """
const b64encode = (buffer) => {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000)
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(text);
};
const b64decode = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const ws = new WebSocket(URL);
ws.binaryType = "arraybuffer";
const received = [];
let close = null;
ws.onmessage = (e) => {
  received.push(typeof e.data === "string" ? {text: e.data} : {bytes: b64encode(e.data)});
  if (received.length === MESSAGES.length) ws.close(1000, "done");
};
ws.onclose = (e) => { close = {code: e.code, reason: e.reason, wasClean: e.wasClean}; };
await until(() => ws.readyState !== WebSocket.CONNECTING, "the handshake");
if (ws.readyState !== WebSocket.OPEN) throw new Error("not opened: " + JSON.stringify(close));
const extensions = ws.extensions;
for (const m of MESSAGES) ws.send("text" in m ? m.text : b64decode(m.bytes));
await until(() => close, () => "the close, after " + received.length + " echoes");
return {received, close, extensions};
"""

# Uses the demo's own /chat page as a person would: type, press Send, read the log.
JS_CHAT = JS_UNTIL + """
const status = document.getElementById("status");
const log = document.getElementById("log");
const input = document.getElementById("text");
const form = document.getElementById("form");
await until(() => status.textContent === "open", "the chat socket to open");
for (const line of LINES) {
  input.value = line;
  form.requestSubmit();
  await until(() => log.textContent.endsWith("< " + line + "\\n"), "the echo of " + line);
}
return log.textContent;
"""


def run_js(body: str, **names: Any) -> str:
    """An async function expression: ``body`` with each ``NAME`` bound to a JSON value."""
    bindings = "".join(f"const {k} = {json.dumps(v)};\n" for k, v in names.items())
    return f"(async () => {{\n{bindings}{body}\n}})()"


class Server:
    """``python -m asgi_sansio`` serving the demo; its log goes to a file, read at the end."""

    def __init__(self, driver: str, tmp: Path, *args: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.log_path = tmp / "server.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "asgi_sansio", "--port", "0", "--driver", driver, *args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
            )
        self.url = self._wait_for_url(timeout=15.0)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = STARTUP.search(self.log)
            if match:
                return match.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"the server did not start:\n{self.log}")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGINT, as Ctrl+C: the exit status of a graceful stop."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the server did not stop on SIGINT:\n{self.log}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture(params=["asyncio", "trio"])
def driver(request: pytest.FixtureRequest) -> str:
    if request.param == "trio":
        pytest.importorskip("trio")
    return str(request.param)


@pytest.fixture
def tmp() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="asgi-sansio-browser-") as name:
        yield Path(name)


@pytest.fixture
def serve(driver: str, tmp: Path) -> Iterator[Callable[..., Server]]:
    """Start servers with the test's driver; each is stopped (killed if need be) after it."""
    started: list[Server] = []

    def start(*args: str) -> Server:
        server = Server(driver, tmp, *args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


@pytest.fixture
def tls(tmp: Path) -> tuple[list[str], list[str]]:
    """The server's ``--certfile/--keyfile`` flags, and the Chromium flag that trusts only that
    certificate (by its public key hash) rather than ignoring every certificate error."""
    trustme = pytest.importorskip("trustme")
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    cert = trustme.CA().issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(tmp / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp / "key.pem"))
    leaf = x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes())
    spki = leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    spki_hash = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    return (
        ["--certfile", str(tmp / "cert.pem"), "--keyfile", str(tmp / "key.pem")],
        [f"--ignore-certificate-errors-spki-list={spki_hash}"],
    )


def in_browser(flags: list[str], scenario: Callable[[Browser], Any]) -> Any:
    """Run ``scenario`` (a coroutine function) against a fresh Chromium, bounded overall."""

    async def main() -> Any:
        async with Browser.launch(flags) as browser:
            return await scenario(browser)

    return asyncio.run(asyncio.wait_for(main(), TEST_TIMEOUT))


async def echo_exchange(page: Page, url: str) -> tuple[dict[str, Any], str]:
    """Run ``JS_ECHO`` against ``url`` in ``page``: its result, and the transport the socket
    used as Chromium's handshake record shows it: "http/1.1" (101 upgrade) or "h2" (RFC 8441
    extended CONNECT, answered 200)."""
    handshakes = len(page.events("Network.webSocketHandshakeResponseReceived"))
    result = await page.evaluate(run_js(JS_ECHO, URL=url, MESSAGES=MESSAGES), timeout=30)
    response = (
        await page.browser.wait_event(
            "Network.webSocketHandshakeResponseReceived", page.session, after=handshakes
        )
    )["response"]
    transports = {101: "http/1.1", 200: "h2"}
    assert response["status"] in transports, response
    return result, transports[response["status"]]


def check_echo(result: dict[str, Any]) -> None:
    assert result["received"] == MESSAGES
    assert result["close"] == {"code": 1000, "reason": "done", "wasClean": True}
    assert result["extensions"].startswith("permessage-deflate"), result["extensions"]


async def load_demo(page: Page, base: str) -> str:
    """Load ``/`` and check it is the demo page; return the protocol it came over."""
    await page.navigate(base + "/")
    heading = await page.evaluate("document.querySelector('h1').textContent")
    assert heading == "Hello from asgi-sansio"
    protocol = await page.evaluate(
        "performance.getEntriesByType('navigation')[0].nextHopProtocol"
    )
    return str(protocol)


async def post_echo(page: Page) -> None:
    """``fetch`` a POST to /echo from the page: a body bigger than one HTTP/2 window."""
    body = "".join(_rng.choice("0123456789abcdef") for _ in range(150_000))
    result = await page.evaluate(run_js(
        """
        const response = await fetch("/echo", {method: "POST", body: BODY,
                                              headers: {"content-type": "text/x-test"}});
        return {status: response.status, type: response.headers.get("content-type"),
                body: await response.text()};
        """,
        BODY=body,
    ))
    assert result == {"status": 200, "type": "text/x-test", "body": body}


async def chat(page: Page, base: str) -> None:
    lines = ["one", "two ✓", "three"]
    await page.navigate(base + "/chat")
    log = await page.evaluate(run_js(JS_CHAT, LINES=lines), timeout=30)
    assert log == "".join(f"> {line}\n< {line}\n" for line in lines)


def check_server_log(server: Server, http_version: str) -> None:
    assert server.stop() == 0, server.log
    log = server.log
    assert f'"GET / HTTP/{http_version}" 200' in log, log
    assert f'"POST /echo HTTP/{http_version}" 200' in log, log
    assert "Traceback" not in log, log


def test_http(serve: Callable[..., Server]) -> None:
    """Plain HTTP: the page over HTTP/1.1, a POST, the WebSocket echo, the chat page."""
    server = serve()
    base = server.url
    assert base.startswith("http://")

    async def scenario(browser: Browser) -> str:
        page = await browser.new_page()
        protocol = await load_demo(page, base)
        await post_echo(page)
        result, transport = await echo_exchange(page, "ws" + base[4:] + "/ws")
        check_echo(result)
        assert transport == "http/1.1"
        await chat(page, base)
        return protocol

    assert in_browser([], scenario) == "http/1.1"
    check_server_log(server, "1.1")


def test_https_h2(
    serve: Callable[..., Server], tls: tuple[list[str], list[str]],
    record_property: Callable[[str, object], None],
) -> None:
    """TLS: ALPN picks HTTP/2 for the page and the POST; the WebSocket opened from that page
    echoes, whichever transport Chromium chose for it (recorded)."""
    server_flags, browser_flags = tls
    server = serve(*server_flags)
    base = server.url
    assert base.startswith("https://")

    async def scenario(browser: Browser) -> tuple[str, str]:
        page = await browser.new_page()
        protocol = await load_demo(page, base)
        await post_echo(page)
        result, transport = await echo_exchange(page, "wss" + base[5:] + "/ws")
        check_echo(result)
        await chat(page, base)
        return protocol, transport

    protocol, transport = in_browser(browser_flags, scenario)
    assert protocol == "h2"
    record_property("websocket_transport", transport)
    if transport != "h2":
        warnings.warn(
            f"Chromium used {transport} for wss:// from an HTTP/2 page, not RFC 8441",
            stacklevel=1,
        )
    check_server_log(server, "2")


def test_https_websocket_http11(
    serve: Callable[..., Server], tls: tuple[list[str], list[str]]
) -> None:
    """TLS with no HTTP/2 connection to share: Chromium only sends a WebSocket over HTTP/2 on
    a connection it already has, so a wss:// socket from a blank page in a fresh browser takes
    its own connection and the HTTP/1.1 upgrade, which must echo too."""
    server_flags, browser_flags = tls
    server = serve(*server_flags)
    base = server.url

    async def scenario(browser: Browser) -> str:
        page = await browser.new_page()
        result, transport = await echo_exchange(page, "wss" + base[5:] + "/ws")
        check_echo(result)
        return transport

    assert in_browser(browser_flags, scenario) == "http/1.1"
    assert server.stop() == 0, server.log
    assert "Traceback" not in server.log, server.log
