"""The asyncio driver: sockets, tasks and a clock around the sans-IO core.

It makes no protocol decision.  Per connection, an ``asyncio.Protocol`` feeds bytes to one
``ServerConnection`` and then ``_flush()``es, as aioquic's ``asyncio/protocol.py`` does: route
the queued events to app tasks, write the queued bytes, map ``wants_read`` to pausing the
transport, and re-arm one timer.  ``Server`` adds listening sockets, lifespan, signals and the
graceful-shutdown order (SRV-14): stop accepting, ``shutdown()`` every connection, wait for them
to close, then ``lifespan.shutdown``.

Start it with ``await serve(app)``, or, to learn the bound port and stop it from code::

    server = Server(app, port=0)
    task = asyncio.create_task(server.serve(shutdown_trigger=asyncio.Event().wait))
    await server.wait_started()
    ...  # server.port
    server.shutdown()
    await task
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl as ssl_module
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from ._config import Config
from ._connection import ServerConnection
from ._errors import ClientDisconnected
from ._events import ConnectionClosed, StreamEnded, StreamReadable, StreamStarted, StreamWritable
from ._lifespan import Lifespan, LifespanReadable
from ._serving import (
    ASGI3App,
    LifespanMode,
    LifespanStartupError,
    Message,
    access_logger,
    asgi3,
    bind_socket,
    logger,
    report_lifespan,
    socket_url,
    tls_info,
)

__all__ = ["LifespanStartupError", "Server", "run", "serve", "use_uvloop"]

# Past the core's own shutdown deadline, how long a closed connection may still flush.
_SHUTDOWN_SLACK = 1.0
ShutdownTrigger = Callable[[], Awaitable[object]] | Awaitable[object]


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class _Stream:
    """The driver's side of one stream: the app task and what it is waiting for."""

    __slots__ = ("ended", "read_waiter", "task", "write_waiter")

    def __init__(self) -> None:
        self.ended = False
        self.read_waiter: asyncio.Future[None] | None = None
        self.write_waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None


