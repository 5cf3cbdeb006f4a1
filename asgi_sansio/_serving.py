"""What every driver shares and no core module may hold: it touches sockets, ``ssl`` and logs.

The drivers (``asyncio.py``, ``trio.py``) differ only in how they wait, spawn tasks and move
bytes.  Everything else lives here once, so both behave the same:

* ``Loop``: the few event-loop operations the shared code needs (a clock, one-shot waiters, a
  deadline); each driver implements them in a few lines.
* ``DriverConnection``: one transport connection's ``ServerConnection``, the routing of its
  events to app tasks, and the app's ``receive``/``send`` (with write backpressure and the access
  log).  A driver subclasses it and adds reading, writing and the timer.
* ``LifespanRunner``: the app's lifespan scope against the pure ``Lifespan`` machine.
* ``ServerBase``: the options, the signal policy and the graceful-shutdown order (SRV-14).
* App normalisation (ASGI 2), listening sockets made before any event loop (so worker processes
  can share them), the ``tls`` extension, and how each lifespan outcome is reported.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import signal
import socket
import ssl as ssl_module
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextvars import Context, copy_context
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypedDict, TypeVar

from ._config import Config
from ._connection import ServerConnection
from ._errors import ClientDisconnected
from ._events import (
    ConnectionClosed,
    Event,
    StreamEnded,
    StreamReadable,
    StreamStarted,
    StreamWritable,
)
from ._lifespan import (
    Lifespan,
    LifespanErrored,
    LifespanEvent,
    LifespanReadable,
    LifespanUnsupported,
    ShutdownFailed,
    StartupComplete,
    StartupFailed,
)
from ._proxy import ProxyHeader, ProxyHeaderError, parse_proxy_header, proxy_header_wants

if TYPE_CHECKING:
    from typing_extensions import Unpack

logger = logging.getLogger("asgi_sansio.error")
access_logger = logging.getLogger("asgi_sansio.access")

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGI3App = Callable[[dict[str, Any], Receive, Send], Awaitable[Any]]
LifespanMode = Literal["auto", "on", "off"]
ShutdownTrigger = Callable[[], Awaitable[object]] | Awaitable[object]
TriggerWatch = Callable[[], Coroutine[Any, Any, None]]

# EXT-TLS-03: ``ssl`` speaks OpenSSL names; the tls extension wants IANA numbers.
_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_CIPHER_SUITES = {
    "TLS_AES_128_GCM_SHA256": 0x1301, "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303, "TLS_AES_128_CCM_SHA256": 0x1304,
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B, "ECDHE-RSA-AES128-GCM-SHA256": 0xC02F,
    "ECDHE-ECDSA-AES256-GCM-SHA384": 0xC02C, "ECDHE-RSA-AES256-GCM-SHA384": 0xC030,
    "ECDHE-ECDSA-CHACHA20-POLY1305": 0xCCA9, "ECDHE-RSA-CHACHA20-POLY1305": 0xCCA8,
    "DHE-RSA-AES128-GCM-SHA256": 0x009E, "DHE-RSA-AES256-GCM-SHA384": 0x009F,
    "ECDHE-ECDSA-AES128-SHA": 0xC009, "ECDHE-RSA-AES128-SHA": 0xC013,
    "ECDHE-ECDSA-AES256-SHA": 0xC00A, "ECDHE-RSA-AES256-SHA": 0xC014,
    "AES128-GCM-SHA256": 0x009C, "AES256-GCM-SHA384": 0x009D,
}


# ALPN protocols offered over TLS, in our order of preference: what the core speaks.  The core
# picks the protocol from the ALPN result, so the drivers need no other change.
ALPN_PROTOCOLS = ["h2", "http/1.1"]
# Past the core's own shutdown deadline, how long a closed connection may still flush and an
# app cancelled at the deadline may take to unwind.
SHUTDOWN_SLACK = 1.0


class LifespanStartupError(RuntimeError):
    """The app failed lifespan startup (LIFE-05), or did not support it with lifespan="on"."""


def asgi3(app: Callable[..., Any]) -> ASGI3App:
    """Wrap an ASGI 2 double-callable app (MAIN-07), detected as asgiref does."""
    call = getattr(app, "__call__", None)  # noqa: B004 - the method itself is what we inspect
    if not inspect.isclass(app) and (
        inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(call)
    ):
        return app

    async def app3(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await app(scope)(receive, send)

    return app3


class TLSObject(Protocol):
    """What the drivers' TLS objects share: ``ssl.SSLObject`` and ``trio.SSLStream``."""

    def cipher(self) -> tuple[str, str, int] | None: ...
    def getpeercert(self, binary_form: bool) -> Any: ...
    def version(self) -> str | None: ...
    def selected_alpn_protocol(self) -> str | None: ...


