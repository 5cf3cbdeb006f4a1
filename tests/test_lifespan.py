"""Behaviour of the lifespan state machine (checklist section 9, LIFE-01..LIFE-14)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgi_sansio._errors import AppMisuseError, DriverMisuseError
from asgi_sansio._lifespan import (
    TERMINAL_STATUSES,
    Lifespan,
    LifespanErrored,
    LifespanEvent,
    LifespanReadable,
    LifespanStatus,
    LifespanUnsupported,
    ShutdownComplete,
    ShutdownFailed,
    StartupComplete,
    StartupFailed,
)

from .conftest import examples
from .strategies import Misused, lifespan_answers, lifespan_misused_messages

STARTUP = {"type": "lifespan.startup"}
SHUTDOWN = {"type": "lifespan.shutdown"}
STARTUP_COMPLETE = "lifespan.startup.complete"
STARTUP_FAILED = "lifespan.startup.failed"
SHUTDOWN_COMPLETE = "lifespan.shutdown.complete"
SHUTDOWN_FAILED = "lifespan.shutdown.failed"
ANSWERS = [STARTUP_COMPLETE, STARTUP_FAILED, SHUTDOWN_COMPLETE, SHUTDOWN_FAILED]
ALL_STATUSES: list[LifespanStatus] = [
    "idle",
    "starting",
    "started",
    "failed",
    "unsupported",
    "stopping",
    "stopped",
    "errored",
]


def at(status: LifespanStatus) -> Lifespan:
    """A lifespan brought to ``status`` the ordinary way, with its events drained."""
    lifespan = Lifespan()
    if status != "idle":
        assert lifespan.startup()
        assert lifespan.receive() == STARTUP
    if status == "failed":
        lifespan.send({"type": STARTUP_FAILED})
    elif status == "unsupported":
        lifespan.app_finished(RuntimeError("no lifespan here"))
    elif status in ("started", "stopping", "stopped", "errored"):
        lifespan.send({"type": STARTUP_COMPLETE})
    if status in ("stopping", "stopped"):
        assert lifespan.shutdown()
        assert lifespan.receive() == SHUTDOWN
    if status == "stopped":
        lifespan.send({"type": SHUTDOWN_COMPLETE})
    elif status == "errored":
        lifespan.app_finished(RuntimeError("crashed after startup"))
    lifespan.pop_events()
    assert lifespan.status == status
    return lifespan


def test_scope_and_state() -> None:
    # ASGI: LIFE-01, MAIN-02, MAIN-03, MAIN-04, VER-03
    lifespan = Lifespan()
    assert lifespan.scope == {
        "type": "lifespan",
        "asgi": {"version": "3.0", "spec_version": "2.0"},
        "state": {},
    }
    assert lifespan.status == "idle"
    assert lifespan.pop_events() == []
    # ASGI: LIFE-11 the app fills the very dict the driver later shallow-copies into scopes.
    assert lifespan.scope["state"] is lifespan.state
    lifespan.scope["state"]["db"] = pool = object()
    assert lifespan.state == {"db": pool}


def test_happy_path_exact_messages() -> None:
    # ASGI: LIFE-03, LIFE-04, LIFE-06, LIFE-07
    lifespan = Lifespan()
    assert lifespan.startup() is True
    assert (lifespan.status, lifespan.pop_events()) == ("starting", [])
    assert lifespan.receive() == {"type": "lifespan.startup"}
    assert lifespan.receive() is None  # the app got everything for now: it waits
    lifespan.state["answer"] = 42
    lifespan.send({"type": STARTUP_COMPLETE})
    assert (lifespan.status, lifespan.pop_events()) == ("started", [StartupComplete()])

    assert lifespan.shutdown() is True
    # The app waits in receive(), so it is woken.
    assert (lifespan.status, lifespan.pop_events()) == ("stopping", [LifespanReadable()])
    assert lifespan.receive() == {"type": "lifespan.shutdown"}
    assert lifespan.receive() is None
    lifespan.send({"type": SHUTDOWN_COMPLETE})
    assert lifespan.pop_events() == [ShutdownComplete()]
    assert lifespan.status == "stopped"

    lifespan.app_finished(None)
    assert lifespan.pop_events() == []
    assert lifespan.status == "stopped"
    assert lifespan.state == {"answer": 42}


def test_app_waiting_before_startup_is_woken() -> None:
    lifespan = Lifespan()
    assert lifespan.receive() is None
    assert lifespan.startup()
    assert lifespan.pop_events() == [LifespanReadable()]
    assert lifespan.receive() == STARTUP


def test_no_readable_when_the_app_is_not_waiting() -> None:
    lifespan = Lifespan()
    lifespan.startup()
    assert lifespan.receive() == STARTUP
    lifespan.send({"type": STARTUP_COMPLETE})
    lifespan.shutdown()
    assert lifespan.pop_events() == [StartupComplete()]
    assert lifespan.receive() == SHUTDOWN


def test_receive_returns_fresh_dicts() -> None:
    first, second = Lifespan(), Lifespan()
    first.startup()
    second.startup()
    message = first.receive()
    assert message is not None
    message["type"] = "mutated"
    assert second.receive() == STARTUP


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"type": STARTUP_FAILED, "message": "no database"}, "no database"),
        ({"type": STARTUP_FAILED}, ""),
    ],
)
def test_startup_failed(message: dict[str, Any], expected: str) -> None:
    # ASGI: LIFE-05 the message is optional and defaults to "".
    lifespan = at("starting")
    lifespan.send(message)
    assert lifespan.pop_events() == [StartupFailed(expected)]
    assert lifespan.status == "failed"
    # No shutdown phase after a failed startup; the app gets nothing more.
    assert lifespan.shutdown() is False
    assert lifespan.receive() is None
    lifespan.app_finished(None)
    assert lifespan.pop_events() == []


def test_shutdown_failed() -> None:
    # ASGI: LIFE-08
    lifespan = at("stopping")
    lifespan.send({"type": SHUTDOWN_FAILED, "message": "could not flush"})
    assert lifespan.pop_events() == [ShutdownFailed("could not flush")]
    assert lifespan.status == "stopped"
    assert lifespan.shutdown() is False
    assert lifespan.pop_events() == []


def test_unsupported_when_the_app_raises_at_once() -> None:
    # ASGI: LIFE-10, MAIN-14 the app raises on the unknown scope type before startup() is called.
    lifespan = Lifespan()
    error = ValueError("unknown scope type 'lifespan'")
    lifespan.app_finished(error)
    assert lifespan.pop_events() == [LifespanUnsupported(error)]
    assert lifespan.status == "unsupported"
    assert lifespan.startup() is False  # nothing to wait for, and never sent
    assert lifespan.receive() is None
    assert lifespan.shutdown() is False
    assert lifespan.pop_events() == []


def test_unsupported_when_the_app_raises_during_startup() -> None:
    # ASGI: LIFE-10 the server continues and sends no further lifespan event, not even shutdown.
    lifespan = at("starting")
    error = RuntimeError("boom")
    lifespan.app_finished(error)
    assert lifespan.pop_events() == [LifespanUnsupported(error)]
    assert lifespan.status == "unsupported"
    assert lifespan.shutdown() is False
    assert lifespan.receive() is None
    assert lifespan.pop_events() == []


def test_unsupported_when_startup_is_queued_but_never_read() -> None:
    # ASGI: LIFE-10 the undelivered lifespan.startup is dropped.
    lifespan = Lifespan()
    lifespan.startup()
    lifespan.app_finished(RuntimeError("boom"))
    assert lifespan.receive() is None


@pytest.mark.parametrize("status", ["idle", "starting"])
def test_unsupported_when_the_app_returns_without_answering(status: LifespanStatus) -> None:
    # ASGI: LIFE-13 returning is treated like raising; exc None tells the driver to warn.
    lifespan = at(status)
    lifespan.app_finished(None)
    assert lifespan.pop_events() == [LifespanUnsupported(None)]
    assert lifespan.status == "unsupported"


@pytest.mark.parametrize("status", ["started", "stopping"])
@pytest.mark.parametrize("exc", [RuntimeError("late crash"), None])
def test_errored_after_startup_complete(status: LifespanStatus, exc: BaseException | None) -> None:
    # ASGI: LIFE-12 report it, and don't wait for a shutdown answer that cannot come.
    lifespan = at(status)
    lifespan.app_finished(exc)
    assert lifespan.pop_events() == [LifespanErrored(exc)]
    assert lifespan.status == "errored"
    assert lifespan.shutdown() is False
    assert lifespan.receive() is None
    assert lifespan.pop_events() == []


def test_exception_after_shutdown_complete_queues_nothing() -> None:
    lifespan = at("stopped")
    lifespan.app_finished(RuntimeError("raised in cleanup"))
    assert lifespan.pop_events() == []
    assert lifespan.status == "stopped"


# Every (status, answer) pair.  The expected table is written out here, not imported.
ALLOWED: dict[tuple[LifespanStatus, str], tuple[LifespanStatus, LifespanEvent]] = {
    ("starting", STARTUP_COMPLETE): ("started", StartupComplete()),  # ASGI: LIFE-04
    ("starting", STARTUP_FAILED): ("failed", StartupFailed("")),  # ASGI: LIFE-05
    ("stopping", SHUTDOWN_COMPLETE): ("stopped", ShutdownComplete()),  # ASGI: LIFE-07
    ("stopping", SHUTDOWN_FAILED): ("stopped", ShutdownFailed("")),  # ASGI: LIFE-08
}
# A bad lifespan answer fails the phase in progress; between the phases it is an error.
BAD_ANSWER_OUTCOME: dict[LifespanStatus, tuple[LifespanStatus, type[LifespanEvent]]] = {
    "idle": ("failed", StartupFailed),
    "starting": ("failed", StartupFailed),
    "started": ("errored", LifespanErrored),
    "stopping": ("stopped", ShutdownFailed),
}


@pytest.mark.parametrize("status", ALL_STATUSES)
@pytest.mark.parametrize("type_", ANSWERS)
def test_every_status_andlifespan_answers(status: LifespanStatus, type_: str) -> None:
    # ASGI: LIFE-09 startup -> complete|failed -> ... -> shutdown -> complete|failed, nothing else.
    lifespan = at(status)
    if (status, type_) in ALLOWED:
        next_status, event = ALLOWED[(status, type_)]
        lifespan.send({"type": type_})
        assert lifespan.status == next_status
        assert lifespan.pop_events() == [event]
        return
    with pytest.raises(AppMisuseError) as info:
        lifespan.send({"type": type_})
    assert info.value.rule == "LIFE-09"
    assert info.value.message_type == type_
    assert "LIFE-09" in str(info.value)
    events = lifespan.pop_events()
    if status in TERMINAL_STATUSES:
        assert lifespan.status == status
        assert events == []
        return
    next_status, event_type = BAD_ANSWER_OUTCOME[status]
    assert lifespan.status == next_status
    assert len(events) == 1
    assert isinstance(events[0], event_type)
    if isinstance(events[0], LifespanErrored):
        assert events[0].exc is info.value
    else:
        assert isinstance(events[0], (StartupFailed, ShutdownFailed))
        assert events[0].message == str(info.value)


def test_misuse_during_startup_fails_startup_with_the_error_text() -> None:
    # ASGI: LIFE-09, LIFE-05 an app that speaks lifespan but answers wrongly must not be served.
    lifespan = at("starting")
    with pytest.raises(AppMisuseError) as info:
        lifespan.send({"type": SHUTDOWN_COMPLETE})
    assert lifespan.pop_events() == [StartupFailed(str(info.value))]
    assert "lifespan.startup.complete or lifespan.startup.failed" in info.value.detail
    # The app is likely to raise our error next; that changes nothing.
    lifespan.app_finished(info.value)
    assert lifespan.pop_events() == []
    assert lifespan.status == "failed"


@pytest.mark.parametrize("status", ["idle", "starting"])
def test_answering_before_receiving_is_out_of_order(status: LifespanStatus) -> None:
    # ASGI: LIFE-09 the app cannot answer a lifespan.startup it has not received.
    lifespan = Lifespan()
    if status == "starting":
        lifespan.startup()
    with pytest.raises(AppMisuseError) as info:
        lifespan.send({"type": STARTUP_COMPLETE})
    assert info.value.rule == "LIFE-09"
    assert lifespan.status == "failed"
    assert lifespan.pop_events() == [StartupFailed(str(info.value))]
    if status == "idle":
        assert lifespan.startup() is False  # already settled: nothing to wait for
    assert lifespan.receive() is None


def test_answering_shutdown_before_receiving_it_fails_shutdown() -> None:
    # ASGI: LIFE-09
    lifespan = at("started")
    lifespan.shutdown()
    with pytest.raises(AppMisuseError, match="before receiving it") as info:
        lifespan.send({"type": SHUTDOWN_COMPLETE})
    assert lifespan.pop_events() == [ShutdownFailed(str(info.value))]
    assert lifespan.status == "stopped"


FOREIGN: list[Any] = [
    {"type": "http.response.start", "status": 200, "headers": []},  # an app ignoring scope type
    {"type": "lifespan.startup"},  # a receive message, not a send message
    {"type": "lifespan.startup.completed"},
    {"type": b"lifespan.startup.complete"},
    {"type": ["unhashable"]},
    {},
    [("type", STARTUP_COMPLETE)],
    None,
]


@pytest.mark.parametrize("message", FOREIGN)
@pytest.mark.parametrize("status", ["idle", "starting"])
def test_foreign_message_before_startup_answer_is_unsupported(
    status: LifespanStatus, message: Any
) -> None:
    # ASGI: MAIN-09 unknown type raises; LIFE-10 it is handled as the exception it becomes.
    lifespan = at(status)
    with pytest.raises(AppMisuseError) as info:
        lifespan.send(message)
    assert info.value.rule == "MAIN-09"
    assert lifespan.pop_events() == [LifespanUnsupported(info.value)]
    assert lifespan.status == "unsupported"


@pytest.mark.parametrize("message", FOREIGN)
@pytest.mark.parametrize("status", ["started", "stopping"])
def test_foreign_message_after_startup_is_an_error(status: LifespanStatus, message: Any) -> None:
    # ASGI: MAIN-09, LIFE-12
    lifespan = at(status)
    with pytest.raises(AppMisuseError) as info:
        lifespan.send(message)
    assert info.value.rule == "MAIN-09"
    assert lifespan.pop_events() == [LifespanErrored(info.value)]
    assert lifespan.status == "errored"


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
def test_foreign_message_in_a_terminal_status_queues_nothing(status: LifespanStatus) -> None:
    # ASGI: MAIN-09
    lifespan = at(status)
    with pytest.raises(AppMisuseError, match="MAIN-09"):
        lifespan.send({"type": "http.response.start"})
    assert lifespan.pop_events() == []
    assert lifespan.status == status


def test_extra_keys_are_allowed() -> None:
    # ASGI: MAIN-10 unknown keys never raise, including "message" on a complete.
    lifespan = at("starting")
    lifespan.send({"type": STARTUP_COMPLETE, "message": 1, "x-vendor": {"a": 1}})
    assert lifespan.pop_events() == [StartupComplete()]
    lifespan.shutdown()
    lifespan.receive()
    lifespan.send({"type": SHUTDOWN_FAILED, "message": "bye", "extra": None})
    assert lifespan.pop_events() == [ShutdownFailed("bye")]


@pytest.mark.parametrize("bad", [None, b"bytes", 3, ["x"]])
def test_non_str_failure_message_raises(bad: object) -> None:
    # ASGI: MAIN-09 a wrong Python type raises; LIFE-05 startup then fails with our text.
    lifespan = at("starting")
    with pytest.raises(AppMisuseError) as info:
        lifespan.send({"type": STARTUP_FAILED, "message": bad})
    assert info.value.rule == "MAIN-09"
    assert info.value.message_type == STARTUP_FAILED
    assert lifespan.pop_events() == [StartupFailed(str(info.value))]
    assert lifespan.status == "failed"


def test_non_str_shutdown_failure_message_fails_shutdown() -> None:
    # ASGI: MAIN-09, LIFE-08
    lifespan = at("stopping")
    with pytest.raises(AppMisuseError, match="MAIN-09") as info:
        lifespan.send({"type": SHUTDOWN_FAILED, "message": 7})
    assert lifespan.pop_events() == [ShutdownFailed(str(info.value))]
    assert lifespan.status == "stopped"


@pytest.mark.parametrize("status", ["idle", "starting", "failed", "unsupported", "errored"])
def test_shutdown_is_a_no_op_unless_started(status: LifespanStatus) -> None:
    # ASGI: LIFE-09, LIFE-10, LIFE-12
    lifespan = at(status)
    assert lifespan.shutdown() is False
    assert lifespan.status == status
    assert lifespan.pop_events() == []


def test_shutdown_twice_is_harmless() -> None:
    lifespan = at("stopping")
    assert lifespan.shutdown() is False
    assert lifespan.receive() is None
    assert lifespan.pop_events() == []


def test_driver_misuse() -> None:
    lifespan = Lifespan()
    lifespan.startup()
    with pytest.raises(DriverMisuseError):
        lifespan.startup()
    lifespan.app_finished(None)
    with pytest.raises(DriverMisuseError):
        lifespan.app_finished(None)


def test_send_after_the_app_finished_raises() -> None:
    lifespan = at("started")
    lifespan.app_finished(None)
    lifespan.pop_events()
    with pytest.raises(AppMisuseError, match="LIFE-09"):
        lifespan.send({"type": SHUTDOWN_COMPLETE})
    assert lifespan.pop_events() == []


@given(misused=lifespan_misused_messages(),
       status=st.sampled_from(["idle", "starting", "started", "stopping"]))
def test_misused_messages_raise_their_rule_and_end_the_protocol(misused: Misused,
                                                                 status: LifespanStatus) -> None:
    # MAIN-08/09, LIFE-09: whatever the live status, a misused message raises the rule it
    # breaks and leaves a terminal status with exactly one outcome event queued.
    lifespan = at(status)
    expected = misused.message.get("type") if isinstance(misused.message, dict) else None
    fits = (status, expected) in (("starting", STARTUP_FAILED), ("stopping", SHUTDOWN_FAILED))
    rule = misused.rule if misused.name != "failure_text_not_str" or fits else "LIFE-09"
    with pytest.raises(AppMisuseError) as caught:
        lifespan.send(misused.message)
    assert caught.value.rule == rule, misused.name
    assert lifespan.status in TERMINAL_STATUSES
    assert len(lifespan.pop_events()) == 1


# --- Random call sequences -------------------------------------------------------------------
# Random driver and app calls.  Only AppMisuseError may escape send(); DriverMisuseError is
# expected exactly from a repeated startup() or app_finished(), and nothing else may escape.


_anything = st.one_of(
    lifespan_answers(ANSWERS),
    lifespan_misused_messages().map(lambda misused: misused.message),
)
# Weighted, with a "next" step that follows the protocol from the current status, so that many
# runs get through startup and shutdown before something goes wrong.
_KINDS = {
    "next": 8,
    "startup": 1,
    "shutdown": 1,
    "receive": 2,
    "answer": 1,
    "anything": 1,
    "finish": 1,
}
_kinds = st.sampled_from([kind for kind, weight in _KINDS.items() for _ in range(weight)])


def _draw_op(data: st.DataObject, status: LifespanStatus, undelivered: bool) -> tuple[Any, ...]:
    kind = data.draw(_kinds)
    if kind == "next":
        if undelivered:
            return ("receive",)
        if status in ("starting", "stopping"):
            fitting = [type_ for (when, type_) in ALLOWED if when == status]
            # mostly "complete"
            return ("send", data.draw(lifespan_answers([fitting[0], *fitting])))
        kind = {"idle": "startup", "started": "shutdown"}.get(status, "finish")
    if kind == "answer":
        return ("send", data.draw(lifespan_answers(ANSWERS)))
    if kind == "anything":
        return ("send", data.draw(_anything))
    if kind == "finish":
        return ("finish", data.draw(st.sampled_from([None, RuntimeError("app error")])))
    return (kind,)


_STATUS_AFTER = {
    StartupComplete: "started",
    StartupFailed: "failed",
    ShutdownComplete: "stopped",
    ShutdownFailed: "stopped",
    LifespanUnsupported: "unsupported",
    LifespanErrored: "errored",
}


@settings(max_examples=examples(400))
@given(st.data(), st.integers(0, 30))
def test_random_call_sequences_keep_the_invariants(data: st.DataObject, steps: int) -> None:
    lifespan = Lifespan()
    seen: list[LifespanEvent] = []
    received: list[dict[str, Any]] = []
    startup_called = finished = waiting = undelivered = False
    for _ in range(steps):
        before = lifespan.status
        op = _draw_op(data, before, undelivered)
        if op[0] == "startup":
            if startup_called:
                with pytest.raises(DriverMisuseError):
                    lifespan.startup()
            else:
                undelivered = lifespan.startup()
                assert undelivered is (before == "idle")
            startup_called = True
        elif op[0] == "shutdown":
            queued = lifespan.shutdown()
            assert queued is (before == "started")
            undelivered = undelivered or queued
        elif op[0] == "receive":
            message = lifespan.receive()
            waiting = message is None
            assert waiting is not undelivered or lifespan.status in TERMINAL_STATUSES
            undelivered = False
            if message is not None:
                assert message in (STARTUP, SHUTDOWN)
                received.append(message)
        elif op[0] == "send":
            try:  # only AppMisuseError may escape
                lifespan.send(op[1])
            except AppMisuseError as error:
                assert error.rule in ("MAIN-09", "LIFE-09")
                assert lifespan.status in TERMINAL_STATUSES
        else:
            if finished:
                with pytest.raises(DriverMisuseError):
                    lifespan.app_finished(op[1])
            else:
                lifespan.app_finished(op[1])
                assert lifespan.status in TERMINAL_STATUSES
            finished = True

        events = lifespan.pop_events()
        if before in TERMINAL_STATUSES:
            assert events == []  # nothing follows a terminal status
            assert lifespan.status == before
        for event in events:
            if isinstance(event, LifespanReadable):
                assert waiting and op[0] in ("startup", "shutdown")
                waiting = False
            else:
                assert lifespan.status == _STATUS_AFTER[type(event)]
        seen.extend(events)

    # The app gets lifespan.startup, then lifespan.shutdown, each at most once.
    assert received in ([], [STARTUP], [STARTUP, SHUTDOWN])
    outcomes = [type(event) for event in seen if not isinstance(event, LifespanReadable)]
    for kind in (StartupComplete, StartupFailed, LifespanUnsupported):
        assert outcomes.count(kind) <= 1
    startup_outcomes = [
        kind for kind in outcomes if kind in (StartupComplete, StartupFailed, LifespanUnsupported)
    ]
    assert len(startup_outcomes) <= 1
    # A shutdown answer or late error only ever follows a completed startup.
    later = [
        kind for kind in outcomes if kind in (ShutdownComplete, ShutdownFailed, LifespanErrored)
    ]
    assert len(later) <= 1
    if later:
        assert startup_outcomes == [StartupComplete]
    if finished:
        assert lifespan.status in TERMINAL_STATUSES
