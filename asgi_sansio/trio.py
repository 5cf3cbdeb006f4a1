"""The trio driver: sockets, tasks and a clock around the sans-IO core.

It makes no protocol decision.  A connection task runs a reader (paused while the core does not
``wants_read``), a writer, and one timer: a cancel scope whose deadline ``flush()`` lowers to
``get_timer()``.  App tasks live in the connection's nursery, outside those three, so they may
outlive the transport; an idle one waits for the connection's next stream, as a task spawned per
request would cost as much as the rest of the driver.  Plain sockets are read and written
directly (no trip through trio's scheduler when the socket is ready); TLS uses ``trio.SSLStream``.

Output leaves in the core's order from one writer at a time.  ``flush()`` queues the connection
for the server's flusher task, which writes every queued connection's bytes once the tasks
scheduled with it have stepped (as asyncio writes once per loop iteration): one wake-up of the
peer per batch, not per response, which was a tenth of the server's CPU.  What the socket does
not take goes to the writer task, which drains the core until it is empty; the app's ``send()``
waits while output is queued behind it or more than ``Config.output_high_water`` is in flight.
Routing, ``receive``/``send``, lifespan and the shutdown order are ``_serving``'s, shared with
the asyncio driver.

Start it with ``await serve(app)``, or, to learn the bound port and stop it from code::

    server = Server(app, port=0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.serve, trio.Event().wait)
        await server.wait_started()
        ...  # server.port
        server.shutdown()
"""

from __future__ import annotations

import errno
import functools
import math
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import Context
from typing import Any

import outcome
import trio

from . import _serving as shared
from ._serving import LifespanStartupError, TriggerWatch, logger

__all__ = ["LifespanStartupError", "Server", "run", "serve"]

_READ_SIZE = 65536
# As asyncio's default ssl_handshake_timeout: a client that never finishes its handshake.
_HANDSHAKE_TIMEOUT = 60.0
# The peer or the transport is gone: plain sockets raise OSError, TLS streams trio's errors.
_GONE = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)
# accept() errors that mean "overloaded, try again soon" (as trio.serve_listeners).
_OVERLOADED = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_Stream = shared.DriverStream[trio.Event]


class _TrioLoop(shared.Loop[trio.Event]):
    def bind(self) -> None:
        self.time = trio.lowlevel.current_clock().current_time  # trio.current_time(), shorter

    def waiter(self) -> trio.Event:
        return trio.Event()

    async def wait(self, waiter: trio.Event) -> None:
        await waiter.wait()

    def wake(self, waiter: trio.Event | None) -> None:
        if waiter is not None:
            waiter.set()

    async def run_until(self, work: Callable[[], Awaitable[None]], deadline: float) -> None:
        with trio.move_on_at(deadline):
            await work()


def _close(sock: socket.socket) -> None:
    trio.lowlevel.notify_closing(sock)  # wakes its waiters with ClosedResourceError
    sock.close()


