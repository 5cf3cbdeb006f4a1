"""Test and fuzz your own ASGI app through asgi-sansio's real wire layer, in memory.

``AppHarness(app)`` serves ``app`` with the same ``ServerConnection`` the socket drivers use, but
the transport is a byte buffer and the clock is ``harness.now``, which moves only when you call
``advance()``.  You get the server's raw bytes (``connect()``) or what independent clients (h11,
h2, wsproto) decoded from them (``request()``, ``websocket()``).  Nothing sleeps, nothing listens.

While it runs, the harness checks the wire layer's contract and raises ``InvariantError`` when it
breaks; it raises ``AppError`` (with the traceback) when your app raises or misuses ASGI.  Both
are ``AssertionError``, so they fail a test and make hypothesis shrink the input.

``AppHarness`` runs the app on an asyncio loop of its own whose clock is the synthetic one, so an
``asyncio.sleep(5)`` in the app ends on ``advance(5)``.  ``AsyncAppHarness`` is the same API for
code already inside a loop (``await harness.request(...)``); there the app's own sleeps follow the
loop's real clock, and only the server's timers follow ``now``.

Hypothesis strategies live in ``asgi_sansio.testing.strategies`` (the ``asgi-sansio[testing]``
extra); this module needs only the core's dependencies.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, TypeVar

from wsproto import events as ws_events

from .._config import Config
from .._serving import asgi3
from ._clients import Headers, WebSocketClient, finish_connection, h1_request, h2_request
from ._engine import (
    AppError,
    Conn,
    Engine,
    HarnessError,
    InvariantError,
    LifespanDriver,
    Response,
    VirtualClockLoop,
)

__all__ = [
    "AppError",
    "AppHarness",
    "AsyncAppHarness",
    "AsyncConnection",
    "AsyncWebSocket",
    "Connection",
    "HarnessError",
    "InvariantError",
    "Response",
    "WebSocket",
]

T = TypeVar("T")

# 2025-01-01T00:00:00Z: the Unix time of ``now == 0``, so ``date`` headers are reproducible.
DEFAULT_WALL_CLOCK = 1_735_689_600.0


class AsyncConnection:
    """One raw client connection: your bytes in, the server's bytes out.

    Use it for what the convenience layers cannot send: malformed or split input, pipelining,
    slow clients, idle connections left to the timers.  Every call settles the app first.
    """

    def __init__(self, engine: Engine, conn: Conn) -> None:
        self._engine = engine
        self._conn = conn

    async def send(self, data: bytes) -> bytes:
        """Feed ``data`` as the client; return everything the server wrote since last asked."""
        if not data:
            raise ValueError("send(b'') would be end of input: use close()")
        self._conn.feed(data)
        return await self.read()

    async def read(self) -> bytes:
        """The server's output since last asked (after letting the app run)."""
        await self._engine.settle()
        self._engine.check()
        return self._conn.take()

    async def close(self) -> bytes:
        """The client closes its side; the server must then close too, with every stream
        ended.  Returns the server's last output."""
        await finish_connection(self._engine, self._conn)
        self._engine.check()
        return self._conn.take()

    @property
    def closed(self) -> bool:
        """True once the server closed the connection (``ConnectionClosed``)."""
        return self._conn.closed

    @property
    def http_version(self) -> str:
        """``"1.1"`` or ``"2"``: what the server made of the bytes so far."""
        return self._conn.core.http_version

    @property
    def scopes(self) -> list[dict[str, Any]]:
        """Every ASGI scope the app was called with on this connection, in order."""
        return self._conn.scopes


