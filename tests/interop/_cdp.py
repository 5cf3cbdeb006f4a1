"""A small Chrome DevTools Protocol client: headless Chromium driven over its own WebSocket.

Just enough for the browser interop tests: launch a headless Chromium with a throwaway profile,
open a tab, navigate, evaluate JavaScript, and collect the Network events that tell which
protocol a request or a WebSocket used.  Pure Python on ``websockets``, so the tests need no
Node, no Playwright and no browser download: only Debian's ``chromium`` package.

Every wait is bounded; ``Browser.launch`` kills the whole process group on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

CHROMIUM = "/usr/bin/chromium"

# Headless, and quiet on a machine without a network: without the background-networking flags
# Chromium keeps trying to reach Google's services and misbehaves.  QUIC is off so an https page
# is fetched over TCP, where ALPN decides between HTTP/2 and HTTP/1.1.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--remote-debugging-port=0",
)


class CDPError(Exception):
    """A DevTools command failed, or the page threw."""


class Browser:
    """One Chromium process and the DevTools connection to it."""

    def __init__(self, ws: ClientConnection, log_path: Path) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self.log_path = log_path

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(
        cls, args: Sequence[str] = (), *, timeout: float = 30.0
    ) -> AsyncIterator[Browser]:
        """Start headless Chromium with a fresh profile, yield it connected, then kill it."""
        with tempfile.TemporaryDirectory(prefix="asgi-sansio-chromium-") as tmp:
            profile = Path(tmp, "profile")
            log_path = Path(tmp, "chromium.log")
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, "about:blank"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: killed whole below
                )
            try:
                url = await _devtools_url(process, profile, log_path, timeout)
                ws = await connect(url, max_size=None, open_timeout=timeout)
                browser = cls(ws, log_path)
                try:
                    yield browser
                finally:
                    await browser._close()
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    async def send(
        self, method: str, params: dict[str, Any] | None = None, *,
        session: str | None = None, timeout: float = 15.0,
    ) -> dict[str, Any]:
        """Run one command and return its result; a protocol error raises ``CDPError``."""
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        try:
            await self._ws.send(json.dumps(message))
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(ident, None)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def new_page(self) -> Page:
        """A new tab, attached in flat mode so its commands go over this one connection."""
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, attached["sessionId"])
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        await page.send("Network.enable")
        return page

    def events(self, method: str, session: str | None = None) -> list[dict[str, Any]]:
        """The params of every ``method`` event seen so far (of one session, if given)."""
        return [
            e.get("params", {}) for e in self._events
            if e["method"] == method and (session is None or e.get("sessionId") == session)
        ]

    async def wait_event(
        self, method: str, session: str | None = None, *, after: int = 0, timeout: float = 15.0
    ) -> dict[str, Any]:
        """The params of the first ``method`` event past the first ``after`` ones seen."""

        async def first() -> dict[str, Any]:
            while True:
                seen = self.events(method, session)
                if len(seen) > after:
                    return seen[after]
                if self._reader.done():
                    raise CDPError("the DevTools connection closed")
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(first(), timeout)

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                message = json.loads(raw)
                if "id" in message:
                    future = self._pending.get(message["id"])
                    if future is not None and not future.done():
                        future.set_result(message)
                else:
                    self._events.append(message)
                    self._changed.set()
        finally:
            self._changed.set()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(CDPError("the DevTools connection closed"))

    async def _close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ws.close(), 5)
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader


class Page:
    """One tab of a ``Browser``."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    async def send(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float = 15.0
    ) -> dict[str, Any]:
        return await self.browser.send(method, params, session=self.session, timeout=timeout)

    async def navigate(self, url: str, *, timeout: float = 15.0) -> None:
        """Load ``url`` and wait for its load event; a failed navigation raises ``CDPError``."""
        loads = len(self.events("Page.loadEventFired"))
        result = await self.send("Page.navigate", {"url": url}, timeout=timeout)
        if result.get("errorText"):
            raise CDPError(f"navigating to {url}: {result['errorText']}")
        await self.browser.wait_event(
            "Page.loadEventFired", self.session, after=loads, timeout=timeout
        )

    async def evaluate(self, expression: str, *, timeout: float = 15.0) -> Any:
        """The JSON value of ``expression`` in the page, awaited if it is a promise."""
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"the page threw: {text}")
        return result["result"].get("value")

    def events(self, method: str) -> list[dict[str, Any]]:
        return self.browser.events(method, self.session)


async def _devtools_url(
    process: subprocess.Popen[bytes], profile: Path, log_path: Path, timeout: float
) -> str:
    """Chromium writes its port and browser target path to ``DevToolsActivePort`` once it
    listens; poll for it (bounded), failing early if the process dies."""
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CDPError(f"chromium exited with {process.returncode}:\n{_tail(log_path)}")
        with contextlib.suppress(FileNotFoundError):
            lines = port_file.read_text().split()
            if len(lines) >= 2:
                return f"ws://127.0.0.1:{int(lines[0])}{lines[1]}"
        await asyncio.sleep(0.05)
    raise CDPError(f"no DevToolsActivePort after {timeout}s:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