class _HTTPProtocol(asyncio.Protocol):
    """One transport connection and its ``ServerConnection``."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._streams: dict[int, _Stream] = {}
        self._closed = False  # the transport is closing or gone: write nothing more
        self._lost = False
        self._reading = True
        self._write_paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    # -- transport callbacks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        server = self._server
        ssl_object = transport.get_extra_info("ssl_object")
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        client: tuple[str, int] | None = None
        local_addr: tuple[str, int | None] | None
        if isinstance(local, str):  # unix socket: no client address (HTTP-SCOPE client)
            local_addr = (local, None)
        else:
            client = (peer[0], peer[1]) if peer else None
            local_addr = (local[0], local[1]) if local else None
        tls = None if ssl_object is None else tls_info(ssl_object, server.tls_server_cert)
        now = self._loop.time()
        self._conn = ServerConnection(
            server.config, now=now, client=client, server=local_addr, tls=tls,
            alpn=None if ssl_object is None else ssl_object.selected_alpn_protocol(),
            state=server.state, wall_offset=time.time() - now,
        )
        self._client_text = f"{client[0]}:{client[1]}" if client else "-"
        server.connections.add(self)
        if server.stopping:
            self._conn.shutdown(now)
        self._flush()

    def data_received(self, data: bytes) -> None:
        self._conn.receive_data(data, self._loop.time())
        self._flush()

    def eof_received(self) -> None:
        self._conn.receive_data(b"", self._loop.time())
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = self._lost = True
        if self._timer is not None:
            self._timer.cancel()
        if not self._conn.closed:
            self._conn.receive_data(b"", self._loop.time())
            self._flush()
        for stream in self._streams.values():
            _wake(stream.read_waiter)
            _wake(stream.write_waiter)
        self._server.connection_gone(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        for stream in self._streams.values():
            _wake(stream.write_waiter)

    # -- driving the core -----------------------------------------------------------------

    def _flush(self) -> None:
        """Act on everything the core queued: events, bytes, reading, the timer."""
        conn = self._conn
        close = False
        for event in conn.pop_events():
            if isinstance(event, StreamStarted):
                self._start(event)
            elif isinstance(event, ConnectionClosed):
                close = True
            else:
                stream = self._streams.get(event.stream_id)
                if stream is None:
                    continue
                if isinstance(event, StreamEnded):
                    stream.ended = True
                if not isinstance(event, StreamWritable):
                    _wake(stream.read_waiter)
                if not isinstance(event, StreamReadable):
                    _wake(stream.write_waiter)
        if self._closed:
            return
        data = conn.data_to_send()
        if data:
            self._transport.write(data)
        if close:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            self._transport.close()
            return
        if conn.wants_read is not self._reading:
            self._reading = not self._reading
            if self._reading:
                self._transport.resume_reading()
            else:
                self._transport.pause_reading()
        # One timer, re-armed only when the deadline moves earlier: a later deadline is found
        # when the current timer fires, so a keep-alive request costs no timer churn.
        deadline = conn.get_timer()
        if deadline is not None and (self._timer is None or deadline < self._timer_at):
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._conn.handle_timer(max(self._timer_at, self._loop.time()))
        self._flush()

    def shutdown(self) -> None:
        if not self._closed:
            self._conn.shutdown(self._loop.time())
            self._flush()

    def abort(self) -> None:
        if not self._lost:
            self._transport.abort()

    # -- app tasks ------------------------------------------------------------------------

    def _start(self, event: StreamStarted) -> None:
        stream = _Stream()
        self._streams[event.stream_id] = stream
        task = self._loop.create_task(self._run_app(event.stream_id, stream, event.scope))
        stream.task = task
        self._server.tasks.add(task)

    async def _run_app(self, sid: int, stream: _Stream, scope: dict[str, Any]) -> None:
        conn, loop, server = self._conn, self._loop, self._server

        async def receive() -> Message:
            while True:
                message = conn.receive(sid)
                self._flush()
                if message is not None:
                    return message
                stream.read_waiter = loop.create_future()
                await stream.read_waiter

        async def send(message: Message) -> None:
            try:
                conn.send(sid, message, loop.time())
            finally:
                self._flush()
            if access_log and message["type"] == "http.response.start":
                target = scope["raw_path"]
                if scope["query_string"]:
                    target += b"?" + scope["query_string"]
                access_logger.info(
                    '%s - "%s %s HTTP/%s" %d', self._client_text, scope["method"],
                    target.decode("latin-1"), scope["http_version"], message["status"],
                )
            while (
                (self._write_paused or not conn.writable(sid)) and not stream.ended
                and not self._lost
            ):
                stream.write_waiter = loop.create_future()
                await stream.write_waiter

        access_log = server.access_log
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
            conn.app_finished(sid, loop.time(), exc)
            self._flush()
            del self._streams[sid]
            if stream.task is not None:
                server.tasks.discard(stream.task)


class _LifespanRunner:
    """Runs the app's lifespan scope against the pure ``Lifespan`` machine."""

    def __init__(self, app: ASGI3App, mode: LifespanMode, timeout: float) -> None:
        self.machine = Lifespan()
        self._app = app
        self._mode = mode
        self._timeout = timeout
        self._changed = asyncio.Event()
        self._reader: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self.failure: str | None = None  # why startup failed

    async def startup(self) -> dict[str, Any] | None:
        """Run startup; return the state for request scopes (None without lifespan)."""
        machine = self.machine
        self._task = asyncio.get_running_loop().create_task(self._main())
        machine.startup()
        self._pump()
        await self._wait(("idle", "starting"), "startup")
        if machine.status == "started":
            return machine.state
        if machine.status == "unsupported" and self._mode == "auto":
            return None
        await self._stop_task()
        raise LifespanStartupError(self.failure or "lifespan startup failed")

    async def shutdown(self) -> None:
        if self.machine.shutdown():
            self._pump()
            await self._wait(("stopping",), "shutdown")
        await self._stop_task()

    async def _wait(self, statuses: tuple[str, ...], phase: str) -> None:
        async def settled() -> None:
            while self.machine.status in statuses:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(settled(), self._timeout)
        except asyncio.TimeoutError:
            self.failure = f"lifespan {phase} timed out after {self._timeout} s"
            logger.error("%s", self.failure)

    async def _stop_task(self) -> None:
        """Let an app that answered return by itself, then cancel it (it may wait forever)."""
        task = self._task
        if task is not None and not task.done():
            blocked = self._reader is not None and not self._reader.done()
            if not blocked:  # a blocked receive() would wait forever: no need to give it time
                await asyncio.wait({task}, timeout=1.0)
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)

    async def _main(self) -> None:
        machine = self.machine
        loop = asyncio.get_running_loop()

        async def receive() -> Message:
            while True:
                message = machine.receive()
                self._pump()
                if message is not None:
                    return message
                self._reader = loop.create_future()
                await self._reader

        async def send(message: Message) -> None:
            try:
                machine.send(message)
            finally:
                self._pump()

        exc: BaseException | None = None
        try:
            await self._app(machine.scope, receive, send)
        except asyncio.CancelledError:
            return
        except Exception as error:
            exc = error
        status = machine.status
        machine.app_finished(exc)
        if not self._pump() and exc is not None and status == "stopped":
            logger.error("Exception in 'lifespan' protocol", exc_info=exc)

    def _pump(self) -> bool:
        """Route the machine's events; True if any was seen."""
        events = self.machine.pop_events()
        for event in events:
            if isinstance(event, LifespanReadable):
                _wake(self._reader)
            else:
                self.failure = report_lifespan(event, self._mode) or self.failure
        if events:
            self._changed.set()
        return bool(events)