class AsyncWebSocket:
    """A WebSocket client session (wsproto, permessage-deflate offered) against the app.

    After the handshake ``accepted`` tells whether the app accepted; if it denied, ``rejection``
    is the HTTP response it sent.  Messages from the app collect in ``messages``; ``receive()``
    takes the oldest.  ``close_code`` is set once the server closed (1006 when it went without a
    Close frame).  Pings are answered, and the server's Close is echoed, as a client must.
    """

    def __init__(self, client: WebSocketClient) -> None:
        self._client = client

    @property
    def accepted(self) -> bool:
        return self._client.accepted

    @property
    def subprotocol(self) -> str | None:
        return self._client.subprotocol

    @property
    def rejection(self) -> Response | None:
        return self._client.rejection

    @property
    def messages(self) -> list[str | bytes]:
        return self._client.messages

    @property
    def close_code(self) -> int | None:
        return self._client.close_code

    @property
    def close_reason(self) -> str | None:
        return self._client.close_reason

    async def send_text(self, text: str) -> None:
        await self._client.send(ws_events.TextMessage(data=text))

    async def send_bytes(self, data: bytes) -> None:
        await self._client.send(ws_events.BytesMessage(data=data))

    async def receive(self) -> str | bytes:
        """The oldest message the app sent and nobody took yet; ``HarnessError`` if none."""
        await self._client.sync()
        self._client.engine.check()
        if not self._client.messages:
            state = f"closed with {self.close_code}" if self.close_code else "open"
            raise HarnessError(f"no WebSocket message from the app (the socket is {state})")
        return self._client.messages.pop(0)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close handshake from the client side (if still open), then hang up."""
        await self._client.close(code, reason)


class AsyncAppHarness:
    """An ASGI app behind asgi-sansio's wire layer, in memory, for code inside an event loop.

    ``config`` is the server's ``Config`` (small limits make fuzzing cheap).  With
    ``raise_app_errors=False`` app exceptions are only collected in ``app_errors`` (to test
    how the server answers a crashing app); invariant violations always raise.  ``wall_clock``
    is the Unix time at ``now == 0``, for the ``date`` header.
    """

    def __init__(
        self,
        app: Callable[..., Any],
        *,
        config: Config | None = None,
        raise_app_errors: bool = True,
        wall_clock: float = DEFAULT_WALL_CLOCK,
    ) -> None:
        self._engine = Engine(asgi3(app), config, raise_app_errors, wall_clock)
        self._lifespan: LifespanDriver | None = None

    @property
    def now(self) -> float:
        """The synthetic clock every core call gets; it starts at 0 and moves by ``advance()``."""
        return self._engine.now

    @property
    def app_errors(self) -> list[BaseException]:
        """App exceptions not raised yet (all of them with ``raise_app_errors=False``)."""
        return self._engine.app_errors

    async def request(
        self,
        method: str = "GET",
        target: str = "/",
        headers: Headers = (),
        body: bytes = b"",
        *,
        http2: bool = False,
        chunked: bool = False,
    ) -> Response:
        """One request on a fresh connection, over HTTP/1.1 or (``http2``) HTTP/2 with prior
        knowledge; the response as h11 or h2 decoded it.  A ``host`` header becomes
        ``:authority`` on HTTP/2.  Raises ``HarnessError`` if no complete response came (the
        app is still waiting, or aborted it)."""
        if http2:
            return await h2_request(self._engine, method, target, headers, body)
        return await h1_request(self._engine, method, target, headers, body, chunked)

    async def connect(self, *, http2: bool = False) -> AsyncConnection:
        """A raw connection.  ``http2`` starts HTTP/2 at once, as TLS ALPN ``h2`` would;
        otherwise the server sniffs the bytes (HTTP/1.1, or the HTTP/2 preface)."""
        conn = self._engine.open("h2" if http2 else None)
        self._engine.check()
        return AsyncConnection(self._engine, conn)

    async def websocket(
        self, target: str = "/", *, subprotocols: Iterable[str] = (), headers: Headers = ()
    ) -> AsyncWebSocket:
        """Open a WebSocket (HTTP/1.1 Upgrade) and run the handshake."""
        client = WebSocketClient(self._engine, target, list(subprotocols), headers)
        await client.sync()
        self._engine.check()
        return AsyncWebSocket(client)

    async def startup(self) -> None:
        """Run lifespan startup; later connections get the state the app set.  An app without
        lifespan support is fine (as a server's ``lifespan="auto"``); a failed startup raises
        ``HarnessError``."""
        if self._lifespan is not None:
            raise HarnessError("startup() was already called")
        self._lifespan = LifespanDriver(self._engine)
        try:
            self._engine.state = await self._lifespan.startup()
        finally:
            self._engine.check()

    async def shutdown(self) -> None:
        """Run lifespan shutdown (only if startup completed); raises ``HarnessError`` if the
        app failed it."""
        if self._lifespan is not None:
            lifespan, self._lifespan = self._lifespan, None
            try:
                await lifespan.shutdown()
            finally:
                self._engine.check()

    async def advance(self, seconds: float) -> None:
        """Move ``now`` forward, firing the server's timers (keep-alive, head and shutdown
        timeouts, WebSocket pings) at their deadlines in order, and letting the app run after
        each."""
        await self._engine.advance(seconds)
        self._engine.check()

    async def settle(self) -> None:
        """Let the app run until it waits for input or for the clock."""
        await self._engine.settle()
        self._engine.check()

    async def aclose(self) -> None:
        """Hang up every connection, run lifespan shutdown if startup ran, cancel the app
        tasks still running, and report what was found."""
        try:
            await self._engine.hang_up()
            await self.shutdown()
        finally:
            await self._engine.cancel_tasks()
            self._engine.check()

    async def __aenter__(self) -> AsyncAppHarness:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            await self.aclose()
        else:  # do not hide the test's own failure behind a later finding
            with contextlib.suppress(HarnessError):
                await self.aclose()


# -- the synchronous API: the same objects, each call run on the harness's own loop --------------


class Connection:
    """``AsyncConnection`` with plain methods; see there."""

    def __init__(self, inner: AsyncConnection, run: Callable[[Awaitable[Any]], Any]) -> None:
        self._inner = inner
        self._run = run

    def send(self, data: bytes) -> bytes:
        """Feed ``data``; return what the server wrote since last asked."""
        out: bytes = self._run(self._inner.send(data))
        return out

    def read(self) -> bytes:
        """The server's output since last asked."""
        out: bytes = self._run(self._inner.read())
        return out

    def close(self) -> bytes:
        """Client EOF; the server must close with every stream ended."""
        out: bytes = self._run(self._inner.close())
        return out

    @property
    def closed(self) -> bool:
        return self._inner.closed

    @property
    def http_version(self) -> str:
        return self._inner.http_version

    @property
    def scopes(self) -> list[dict[str, Any]]:
        return self._inner.scopes


