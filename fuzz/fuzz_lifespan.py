"""Fuzz the Lifespan state machine with driver calls and app messages chosen by the input.

Invariants (the issue's, as they apply to a protocol with no wire and no Config limits):

* no exception escapes but the documented ones: AppMisuseError, and only from send();
  DriverMisuseError never (the harness calls startup() and app_finished() once each);
* every lifespan ends exactly once: at most one startup outcome and one shutdown outcome, a
  terminal status absorbs (no event, no message for the app after it), and the driver never waits
  forever: once startup() or shutdown() returned True, the outcome is queued by the time the app
  finished or broke the protocol;
* queues stay bounded, without a Config limit: the app's inbox holds at most one message (the
  model's single pending slot predicts every receive()), each call queues at most one event, and a
  whole lifespan queues at most four (two LifespanReadable, two outcomes), whatever the app sends;
* the output (events, statuses, return values) is what an independent model written from the
  documented rules (``asgi_sansio._lifespan``'s docstring) predicts, exactly; a LifespanReadable
  only wakes an app that got None from receive(), and its next receive() has a message;
  ``scope["state"]`` is ``Lifespan.state``.

Each step is one of: startup() (at most once), shutdown(), the app's receive(), the app's send()
of a lifespan answer (in or out of order, well-formed or not) or of something else, and
app_finished() (at most once, returning or raising); the app does nothing after it finished.
"""

from __future__ import annotations

from typing import Any

from _common import KNOWN_ISSUES, Checker, main, pick, provider

from asgi_sansio import AppMisuseError
from asgi_sansio._lifespan import (
    TERMINAL_STATUSES,
    Lifespan,
    LifespanErrored,
    LifespanReadable,
    LifespanUnsupported,
    ShutdownComplete,
    ShutdownFailed,
    StartupComplete,
    StartupFailed,
)

ANSWERS = (
    "lifespan.startup.complete",
    "lifespan.startup.failed",
    "lifespan.shutdown.complete",
    "lifespan.shutdown.failed",
)
MESSAGES: tuple[Any, ...] = (
    {"type": "lifespan.startup.complete"},
    {"type": "lifespan.startup.complete"},
    {"type": "lifespan.startup.complete", "message": 3},  # an extra key: ignored
    {"type": "lifespan.startup.failed", "message": "no database"},
    {"type": "lifespan.startup.failed"},
    {"type": "lifespan.startup.failed", "message": 5},
    {"type": "lifespan.shutdown.complete"},
    {"type": "lifespan.shutdown.complete"},
    {"type": "lifespan.shutdown.failed", "message": "leak"},
    {"type": "lifespan.shutdown.failed", "message": None},
    {"type": "lifespan.startup"},
    {"type": "http.response.start", "status": 200},
    {"type": 5},
    {},
    "lifespan.startup.complete",
    None,
)
EXCEPTIONS = (None, None, RuntimeError("app failed"), KeyboardInterrupt())

TRANSITIONS = {
    ("idle", "lifespan.startup"): "starting",
    ("starting", "lifespan.startup.complete"): "started",
    ("starting", "lifespan.startup.failed"): "failed",
    ("started", "lifespan.shutdown"): "stopping",
    ("stopping", "lifespan.shutdown.complete"): "stopped",
    ("stopping", "lifespan.shutdown.failed"): "stopped",
}
# What the protocol becomes when the app ends (or sends a non-lifespan message) ...
ON_EXIT = {"idle": "unsupported", "starting": "unsupported", "started": "errored",
           "stopping": "errored"}
# ... and when it sends a lifespan answer out of order or malformed.
ON_BAD = {"idle": "failed", "starting": "failed", "started": "errored", "stopping": "stopped"}
STARTUP_OUTCOMES = (StartupComplete, StartupFailed, LifespanUnsupported)
SHUTDOWN_OUTCOMES = (ShutdownComplete, ShutdownFailed, LifespanErrored)


class Model:
    """The documented behaviour, independent of the implementation."""

    def __init__(self) -> None:
        self.status = "idle"
        self.pending: str | None = None
        self.waiting = False
        self.events: list[Any] = []

    def _queue(self, mtype: str) -> None:
        self.status = TRANSITIONS[(self.status, mtype)]
        self.pending = mtype
        if self.waiting:
            self.waiting = False
            self.events.append(LifespanReadable())

    def startup(self) -> bool:
        if self.status != "idle":
            return False
        self._queue("lifespan.startup")
        return True

    def shutdown(self) -> bool:
        if self.status != "started":
            return False
        self._queue("lifespan.shutdown")
        return True

    def receive(self) -> dict[str, Any] | None:
        mtype, self.pending = self.pending, None
        if mtype is None:
            self.waiting = True
            return None
        return {"type": mtype}

    def misuse(self, message: Any) -> dict[str, str] | None:
        """The table to settle the protocol with if ``message`` is a misuse, else None."""
        mtype = message.get("type") if isinstance(message, dict) else None
        if mtype not in ANSWERS:
            return ON_EXIT
        if (self.status, mtype) not in TRANSITIONS or self.pending is not None:
            return ON_BAD
        if mtype.endswith(".failed") and not isinstance(message.get("message", ""), str):
            return ON_BAD
        return None

    def send_ok(self, message: dict[str, Any]) -> None:
        mtype = message["type"]
        self.status = TRANSITIONS[(self.status, mtype)]
        text = message.get("message", "")
        self.events.append({
            "lifespan.startup.complete": StartupComplete(),
            "lifespan.startup.failed": StartupFailed(text),
            "lifespan.shutdown.complete": ShutdownComplete(),
            "lifespan.shutdown.failed": ShutdownFailed(text),
        }[mtype])

    def end(self, table: dict[str, str], exc: BaseException | None) -> None:
        status = table.get(self.status)
        if status is None:
            return  # terminal already: nothing more happens
        self.status = status
        self.pending = None
        self.events.append({
            "unsupported": LifespanUnsupported(exc),
            "errored": LifespanErrored(exc),
            "failed": StartupFailed(str(exc)),
            "stopped": ShutdownFailed(str(exc)),
        }[status])


