"""The asyncio driver: sockets, tasks and a clock around the sans-IO core.

It makes no protocol decision.  Per connection, an ``asyncio.Protocol`` feeds bytes to one
``ServerConnection`` and then ``flush()``es, as aioquic's ``asyncio/protocol.py`` does: route
the queued events to app tasks, write the queued bytes, map ``wants_read`` to pausing the
transport, and re-arm one timer.  The transport's own buffer is the writer: ``write()`` never
blocks and asyncio writes in order, and ``pause_writing()`` is the high-water signal that holds
the app's ``send()``.  Bytes are handed to it once per loop iteration (or at once past the
high-water mark), so the app tasks that run in one iteration share one syscall.  What is not
about asyncio (routing, the app's ``receive``/``send``, lifespan, the shutdown order) lives in
``_serving`` and is shared with the trio driver.

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
import socket
import sys
from collections.abc import Awaitable, Callable
from contextvars import Context
from typing import Any, cast

from ._proxy import ProxyHeader
from ._serving import (
    DriverConnection,
    DriverStream,
    LifespanRunner,
    LifespanStartupError,
    Loop,
    ServerBase,
    TriggerWatch,
    logger,
)

__all__ = ["LifespanStartupError", "Server", "run", "serve", "use_uvloop"]

Waiter = asyncio.Future[None]


class _AsyncioLoop(Loop[Waiter]):
    def bind(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.time = self._loop.time

    def waiter(self) -> Waiter:
        # The running loop, not the bound one: wait_started() may run before serve() binds.
        return asyncio.get_running_loop().create_future()

    async def wait(self, waiter: Waiter) -> None:
        await waiter

    def wake(self, waiter: Waiter | None) -> None:
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def run_until(self, work: Callable[[], Awaitable[None]], deadline: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(work(), deadline - self.time())


class _HTTPProtocol(DriverConnection[Waiter], asyncio.Protocol):
    """One transport connection and its ``ServerConnection``."""

    server: Server

    def __init__(self, server: Server, proxied: ProxyHeader | None = None) -> None:
        super().__init__(server)
        self._proxied = proxied  # the PROXY header read before the TLS handshake, if any
        self._loop = asyncio.get_running_loop()
        self._closed = False  # the transport is closing or gone: write nothing more
        self._reading = True
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._out: list[bytes] = []  # output held until the end of this loop iteration
        self._out_size = 0
        self._flush_due = False  # flush_soon() asked: _due() is scheduled
        self._high_water = server.config.output_high_water

    # -- transport callbacks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio sets this only for sockets it created: without it, HTTP/2 frames
            # written separately wait ~40 ms behind the client's delayed ACK (Nagle).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer, local = transport.get_extra_info("peername"), transport.get_extra_info("sockname")
        if self._proxied is not None and self._proxied.client is not None:
            peer, local = self._proxied.client, self._proxied.server
        self.open(peer, local, transport.get_extra_info("ssl_object"))

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data, self._loop.time())
        self.flush()

    def eof_received(self) -> None:
        self.conn.receive_data(b"", self._loop.time())
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self.gone()

    def pause_writing(self) -> None:
        self.output_blocked = True

    def resume_writing(self) -> None:
        self.output_blocked = False
        self.wake_streams(readers=False)

    # -- driving the core -----------------------------------------------------------------

    def flush(self) -> None:
        """Act on everything the core queued: events, bytes, reading, the timer."""
        conn = self.conn
        self.deferred = 0
        close = self.route(conn.pop_events())
        if self._closed:
            return
        data = conn.data_to_send()
        if data:
            # Held to the end of this loop iteration, so that every app task that runs in it
            # shares one write (64 WebSocket echoes, ten HTTP/2 streams: one syscall, not ten),
            # unless it is already more than the high-water mark.
            if not self._out and not self._flush_due:  # _due() writes after its flush
                self._loop.call_soon(self._write_out)
            self._out.append(data)
            self._out_size += len(data)
            if self._out_size > self._high_water:
                self._write_out()
        if close:
            self._write_out()
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

    def flush_soon(self) -> None:
        if not self._flush_due:
            self._flush_due = True
            self._loop.call_soon(self._due)

    def _due(self) -> None:
        self.flush()
        self._flush_due = False
        self._write_out()  # this is the end of an iteration already

    def _write_out(self) -> None:
        if self._out and not self._closed:
            out = self._out
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))
        self._out = []
        self._out_size = 0

    def _on_timer(self) -> None:
        self._timer = None
        self.conn.handle_timer(max(self._timer_at, self._loop.time()))
        self.flush()

    def abort(self) -> None:
        if not self.lost:
            self._transport.abort()

    def start_app(
        self, sid: int, stream: DriverStream[Waiter], scope: dict[str, Any], context: Context
    ) -> None:
        # No done callback: the task leaves ``tasks`` itself as run_app ends (app_ended), which
        # spares every request a callback scheduled through the loop (4 % of its instructions).
        if sys.version_info >= (3, 11):
            task = self._loop.create_task(self.run_app(sid, stream, scope), context=context)
        else:  # 3.10: create_task() copies the current context, so make that ``context``
            task = context.run(self._loop.create_task, self.run_app(sid, stream, scope))
        self.server.tasks.add(task)


class _ProxiedTLSListener:
    """Accepts TLS connections behind a PROXY protocol header, which precedes the handshake
    where ``create_server(ssl=...)`` would take it for a broken ClientHello: each accepted
    socket's header is read first (no byte further), then asyncio's TLS takes the socket."""

    def __init__(self, server: Server, sock: socket.socket) -> None:
        self._server = server
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._opening: set[asyncio.Task[None]] = set()
        self._task = self._loop.create_task(self._accept())

    async def _accept(self) -> None:
        while True:
            try:
                client, _ = await self._loop.sock_accept(self._sock)
            except OSError as error:  # out of descriptors or memory: as asyncio's own server
                logger.error("Cannot accept a connection now: %s", error)
                await asyncio.sleep(0.1)
                continue
            client.setblocking(False)
            task = self._loop.create_task(self._open(client))
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)

    async def _open(self, client: socket.socket) -> None:
        loop, server = self._loop, self._server
        try:
            header = await server.read_proxy_header(lambda n: loop.sock_recv(client, n))
            if header is not None:
                await loop.connect_accepted_socket(
                    lambda: _HTTPProtocol(server, header), client, ssl=server.ssl)
                return  # the transport owns the socket now
        except (OSError, asyncio.TimeoutError):  # a failed handshake: ssl.SSLError is an OSError
            pass
        except asyncio.CancelledError:  # the server is closing
            client.close()
            raise
        client.close()

    def close(self) -> None:
        self._task.cancel()
        for task in self._opening:
            task.cancel()
        self._sock.close()


class _Lifespan(LifespanRunner[Waiter]):
    _task: asyncio.Task[None]

    def spawn(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.main())

    def cancel(self) -> None:
        self._task.cancel()


class Server(ServerBase[Waiter]):
    """Listening sockets, connections, lifespan and graceful shutdown on one event loop
    (the options are ``ServerBase``'s)."""

    tasks: set[asyncio.Task[None]]

    def new_loop(self) -> Loop[Waiter]:
        self.tasks = set()
        return _AsyncioLoop()

    def app_ended(self) -> None:
        self.tasks.discard(asyncio.current_task())

    def app_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.loop.changed()

    def apps_running(self) -> bool:
        # The tasks, not the count: a task cancelled before its first step never runs run_app.
        return bool(self.tasks)

    def cancel_apps(self) -> None:
        for task in list(self.tasks):
            # A task cancelled before its first step never reaches app_ended(): this removes it.
            task.add_done_callback(self.app_done)
            task.cancel()

    def force_close(self) -> None:
        for connection in list(self.connections):
            connection.abort()
        self.cancel_apps()

    async def serve_until(
        self,
        watch_trigger: TriggerWatch | None,
        ready: Callable[[Any], object] | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        lifespan = None if self.lifespan_mode == "off" else _Lifespan(self)
        signals: list[int] = []
        try:
            async with self.running(lifespan) as sock:
                create = loop.create_unix_server if sock.family == socket.AF_UNIX else (
                    loop.create_server
                )
                listener: asyncio.Server | _ProxiedTLSListener
                if self.ssl is not None and self.config.proxy_protocol:
                    listener = _ProxiedTLSListener(self, sock)
                else:
                    listener = await create(
                        lambda: _HTTPProtocol(self), sock=sock, ssl=self.ssl,
                        backlog=self.backlog,
                    )
                trigger: asyncio.Task[None] | None = None
                try:
                    if watch_trigger is None:
                        signals = self._install_signals(loop)
                    else:
                        trigger = loop.create_task(watch_trigger())
                    await self.accept_until_stopped(ready)
                finally:
                    listener.close()  # stop accepting; never await wait_closed() (hangs on 3.12+)
                    if trigger is not None:
                        trigger.cancel()
                    await self.drain()
        finally:
            for sig in signals:  # only now: a second signal during the drain forces it
                loop.remove_signal_handler(sig)

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        installed = []
        for sig in self.signals:
            try:
                loop.add_signal_handler(sig, self.signal_received)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                continue
            installed.append(sig)
        return installed


serve = Server.serve_app


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