class _Connection(shared.DriverConnection[trio.Event]):
    """One accepted connection: reader, writer and timer, and one task per stream's app."""

    server: Server

    def __init__(
        self, server: Server, sock: socket.socket, tls: trio.SSLStream[trio.SocketStream] | None
    ) -> None:
        super().__init__(server)
        self._sock = sock
        self._tls = tls  # None on a plain socket, which is read and written right here
        self._high_water = server.config.output_high_water
        self._closing = False  # the core closed the connection: write what is left, then close
        self._resume: trio.Event | None = None  # set when the paused reader may read again
        self._wanted = trio.Event()  # set when the idle writer task has work (again: harmless)
        self._writing = False  # the writer role is taken: the writer task writes _out
        self._out = b""
        self._pending: list[bytes] = []  # taken from the core, for the flusher to write
        self._pending_size = 0
        self._flush_due = False  # flush_soon() asked: the flusher flushes first
        self.queued = False  # in the server's flusher list
        self._timer = trio.CancelScope()  # its deadline is the core's next timer
        self._timer_at = math.inf  # that deadline, without reading the scope's property
        self._io = trio.CancelScope()
        self._idle: list[trio.lowlevel.Task] = []  # app tasks waiting for the next stream

    async def run(self, peer: Any, local: Any) -> None:
        async with trio.open_nursery() as apps:
            self._apps = apps
            with self._io:
                async with trio.open_nursery() as io:
                    io.start_soon(self._read)
                    io.start_soon(self._write)
                    self.open(peer, local, self._tls)
                    await self._keep_time()
            while self._idle:  # let them go: no stream will start again
                trio.lowlevel.reschedule(self._idle.pop(), outcome.Value(None))

    def flush(self) -> None:
        """Act on everything the core queued: events, output, reading, the timer."""
        conn = self.conn
        self.deferred = 0
        events = conn.pop_events()
        if events and self.route(events):
            self._closing = True
        if self._writing:  # hold send() until the writer has taken what the core queued
            self.output_blocked = True
        else:
            data = conn.data_to_send()
            if data:
                if not self.queued:
                    self.server.flush_later(self)
                self._pending.append(data)
                self._pending_size += len(data)
            if self._closing or self._pending_size > self._high_water:
                self.write_pending()  # closing: the writer closes the transport after this
            if self._writing or self._closing:
                self._wanted.set()
        if self._resume is not None and conn.wants_read:
            self._resume.set()
            self._resume = None
        deadline = conn.get_timer()  # a later one is found when this one fires
        if deadline is not None and deadline < self._timer_at:
            self._timer_at = self._timer.deadline = deadline

    def flush_soon(self) -> None:
        self._flush_due = True
        if not self.queued:
            self.server.flush_later(self)

    def write_pending(self) -> None:
        """Flush if ``flush_soon()`` asked, then write what ``flush()`` queued, as far as the
        socket takes it; the writer task gets the rest."""
        if self._flush_due:
            self._flush_due = False
            self.flush()
        if self._writing or not self._pending:
            return
        pending = self._pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        self._pending, self._pending_size = [], 0
        try:  # TLS output all goes through the writer task
            sent = 0 if self._tls is not None else self._sock.send(data)
        except OSError:
            sent = 0  # the writer finds the failure
        if sent < len(data):  # take the writer role for the rest
            self._writing = True
            self._out = data[sent:] if sent else data
            self.output_blocked = len(self._out) > self._high_water
            self._wanted.set()

    async def _read(self) -> None:
        conn, sock, tls, now = self.conn, self._sock, self._tls, self.loop.time
        fd = sock.fileno()
        full = True  # the last read filled the buffer: more may be there at once
        while True:
            if not conn.wants_read:
                self._resume = resume = trio.Event()
                await resume.wait()
                continue
            try:
                if tls is not None:
                    data = bytes(await tls.receive_some(_READ_SIZE))  # bytes already: no copy
                else:  # a plain socket is read right here, without a coroutine per read
                    if full:
                        await trio.lowlevel.checkpoint()  # let the other tasks run first
                    else:  # after a short read the peer usually waits for us: wait, then recv()
                        await trio.lowlevel.wait_readable(fd)
                    data = sock.recv(_READ_SIZE)
            except BlockingIOError:
                full = False
                continue
            except _GONE:
                data = b""  # reset by the peer, or a broken TLS stream: as good as gone
            conn.receive_data(data, now())
            self.flush()
            if not data:
                return
            full = len(data) == _READ_SIZE

    async def _write(self) -> None:
        """The only task that waits to write: it has the role from ``flush()`` until the core
        has nothing more to send."""
        conn, sock, tls = self.conn, self._sock, self._tls
        try:
            while True:
                if not self._writing:
                    if self._closing:
                        return
                    self._wanted = wanted = trio.Event()
                    await wanted.wait()
                    continue
                if tls is not None:
                    await tls.send_all(self._out)
                else:
                    view = memoryview(self._out)
                    while view:
                        try:
                            view = view[sock.send(view) :]
                        except BlockingIOError:
                            await trio.lowlevel.wait_writable(sock)
                blocked = self.output_blocked
                self._out = conn.data_to_send()
                self._writing = bool(self._out)
                self.output_blocked = len(self._out) > self._high_water
                if blocked and not self.output_blocked:
                    self.wake_streams(readers=False)
        except _GONE:
            pass  # the peer is gone
        finally:
            _close(sock)  # as aclose() of an https_compatible SSLStream: no close_notify
            self._io.cancel()  # the reader and the timer
            self.gone()

    async def _keep_time(self) -> None:
        while True:
            with self._timer:
                await trio.sleep_forever()
            self._timer, self._timer_at = trio.CancelScope(), math.inf
            self.conn.handle_timer(self.loop.time())
            self.flush()

    def abort(self) -> None:
        self._io.cancel()

    def start_app(self, sid: int, stream: _Stream, scope: dict[str, Any], context: Context) -> None:
        job = self.run_app(sid, stream, scope)
        if self._idle:
            task = self._idle.pop()
            # trio runs each step of a task in ``task.context``: from its next step on, this
            # task is what a new one started in ``context`` would be.
            task.context = context
            trio.lowlevel.reschedule(task, outcome.Value(job))
        else:  # start_soon() copies the current context: make that ``context``
            context.run(self._apps.start_soon, self._work, job)

    async def _work(self, job: Coroutine[Any, Any, None] | None) -> None:
        """An app task: run the app, then wait for this connection's next stream."""
        task = trio.lowlevel.current_task()

        def abort(_: Any) -> trio.lowlevel.Abort:
            self._idle.remove(task)
            return trio.lowlevel.Abort.SUCCEEDED

        while job is not None:
            await job
            if self.lost:
                return  # the transport is closed: no stream will start
            self._idle.append(task)
            job = await trio.lowlevel.wait_task_rescheduled(abort)