def tls_info(ssl_object: TLSObject, server_cert: str | None) -> dict[str, Any]:
    """The ``tls`` extension dict for one TLS connection (EXT-TLS-02)."""
    cipher = ssl_object.cipher()
    peer = ssl_object.getpeercert(binary_form=True)
    return {
        "server_cert": server_cert,
        "client_cert_chain": [ssl_module.DER_cert_to_PEM_cert(peer)] if peer else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": _CIPHER_SUITES.get(cipher[0]) if cipher else None,
    }


def bind_socket(
    host: str = "127.0.0.1", port: int = 8000, uds: str | None = None, backlog: int = 2048
) -> socket.socket:
    """A listening socket, made before the loop (and before forking workers) so that every
    worker process can share it."""
    if uds is not None:
        try:
            if stat.S_ISSOCK(os.stat(uds).st_mode):
                os.unlink(uds)  # a stale socket left by a previous run
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(uds)
        os.chmod(uds, 0o666)
        sock.listen(backlog)
    else:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, backlog=backlog)
    sock.setblocking(False)
    return sock


def socket_url(sock: socket.socket, tls: bool = False) -> str:
    """How a person would reach ``sock``: for the startup line."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{name}"
    host = f"[{name[0]}]" if sock.family == socket.AF_INET6 else name[0]
    return f"{'https' if tls else 'http'}://{host}:{name[1]}"


def report_lifespan(event: LifespanEvent, mode: LifespanMode) -> str | None:
    """Log a lifespan outcome as a server should; return why serving must stop, if it must.

    ``auto`` carries on when the app lacks lifespan (LIFE-10, LIFE-13); ``on`` makes that fatal.
    A failed startup is always fatal (LIFE-05); everything after startup is only reported.
    """
    if isinstance(event, StartupFailed):
        logger.error("Application startup failed. %s", event.message)
        return f"application startup failed: {event.message}"
    if isinstance(event, LifespanUnsupported):
        if mode == "on":
            logger.error("The app does not support lifespan (lifespan='on')", exc_info=event.exc)
            return "the app does not support lifespan (lifespan='on')"
        if event.exc is None:
            logger.warning("The lifespan app returned without answering startup.")
        else:
            logger.info("ASGI 'lifespan' protocol appears unsupported.")
    elif isinstance(event, ShutdownFailed):
        logger.error("Application shutdown failed. %s", event.message)
    elif isinstance(event, LifespanErrored):
        if event.exc is None:
            logger.error("The lifespan app returned before shutdown (LIFE-12).")
        else:
            logger.error("Exception in 'lifespan' protocol", exc_info=event.exc)
    elif isinstance(event, StartupComplete):
        logger.debug("Application startup complete.")
    else:
        logger.debug("Application shutdown complete.")
    return None


# -- what the drivers share ----------------------------------------------------------------------

W = TypeVar("W")  # a driver's one-shot waiter: an asyncio future, a trio event


class Loop(Generic[W]):
    """The event-loop operations the shared code needs; each driver implements ``bind()`` and
    the four below it.

    ``changed()`` and ``wait_until()`` build condition waits on them: whoever changes something
    a ``wait_until`` may be watching (a connection gone, an app task ended, the server started or
    asked to stop) calls ``changed()``.
    """

    time: Callable[[], float]
    """The loop's monotonic clock, set by ``bind()``: the ``now`` every core call gets."""

    def __init__(self) -> None:
        self._watchers: list[W] = []

    def bind(self) -> None:
        """Called by ``serve()`` in the running loop: set ``time``."""
        raise NotImplementedError

    def waiter(self) -> W:
        """A new one-shot waiter."""
        raise NotImplementedError

    async def wait(self, waiter: W) -> None:
        """Return once ``waiter`` has been woken."""
        raise NotImplementedError

    def wake(self, waiter: W | None) -> None:
        """Wake ``waiter``; harmless when ``None`` or woken already."""
        raise NotImplementedError

    async def run_until(self, work: Callable[[], Awaitable[None]], deadline: float) -> None:
        """Run ``work()``, cancelling it if it is still running at ``deadline``."""
        raise NotImplementedError

    def changed(self) -> None:
        watchers, self._watchers = self._watchers, []
        for waiter in watchers:
            self.wake(waiter)

    async def wait_until(self, done: Callable[[], bool], deadline: float | None = None) -> bool:
        """Wait until ``done()``, re-checked on every ``changed()``, or until ``deadline``;
        return ``done()``."""

        async def watch() -> None:
            while not done():
                waiter = self.waiter()
                self._watchers.append(waiter)
                await self.wait(waiter)

        if not done():
            if deadline is None:
                await watch()
            else:
                await self.run_until(watch, deadline)
        return done()


