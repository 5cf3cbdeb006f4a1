"""A stateful hypothesis machine for the lifespan protocol (``asgi_sansio._lifespan.Lifespan``).

The driver's calls (``startup``, ``shutdown``, ``app_finished``) and the app's (``receive``,
``send`` with right, wrong and foreign messages, extra keys) interleave at random, at any point
of the protocol and after it.  The expected outcome of every call (return value, exception,
status, exact events) comes from a model written out below from checklist section 9 (LIFE-xx),
not from the module's own tables.
"""

from __future__ import annotations

from typing import Any

from hypothesis import event as hyp_event
from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from asgi_sansio._errors import AppMisuseError, DriverMisuseError
from asgi_sansio._lifespan import (
    Lifespan,
    LifespanErrored,
    LifespanEvent,
    LifespanReadable,
    LifespanUnsupported,
    ShutdownComplete,
    ShutdownFailed,
    StartupComplete,
    StartupFailed,
)

from .conftest import steps

STARTUP = {"type": "lifespan.startup"}
SHUTDOWN = {"type": "lifespan.shutdown"}
STARTUP_COMPLETE = "lifespan.startup.complete"
STARTUP_FAILED = "lifespan.startup.failed"
SHUTDOWN_COMPLETE = "lifespan.shutdown.complete"
SHUTDOWN_FAILED = "lifespan.shutdown.failed"
ANSWERS = [STARTUP_COMPLETE, STARTUP_FAILED, SHUTDOWN_COMPLETE, SHUTDOWN_FAILED]

# The model's statuses, in the only order the protocol may visit them (LIFE-09): a live status
# may be skipped, never revisited; the four terminal ones share the last rank.
RANK = {"idle": 0, "starting": 1, "started": 2, "stopping": 3,
        "failed": 4, "unsupported": 4, "stopped": 4, "errored": 4}
TERMINAL = {status for status, rank in RANK.items() if rank == 4}
# Every edge the protocol allows (and no other): the normal path (LIFE-03..08), the app ending
# or breaking the protocol before the startup answer (LIFE-10, LIFE-13, LIFE-05 for a bad
# answer) and after it (LIFE-12, LIFE-08 for a bad shutdown answer).
EDGES = {
    ("idle", "starting"), ("idle", "unsupported"), ("idle", "failed"),
    ("starting", "started"), ("starting", "failed"), ("starting", "unsupported"),
    ("started", "stopping"), ("started", "errored"),
    ("stopping", "stopped"), ("stopping", "errored"),
}
STARTUP_OUTCOMES = (StartupComplete, StartupFailed, LifespanUnsupported)
SHUTDOWN_OUTCOMES = (ShutdownComplete, ShutdownFailed, LifespanErrored)

# Messages the app may send; the model decides which are right where.
FAILURE_TEXT = st.one_of(st.text("ab é", max_size=3), st.integers(), st.none(), st.just(b"x"))
ANSWER_MESSAGES = st.builds(
    lambda type_, text, extra: {"type": type_, **text, **extra},
    st.sampled_from(ANSWERS),
    st.one_of(st.just({}), st.builds(lambda t: {"message": t}, FAILURE_TEXT)),
    st.sampled_from([{}, {"x-vendor": {"a": 1}}]),  # MAIN-10: extra keys are ignored
)
FOREIGN_MESSAGES = st.sampled_from([
    {"type": "http.response.start", "status": 200, "headers": []},  # ignores scope["type"]
    {"type": "lifespan.startup"},  # a receive message, not a send message
    {"type": "lifespan.startup.completed"},
    {"type": b"lifespan.startup.complete"},
    {"type": ["unhashable"]},
    {"type": None},
    {},
    [("type", STARTUP_COMPLETE)],
    None,
    "lifespan.startup.complete",
])


# About one draw in six, for the rules that end the protocol, so that many runs get through
# startup and into shutdown first.  (Hypothesis favours the ends of an integer range, hence a
# list rather than ``st.integers(0, 5) == 0``.)
RARE = st.sampled_from([False, False, True, False, False, False])