class Server:
    """Listening sockets, connections, lifespan and graceful shutdown for one event loop.

    ``sock`` (an already-bound listening socket, e.g. shared by worker processes) wins over
    ``uds``, which wins over ``host``/``port``.  ``ssl`` gets its ALPN set to what the core
    speaks (``http/1.1`` for now).  ``tls_server_cert`` is the PEM for the ``tls`` extension's
    ``server_cert``: an ``SSLContext`` cannot tell it.  ``lifespan_timeout`` bounds each
    lifespan phase (LIFE-14), as ``Config`` has no field for it yet.
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
    ) -> None:
        if lifespan not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be 'auto', 'on' or 'off', not {lifespan!r}")
        self.app = asgi3(app)
        self.config = config if config is not None else Config()
        self.access_log = access_log
        self.tls_server_cert = tls_server_cert
        self.state: dict[str, Any] | None = None
        self.connections: set[_HTTPProtocol] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False
        self.addresses: list[Any] = []  # getsockname() of each listening socket, once started
        self._bind = (host, port, uds, sock, backlog)
        self._ssl = ssl
        if ssl is not None:
            ssl.set_alpn_protocols(["http/1.1"])  # h2 once the core speaks it
        self._lifespan_mode: LifespanMode = lifespan
        self._lifespan_timeout = lifespan_timeout
        self._started = asyncio.Event()
        self._stop = asyncio.Event()
        self._all_closed = asyncio.Event()

    @property
    def port(self) -> int | None:
        """The bound TCP port (useful with ``port=0``), once started."""
        for address in self.addresses:
            if isinstance(address, tuple):
                return int(address[1])
        return None

    async def wait_started(self) -> None:
        """Return once the server accepts connections (after lifespan startup)."""
        await self._started.wait()

    def shutdown(self) -> None:
        """Begin a graceful shutdown; ``serve()`` returns once it is complete."""
        self._stop.set()

    def force_close(self) -> None:
        """Abort every connection and cancel every app task now (a second Ctrl+C)."""
        for proto in list(self.connections):
            proto.abort()
        for task in list(self.tasks):
            task.cancel()

    def connection_gone(self, proto: _HTTPProtocol) -> None:
        self.connections.discard(proto)
        if not self.connections:
            self._all_closed.set()

    async def serve(
        self,
        shutdown_trigger: ShutdownTrigger | None = None,
        ready: Callable[[Server], object] | None = None,
    ) -> None:
        """Serve until ``shutdown_trigger`` completes (default: SIGINT or SIGTERM) or
        ``shutdown()`` is called; ``ready(self)`` is called once connections are accepted.
        Raises ``LifespanStartupError`` if startup failed."""
        loop = asyncio.get_running_loop()
        lifespan = None
        if self._lifespan_mode != "off":
            lifespan = _LifespanRunner(self.app, self._lifespan_mode, self._lifespan_timeout)
            self.state = await lifespan.startup()
        host, port, uds, sock, backlog = self._bind
        own_uds = uds if sock is None else None
        signals: list[signal.Signals] = []
        try:
            if sock is None:
                sock = bind_socket(host, port, uds, backlog)
                logger.info("Serving on %s", socket_url(sock, self._ssl is not None))
            if sock.family == socket.AF_UNIX:
                listener = await loop.create_unix_server(
                    lambda: _HTTPProtocol(self), sock=sock, ssl=self._ssl, backlog=backlog
                )
            else:
                listener = await loop.create_server(
                    lambda: _HTTPProtocol(self), sock=sock, ssl=self._ssl, backlog=backlog
                )
            self.addresses = [sock.getsockname()]
            trigger: asyncio.Future[object] | None = None
            try:
                if shutdown_trigger is None:
                    signals = self._install_signals(loop)
                else:
                    trigger = asyncio.ensure_future(
                        shutdown_trigger() if callable(shutdown_trigger) else shutdown_trigger
                    )
                    trigger.add_done_callback(self._triggered)
                self._started.set()
                if ready is not None:
                    ready(self)
                await self._stop.wait()
            finally:
                listener.close()  # stop accepting; never await wait_closed() (hangs on 3.12+)
                if trigger is not None:
                    trigger.cancel()
                await self._drain(loop)
        finally:
            if lifespan is not None:
                await lifespan.shutdown()
            for sig in signals:  # only now: a second signal during the drain forces it
                loop.remove_signal_handler(sig)
            if own_uds is not None:
                with contextlib.suppress(OSError):
                    os.unlink(own_uds)

    def _triggered(self, trigger: asyncio.Future[object]) -> None:
        if not trigger.cancelled() and trigger.exception() is not None:
            logger.error("The shutdown trigger failed", exc_info=trigger.exception())
        self.shutdown()

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[signal.Signals]:
        def on_signal() -> None:
            if self.stopping:
                logger.warning("Second signal: closing every connection now.")
                self.force_close()
            self.shutdown()

        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                continue
            installed.append(sig)
        return installed

    async def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close every connection gracefully, bounded by the core's shutdown deadline."""
        logger.info("Shutting down")
        self.stopping = True
        deadline = loop.time() + self.config.shutdown_timeout  # the core's own deadline
        for proto in list(self.connections):
            proto.shutdown()
        if self.connections:
            self._all_closed.clear()
            try:
                timeout = deadline + _SHUTDOWN_SLACK - loop.time()
                await asyncio.wait_for(self._all_closed.wait(), timeout)
            except asyncio.TimeoutError:
                self.force_close()
        # Apps may still run a little after their connection closed; then they are cancelled.
        if self.tasks:
            left = max(0.0, deadline - loop.time())
            _, pending = await asyncio.wait(set(self.tasks), timeout=left)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=_SHUTDOWN_SLACK)