class DriverStream(Generic[W]):
    """The driver's side of one stream: whether it ended and what its app task waits for."""

    __slots__ = ("ended", "reader", "writer")

    def __init__(self) -> None:
        self.ended = False
        self.reader: W | None = None
        self.writer: W | None = None


class DriverConnection(Generic[W]):
    """One transport connection as every driver sees it: its ``ServerConnection``, the routing
    of the core's events to app tasks, and the app's ``receive`` and ``send``.

    A driver subclass moves the bytes.  It calls ``open()`` once the transport is up (after the
    TLS handshake), implements ``flush()`` (act on everything the core queued: ``route()`` the
    events, get ``data_to_send()`` written, resume reading when ``wants_read``, re-arm the timer,
    and reset ``deferred``), may defer the flushes the app's calls ask for (``flush_soon()``),
    implements ``start_app()`` (run ``run_app()`` as a task), and keeps two flags for ``send()``:
    ``output_blocked`` while its writer is behind by more than the high-water mark, and ``lost``
    once the transport is gone and nothing more will be written.
    """

    conn: ServerConnection
    output_blocked = False
    lost = False
    deferred = 0  # payload bytes sent since the last flush(), which resets it

    def __init__(self, server: ServerBase[W]) -> None:
        self.server = server
        self.loop = server.loop
        self.streams: dict[int, DriverStream[W]] = {}
        self.client_text = "-"

    def flush(self) -> None:
        raise NotImplementedError

    def flush_soon(self) -> None:
        """``flush()`` before the driver next waits for I/O.  An app calls the core several
        times in a row (receive, start, body, return) and so do the apps of one read; one
        flush then serves them all.  A driver that cannot defer flushes at once."""
        self.flush()

    def start_app(
        self, sid: int, stream: DriverStream[W], scope: dict[str, Any], context: Context
    ) -> None:
        """Run ``run_app(sid, stream, scope)`` as a task of its own, in ``context``."""
        raise NotImplementedError

    def abort(self) -> None:
        """Drop the transport at once (a forced shutdown)."""
        raise NotImplementedError

    def open(self, peer: Any, local: Any, tls_object: TLSObject | None) -> None:
        """Make the ``ServerConnection`` for a transport that was just accepted.  ``peer`` and
        ``local`` are ``getpeername()`` and ``getsockname()``: tuples, or a path on unix."""
        server = self.server
        client: tuple[str, int] | None = None
        local_addr: tuple[str, int | None] | None
        if isinstance(local, str):  # unix socket: no client address (HTTP-SCOPE client)
            local_addr = (local, None)
        else:
            client = (peer[0], peer[1]) if peer else None
            local_addr = (local[0], local[1]) if local else None
        tls = None if tls_object is None else tls_info(tls_object, server.tls_server_cert)
        self._context = copy_context()
        now = self.loop.time()
        self.conn = ServerConnection(
            server.config, now=now, client=client, server=local_addr, tls=tls,
            alpn=None if tls_object is None else tls_object.selected_alpn_protocol(),
            state=server.state, wall_offset=time.time() - now,
        )
        if client:
            self.client_text = f"{client[0]}:{client[1]}"
        server.connections.add(self)
        if server.stopping:
            self.conn.shutdown(now)
        self.flush()

    def shutdown(self) -> None:
        """The server is stopping: close gracefully (SRV-14)."""
        if not self.conn.closed:
            self.conn.shutdown(self.loop.time())
            self.flush()

    def gone(self) -> None:
        """The transport is closed: nothing will be read or written again."""
        self.lost = True
        if not self.conn.closed:
            self.conn.receive_data(b"", self.loop.time())
            self.flush()
        self.wake_streams(readers=True)
        self.server.connections.discard(self)
        self.loop.changed()

    def route(self, events: list[Event]) -> bool:
        """Start and wake app tasks for ``events``; True if the core closed the connection."""
        close = False
        wake = self.loop.wake
        for event in events:
            if isinstance(event, StreamStarted):
                new: DriverStream[W] = DriverStream()
                self.streams[event.stream_id] = new
                self.server.apps += 1
                # Each app gets a fresh copy of the connection's context, never the context
                # of whoever flushed (a pipelined request starts from the previous app's send).
                self.start_app(event.stream_id, new, event.scope, self._context.copy())
            elif isinstance(event, ConnectionClosed):
                close = True
            else:
                stream = self.streams.get(event.stream_id)
                if stream is None:
                    continue
                if isinstance(event, StreamEnded):
                    stream.ended = True
                if not isinstance(event, StreamWritable):
                    wake(stream.reader)
                if not isinstance(event, StreamReadable):
                    wake(stream.writer)
        return close

    def wake_streams(self, readers: bool) -> None:
        """Wake every app task held in ``send()`` (and in ``receive()`` with ``readers``)."""
        wake = self.loop.wake
        for stream in self.streams.values():
            if readers:
                wake(stream.reader)
            wake(stream.writer)

    async def run_app(self, sid: int, stream: DriverStream[W], scope: dict[str, Any]) -> None:
        """Run the app for one stream and tell the core how it ended."""
        conn, loop, server = self.conn, self.loop, self.server
        access_log = server.access_log
        high_water = server.config.output_high_water

        async def receive() -> Message:
            while True:
                message = conn.receive(sid)
                self.flush_soon()
                if message is not None:
                    return message
                stream.reader = waiter = loop.waiter()
                await loop.wait(waiter)

        logged = False  # the access log line for this stream's answer is written

        async def send(message: Message) -> None:
            nonlocal logged
            try:
                conn.send(sid, message, loop.time())
            finally:
                # The core holds output until the flush: at most about the high-water mark.
                self.deferred += _payload_size(message)
                if self.deferred > high_water:
                    self.flush()
                else:
                    self.flush_soon()
            if access_log and not logged:
                status = _answer_status(scope, message)
                if status is not None:
                    logged = True
                    target = scope["raw_path"]
                    if scope["query_string"]:
                        target += b"?" + scope["query_string"]
                    method = scope.get("method") or (  # a websocket: its handshake's method
                        "GET" if scope["http_version"] == "1.1" else "CONNECT")
                    access_logger.info(
                        '%s - "%s %s HTTP/%s" %d', self.client_text, method,
                        target.decode("latin-1"), scope["http_version"], status,
                    )
            while (
                (self.output_blocked or not conn.writable(sid)) and not stream.ended
                and not self.lost
            ):
                stream.writer = waiter = loop.waiter()
                await loop.wait(waiter)

        exc: BaseException | None = None
        try:
            result = await server.app(scope, receive, send)
            if result is not None:  # MAIN-19: warn only
                logger.warning("ASGI app returned a non-None value: %r", result)
        except ClientDisconnected as error:
            exc = error  # MAIN-13: the client left; nothing to report
        except Exception as error:
            exc = error
            logger.error("Exception in ASGI application", exc_info=error)
        except BaseException as error:  # cancelled at exit: the stream still gets an ending
            exc = error
            raise
        finally:
            server.app_ended()
            conn.app_finished(sid, loop.time(), exc)
            self.flush_soon()
            del self.streams[sid]
            server.apps -= 1
            loop.changed()


