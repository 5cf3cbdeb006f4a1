"""The in-memory driver behind ``asgi_sansio.testing``: app tasks, a synthetic clock, invariants.

It plays the part ``_serving.DriverConnection`` plays for sockets, with the transport replaced by
byte buffers and the clock by ``AsyncAppHarness.now``.  Whatever the core queues is routed here
and checked against its contract on the way (``_Conn.pump``), so a broken invariant is reported
with the call that broke it rather than as a strange symptom later.

"Settled" means no task of the event loop can run without outside help (more client bytes, the
clock moving): on CPython's asyncio loops this is read from the loop's ready queue and timer heap;
on other loops (uvloop) it is approximated by many turns of the loop without any core activity.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .._config import Config
from .._connection import ServerConnection
from .._errors import AppMisuseError, ClientDisconnected, DriverMisuseError
from .._events import (
    ConnectionClosed,
    Event,
    StreamEnded,
    StreamReadable,
    StreamStarted,
    StreamWritable,
)
from .._lifespan import (
    Lifespan,
    LifespanErrored,
    LifespanReadable,
    ShutdownFailed,
    StartupFailed,
)

Message = dict[str, Any]
ASGIApp = Callable[..., Awaitable[Any]]

# Turns of a loop we cannot look into (uvloop) without core activity that count as settled.
_IDLE_ROUNDS = 50
# Turns after which a loop that never goes quiet is reported (an app spinning on sleep(0)).
_MAX_ROUNDS = 100_000


class HarnessError(AssertionError):
    """Something a test should fail on.  An ``AssertionError``, so pytest and hypothesis treat
    it as a failed check, and hypothesis shrinks the input that caused it."""


class InvariantError(HarnessError):
    """The wire layer broke its contract: an unexpected exception from the core, a stream that
    ended twice or never, output an independent client cannot decode.  A bug in asgi-sansio
    (please report it with the input), never in your app."""


class AppError(HarnessError):
    """Your app raised, or broke the ASGI spec (``AppMisuseError``).  The server answered as a
    server must (a 500 or an aborted response); ``errors`` holds what the app raised, the first
    is also ``__cause__``, and the message carries every traceback."""

    def __init__(self, errors: list[BaseException]) -> None:
        self.errors = list(errors)
        text = "".join(
            "".join(traceback.format_exception(type(e), e, e.__traceback__)) for e in errors
        )
        super().__init__(f"the app raised {len(errors)} exception(s):\n{text}")


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose ``time()`` is the harness's synthetic clock, so ``asyncio.sleep``
    and timeouts inside the app wait for ``advance()``, never for real time."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__()
        self._clock = clock

    def time(self) -> float:
        return self._clock()


def _loop_quiet(loop: asyncio.AbstractEventLoop) -> bool | None:
    """True if nothing in ``loop`` can run now; None if this loop cannot tell (not CPython's)."""
    ready = getattr(loop, "_ready", None)
    scheduled = getattr(loop, "_scheduled", None)
    if ready is None or scheduled is None:
        return None
    if ready:
        return False
    due = loop.time() + float(getattr(loop, "_clock_resolution", 0.0))
    return not any(h.when() < due and not h.cancelled() for h in scheduled)


def next_loop_timer(loop: asyncio.AbstractEventLoop) -> float | None:
    """When the loop's earliest live timer (an app's ``asyncio.sleep``) is due, if it can tell."""
    scheduled = getattr(loop, "_scheduled", None) or []
    return min((h.when() for h in scheduled if not h.cancelled()), default=None)


@dataclass
class Response:
    """One HTTP response as an independent client (h11 or h2) decoded it.

    Header names are lowercase bytes, in the order sent; ``informational`` lists the 1xx
    statuses that came first (``100 Continue``, ``103 Early Hints``).
    """

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    http_version: str = "1.1"
    informational: list[int] = field(default_factory=list)

    def header(self, name: str | bytes) -> bytes | None:
        """The first value of header ``name`` (any case), or None."""
        key = (name.encode("latin-1") if isinstance(name, str) else name).lower()
        return next((v for n, v in self.headers if n == key), None)


class _Stream:
    __slots__ = ("ended", "reader", "task", "writer")

    def __init__(self) -> None:
        self.ended = False
        self.reader: asyncio.Future[None] | None = None
        self.writer: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class Engine:
    """What the public harness classes share: the app, the clock, connections and findings."""

    def __init__(
        self, app: ASGIApp, config: Config | None, raise_app_errors: bool, wall_clock: float
    ) -> None:
        self.app = app
        self.config = config if config is not None else Config()
        self.raise_app_errors = raise_app_errors
        self.wall_clock = wall_clock
        self.now = 0.0
        self.state: dict[str, Any] | None = None
        self.app_errors: list[BaseException] = []
        self.violations: list[str] = []
        self.conns: list[Conn] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.activity = 0
        self._seen: set[int] = set()  # ids of exceptions already reported

    # -- findings --------------------------------------------------------------------------------

    def violate(self, text: str, exc: BaseException | None = None) -> None:
        if exc is not None:
            self._seen.add(id(exc))
            text += "\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.violations.append(text)

    def app_failed(self, exc: BaseException) -> None:
        if id(exc) not in self._seen:
            self._seen.add(id(exc))
            self.app_errors.append(exc)

    def check(self) -> None:
        """Raise what was found since the last check (invariants first), and forget it."""
        if self.violations:
            found, self.violations = self.violations, []
            self.app_errors = []
            raise InvariantError("\n\n".join(found))
        if self.app_errors and self.raise_app_errors:
            errors, self.app_errors = self.app_errors, []
            raise AppError(errors) from errors[0]

    # -- running -----------------------------------------------------------------------------------

    def spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def settle(self) -> None:
        """Let every task run until none can go on without more input or a later ``now``."""
        loop = asyncio.get_running_loop()
        idle, mark = 0, self.activity
        for _ in range(_MAX_ROUNDS):
            await asyncio.sleep(0)
            quiet = _loop_quiet(loop)
            if quiet is None:  # a loop we cannot look into: count idle turns instead
                idle = idle + 1 if self.activity == mark else 0
                mark = self.activity
                quiet = idle >= _IDLE_ROUNDS
            if quiet:
                return
        self.violations.append(
            f"the event loop never went quiet in {_MAX_ROUNDS} turns: does the app spin on "
            "asyncio.sleep(0)?"
        )

    def open(self, alpn: str | None = None) -> Conn:
        conn = Conn(self, alpn)
        self.conns.append(conn)
        return conn

    def fire_timers(self) -> None:
        for conn in self.conns:
            if not conn.closed:
                deadline = conn.core.get_timer()
                if deadline is not None and deadline <= self.now:
                    conn.call("handle_timer", conn.core.handle_timer, self.now)

    def next_deadline(self) -> float | None:
        deadlines = [c.core.get_timer() for c in self.conns if not c.closed]
        loop = asyncio.get_running_loop()
        if isinstance(loop, VirtualClockLoop):
            deadlines.append(next_loop_timer(loop))
        return min((d for d in deadlines if d is not None), default=None)

    async def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        target = self.now + seconds
        for _ in range(10_000):
            deadline = self.next_deadline()
            if deadline is None or deadline > target:
                break
            self.now = max(self.now, deadline)
            self.fire_timers()
            await self.settle()
        else:
            self.violations.append(f"a deadline at or before {target} kept coming back")
        self.now = target
        self.fire_timers()
        await self.settle()

    async def hang_up(self) -> None:
        """The clients close every open connection."""
        for conn in self.conns:
            conn.feed(b"")
        await self.settle()

    async def cancel_tasks(self) -> None:
        """Cancel the app tasks still running (they may wait forever, as they may)."""
        for task in list(self.tasks):
            task.cancel()
        await self.settle()


class Conn:
    """One in-memory transport connection: the core, its app tasks and the output buffer."""

    def __init__(self, engine: Engine, alpn: str | None) -> None:
        self.engine = engine
        self.out = bytearray()
        self.streams: dict[int, _Stream] = {}
        self.scopes: list[dict[str, Any]] = []
        self.closed = False
        self.eof = False
        self.broken = False  # the core raised what it must not: its state is unknown
        self.core = ServerConnection(
            engine.config, now=engine.now, client=("127.0.0.1", 50000 + len(engine.conns)),
            server=("testserver", 80), alpn=alpn, state=engine.state,
            wall_offset=engine.wall_clock,
        )
        self.pump()

    def call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Call the core; anything it raises but the documented errors is a violation."""
        if self.broken:
            return None
        try:
            return fn(*args)
        except (AppMisuseError, ClientDisconnected):
            if what != "send":
                self.engine.violate(f"ServerConnection.{what}() raised an app error")
            raise
        except DriverMisuseError:
            raise
        except Exception as exc:
            self.engine.violate(f"ServerConnection.{what}() raised {type(exc).__name__}", exc)
            self.broken = self.closed = True
            raise
        finally:
            if not self.broken:
                self.pump()

    def feed(self, data: bytes) -> None:
        """Bytes from the client; ``b""`` is the client closing its side."""
        if self.closed or self.eof:
            return
        self.eof = not data
        try:
            self.call("receive_data", self.core.receive_data, bytes(data), self.engine.now)
        except Exception as exc:  # recorded by call(): the test sees it at the next check
            del exc

    def take(self) -> bytes:
        out = bytes(self.out)
        self.out.clear()
        return out

    def pump(self) -> None:
        engine = self.engine
        engine.activity += 1
        events: list[Event] = self.core.pop_events()
        self.out += self.core.data_to_send()
        for event in events:
            if isinstance(event, StreamStarted):
                sid = event.stream_id
                if sid in self.streams:
                    engine.violate(f"StreamStarted twice for stream {sid}")
                    continue
                stream = self.streams[sid] = _Stream()
                self.scopes.append(event.scope)
                stream.task = engine.spawn(self.run_app(sid, stream, event.scope))
            elif isinstance(event, ConnectionClosed):
                if self.closed:
                    engine.violate("ConnectionClosed was queued twice")
                self.closed = True
                left = sorted(sid for sid, s in self.streams.items() if not s.ended)
                if left:
                    engine.violate(f"ConnectionClosed before StreamEnded of streams {left}")
                for stream in self.streams.values():  # a send held for writability ends too
                    _wake(stream.reader)
                    _wake(stream.writer)
            else:
                found = self.streams.get(event.stream_id)
                if found is None:
                    if isinstance(event, StreamEnded):
                        engine.violate(f"StreamEnded for unknown stream {event.stream_id}")
                    continue
                if isinstance(event, StreamEnded):
                    if found.ended:
                        engine.violate(f"StreamEnded twice for stream {event.stream_id}")
                    found.ended = True
                if not isinstance(event, StreamWritable):
                    _wake(found.reader)
                if not isinstance(event, StreamReadable):
                    _wake(found.writer)
        if self.core.closed and not self.closed:
            engine.violate("the core says closed but queued no ConnectionClosed")
            self.closed = True

    async def run_app(self, sid: int, stream: _Stream, scope: dict[str, Any]) -> None:
        core, engine = self.core, self.engine
        loop = asyncio.get_running_loop()

        async def receive() -> Message:
            while True:
                message: Message | None = self.call("receive", core.receive, sid)
                if message is not None:
                    return message
                stream.reader = waiter = loop.create_future()
                await waiter

        async def send(message: Message) -> None:
            try:
                self.call("send", core.send, sid, message, engine.now)
            except AppMisuseError as exc:
                engine.app_failed(exc)
                raise
            while not self.closed and not stream.ended and not core.writable(sid):
                stream.writer = waiter = loop.create_future()
                await waiter

        exc: BaseException | None = None
        try:
            await engine.app(scope, receive, send)
        except ClientDisconnected as error:  # the client left: not the app's fault (MAIN-13)
            exc = error
        except Exception as error:
            exc = error
            engine.app_failed(error)
        except BaseException as error:  # cancelled when the harness closes
            exc = error
            raise
        finally:
            try:
                self.call("app_finished", core.app_finished, sid, engine.now, exc)
            except Exception as error:  # recorded by call()
                del error


class LifespanDriver:
    """Runs the app's lifespan scope against the core's pure ``Lifespan`` machine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.machine = Lifespan()
        self.failure: str | None = None
        self._reader: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> dict[str, Any] | None:
        self._task = self.engine.spawn(self._main())
        self.machine.startup()
        self._pump()
        await self.engine.settle()
        status = self.machine.status
        if status == "started":
            return self.machine.state
        if status == "unsupported":
            return None
        if status == "starting":
            self.failure = "the app did not answer lifespan.startup (is it waiting? advance())"
        raise HarnessError(f"lifespan startup failed: {self.failure}")

    async def shutdown(self) -> None:
        """Only after a completed startup: none follows a failed or unsupported one."""
        self.failure = None
        if self.machine.shutdown():
            self._pump()
            await self.engine.settle()
            if self.machine.status == "stopping":
                self.failure = "the app did not answer lifespan.shutdown"
        if self._task is not None and not self._task.done():
            self._task.cancel()  # it may wait in receive() forever, as it may
            await self.engine.settle()
        if self.failure is not None:
            raise HarnessError(f"lifespan shutdown failed: {self.failure}")

    async def _main(self) -> None:
        machine, loop = self.machine, asyncio.get_running_loop()

        async def receive() -> Message:
            while True:
                message = machine.receive()
                self._pump()
                if message is not None:
                    return message
                self._reader = waiter = loop.create_future()
                await waiter

        async def send(message: Message) -> None:
            try:
                machine.send(message)
            finally:
                self._pump()

        exc: BaseException | None = None
        try:
            await self.engine.app(machine.scope, receive, send)
        except Exception as error:
            exc = error
        machine.app_finished(exc)
        self._pump()

    def _pump(self) -> None:
        for event in self.machine.pop_events():
            if isinstance(event, LifespanReadable):
                _wake(self._reader)
            elif isinstance(event, (StartupFailed, ShutdownFailed)):
                self.failure = event.message or type(event).__name__
            elif isinstance(event, LifespanErrored):
                if event.exc is not None:
                    self.engine.app_failed(event.exc)
                self.failure = "the lifespan app ended before shutdown (LIFE-12)"