async def serve(
    app: Callable[..., Any],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    uds: str | None = None,
    sock: socket.socket | None = None,
    ssl: ssl_module.SSLContext | None = None,
    config: Config | None = None,
    lifespan: LifespanMode = "auto",
    shutdown_trigger: ShutdownTrigger | None = None,
    ready: Callable[[Server], object] | None = None,
    backlog: int = 2048,
    access_log: bool = False,
    tls_server_cert: str | None = None,
    lifespan_timeout: float = 60.0,
) -> None:
    """Serve ``app`` until SIGINT/SIGTERM or ``shutdown_trigger``; see ``Server``.

    ``ready(server)`` is called once connections are accepted, e.g. to read ``server.port``.
    """
    server = Server(
        app, host=host, port=port, uds=uds, sock=sock, ssl=ssl, config=config,
        lifespan=lifespan, backlog=backlog, access_log=access_log, tls_server_cert=tls_server_cert,
        lifespan_timeout=lifespan_timeout,
    )
    await server.serve(shutdown_trigger, ready)


def use_uvloop() -> bool:
    """Make new event loops uvloop's, if it is installed; call before the loop starts."""
    try:
        import uvloop  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        logger.warning("uvloop is not installed; using the asyncio event loop")
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def run(app: Callable[..., Any], *, uvloop: bool = False, **kwargs: Any) -> None:
    """Blocking ``serve(app, **kwargs)``, on uvloop if asked (the loop is chosen before it
    starts, which is why ``serve()`` itself cannot offer this)."""
    if uvloop:
        use_uvloop()
    asyncio.run(serve(app, **kwargs))