def _payload_size(message: Any) -> int:
    """The bytes (or characters) a send-message carries; 0 for anything else."""
    if type(message) is not dict:
        return 0
    payload = message.get("body") or message.get("bytes") or message.get("text")
    return len(payload) if isinstance(payload, (bytes, bytearray, memoryview, str)) else 0


def _answer_status(scope: dict[str, Any], message: Message) -> int | None:
    """The status of the answer ``message`` started, for the access log; None if it started
    none.  Called after the core accepted the message, so the fields are valid."""
    mtype = message["type"]
    if mtype == "http.response.start" or mtype == "websocket.http.response.start":
        return int(message["status"])
    if mtype == "websocket.accept":
        return 101 if scope["http_version"] == "1.1" else 200  # RFC 6455 / RFC 8441
    if mtype == "websocket.close":
        return 403  # before any other answer (WS-05)
    return None


class LifespanRunner(Generic[W]):
    """Runs the app's lifespan scope against the pure ``Lifespan`` machine.

    A driver subclass runs ``main()`` as a task (``spawn()``) and cancels it (``cancel()``).
    ``startup()`` returns the state for request scopes (``None`` without lifespan) or raises
    ``LifespanStartupError``; ``shutdown()`` runs the shutdown phase.  Each phase is bounded by
    the server's ``lifespan_timeout`` (LIFE-14).
    """

    def __init__(self, server: ServerBase[W]) -> None:
        self.machine = Lifespan()
        self.loop = server.loop
        self._app = server.app
        self._mode = server.lifespan_mode
        self._timeout = server.lifespan_timeout
        self._reader: W | None = None
        self._blocked = False  # the app waits in receive(), maybe forever
        self.done = False  # main() has ended
        self.failure: str | None = None  # why startup failed

    def spawn(self) -> None:
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError

    async def startup(self) -> dict[str, Any] | None:
        machine = self.machine
        self.spawn()
        machine.startup()
        self._pump()
        await self._settle(("idle", "starting"), "startup")
        if machine.status == "started":
            return machine.state
        if machine.status == "unsupported" and self._mode == "auto":
            return None
        await self._stop_task()
        raise LifespanStartupError(self.failure or "lifespan startup failed")

    async def shutdown(self) -> None:
        if self.machine.shutdown():
            self._pump()
            await self._settle(("stopping",), "shutdown")
        await self._stop_task()

    async def _settle(self, statuses: tuple[str, ...], phase: str) -> None:
        loop = self.loop
        deadline = loop.time() + self._timeout
        if not await loop.wait_until(lambda: self.machine.status not in statuses, deadline):
            self.failure = f"lifespan {phase} timed out after {self._timeout} s"
            logger.error("%s", self.failure)

    async def _stop_task(self) -> None:
        """Let an app that answered return by itself, then cancel it (it may wait forever)."""
        loop = self.loop
        if not self._blocked:  # a blocked receive() would wait forever: no need to give it time
            await loop.wait_until(lambda: self.done, loop.time() + 1.0)
        if not self.done:
            self.cancel()
            await loop.wait_until(lambda: self.done, loop.time() + 1.0)

    async def main(self) -> None:
        machine, loop = self.machine, self.loop

        async def receive() -> Message:
            while True:
                message = machine.receive()
                self._pump()
                if message is not None:
                    return message
                self._reader = waiter = loop.waiter()
                self._blocked = True
                try:
                    await loop.wait(waiter)
                finally:
                    self._blocked = False

        async def send(message: Message) -> None:
            try:
                machine.send(message)
            finally:
                self._pump()

        try:
            exc: BaseException | None = None
            try:
                await self._app(machine.scope, receive, send)
            except Exception as error:
                exc = error
            status = machine.status
            machine.app_finished(exc)
            if not self._pump() and exc is not None and status == "stopped":
                logger.error("Exception in 'lifespan' protocol", exc_info=exc)
        finally:  # also when cancelled
            self.done = True
            loop.changed()

    def _pump(self) -> bool:
        """Route the machine's events; True if any was seen."""
        events = self.machine.pop_events()
        for event in events:
            if isinstance(event, LifespanReadable):
                self.loop.wake(self._reader)
            else:
                self.failure = report_lifespan(event, self._mode) or self.failure
        if events:
            self.loop.changed()
        return bool(events)