def run_one(data: bytes, tolerate: Any = KNOWN_ISSUES, trace: list[str] | None = None) -> None:
    """Run one input; raises ``Violation`` (or whatever escaped the core) on failure."""
    run(provider(data), tolerate, trace)


def run(p: Any, tolerate: Any = KNOWN_ISSUES, trace: list[str] | None = None) -> None:
    check = Checker(tolerate)
    life, model = Lifespan(), Model()
    check(life.scope["state"] is life.state and life.scope["type"] == "lifespan", "scope",
          repr(life.scope))
    started = app_done = False
    awaiting: tuple[type, ...] = ()  # outcome event types the driver is waiting for
    outcomes: list[Any] = []
    owed = False  # a LifespanReadable was seen: the next receive() must give a message
    queued = 0  # events popped so far (all of them: readables and outcomes)
    log = trace.append if trace is not None else (lambda _: None)
    while p.remaining_bytes():
        op = p.ConsumeIntInRange(0, 9)
        broke = False
        terminal_before = life.status in TERMINAL_STATUSES
        if op == 0 and not started:
            started = True
            result = life.startup()
            log(f"startup() -> {result}")
            check(result == model.startup(), "startup-result", f"{result}")
            if result:
                awaiting = STARTUP_OUTCOMES
        elif op == 1:
            result = life.shutdown()
            log(f"shutdown() -> {result}")
            check(result == model.shutdown(), "shutdown-result", f"{result}")
            if result:
                awaiting = SHUTDOWN_OUTCOMES
        elif op < 4 and not app_done:
            message = life.receive()
            log(f"receive() -> {message}")
            check(message == model.receive(), "receive", f"{message!r}")
            check(message is not None or not owed, "lost-wakeup", "None after LifespanReadable")
            check(message is None or not terminal_before, "message-after-end", repr(message))
            owed = False
        elif op < 8 and not app_done:
            message = pick(p, MESSAGES)
            table = model.misuse(message)
            try:
                life.send(message)
            except AppMisuseError as exc:
                log(f"send({message!r}) -> AppMisuseError {exc}")
                check(table is not None, "valid-refused", f"{message!r}: {exc}")
                model.end(table or {}, exc)
                broke = True
            else:
                log(f"send({message!r})")
                check(table is None, "invalid-accepted", repr(message))
                model.send_ok(message)
        elif op >= 8 and not app_done:
            app_done = True
            exc = pick(p, EXCEPTIONS)
            life.app_finished(exc)
            log(f"app_finished({exc!r})")
            model.end(ON_EXIT, exc)
        else:
            continue
        events = life.pop_events()
        if events:
            log(f"  events: {events}")
        check(_same_events(events, model.events), "events", f"{events!r} != {model.events!r}")
        model.events = []
        check(life.status == model.status, "status", f"{life.status} != {model.status}")
        check(not (terminal_before and events), "event-after-end", repr(events))
        queued += len(events)
        check(len(events) <= 1 and queued <= 4, "queue-bound",
              f"{len(events)} events now, {queued} in all")
        for event in events:
            if isinstance(event, LifespanReadable):
                owed = True
            else:
                outcomes.append(event)
                if isinstance(event, awaiting):
                    awaiting = ()
        check(sum(isinstance(e, STARTUP_OUTCOMES) for e in outcomes) <= 1, "outcomes",
              repr(outcomes))
        check(sum(isinstance(e, SHUTDOWN_OUTCOMES) for e in outcomes) <= 1, "outcomes",
              repr(outcomes))
        if life.status in TERMINAL_STATUSES:
            owed = False  # documented: in a terminal status the app waits for good
        check(not ((app_done or broke) and awaiting), "driver-waits",
              "the app ended or broke the protocol, and no outcome is queued")


def _same_events(actual: list[Any], expected: list[Any]) -> bool:
    """Equal events; exceptions inside compare by identity."""
    if len(actual) != len(expected):
        return False
    for a, b in zip(actual, expected, strict=True):
        if type(a) is not type(b):
            return False
        if isinstance(a, (LifespanUnsupported, LifespanErrored)):
            if a.exc is not b.exc:
                return False
        elif a != b:
            return False
    return True


if __name__ == "__main__":
    main(run_one, "fuzz_lifespan")