class LifespanMachine(RuleBasedStateMachine):
    """The driver and the app interleaved at random against an independent model."""

    def __init__(self) -> None:
        super().__init__()
        self.lifespan = Lifespan()
        # The model.
        self.status = "idle"
        self.startup_called = False
        self.app_done = False
        self.pending: dict[str, Any] | None = None  # queued for the app, not yet received
        self.waiting = False  # the app's receive() said None: a LifespanReadable is owed
        self.delivered: list[dict[str, Any]] = []
        self.asked: list[str] = []  # "startup" / "shutdown" calls that returned True
        self.outcomes: list[LifespanEvent] = []  # every event but LifespanReadable
        self.state: dict[str, Any] = {}
        self.before = "idle"

    # -- plumbing ---------------------------------------------------------------------------

    def check_events(self, expected: list[LifespanEvent]) -> None:
        """The call queued exactly ``expected`` (exceptions compare by identity)."""
        events = self.lifespan.pop_events()
        note(f"events {events!r}")
        assert events == expected, (events, expected)
        self.outcomes += [e for e in events if not isinstance(e, LifespanReadable)]

    def move(self, status: str) -> None:
        assert (self.status, status) in EDGES, (self.status, status)
        self.status = status
        if status in TERMINAL:
            self.pending = None  # the app gets nothing more (LIFE-10, LIFE-12)

    def queue(self, message: dict[str, Any]) -> list[LifespanEvent]:
        self.pending = dict(message)
        if self.waiting:
            self.waiting = False
            return [LifespanReadable()]
        return []

    def settle(self, exc: BaseException | None, *, bad_answer: bool) -> list[LifespanEvent]:
        """The app ended (``exc`` it raised, or None) or broke the protocol (``exc`` the
        AppMisuseError) in the current status: the event the driver must get, if any.

        Ending, or sending what is not a lifespan answer at all, is LIFE-10/LIFE-13 before the
        startup answer and LIFE-12 after it.  A lifespan answer out of order or malformed fails
        the phase in progress (LIFE-05, LIFE-08); between the phases it is LIFE-12 again.
        """
        status = self.status
        if status in TERMINAL:
            return []  # terminal statuses are terminal: nothing follows
        if status in ("idle", "starting"):
            if bad_answer:
                self.move("failed")
                return [StartupFailed(str(exc))]
            self.move("unsupported")
            return [LifespanUnsupported(exc)]
        if status == "stopping" and bad_answer:
            self.move("stopped")
            return [ShutdownFailed(str(exc))]
        self.move("errored")
        return [LifespanErrored(exc)]

    # -- the driver -------------------------------------------------------------------------

    @rule()
    def driver_startup(self) -> None:
        if self.startup_called:
            try:
                self.lifespan.startup()
            except DriverMisuseError:
                self.check_events([])
                return
            raise AssertionError("a second startup() was accepted")
        self.startup_called = True
        waits = self.lifespan.startup()
        # LIFE-03: lifespan.startup is queued unless the app already settled the matter.
        assert waits is (self.status == "idle")
        expected: list[LifespanEvent] = []
        if waits:
            self.asked.append("startup")
            self.move("starting")
            expected = self.queue(STARTUP)
        self.check_events(expected)

    @rule()
    def driver_shutdown(self) -> None:
        waits = self.lifespan.shutdown()
        # LIFE-06: only after startup.complete; LIFE-10/12: never after a failure; once.
        assert waits is (self.status == "started")
        expected: list[LifespanEvent] = []
        if waits:
            self.asked.append("shutdown")
            self.move("stopping")
            expected = self.queue(SHUTDOWN)
        self.check_events(expected)

    @rule(raised=st.booleans(), roll=RARE)
    def app_finishes_sometimes(self, raised: bool, roll: bool) -> None:
        if roll:
            self.app_finishes(raised)

    def app_finishes(self, raised: bool) -> None:
        exc = RuntimeError("the app failed") if raised else None
        if self.app_done:
            try:
                self.lifespan.app_finished(exc)
            except DriverMisuseError:
                self.check_events([])
                return
            raise AssertionError("a second app_finished() was accepted")
        self.app_done = True
        self.waiting = False
        self.lifespan.app_finished(exc)
        self.check_events(self.settle(exc, bad_answer=False))  # LIFE-10, LIFE-12, LIFE-13
        assert self.status in TERMINAL

    # -- the app ------------------------------------------------------------------------------

    @precondition(lambda self: not self.app_done)
    @rule()
    def app_receive(self) -> None:
        message = self.lifespan.receive()
        expected, self.pending = self.pending, None
        assert message == expected, (message, expected)
        if message is None:
            self.waiting = True
        else:
            self.delivered.append(message)
        self.check_events([])

    @precondition(lambda self: not self.app_done)
    @rule(message=ANSWER_MESSAGES, roll=RARE)
    def app_answers(self, message: dict[str, Any], roll: bool) -> None:
        if roll:
            self.app_send(message)

    @precondition(lambda self: not self.app_done and self.status in ("starting", "stopping"))
    @rule(data=st.data())
    def app_answers_right(self, data: st.DataObject) -> None:
        """The answer the protocol expects now (most runs should get through both phases)."""
        phase = "startup" if self.status == "starting" else "shutdown"
        type_ = data.draw(st.sampled_from([f"lifespan.{phase}.complete"] * 3
                                          + [f"lifespan.{phase}.failed"]))
        self.app_send({"type": type_, "message": "because"} if "failed" in type_
                      else {"type": type_})

    @precondition(lambda self: not self.app_done)
    @rule(message=FOREIGN_MESSAGES, roll=RARE)
    def app_sends_foreign(self, message: Any, roll: bool) -> None:
        if roll:
            self.app_send(message)

    @rule(steps=st.integers(1, 4))
    def both_follow_the_protocol(self, steps: int) -> None:
        """The driver and a well-behaved app take their next natural steps."""
        for _ in range(steps):
            if self.app_done or self.status in TERMINAL:
                return
            if self.pending is not None:
                self.app_receive()
            elif self.status == "idle" and not self.startup_called:
                self.driver_startup()
            elif self.status in ("starting", "stopping") and self.delivered:
                phase = "startup" if self.status == "starting" else "shutdown"
                self.app_send({"type": f"lifespan.{phase}.complete"})
            elif self.status == "started":
                self.driver_shutdown()
            else:
                self.app_receive()

    @precondition(lambda self: self.app_done)
    @rule(message=st.one_of(ANSWER_MESSAGES, FOREIGN_MESSAGES))
    def late_send(self, message: Any) -> None:
        # A task the app left behind sends after the app returned: always refused, nothing
        # queued, since the status is terminal by then.
        assert self.status in TERMINAL
        self.app_send(message)

    @precondition(lambda self: self.status in ("starting", "started"))
    @rule(key=st.sampled_from(["db", "cache"]), value=st.integers())
    def app_fills_state(self, key: str, value: int) -> None:
        # LIFE-11: the app fills the very dict in scope["state"]; the machine never touches it.
        self.lifespan.scope["state"][key] = value
        self.state[key] = value

    def app_send(self, message: Any) -> None:
        expected_exc = self.expected_misuse(message)
        try:
            self.lifespan.send(message)
        except AppMisuseError as exc:
            assert expected_exc is not None, f"{message!r} refused in {self.status}: {exc}"
            rules, bad_answer = expected_exc
            assert exc.rule in rules, (exc.rule, rules)
            assert exc.rule in str(exc)
            self.check_events(self.settle(exc, bad_answer=bad_answer))
            assert self.status in TERMINAL  # a misuse settles the protocol at once
            return
        assert expected_exc is None, f"{message!r} accepted in {self.status}"
        type_ = message["type"]
        text = message.get("message", "")
        event: LifespanEvent
        if type_ == STARTUP_COMPLETE:  # LIFE-04
            self.move("started")
            event = StartupComplete()
        elif type_ == STARTUP_FAILED:  # LIFE-05: "message" is optional, default ""
            self.move("failed")
            event = StartupFailed(text)
        elif type_ == SHUTDOWN_COMPLETE:  # LIFE-07
            self.move("stopped")
            event = ShutdownComplete()
        else:  # LIFE-08
            self.move("stopped")
            event = ShutdownFailed(text)
        self.check_events([event])

    def expected_misuse(self, message: Any) -> tuple[set[str], bool] | None:
        """None if ``message`` is right now; else the rules the error may name and whether it
        is a bad lifespan answer (True) or not a lifespan answer at all (False)."""
        type_ = message.get("type") if isinstance(message, dict) else None
        if not isinstance(type_, str) or type_ not in ANSWERS:
            return {"MAIN-09"}, False  # MAIN-09: not a message of this scope
        phase = {"starting": "startup", "stopping": "shutdown"}.get(self.status)
        in_order = (phase is not None and type_.startswith(f"lifespan.{phase}.")
                    and self.pending is None)  # LIFE-09: answered after it was received
        bad_text = type_.endswith(".failed") and not isinstance(message.get("message", ""), str)
        if in_order and not bad_text:
            return None
        # Either check may come first when both fail; the outcome is the same.
        rules = ({"LIFE-09"} if not in_order else set()) | ({"MAIN-09"} if bad_text else set())
        return rules, True

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def status_matches_and_only_moves_forward(self) -> None:
        assert self.lifespan.status == self.status
        assert RANK[self.status] >= RANK[self.before]
        if self.before in TERMINAL:
            assert self.status == self.before  # terminal statuses are terminal
        self.before = self.status

    @invariant()
    def every_wait_gets_exactly_one_outcome(self) -> None:
        # LIFE-04/LIFE-07: the driver waits after startup()/shutdown() returned True; once the
        # status moved on, the one event that ends its wait is there, and never a second.
        startups = [e for e in self.outcomes if isinstance(e, STARTUP_OUTCOMES)]
        later = [e for e in self.outcomes if isinstance(e, SHUTDOWN_OUTCOMES)]
        assert len(startups) <= 1 and len(later) <= 1, self.outcomes
        if "startup" in self.asked and self.status != "starting":
            assert len(startups) == 1, self.outcomes
        if "shutdown" in self.asked and self.status != "stopping":
            assert len(later) == 1, self.outcomes
        if later:  # LIFE-12, LIFE-07, LIFE-08: only ever after a completed startup
            assert startups == [StartupComplete()]
        if len(self.outcomes) == 2:
            assert isinstance(self.outcomes[0], STARTUP_OUTCOMES)
        assert len(self.outcomes) <= 2

    @invariant()
    def messages_are_delivered_once_in_order(self) -> None:
        # LIFE-03, LIFE-06: lifespan.startup, then lifespan.shutdown, each at most once, and
        # only what the driver asked for.
        assert self.delivered == [STARTUP, SHUTDOWN][:len(self.delivered)]
        assert len(self.delivered) <= len(self.asked)

    @invariant()
    def state_is_the_apps(self) -> None:
        # LIFE-01, LIFE-11
        assert self.lifespan.scope["state"] is self.lifespan.state
        assert self.lifespan.state == self.state
        assert self.lifespan.scope["type"] == "lifespan"

    @invariant()
    def terminal_is_quiet(self) -> None:
        # In a terminal status: no shutdown to run, nothing to receive, no event.
        if self.status in TERMINAL:
            assert self.lifespan.shutdown() is False
            if not self.app_done:
                assert self.lifespan.receive() is None
                self.waiting = True
            self.check_events([])

    def teardown(self) -> None:
        # The driver's end of the story: the app task ends if it has not, and then every wait
        # the driver began has ended with exactly one outcome.
        hyp_event(f"ended {self.status} after {[type(e).__name__ for e in self.outcomes]}")
        if not self.app_done:
            self.app_finishes(raised=False)
        self.status_matches_and_only_moves_forward()
        self.every_wait_gets_exactly_one_outcome()
        assert self.status in TERMINAL


TestLifespanMachine = LifespanMachine.TestCase
# The example count comes from the profile (tests/conftest.py).
TestLifespanMachine.settings = settings(stateful_step_count=steps(30))