class ServerOptions(TypedDict, total=False):
    """The keyword options of ``Server`` and ``serve()``, the same in every driver."""

    host: str
    port: int
    uds: str | None
    sock: socket.socket | None
    ssl: ssl_module.SSLContext | None
    config: Config | None
    lifespan: LifespanMode
    backlog: int
    access_log: bool
    tls_server_cert: str | None
    lifespan_timeout: float
    signals: tuple[int, ...]


class ServerBase(Generic[W]):
    """Listening sockets, connections, lifespan and graceful shutdown, whatever the loop.

    ``sock`` (an already-bound listening socket, e.g. shared by worker processes) wins over
    ``uds``, which wins over ``host``/``port``.  ``ssl`` gets its ALPN set to what the core
    speaks (``ALPN_PROTOCOLS``).  ``tls_server_cert`` is the PEM for the ``tls`` extension's
    ``server_cert``: an ``SSLContext`` cannot tell it.  ``lifespan_timeout`` bounds each
    lifespan phase (LIFE-14), as ``Config`` has no field for it yet.  ``signals`` stop the server
    when ``serve()`` has no ``shutdown_trigger`` (a second one forces it); they are installed only
    in the main thread.

    A driver subclass implements ``new_loop()``, ``force_close()``, ``cancel_apps()`` and
    ``serve_until()``, which runs inside ``running()`` and ends with ``drain()``.
    """

    def __init__(
        self,
        app: Callable[..., Any],
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        uds: str | None = None,
        sock: socket.socket | None = None,
        ssl: ssl_module.SSLContext | None = None,
        config: Config | None = None,
        lifespan: LifespanMode = "auto",
        backlog: int = 2048,
        access_log: bool = False,
        tls_server_cert: str | None = None,
        lifespan_timeout: float = 60.0,
        signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM),
    ) -> None:
        if lifespan not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be 'auto', 'on' or 'off', not {lifespan!r}")
        self.app = asgi3(app)
        self.config = config if config is not None else Config()
        self.access_log = access_log
        self.tls_server_cert = tls_server_cert
        self.lifespan_mode: LifespanMode = lifespan
        self.lifespan_timeout = lifespan_timeout
        self.backlog = backlog
        self.signals = signals
        self.ssl = ssl
        if ssl is not None:
            ssl.set_alpn_protocols(ALPN_PROTOCOLS)
        self.state: dict[str, Any] | None = None
        self.connections: set[DriverConnection[W]] = set()
        self.apps = 0  # app tasks running (they may outlive their connection)
        self.stopping = False  # drain() has begun
        self.addresses: list[Any] = []  # getsockname() of each listening socket, once started
        self.loop = self.new_loop()
        self._bind = (host, port, uds, sock)
        self._started = False
        self._stop = False

    @classmethod
    async def serve_app(
        cls,
        app: Callable[..., Any],
        *,
        shutdown_trigger: ShutdownTrigger | None = None,
        ready: Callable[[Any], object] | None = None,
        **options: Unpack[ServerOptions],
    ) -> None:
        """Serve ``app`` until a signal in ``signals`` or ``shutdown_trigger``; ``options``
        are the server's.  ``ready(server)`` is called once connections are accepted, e.g. to
        read ``server.port``.  Each driver's ``serve()`` is this."""
        await cls(app, **options).serve(shutdown_trigger, ready)

    async def serve(
        self,
        shutdown_trigger: ShutdownTrigger | None = None,
        ready: Callable[[Any], object] | None = None,
    ) -> None:
        """Serve until ``shutdown_trigger`` completes (default: a signal in ``signals``) or
        ``shutdown()`` is called; ``ready(self)`` is called once connections are accepted.
        Raises ``LifespanStartupError`` if startup failed."""
        self.loop.bind()
        watch = None
        if shutdown_trigger is not None:
            trigger = shutdown_trigger

            async def watch() -> None:  # the driver runs it as a task once serving
                try:
                    await (trigger() if callable(trigger) else trigger)
                except Exception as error:
                    logger.error("The shutdown trigger failed", exc_info=error)
                self.shutdown()

        await self.serve_until(watch, ready)

    async def serve_until(
        self,
        watch_trigger: TriggerWatch | None,
        ready: Callable[[Any], object] | None,
    ) -> None:
        """The driver's part of ``serve()``: without ``watch_trigger``, install the signal
        handlers; with it, run it as a task while serving."""
        raise NotImplementedError

    def new_loop(self) -> Loop[W]:
        raise NotImplementedError

    def force_close(self) -> None:
        """Abort every connection and cancel every app task now (a second Ctrl+C)."""
        raise NotImplementedError

    def cancel_apps(self) -> None:
        raise NotImplementedError

    def apps_running(self) -> bool:
        return self.apps > 0

    def app_ended(self) -> None:
        """Called in the app's task as ``run_app`` ends (before ``loop.changed()``)."""

    @property
    def port(self) -> int | None:
        """The bound TCP port (useful with ``port=0``), once started."""
        for address in self.addresses:
            if isinstance(address, tuple):
                return int(address[1])
        return None

    async def wait_started(self) -> None:
        """Return once the server accepts connections (after lifespan startup)."""
        await self.loop.wait_until(lambda: self._started)

    def shutdown(self) -> None:
        """Begin a graceful shutdown; ``serve()`` returns once it is complete."""
        self._stop = True
        self.loop.changed()

    def signal_received(self) -> None:
        """SIGINT or SIGTERM: the first stops gracefully, the second closes everything now."""
        if self.stopping:
            logger.warning("Second signal: closing every connection now.")
            self.force_close()
        self.shutdown()

    @contextlib.asynccontextmanager
    async def running(self, lifespan: LifespanRunner[W] | None) -> AsyncIterator[socket.socket]:
        """Lifespan startup, then the listening socket; on exit, lifespan shutdown (even if
        binding failed) and the removal of a unix socket we made."""
        if lifespan is not None:
            self.state = await lifespan.startup()
        host, port, uds, sock = self._bind
        try:
            if sock is None:
                sock = bind_socket(host, port, uds, self.backlog)
                logger.info("Serving on %s", socket_url(sock, self.ssl is not None))
            else:
                uds = None  # not ours to remove
            self.addresses = [sock.getsockname()]
            if self.config.proxy_protocol:  # else "empty reply" puzzles whoever tries it directly
                logger.info("Every connection must begin with a PROXY protocol header; "
                            "connections without one are dropped")
            yield sock
        finally:
            try:
                if lifespan is not None:
                    await lifespan.shutdown()
            finally:  # also when serve() itself is cancelled
                if uds is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(uds)

    async def read_proxy_header(
        self, recv: Callable[[int], Awaitable[bytes]]
    ) -> ProxyHeader | None:
        """The PROXY protocol header in front of a TLS handshake (the core reads it itself on
        plain connections), read ``recv(n)`` by ``recv(n)`` so that no byte of the handshake
        goes with it; None if it is invalid, cut short or not whole within ``head_timeout``:
        the driver then drops the connection unanswered."""
        found: list[ProxyHeader] = []

        async def read() -> None:
            data = b""
            while (parsed := parse_proxy_header(data)) is None:
                chunk = await recv(proxy_header_wants(data))
                if not chunk:
                    return
                data += chunk
            found.append(parsed[0])

        with contextlib.suppress(ProxyHeaderError, OSError):
            await self.loop.run_until(read, self.loop.time() + self.config.head_timeout)
        return found[0] if found else None

    async def accept_until_stopped(self, ready: Callable[[Any], object] | None) -> None:
        """Mark the server started, call ``ready(self)``, and wait for ``shutdown()``."""
        self._started = True
        self.loop.changed()
        if ready is not None:
            ready(self)
        await self.loop.wait_until(lambda: self._stop)

    async def drain(self) -> None:
        """Close every connection gracefully, bounded by the core's shutdown deadline."""
        logger.info("Shutting down")
        self.stopping = True
        loop = self.loop
        deadline = loop.time() + self.config.shutdown_timeout  # the core's own deadline
        for connection in list(self.connections):
            connection.shutdown()
        if not await loop.wait_until(lambda: not self.connections, deadline + SHUTDOWN_SLACK):
            self.force_close()
        # Apps may still run a little after their connection closed; then they are cancelled.
        if not await loop.wait_until(lambda: not self.apps_running(), deadline):
            self.cancel_apps()
            await loop.wait_until(lambda: not self.apps_running(), loop.time() + SHUTDOWN_SLACK)