class WebSocket:
    """``AsyncWebSocket`` with plain methods; see there."""

    def __init__(self, inner: AsyncWebSocket, run: Callable[[Awaitable[Any]], Any]) -> None:
        self._inner = inner
        self._run = run

    accepted = property(lambda self: self._inner.accepted)
    subprotocol = property(lambda self: self._inner.subprotocol)
    rejection = property(lambda self: self._inner.rejection)
    messages = property(lambda self: self._inner.messages)
    close_code = property(lambda self: self._inner.close_code)
    close_reason = property(lambda self: self._inner.close_reason)

    def send_text(self, text: str) -> None:
        self._run(self._inner.send_text(text))

    def send_bytes(self, data: bytes) -> None:
        self._run(self._inner.send_bytes(data))

    def receive(self) -> str | bytes:
        """The oldest message the app sent and nobody took yet."""
        message: str | bytes = self._run(self._inner.receive())
        return message

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._run(self._inner.close(code, reason))


class AppHarness:
    """An ASGI app behind asgi-sansio's wire layer, in memory, on a synthetic clock.

    The same API as ``AsyncAppHarness`` with plain methods: each call runs the harness's own
    asyncio loop, whose clock is ``now``, until the app waits.  Use it as a context manager (or
    call ``close()``), one per test or hypothesis example.
    """

    def __init__(
        self,
        app: Callable[..., Any],
        *,
        config: Config | None = None,
        raise_app_errors: bool = True,
        wall_clock: float = DEFAULT_WALL_CLOCK,
    ) -> None:
        self._async = AsyncAppHarness(
            app, config=config, raise_app_errors=raise_app_errors, wall_clock=wall_clock
        )
        self._loop = VirtualClockLoop(lambda: self._async.now)

    def _run(self, work: Awaitable[T]) -> T:
        if self._loop.is_closed():
            raise HarnessError("this harness is closed")
        return self._loop.run_until_complete(work)

    @property
    def now(self) -> float:
        return self._async.now

    @property
    def app_errors(self) -> list[BaseException]:
        return self._async.app_errors

    def request(
        self,
        method: str = "GET",
        target: str = "/",
        headers: Headers = (),
        body: bytes = b"",
        *,
        http2: bool = False,
        chunked: bool = False,
    ) -> Response:
        """See ``AsyncAppHarness.request``."""
        return self._run(self._async.request(
            method, target, headers, body, http2=http2, chunked=chunked))

    def connect(self, *, http2: bool = False) -> Connection:
        """See ``AsyncAppHarness.connect``."""
        return Connection(self._run(self._async.connect(http2=http2)), self._run)

    def websocket(
        self, target: str = "/", *, subprotocols: Iterable[str] = (), headers: Headers = ()
    ) -> WebSocket:
        """See ``AsyncAppHarness.websocket``."""
        inner = self._run(self._async.websocket(target, subprotocols=subprotocols,
                                                headers=headers))
        return WebSocket(inner, self._run)

    def startup(self) -> None:
        self._run(self._async.startup())

    def shutdown(self) -> None:
        self._run(self._async.shutdown())

    def advance(self, seconds: float) -> None:
        """Move ``now`` forward; server timers and the app's sleeps fire on the way."""
        self._run(self._async.advance(seconds))

    def settle(self) -> None:
        self._run(self._async.settle())

    def close(self) -> None:
        """``AsyncAppHarness.aclose``, then close the loop."""
        if self._loop.is_closed():
            return
        try:
            self._run(self._async.aclose())
        finally:
            self._loop.close()

    def __enter__(self) -> AppHarness:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:  # do not hide the test's own failure behind a later finding
            with contextlib.suppress(HarnessError):
                self.close()
