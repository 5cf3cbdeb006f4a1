"""The ASGI lifespan protocol (lifespan spec 2.0) as a pure, synchronous state machine.

One ``Lifespan`` per event loop (LIFE-02).  The driver calls the app once with ``scope``, routes
the app's ``receive``/``send`` to ``receive()``/``send()``, reports the end of the app task with
``app_finished()``, and runs the two phases with ``startup()`` and ``shutdown()``.  After each
call it drains ``pop_events()``.  Nothing here blocks, reads a clock or does I/O: the startup and
shutdown timeouts (LIFE-14) belong to the driver, which simply stops waiting.

The normal path (``_TRANSITIONS``, keyed by ``(status, message type)``; ``lifespan.startup`` and
``lifespan.shutdown`` are the messages the driver queues with ``startup()``/``shutdown()``, the
others are what the app sends)::

    idle --startup()--> starting --startup.complete--> started --shutdown()--> stopping
                            |                                                      |
                            +--startup.failed--> failed   shutdown.complete|failed-+--> stopped

Any other app message is out of order and raises ``AppMisuseError`` (LIFE-09), and so does an
answer sent before the app received the message it answers.

The app ending early (``_ON_APP_EXIT``):

* before it answered startup, by raising (LIFE-10) or returning (LIFE-13): ``unsupported``.  The
  server goes on without lifespan and the app gets nothing more, not even a shutdown.
* after ``startup.complete`` and before answering shutdown: ``errored`` (LIFE-12).  The driver
  reports it and does not wait for a shutdown answer that cannot come.

A misuse raised from ``send()`` also settles the protocol at once, so the driver never waits on
an app that broke it:

* a message that is not a lifespan answer (an unknown ``type``, a non-dict, or an ``http.*``
  message from an app that ignores ``scope["type"]``) is handled as the exception it becomes when
  it escapes the app: ``unsupported`` before the startup answer, ``errored`` after it
  (``_ON_APP_EXIT``; uvicorn reaches the same result through its asserts).
* a lifespan answer out of order or with a bad field shows the app speaks lifespan but got it
  wrong (``_ON_BAD_ANSWER``).  Before the startup answer it fails startup with the error text
  (``StartupFailed``): serving an app whose startup may not have run is worse than exiting
  (LIFE-05).  While stopping it fails shutdown the same way (``ShutdownFailed``, LIFE-08);
  between the phases it is ``errored``.

``failed``, ``unsupported``, ``stopped`` and ``errored`` are terminal: no event follows,
``receive()`` returns ``None`` for good, every ``send()`` raises, and ``shutdown()`` does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, NoReturn

from ._errors import AppMisuseError, DriverMisuseError

LifespanStatus = Literal[
    "idle", "starting", "started", "failed", "unsupported", "stopping", "stopped", "errored"
]

TERMINAL_STATUSES: Final[frozenset[LifespanStatus]] = frozenset(
    {"failed", "unsupported", "stopped", "errored"}
)

_STARTUP: Final = "lifespan.startup"
_SHUTDOWN: Final = "lifespan.shutdown"
_STARTUP_COMPLETE: Final = "lifespan.startup.complete"
_STARTUP_FAILED: Final = "lifespan.startup.failed"
_SHUTDOWN_COMPLETE: Final = "lifespan.shutdown.complete"
_SHUTDOWN_FAILED: Final = "lifespan.shutdown.failed"

# The only messages an app may send on a lifespan scope.
_ANSWERS: Final = frozenset(
    {_STARTUP_COMPLETE, _STARTUP_FAILED, _SHUTDOWN_COMPLETE, _SHUTDOWN_FAILED}
)

# (status, message type) -> next status.  Pairs not listed are out of order (LIFE-09).
_TRANSITIONS: Final[dict[tuple[LifespanStatus, str], LifespanStatus]] = {
    ("idle", _STARTUP): "starting",  # LIFE-03
    ("starting", _STARTUP_COMPLETE): "started",  # LIFE-04
    ("starting", _STARTUP_FAILED): "failed",  # LIFE-05
    ("started", _SHUTDOWN): "stopping",  # LIFE-06
    ("stopping", _SHUTDOWN_COMPLETE): "stopped",  # LIFE-07
    ("stopping", _SHUTDOWN_FAILED): "stopped",  # LIFE-08
}

# The app task ended (or sent a non-lifespan message) in a live status: LIFE-10, LIFE-13, LIFE-12.
_ON_APP_EXIT: Final[dict[LifespanStatus, LifespanStatus]] = {
    "idle": "unsupported",
    "starting": "unsupported",
    "started": "errored",
    "stopping": "errored",
}

# The app sent a lifespan answer that is out of order or malformed, in a live status.
_ON_BAD_ANSWER: Final[dict[LifespanStatus, LifespanStatus]] = {
    "idle": "failed",
    "starting": "failed",
    "started": "errored",
    "stopping": "stopped",
}


@dataclass(frozen=True, slots=True)
class LifespanReadable:
    """``receive()`` returned ``None`` before and now has a message: wake the app."""


@dataclass(frozen=True, slots=True)
class StartupComplete:
    """The app sent ``lifespan.startup.complete``: start accepting connections (LIFE-04)."""


@dataclass(frozen=True, slots=True)
class StartupFailed:
    """Startup failed: log ``message`` and exit without a shutdown phase (LIFE-05).

    Either the app sent ``lifespan.startup.failed`` (``message`` defaults to ``""``), or it broke
    the protocol before answering startup and ``message`` is the ``AppMisuseError`` text.
    """

    message: str


@dataclass(frozen=True, slots=True)
class ShutdownComplete:
    """The app sent ``lifespan.shutdown.complete``: terminate (LIFE-07)."""


@dataclass(frozen=True, slots=True)
class ShutdownFailed:
    """Shutdown failed: log ``message``, then terminate (LIFE-08).

    Either the app sent ``lifespan.shutdown.failed``, or it broke the protocol while stopping and
    ``message`` is the ``AppMisuseError`` text.
    """

    message: str


@dataclass(frozen=True, slots=True)
class LifespanUnsupported:
    """The app ended, or sent a non-lifespan message, before answering startup.

    Carry on without lifespan (LIFE-10): accept connections and send no shutdown.  ``exc`` is
    what it raised, ``None`` if it returned (LIFE-13, worth a warning); an ``AppMisuseError`` if
    it sent something other than a lifespan answer.
    """

    exc: BaseException | None


@dataclass(frozen=True, slots=True)
class LifespanErrored:
    """The app failed after ``startup.complete`` and before answering shutdown (LIFE-12).

    Report it; there is no shutdown answer to wait for.  ``exc`` is what it raised, ``None`` if
    it returned, or the ``AppMisuseError`` for a message it should not have sent.
    """

    exc: BaseException | None


LifespanEvent = (
    LifespanReadable
    | StartupComplete
    | StartupFailed
    | ShutdownComplete
    | ShutdownFailed
    | LifespanUnsupported
    | LifespanErrored
)


class Lifespan:
    """The lifespan scope of one event loop, between the driver and the app.

    ``state`` starts empty (LIFE-01) and is filled by the app during startup; the driver passes
    it to every connection, which shallow-copies it into each request scope (LIFE-11).  It is the
    very dict in ``scope["state"]``, so nothing here ever reads or rebinds it.
    """

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        self.scope: dict[str, Any] = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},  # VER-03, LIFE-01
            "state": self.state,
        }
        self._status: LifespanStatus = "idle"
        self._pending: dict[str, Any] | None = None
        self._waiting = False
        self._startup_called = False
        self._app_done = False
        self._events: list[LifespanEvent] = []

    @property
    def status(self) -> LifespanStatus:
        """Where the protocol stands; see the module docstring and ``TERMINAL_STATUSES``."""
        return self._status

    def startup(self) -> bool:
        """Queue ``lifespan.startup`` for the app (LIFE-03).

        Returns True when the driver must now wait for ``StartupComplete``, ``StartupFailed`` or
        ``LifespanUnsupported`` before accepting connections (LIFE-04).  Returns False when the
        app already settled the matter before being asked (it ended, or misused ``send()``); the
        event saying so has been queued already.  A second call raises ``DriverMisuseError``.
        """
        if self._startup_called:
            raise DriverMisuseError("Lifespan.startup() called twice")
        self._startup_called = True
        if self._status != "idle":
            return False
        self._queue(_STARTUP)
        return True

    def shutdown(self) -> bool:
        """Queue ``lifespan.shutdown`` if startup completed; call it only once every connection
        is closed (LIFE-06, SRV-14).

        Returns True when the driver must wait for ``ShutdownComplete``, ``ShutdownFailed`` or
        ``LifespanErrored`` before terminating (LIFE-07).  In any other status it does nothing
        and returns False: there is no shutdown after a failed or unsupported startup (LIFE-10)
        or an error (LIFE-12), none before startup was answered (LIFE-09), and a repeated call
        is harmless.
        """
        if self._status != "started":
            return False
        self._queue(_SHUTDOWN)
        return True

    def receive(self) -> dict[str, Any] | None:
        """The app's next message, or ``None``: hold the app until a ``LifespanReadable``.

        The app gets ``lifespan.startup`` and later ``lifespan.shutdown``, each once; after that,
        and in every terminal status, it waits for good (the driver cancels it when it exits).
        """
        message, self._pending = self._pending, None
        if message is None:
            self._waiting = True
        return message

    def send(self, message: dict[str, Any]) -> None:
        """Take a message from the app.

        Raises ``AppMisuseError`` for anything but a lifespan answer (rule ``MAIN-09``), an
        answer out of order or before the app received what it answers (``LIFE-09``), or a
        failure whose ``message`` is present and not a str (``MAIN-09``).  Extra keys are ignored
        (MAIN-10).  Before raising, it settles the protocol as the module docstring describes
        and queues the matching event, unless the status was already terminal.
        """
        type_ = message.get("type") if isinstance(message, dict) else None
        if not isinstance(type_, str) or type_ not in _ANSWERS:
            if not isinstance(message, dict):
                detail = f"a lifespan message must be a dict, not {type(message).__name__}"
            elif "type" not in message:
                detail = "the message has no 'type'"
            else:
                detail = f"not a lifespan message; the app may send only {sorted(_ANSWERS)}"
            self._misuse(AppMisuseError(type_, "MAIN-09", detail), _ON_APP_EXIT)

        status = self._status
        next_status = _TRANSITIONS.get((status, type_))
        if next_status is None:
            allowed = sorted(
                t for (s, t), _ in _TRANSITIONS.items() if s == status and t in _ANSWERS
            )
            expected = " or ".join(allowed) if allowed else "no message"
            detail = f"out of order: the lifespan is {status!r}, which allows {expected}"
            self._misuse(AppMisuseError(type_, "LIFE-09", detail), _ON_BAD_ANSWER)
        if self._pending is not None:
            detail = f"answered {self._pending['type']} before receiving it"
            self._misuse(AppMisuseError(type_, "LIFE-09", detail), _ON_BAD_ANSWER)

        # "message" is a field of the two failures only; on a complete it is an extra key (MAIN-10).
        text = message.get("message", "") if type_ in (_STARTUP_FAILED, _SHUTDOWN_FAILED) else ""
        if not isinstance(text, str):
            detail = f"'message' must be a str, not {type(text).__name__}"
            self._misuse(AppMisuseError(type_, "MAIN-09", detail), _ON_BAD_ANSWER)

        event: LifespanEvent
        if type_ == _STARTUP_COMPLETE:
            event = StartupComplete()
        elif type_ == _STARTUP_FAILED:
            event = StartupFailed(text)
        elif type_ == _SHUTDOWN_COMPLETE:
            event = ShutdownComplete()
        else:
            event = ShutdownFailed(text)
        self._status = next_status
        self._events.append(event)

    def app_finished(self, exc: BaseException | None = None) -> None:
        """The app task returned (``exc`` is ``None``) or raised ``exc``.

        Before the startup answer this is ``LifespanUnsupported`` (LIFE-10, LIFE-13); after it
        and before the shutdown answer, ``LifespanErrored`` (LIFE-12).  In a terminal status it
        queues nothing: an exception after ``shutdown.complete`` is the driver's to log.  A
        second call raises ``DriverMisuseError``.
        """
        if self._app_done:
            raise DriverMisuseError("Lifespan.app_finished() called twice")
        self._app_done = True
        end = _ON_APP_EXIT.get(self._status)
        if end is not None:
            self._end(end, exc)

    def pop_events(self) -> list[LifespanEvent]:
        """Return and clear the queued events."""
        events, self._events = self._events, []
        return events

    def _queue(self, type_: str) -> None:
        self._status = _TRANSITIONS[(self._status, type_)]
        self._pending = {"type": type_}
        if self._waiting:
            self._waiting = False
            self._events.append(LifespanReadable())

    def _misuse(
        self, error: AppMisuseError, outcomes: dict[LifespanStatus, LifespanStatus]
    ) -> NoReturn:
        end = outcomes.get(self._status)
        if end is not None:
            self._end(end, error)
        raise error

    def _end(self, status: LifespanStatus, exc: BaseException | None) -> None:
        """Enter a terminal status and queue its event; the app gets nothing more.

        ``failed`` and ``stopped`` are only reached here through a misuse, so ``exc`` is the
        ``AppMisuseError`` whose text becomes the failure message.
        """
        event: LifespanEvent
        if status == "unsupported":
            event = LifespanUnsupported(exc)
        elif status == "errored":
            event = LifespanErrored(exc)
        elif status == "failed":
            event = StartupFailed(str(exc))
        else:
            event = ShutdownFailed(str(exc))
        self._status = status
        self._pending = None
        self._events.append(event)