class _Lifespan(shared.LifespanRunner[trio.Event]):
    def __init__(self, server: Server, nursery: trio.Nursery) -> None:
        super().__init__(server)
        self._nursery, self._scope = nursery, trio.CancelScope()

    def spawn(self) -> None:
        self._nursery.start_soon(self._run)

    async def _run(self) -> None:
        with self._scope:
            await self.main()

    def cancel(self) -> None:
        self._scope.cancel()


class Server(shared.ServerBase[trio.Event]):
    """Listening sockets, connections, lifespan and graceful shutdown in one trio run
    (the options are ``ServerBase``'s)."""

    _handlers: trio.CancelScope
    _flushing: list[_Connection]
    _flusher: trio.lowlevel.Task | None = None  # parked until a connection has bytes queued

    def flush_later(self, connection: _Connection) -> None:
        connection.queued = True
        self._flushing.append(connection)
        if self._flusher is not None:
            trio.lowlevel.reschedule(self._flusher)
            self._flusher = None

    async def _flush(self) -> None:
        """The flusher task: write the connections' queued bytes once per scheduler batch."""
        while True:
            if not self._flushing:
                self._flusher = trio.lowlevel.current_task()
                await trio.lowlevel.wait_task_rescheduled(self._stop_flushing)
            flushing, self._flushing = self._flushing, []
            for connection in flushing:
                connection.write_pending()
                connection.queued = False  # not before: its flush() would queue it again

    def _stop_flushing(self, _: Any) -> trio.lowlevel.Abort:
        self._flusher = None
        return trio.lowlevel.Abort.SUCCEEDED

    def new_loop(self) -> shared.Loop[trio.Event]:
        self._handlers = trio.CancelScope()
        self._flushing = []
        return _TrioLoop()

    def cancel_apps(self) -> None:
        self._handlers.cancel()  # every connection's transport and apps

    force_close = cancel_apps

    async def serve_until(
        self, watch_trigger: TriggerWatch | None, ready: Callable[[Any], object] | None
    ) -> None:
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:  # signals, trigger, lifespan app, accepting
            nursery.start_soon(self._flush)
            try:
                lifespan = None if self.lifespan_mode == "off" else _Lifespan(self, nursery)
                async with self.running(lifespan) as sock:
                    if watch_trigger is None:
                        await nursery.start(self._watch_signals)
                    else:
                        nursery.start_soon(watch_trigger)
                    with self._handlers:
                        async with trio.open_nursery() as handlers:
                            accepting = trio.CancelScope()
                            nursery.start_soon(self._accept, sock, handlers, accepting)
                            await self.accept_until_stopped(ready)
                            accepting.cancel()
                            await self.drain()
            except Exception as error:  # raised below, not wrapped in an ExceptionGroup
                failure = error
            nursery.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _accept(
        self, sock: socket.socket, handlers: trio.Nursery, scope: trio.CancelScope
    ) -> None:
        """Accept until ``scope`` is cancelled, then close the listening socket."""
        with scope:
            try:
                while True:
                    try:
                        client, _ = sock.accept()
                    except BlockingIOError:
                        await trio.lowlevel.wait_readable(sock)
                    except OSError as error:
                        if error.errno not in _OVERLOADED:
                            raise
                        logger.error("Cannot accept a connection now: %s", error)
                        await trio.sleep(0.1)  # as trio.serve_listeners: let the system recover
                    else:
                        handlers.start_soon(self._handle, client)
            finally:
                _close(sock)

    async def _handle(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        try:
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            peer, local = sock.getpeername(), sock.getsockname()
        except OSError:  # already reset by the client
            sock.close()
            return
        tls = None
        if self.ssl is not None:
            raw = trio.socket.from_stdlib_socket(sock)
            if self.config.proxy_protocol:  # before the handshake, out of the core's sight
                header = await self.read_proxy_header(raw.recv)
                if header is None:
                    _close(sock)
                    return
                if header.client is not None:
                    peer, local = header.client, header.server
            tls = trio.SSLStream(
                trio.SocketStream(raw), self.ssl, server_side=True, https_compatible=True,
            )
            try:
                with trio.fail_after(_HANDSHAKE_TIMEOUT):
                    await tls.do_handshake()
            except (trio.TooSlowError, trio.BrokenResourceError):
                _close(sock)
                return
        await _Connection(self, sock, tls).run(peer, local)

    async def _watch_signals(self, task_status: trio.TaskStatus[None]) -> None:
        if threading.current_thread() is not threading.main_thread():
            task_status.started()  # signals can only be caught in the main thread
            return
        with trio.open_signal_receiver(*self.signals) as received:
            task_status.started()
            async for _ in received:
                self.signal_received()


serve = Server.serve_app


def run(app: Callable[..., Any], **kwargs: Any) -> None:
    """Blocking ``serve(app, **kwargs)`` in a new trio run."""
    trio.run(functools.partial(serve, app, **kwargs))

