"""Property-based and stateful tests of the HTTP/1.1 core (asgi_sansio._http11 through the
``ServerConnection`` contract).

Every test plays the driver itself, with no event loop: bytes in through ``receive_data``,
events out through ``pop_events``, the app's ``receive``/``send`` called directly.  What the
server wrote is decoded by an independent h11 *client* (tests/helpers.py), never by the code
under test.

Profiles (tests/conftest.py): ``CI=1`` runs the bounded, derandomized "ci" profile;
``HYPOTHESIS_PROFILE=deep`` runs 5000 examples per test for bug hunts (add
``--hypothesis-seed=N`` to vary the machine's runs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import h11
import pytest
from hypothesis import event as hypothesis_event
from hypothesis import given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from asgi_sansio import (
    AppMisuseError,
    ClientDisconnected,
    Config,
    ConnectionClosed,
    ServerConnection,
    StreamEnded,
    StreamReadable,
    StreamStarted,
    StreamWritable,
)
from tests.helpers import parse_responses
from tests.strategies import (
    CLIENT_ERROR_STATUSES,
    H2_PREFACE,
    TEST_LIMITS,
    BadReq,
    Misuse,
    Req,
    Resp,
    arbitrary_bytes,
    bad_requests,
    misuses,
    pipeline_bytes,
    pipeline_layout,
    pipelines,
    responses,
    served,
    splits,
)

from .conftest import steps

# A checklist ID: MAIN-09, HTTP-TX-12, SRV-01, EXT-TRAILERS-05, ...
RULE_ID = re.compile(r"(MAIN|VER|HTTP-(SCOPE|RX|TX|ERR)|SRV|AMB|EXT-[A-Z]+)-\d{2}")
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
CLIENT = ("10.0.0.1", 5555)
SERVER = ("10.0.0.2", 80)


def new_conn(**overrides: Any) -> ServerConnection:
    return ServerConnection(Config(**{**TEST_LIMITS, **overrides}), now=0.0, client=CLIENT,
                            server=SERVER)


# --------------------------------------------------------------------------------------------
# A loop-free driver with a simple app: read the whole body, then play a response script
# --------------------------------------------------------------------------------------------


@dataclass
class AppRecord:
    scope: dict[str, Any]
    body: bytes = b""
    received: list[str] = field(default_factory=list)  # receive-message types, in order
    done_reading: bool = False
    finished: bool = False
    error: BaseException | None = None


Script = Any  # callable (index, scope, body) -> list of messages


def seq_header(start: dict[str, Any], index: int) -> dict[str, Any]:
    """Tag a start message with the request's index, to check response order (SRV-12)."""
    tagged = dict(start)
    tagged["headers"] = [*list(start.get("headers") or []), (b"x-seq", b"%d" % index)]
    return tagged


class Run:
    """Feeds bytes, collects events and output, and runs one eager app per stream."""

    def __init__(self, script: Script, conn: ServerConnection | None = None) -> None:
        self.conn = conn if conn is not None else new_conn()
        self.script = script
        self.now = 0.0
        self.events: list[Any] = []
        self.out = b""
        self.segments: list[bytes] = []  # output per contract call
        self.apps: dict[int, AppRecord] = {}

    def feed(self, data: bytes) -> None:
        self.conn.receive_data(data, self.now)
        self.settle()

    def feed_all(self, chunks: list[bytes], eof: bool = False) -> None:
        for chunk in chunks:
            self.feed(chunk)
        if eof:
            self.feed(b"")

    def _drain(self) -> bool:
        events = self.conn.pop_events()
        self.events.extend(events)
        data = self.conn.data_to_send()
        if data:
            self.out += data
            self.segments.append(data)
        for event in events:
            if isinstance(event, StreamStarted):
                assert event.stream_id not in self.apps
                self.apps[event.stream_id] = AppRecord(event.scope)
        return bool(events)

    def settle(self) -> None:
        progress = True
        while progress:
            progress = self._drain()
            for sid, app in list(self.apps.items()):
                if app.finished:
                    continue
                if not app.done_reading:
                    msg = self.conn.receive(sid)
                    if msg is None:
                        continue
                    progress = True
                    app.received.append(msg["type"])
                    if msg["type"] == "http.request":
                        app.body += msg["body"]
                        if msg["more_body"]:
                            continue
                    app.done_reading = True
                    if msg["type"] == "http.disconnect":
                        self._finish(sid, app)
                        continue
                self._respond(sid, app)
                progress = True
            self._drain()

    def _respond(self, sid: int, app: AppRecord) -> None:
        index = sid - 1
        for message in self.script(index, app.scope, app.body):
            try:
                self.conn.send(sid, message, self.now)
            except (AppMisuseError, ClientDisconnected) as exc:
                app.error = exc
                break
        self._finish(sid, app)

    def _finish(self, sid: int, app: AppRecord) -> None:
        app.finished = True
        exc = app.error if isinstance(app.error, AppMisuseError) else None
        self.conn.app_finished(sid, self.now, exc)
        self._drain()

    # -- views -----------------------------------------------------------------------------

    def lifecycle(self) -> list[tuple[str, int]]:
        """Started/ended/closed events in order (StreamReadable depends on timing)."""
        out = []
        for e in self.events:
            if isinstance(e, StreamStarted | StreamEnded):
                out.append((type(e).__name__, e.stream_id))
            elif isinstance(e, ConnectionClosed):
                out.append(("ConnectionClosed", 0))
        return out

    def check_lifecycle(self) -> None:
        """The event-order rules of the contract (_events.py)."""
        started: list[int] = []
        ended: set[int] = set()
        closed = False
        for e in self.events:
            assert not isinstance(e, StreamWritable)  # writable() is always True on h1
            if isinstance(e, StreamStarted):
                assert not closed, "StreamStarted after ConnectionClosed"
                assert e.stream_id not in started
                started.append(e.stream_id)
            elif isinstance(e, StreamEnded):
                assert e.stream_id in started and e.stream_id not in ended, e
                ended.add(e.stream_id)
            elif isinstance(e, StreamReadable):
                assert e.stream_id in started, e
            elif isinstance(e, ConnectionClosed):
                assert not closed, "ConnectionClosed twice"
                closed = True
                assert ended == set(started), "ConnectionClosed before every StreamEnded"
        assert started == sorted(started)
        assert closed == self.conn.closed
        if closed:
            assert not self.conn.wants_read


def script_from(resps: list[Resp]) -> Script:
    def script(index: int, scope: dict[str, Any], body: bytes) -> list[dict[str, Any]]:
        messages = resps[index].messages
        return [seq_header(messages[0], index), *messages[1:]]

    return script


def ok_script(index: int, scope: dict[str, Any], body: bytes) -> list[dict[str, Any]]:
    return [
        {"type": "http.response.start", "status": 200,
         "headers": [(b"x-app", b"1"), (b"x-seq", b"%d" % index)]},
        {"type": "http.response.body", "body": b"hello"},
    ]


def expected_scope(req: Req) -> dict[str, Any]:
    """HTTP-SCOPE-01..16 for a request, computed from the strategy, not from the core."""
    return {
        "type": "http",  # HTTP-SCOPE-01
        "asgi": {"version": "3.0", "spec_version": "2.5"},  # HTTP-SCOPE-02
        "http_version": req.version,  # HTTP-SCOPE-03
        "method": req.method,  # HTTP-SCOPE-04, AMB-04
        "scheme": "http",  # HTTP-SCOPE-05
        "path": req.path,  # HTTP-SCOPE-06, AMB-06
        "raw_path": req.raw_path,  # HTTP-SCOPE-07
        "query_string": req.query_string,  # HTTP-SCOPE-08
        "root_path": "",  # HTTP-SCOPE-09
        "headers": [list(h) for h in req.headers],  # HTTP-SCOPE-10: order and duplicates kept
        "client": list(CLIENT),  # HTTP-SCOPE-13
        "server": list(SERVER),  # HTTP-SCOPE-14
    }


def scope_view(scope: dict[str, Any]) -> dict[str, Any]:
    view = {k: scope[k] for k in ("type", "asgi", "http_version", "method", "scheme", "path",
                                  "raw_path", "query_string", "root_path")}
    view["headers"] = [list(h) for h in scope["headers"]]
    view["client"] = list(scope["client"])
    view["server"] = list(scope["server"])
    return view


def without_continues(run: Run) -> bytes:
    """The output minus the 100 Continue answers (each leaves in a receive() call of its own,
    so a body that happens to contain those bytes is not touched)."""
    return b"".join(seg for seg in run.segments if seg != CONTINUE)


# --------------------------------------------------------------------------------------------
# Sanity of the strategies themselves
# --------------------------------------------------------------------------------------------


@given(reqs=pipelines(max_size=3), data=st.data())
def test_strategies_are_valid_http(reqs: list[Req], data: st.DataObject) -> None:
    """An h11 server (not the core) parses every generated request as the strategy says."""
    wire = data.draw(pipeline_bytes(reqs))
    server = h11.Connection(h11.SERVER)
    server.receive_data(wire.lstrip(b"\r\n"))
    for i, req in enumerate(served(reqs)):
        event = server.next_event()
        assert isinstance(event, h11.Request), event
        assert event.method == req.method.encode()
        assert event.target == req.target
        assert event.http_version == req.version.encode()
        assert list(event.headers) == list(req.headers)
        body = b""
        while True:
            event = server.next_event()
            if isinstance(event, h11.EndOfMessage):
                break
            assert isinstance(event, h11.Data), event
            body += event.data
        assert body == req.body
        if req.closes or i == len(served(reqs)) - 1:
            break
        server.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
        server.send(h11.EndOfMessage())
        server.start_next_cycle()
        pending = server.trailing_data[0]
        if pending[:1] in (b"\r", b"\n"):  # h11 refuses the empty lines RFC 9112 2.2 allows
            server = h11.Connection(h11.SERVER)
            server.receive_data(pending.lstrip(b"\r\n"))


# --------------------------------------------------------------------------------------------
# (a) split invariance and (b) round trip
# --------------------------------------------------------------------------------------------


def summary(run: Run) -> dict[str, Any]:
    return {
        "lifecycle": run.lifecycle(),
        "scopes": {sid: app.scope for sid, app in run.apps.items()},
        "bodies": {sid: app.body for sid, app in run.apps.items()},
        "received": {sid: [t for i, t in enumerate(app.received)
                           if t != "http.request" or i == len(app.received) - 1
                           or app.received[i + 1] != "http.request"]
                     for sid, app in run.apps.items()},
        "out": without_continues(run),
        "closed": run.conn.closed,
        "wants_read": run.conn.wants_read,
        "timer": run.conn.get_timer(),
    }


@given(data=st.data())
def test_split_invariance(data: st.DataObject) -> None:
    """Any split of the client's bytes gives the same ASGI events and the same response bytes
    (100 Continue aside: it depends on whether the body was there when the app asked)."""
    reqs = data.draw(pipelines(), label="requests")
    wire = data.draw(pipeline_bytes(reqs), label="wire")
    resps = [data.draw(responses(), label=f"response {i}") for i in range(len(reqs))]
    chunks = data.draw(splits(wire), label="chunks")

    runs = []
    for pieces in ([wire], chunks, [wire[i:i + 1] for i in range(len(wire))]):
        run = Run(script_from(resps))
        run.feed_all(pieces)
        run.check_lifecycle()
        runs.append(run)
    ref = summary(runs[0])
    assert summary(runs[1]) == ref
    assert summary(runs[2]) == ref

    answered = served(reqs)
    for n, run in enumerate(runs):
        replies = parse_responses(run.out, [r.method for r in answered], eof=run.conn.closed)
        for reply, req in zip(replies, answered, strict=True):
            # SRV-05: at most one 100 per request, only for Expect: 100-continue requests; and
            # none in the reference, where the body is always there when the app asks.
            assert reply.informational in ([], [100])
            if reply.informational:
                assert req.expect_continue and n > 0

    # Then the client leaves: the same end, whatever the split was.
    for run in runs:
        run.feed(b"")
        run.check_lifecycle()
        assert run.conn.closed
    assert summary(runs[1]) == summary(runs[0])
    assert summary(runs[2]) == summary(runs[0])


def check_round_trip(reqs: list[Req], resps: list[Resp], run: Run) -> None:
    answered = served(reqs)
    # HTTP-SCOPE-*: one scope per request, as the strategy says; HTTP-SCOPE-17: de-chunked.
    assert len(run.apps) == len(answered)
    for sid, req in enumerate(answered, start=1):
        app = run.apps[sid]
        assert scope_view(app.scope) == expected_scope(req)
        assert app.body == req.body
        # HTTP-RX-02/05: request messages, the last with more_body=False, nothing else.
        assert app.received and set(app.received) == {"http.request"}
        exts = app.scope["extensions"]
        # EXT-TRAILERS-03/04: offered only when asked for, and never to HTTP/1.0.
        assert ("http.response.trailers" in exts) == (req.te_trailers and req.version == "1.1")
        assert "http.response.early_hint" in exts

    replies = parse_responses(run.out, [r.method for r in answered], eof=run.conn.closed)
    assert len(replies) == len(answered)
    for index, (reply, req, resp) in enumerate(
        zip(replies, answered, resps[:len(answered)], strict=True)
    ):
        note(f"reply {index}: {reply!r}")
        raw = [(n.lower(), v) for n, v in reply.raw_headers]
        names = [n for n, _ in raw]
        assert reply.status == resp.status
        assert (b"x-seq", b"%d" % index) in raw  # SRV-12: in request order
        no_body = req.method == "HEAD" or resp.status in (204, 304)
        # SRV-03/SRV-04: HEAD, 204 and 304 carry no body on the wire.
        assert reply.body == (b"" if no_body else resp.body)
        # HTTP-TX-02: the app's headers, in order, as given (HTTP-TX-03: minus its TE).
        app_headers = [(n, v) for n, v in resp.headers
                       if n not in (b"transfer-encoding", b"server")]
        ours = {b"date", b"server", b"content-length", b"transfer-encoding", b"connection",
                b"x-seq"}
        assert [(n, v) for n, v in raw if n not in ours] == app_headers
        # SRV-15: one date, one server (the app's if it gave one), never a duplicate CL.
        assert names.count(b"date") == 1
        servers = [v for n, v in raw if n == b"server"]
        app_server = [v for n, v in resp.headers if n == b"server"]
        assert servers == (app_server or [b"asgi-sansio"])
        lengths = [v for n, v in raw if n == b"content-length"]
        if resp.status == 204:
            assert lengths == []  # RFC 9110 8.6: never on a 204
        elif resp.with_length:
            assert lengths == [b"%d" % len(resp.body)]
        else:
            assert len(lengths) <= 1
            if resp.status not in (204, 304) and req.method != "HEAD":
                assert lengths == []
                # HTTP-TX-11 / STACK-H11-03: chunked for 1.1, close-delimited for 1.0.
                framing = [v for n, v in raw if n == b"transfer-encoding"]
                assert framing == ([b"chunked"] if req.version == "1.1" else [])
        if req.closes:
            assert reply.headers.get(b"connection", b"").lower() == b"close"  # SRV-08
            assert index == len(replies) - 1
            assert run.conn.closed
        else:
            assert b"close" not in reply.headers.get(b"connection", b"").lower()
    if not any(r.closes for r in answered):
        assert not run.conn.closed


@given(data=st.data())
def test_round_trip(data: st.DataObject) -> None:
    """What the server writes decodes (with an h11 client) into exactly the responses the app
    sent, in request order."""
    reqs = data.draw(pipelines(), label="requests")
    wire = data.draw(pipeline_bytes(reqs), label="wire")
    resps = [data.draw(responses(), label=f"response {i}") for i in range(len(reqs))]
    chunks = data.draw(splits(wire), label="chunks")
    run = Run(script_from(resps))
    run.feed_all(chunks)
    run.check_lifecycle()
    check_round_trip(reqs, resps, run)


# --------------------------------------------------------------------------------------------
# (c) bad input
# --------------------------------------------------------------------------------------------


def check_bad_input_output(run: Run, served_methods: list[str]) -> None:
    """Output is well-formed HTTP/1.1: the app's answers, then at most one error answer."""
    closed = [e for e in run.events if isinstance(e, ConnectionClosed)]
    assert len(closed) == 1
    assert run.conn.closed and not run.conn.wants_read
    replies = parse_responses(run.out, [*served_methods, "GET"])
    for i, reply in enumerate(replies):
        if i < len(served_methods) and b"x-app" in reply.headers:
            continue
        assert reply.status in CLIENT_ERROR_STATUSES, reply
        assert reply.headers.get(b"connection") == b"close"
        assert i == len(replies) - 1, "nothing may follow an error answer"


@given(junk=st.one_of(st.binary(max_size=200), arbitrary_bytes()).filter(
    lambda b: not b.startswith(H2_PREFACE)  # that selects HTTP/2, tested elsewhere
), data=st.data())
def test_arbitrary_bytes_never_raise(junk: bytes, data: st.DataObject) -> None:
    """Any bytes, in any split, then EOF: no exception, one ConnectionClosed, and only
    well-formed responses on the wire."""
    chunks = data.draw(splits(junk), label="chunks")
    run = Run(ok_script)
    run.feed_all(chunks, eof=True)
    run.check_lifecycle()
    methods = [app.scope["method"] for app in run.apps.values()]
    check_bad_input_output(run, methods)
    # And the split does not matter.
    ref = Run(ok_script)
    ref.feed_all([junk], eof=True)
    assert (run.out, run.lifecycle()) == (ref.out, ref.lifecycle())


@given(data=st.data())
def test_invalid_requests_are_refused(data: st.DataObject) -> None:
    """A malformed request after valid ones: the valid ones are answered by the app, the bad
    one gets its 4xx/5xx with ``connection: close`` and the app never sees a bad head."""
    good = data.draw(pipelines(min_size=0, max_size=2, allow_close=False, allow_http10=False,
                               max_body=40), label="valid prefix")
    bad: BadReq = data.draw(bad_requests(), label="bad request")
    wire = data.draw(pipeline_bytes(good), label="prefix wire") + bad.wire
    chunks = data.draw(splits(wire), label="chunks")
    run = Run(ok_script)
    run.feed_all(chunks)
    run.check_lifecycle()
    ref = Run(ok_script)
    ref.feed_all([wire])
    assert (without_continues(run), run.lifecycle()) == (
        without_continues(ref), ref.lifecycle()), "the split matters"
    assert run.conn.closed, "a refused request closes the connection"
    started = len(run.apps)
    assert started == len(good) + (1 if bad.head_ok else 0)
    for sid, req in enumerate(good, start=1):
        assert scope_view(run.apps[sid].scope) == expected_scope(req)
    replies = parse_responses(run.out, [r.method for r in good] + ["POST"])
    assert [r.status for r in replies[:len(good)]] == [200] * len(good)
    assert len(replies) == len(good) + 1
    last = replies[-1]
    assert last.status in bad.statuses, (bad.name, last.status)
    assert last.headers.get(b"connection") == b"close"
    if bad.head_ok:
        # The app was called for a good head; the body was bad, so it hears a disconnect.
        app = run.apps[len(good) + 1]
        assert app.received[-1] == "http.disconnect"  # HTTP-RX-05
        assert app.error is None
    run.feed(b"")
    run.check_lifecycle()
    assert len([e for e in run.events if isinstance(e, ConnectionClosed)]) == 1


@given(data=st.data())
def test_content_length_with_transfer_encoding_closes(data: st.DataObject) -> None:
    """RFC 9112 6.3 / SRV-16: CL and TE together is answered (by TE) and the connection closed,
    so a smuggled request behind it is never parsed."""
    body = data.draw(st.binary(max_size=20))
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
    wire = (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" % (len(body) + 5)
            + (b"%x\r\n" % len(body) + body + b"\r\n" if body else b"") + b"0\r\n\r\n" + smuggled)
    run = Run(ok_script)
    run.feed_all(data.draw(splits(wire)))
    run.check_lifecycle()
    assert list(run.apps) == [1]
    assert run.apps[1].body == body
    replies = parse_responses(run.out, ["POST"])
    assert len(replies) == 1 and replies[0].status == 200
    assert replies[0].headers.get(b"connection") == b"close"
    assert run.conn.closed


# --------------------------------------------------------------------------------------------
# (d) app misuse
# --------------------------------------------------------------------------------------------


@given(case=misuses(), second=st.booleans(), data=st.data())
def test_app_misuse(case: Misuse, second: bool, data: st.DataObject) -> None:
    """A bad send raises AppMisuseError naming a checklist rule; the client gets a clean 500 if
    nothing went out yet, else the connection is aborted: never a desynchronised stream."""
    wire = b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
    if second:
        wire += b"GET /second HTTP/1.1\r\nHost: a\r\n\r\n"
    conn = new_conn()
    conn.receive_data(wire, 0.0)
    events = conn.pop_events()
    assert [type(e) for e in events] == [StreamStarted]
    assert conn.receive(1) == {"type": "http.request", "body": b"", "more_body": False}
    out = conn.data_to_send()
    *prefix, bad = case.messages
    for message in prefix:
        conn.send(1, message, 0.0)
    before = out + conn.data_to_send()
    with pytest.raises(AppMisuseError) as info:
        conn.send(1, bad, 0.0)
    err = info.value
    # MAIN-09 / HTTP-ERR-03: the error names the rule it broke.
    assert isinstance(err.rule, str) and RULE_ID.fullmatch(err.rule), err.rule
    assert err.rule in case.rules, (case.name, err.rule, str(err))
    wire_out = before + conn.data_to_send()
    # After the misuse the exchange is over for the app: receive() reports the end.
    assert conn.receive(1) == {"type": "http.disconnect"}  # HTTP-RX-04
    conn.app_finished(1, 0.0, err)
    wire_out += conn.data_to_send()
    events = conn.pop_events()
    # A second app_finished-triggered answer never appears: the core answered once.

    if case.name == "after_done":
        # HTTP-ERR-04 / AMB-01: the response was complete; the connection lives on.
        replies = parse_responses(wire_out, ["GET"], eof=False)
        assert [r.status for r in replies] == [200]
        assert not conn.closed
    else:
        try:
            replies = parse_responses(wire_out, ["GET"], eof=conn.closed)
            truncated = False
        except (AssertionError, h11.RemoteProtocolError):
            truncated = True
        if case.head_sent is False:
            assert not truncated
            assert [r.status for r in replies] == [500]  # HTTP-ERR-01
        elif case.head_sent is True:
            assert truncated and conn.closed  # HTTP-ERR-02: abort
        if truncated:
            # An abort: closed, and the client can tell the response is incomplete.
            assert conn.closed
            assert ConnectionClosed() in events
            with pytest.raises(h11.RemoteProtocolError):
                client = h11.Connection(h11.CLIENT)
                client.send(h11.Request(method="GET", target="/", headers=[("Host", "a")]))
                client.send(h11.EndOfMessage())
                client.receive_data(wire_out)
                client.receive_data(b"")
                while not isinstance(
                    client.next_event(), h11.ConnectionClosed | type(h11.NEED_DATA)
                ):
                    pass
        else:
            assert replies[0].status in (500, 200)
            if replies[0].headers.get(b"connection") == b"close":
                assert conn.closed
    if second and not conn.closed:
        # No desync: the next pipelined request is parsed and answered normally.
        started = [e for e in events if isinstance(e, StreamStarted)]
        assert [e.stream_id for e in started] == [2]
        assert started[0].scope["path"] == "/second"
        assert conn.receive(2) == {"type": "http.request", "body": b"", "more_body": False}
        conn.send(2, {"type": "http.response.start", "status": 201,
                      "headers": [(b"content-length", b"2")]}, 0.0)
        conn.send(2, {"type": "http.response.body", "body": b"ok"}, 0.0)
        wire_out += conn.data_to_send()
        replies = parse_responses(wire_out, ["GET", "GET"], eof=False)
        assert [r.status for r in replies][-1] == 201
        assert replies[-1].body == b"ok"


# --------------------------------------------------------------------------------------------
# Core bugs the properties found, kept as minimal regression tests
# --------------------------------------------------------------------------------------------


def test_shutdown_while_draining_starts_no_new_stream() -> None:
    # SRV-14: after shutdown() no new request is accepted.  Found by HTTP11Machine (the core
    # used to finish the drain and then start the pipelined request).
    conn = new_conn()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc", 0.0)
    assert [type(e) for e in conn.pop_events()] == [StreamStarted]
    # The app answers without reading the body: the core will drain the rest (SRV-07).
    conn.send(1, {"type": "http.response.start", "status": 200,
                  "headers": [(b"content-length", b"2")]}, 0.0)
    conn.send(1, {"type": "http.response.body", "body": b"ok"}, 0.0)
    conn.app_finished(1, 0.0)
    assert conn.pop_events() == [StreamEnded(1)]
    assert not conn.closed
    conn.shutdown(0.0)
    conn.receive_data(b"defghij" + b"GET /after-shutdown HTTP/1.1\r\nHost: a\r\n\r\n", 0.0)
    events = conn.pop_events()
    assert not any(isinstance(e, StreamStarted) for e in events), events
    assert conn.closed


def test_pipelined_long_target_gets_414() -> None:
    # A request line over max_target_length that waited behind another request must still be
    # refused with 414.  Found by test_invalid_requests_are_refused (the core used to drop the
    # waiting bytes and hang until the head timeout).
    long_line = b"GET /" + b"a" * 700 + b" HTTP/1.1\r\nHost: a\r\n\r\n"
    for together in (True, False):
        run = Run(ok_script, new_conn(max_target_length=512))
        first = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        run.feed_all([first + long_line] if together else [first, long_line])
        assert list(run.apps) == [1]
        replies = parse_responses(run.out, ["GET", "GET"])
        assert [r.status for r in replies] == [200, 414]
        assert replies[1].headers[b"connection"] == b"close"
        assert run.conn.closed


# --------------------------------------------------------------------------------------------
# Stateful: client bytes, app calls, timers, EOF and shutdown, interleaved
# --------------------------------------------------------------------------------------------

MAX_READ = 300  # the most bytes the machine's "driver" reads from the socket at once


@dataclass
class StreamModel:
    """What the app side of one stream has done, and what the client must therefore see."""

    sid: int
    req: Req
    scope: dict[str, Any]
    body: bytes = b""  # request body received through receive()
    got_end: bool = False  # http.request with more_body=False seen
    got_disconnect: bool = False
    waiting: bool = False  # receive() returned None; a StreamReadable is owed
    ended: bool = False  # StreamEnded seen
    finished: bool = False  # app_finished called
    resp: str = "init"  # the app's view: init, head, body, done
    status: int | None = None
    declared: int | None = None
    sent: int = 0
    no_body: bool = False
    sent_body: bytes = b""
    failed_body: bytes = b""  # a refused body message's bytes, which an abort may still carry
    outcome: str = "app"  # what the wire should carry: "app", "500" or "abort"
    close_expected: bool = False  # the head must say connection: close
    bad: bool = False  # the invalid request at the end (a good head, a bad body)
    trailers: bool = False  # the app said trailers=True
    sent_trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    hints: int = 0  # early hints that must be on the wire as 103s


class ResponseDecoder:
    """Decodes the server's output incrementally with h11 clients, one per response."""

    def __init__(self, method_for: Any) -> None:
        self.method_for = method_for  # index -> request method
        self.replies: list[dict[str, Any]] = []
        self.complete = 0  # replies[:complete] ended with EndOfMessage
        self.closed_framing = False  # a response said connection: close, or was close-delimited
        self.truncated = False
        self.eof = False
        self._pending_info: list[int] = []
        self._client: h11.Connection | None = None  # made when the first bytes come

    def _new_client(self) -> h11.Connection:
        client = h11.Connection(h11.CLIENT)
        method = self.method_for(len(self.replies))
        client.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
        client.send(h11.EndOfMessage())
        return client

    def feed(self, data: bytes, eof: bool = False) -> None:
        assert not self.eof, "bytes after the connection closed"
        if self._client is None:
            if not data:
                self.eof = eof
                return
            self._client = self._new_client()
        if data:
            assert not self.closed_framing, f"bytes after the connection's last response: {data!r}"
            self._client.receive_data(data)
        if eof:
            self.eof = True
            if self.closed_framing:
                return
            self._client.receive_data(b"")
        self._pump(eof)

    def _pump(self, eof: bool) -> None:
        while True:
            try:
                event = self._client.next_event()
            except h11.RemoteProtocolError:
                if eof:
                    # Closed with no response or mid-response (an abort, HTTP-ERR-02): the
                    # client can tell, which is what matters.  Nothing after it is checked.
                    self.truncated = True
                    return
                raise
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.ConnectionClosed):
                return
            if isinstance(event, h11.InformationalResponse):
                self._pending_info.append(event.status_code)
            elif isinstance(event, h11.Response):
                self.replies.append({
                    "status": event.status_code,
                    "headers": [(n.lower(), v) for n, v in event.headers.raw_items()],
                    "body": b"",
                    "informational": self._pending_info,
                })
                self._pending_info = []
            elif isinstance(event, h11.Data):
                self.replies[-1]["body"] += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.replies[-1]["trailers"] = [(n.lower(), v) for n, v in event.headers]
                self.complete = len(self.replies)
                if self._client.their_state is not h11.DONE:
                    self.closed_framing = True
                    trailing = self._client.trailing_data[0]
                    assert not trailing, f"bytes after a closing response: {trailing!r}"
                    return
                trailing = self._client.trailing_data[0]
                # The next response's client is made when its bytes come, so that its method
                # is known by then (the stream starts before its answer is written).
                self._client = None
                if not trailing:
                    return
                self._client = self._new_client()
                self._client.receive_data(trailing)


class HTTP11Machine(RuleBasedStateMachine):
    """Interleaves client input, app receive/send/finish, timers, EOF and shutdown."""

    def __init__(self) -> None:
        super().__init__()
        self.connections = 0
        self._reset()

    def _reset(self) -> None:
        """A fresh connection and model (the machine goes through several per run: once one
        is closed and its apps are done, the next step connects again)."""
        self.conn = new_conn(keep_alive_timeout=5.0, head_timeout=20.0, shutdown_timeout=10.0)
        self.now = 0.0
        self.reqs: list[Req] = []
        self.wire = b""
        self.ends: list[int] = []
        self.fed = 0
        self.eof = False
        self.shutdown_at: float | None = None
        self.streams: dict[int, StreamModel] = {}
        self.closed_seen = False
        self.out = b""
        self.decoder = ResponseDecoder(self._method_for)
        self.bad: BadReq | None = None  # an invalid request after the valid ones

    def _method_for(self, index: int) -> str:
        # An error answer to a request the app never saw (a 408 for a half-sent head) cannot
        # know its method, so it is decoded as the answer to a GET.
        model = self.streams.get(index + 1)
        return model.req.method if model is not None else "GET"

    # -- plumbing --------------------------------------------------------------------------

    def pump(self) -> None:
        for event in self.conn.pop_events():
            note(f"event {event!r}"[:200])
            assert not self.closed_seen, f"event after ConnectionClosed: {event!r}"
            if isinstance(event, StreamStarted):
                sid = event.stream_id
                assert sid == len(self.streams) + 1, "stream ids count up from 1"
                assert self.shutdown_at is None, "StreamStarted after shutdown()"  # SRV-14
                if sid <= len(self.reqs):
                    req = self.reqs[sid - 1]
                    assert scope_view(event.scope) == expected_scope(req)
                    self.streams[sid] = StreamModel(sid, req, event.scope,
                                                    close_expected=req.closes)
                else:
                    # Only the invalid request at the end, and only if its head is fine.
                    assert self.bad is not None and self.bad.head_ok
                    assert sid == len(self.reqs) + 1
                    self.streams[sid] = StreamModel(sid, BAD_BODY_REQ, event.scope, bad=True)
            elif isinstance(event, StreamEnded):
                model = self.streams[event.stream_id]
                assert not model.ended, "StreamEnded twice"
                model.ended = True
            elif isinstance(event, StreamReadable):
                self.streams[event.stream_id].waiting = False
            elif isinstance(event, ConnectionClosed):
                self.closed_seen = True
                assert all(m.ended for m in self.streams.values()), "closed before StreamEnded"
            else:
                raise AssertionError(f"unexpected event {event!r}")
        data = self.conn.data_to_send()
        if data:
            self.out += data
            self.decoder.feed(data)
        if self.closed_seen and not self.decoder.eof:
            self.decoder.feed(b"", eof=True)

    def live(self) -> list[int]:
        return sorted(sid for sid, m in self.streams.items() if not m.finished)

    # -- rules -----------------------------------------------------------------------------

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        self._connect(data)

    def _connect(self, data: st.DataObject) -> None:
        self.connections += 1
        note(f"-- connection {self.connections}")
        self.reqs = data.draw(pipelines(max_size=4, max_body=700), label="requests")
        self.wire, self.ends = data.draw(pipeline_layout(self.reqs), label="wire")
        if data.draw(st.integers(0, 3), label="then a bad request?") == 0:
            self.bad = data.draw(bad_requests(), label="bad request")
            self.wire += self.bad.wire

    # Every step is one of these actions, drawn with these weights from those that apply.
    # (One rule rather than seven: hypothesis' swarm testing switches whole rules off per run,
    # and a run without "client sends" or "app sends" tests little.  Hypothesis favours the
    # ends of the list, so both are progress; shrinking moves toward the first.)
    ACTIONS = (
        ("client_sends", 6), ("app_receives", 4), ("time_passes", 2), ("client_eof", 1),
        ("shutdown", 1), ("app_finishes", 2), ("app_sends", 6),
    )

    def _applies(self, action: str) -> bool:
        if action == "client_sends":
            return self.fed < len(self.wire) and not self.eof and self.conn.wants_read
        if action == "client_eof":
            return not self.eof
        if action.startswith("app_"):
            return bool(self.live())
        return True

    @rule(data=st.data())
    def act(self, data: st.DataObject) -> None:
        if self.conn.closed and not self.live():
            # This connection is over: check its end, then the client connects again.
            self.teardown()
            self._reset()
            self._connect(data)
            return
        options = [name for name, weight in self.ACTIONS if self._applies(name)
                   for _ in range(weight)]
        action = data.draw(st.sampled_from(options), label="action")
        getattr(self, action)(data)

    def client_sends(self, data: st.DataObject) -> None:
        size = data.draw(st.integers(1, MAX_READ), label="bytes")
        chunk = self.wire[self.fed:self.fed + size]
        self.fed += len(chunk)
        self.conn.receive_data(chunk, self.now)
        self.pump()

    def _rarely(self, data: st.DataObject) -> bool:
        """One time in seven (a middle value: hypothesis favours the ends of a range)."""
        return data.draw(st.integers(0, 6), label="rarely") == 3

    def client_eof(self, data: st.DataObject) -> None:
        if not self._rarely(data):
            return  # (an ending move: rarer still, or few runs get far)
        self.eof = True
        self.conn.receive_data(b"", self.now)
        self.pump()
        assert self.conn.closed  # a half-close is the client leaving

    def time_passes(self, data: st.DataObject) -> None:
        # Mostly a little time; rarely enough for the idle (5 s), head (20 s) or shutdown
        # (10 s) deadlines.
        long = [4.0, 6.0, 11.0, 25.0] if self._rarely(data) else [0.1, 0.5, 1.0]
        dt = data.draw(st.sampled_from(long), label="dt")
        self.now += dt
        newest = self.streams[max(self.streams)] if self.streams else None
        in_flight = newest is not None and newest.resp != "done" and not self.conn.closed
        replies_before = len(self.decoder.replies)
        self.conn.handle_timer(self.now)
        self.pump()
        if in_flight and self.conn.closed:
            # Only the shutdown deadline may cut a response the app is still producing.
            assert self.shutdown_at is not None, "a timer killed an exchange in flight"
            assert self.now >= self.shutdown_at + 10.0
        if len(self.decoder.replies) > replies_before:
            # A timer only ever answers 408, for a request head that started arriving.
            assert [r["status"] for r in self.decoder.replies[replies_before:]] == [408]
            prev_end = self.ends[len(self.streams) - 1] if self.streams else 0
            assert self.fed > prev_end
        timer = self.conn.get_timer()
        # "Fire every deadline at or before now": nothing due is left behind.
        assert timer is None or timer > self.now, (timer, self.now)

    def shutdown(self, data: st.DataObject) -> None:
        if not self._rarely(data):
            return
        if self.shutdown_at is None and not self.conn.closed:
            self.shutdown_at = self.now
        self.conn.shutdown(self.now)
        self.pump()

    def app_receives(self, data: st.DataObject) -> None:
        sid = data.draw(st.sampled_from(self.live()), label="receive on")
        model = self.streams[sid]
        was_waiting = model.waiting
        msg = self.conn.receive(sid)
        self.pump()
        note(f"receive({sid}) -> {msg!r}"[:200])
        if msg is None:
            assert not model.ended, "receive() on an ended stream must return a disconnect"
            assert not model.got_disconnect
            model.waiting = True
            return
        assert not was_waiting, "receive() had a message but no StreamReadable was emitted"
        if model.ended:
            assert msg == {"type": "http.disconnect"}  # HTTP-RX-04, every time
        if msg["type"] == "http.request":
            # HTTP-RX-05: requests, then disconnects only.
            assert not model.got_end and not model.got_disconnect
            assert set(msg) == {"type", "body", "more_body"}  # HTTP-RX-01
            body = msg["body"]
            # SRV-06: nothing unbounded; the core holds at most its buffer and one read.
            assert len(body) <= TEST_LIMITS["body_buffer_size"] + MAX_READ, len(body)
            model.body += body
            assert model.bad or model.req.body.startswith(model.body)
            if not msg["more_body"]:
                model.got_end = True
                # HTTP-SCOPE-17: the exact de-chunked body.
                assert model.bad or model.body == model.req.body
        else:
            assert msg == {"type": "http.disconnect"}
            assert model.ended, "a disconnect only once the stream is over"
            model.got_disconnect = True

    def app_sends(self, data: st.DataObject) -> None:
        sid = data.draw(st.sampled_from(self.live()), label="send on")
        model = self.streams[sid]
        message, valid = data.draw(next_message(model), label="message")
        closed_before = self.conn.closed
        resp_before = model.resp
        try:
            self.conn.send(sid, message, self.now)
        except ClientDisconnected:
            # HTTP-TX-10: only once the client is gone, whatever the message.
            assert closed_before, "ClientDisconnected while the connection is open"
            assert isinstance(ClientDisconnected(), OSError)
            self.pump()
            return
        except AppMisuseError as err:
            self.pump()
            assert not closed_before, "a send after close must raise ClientDisconnected"
            assert not valid, f"valid message refused: {err}"
            assert RULE_ID.fullmatch(err.rule), err.rule
            if resp_before != "done":
                self._failed(model, resp_before, message)
            return
        self.pump()
        assert not closed_before, "a send after close must raise ClientDisconnected"
        assert valid, f"invalid message accepted: {message!r}"
        hypothesis_event(f"accepted {message['type']}")
        self._accepted(model, message)

    def _failed(self, model: StreamModel, resp_before: str, message: Any = None) -> None:
        """The app broke the exchange: a 500 if nothing went out, else an abort."""
        first_body = (
            resp_before == "head"
            and isinstance(message, dict)
            and message.get("type") == "http.response.body"
            and isinstance(message.get("body", b""), bytes)
        )
        if isinstance(message, dict) and isinstance(message.get("body"), bytes) and (
            not model.no_body
        ):
            model.failed_body = message["body"]
        if first_body:
            # SRV-01/SRV-02 on the first body: the head goes out with that body, so the core
            # may abort (what it does today) or, since nothing left yet, still answer 500.
            model.outcome = "500|abort"
            assert model.ended
        elif resp_before in ("init", "head"):
            model.outcome = "500"
            assert model.ended
        else:
            model.outcome = "abort"
            assert self.conn.closed, "an abort after the head went out closes the connection"
        model.resp = "done"

    def _accepted(self, model: StreamModel, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.early_hint":
            if model.req.version == "1.1":
                model.hints += 1  # EXT-HINT-02: a 103, never to HTTP/1.0
            return
        if message["type"] == "http.response.trailers":
            model.sent_trailers += message["headers"]
            if not message.get("more_trailers", False):
                model.resp = "done"
                assert model.ended, "the last trailers end the stream"
            return
        if message["type"] == "http.response.start":
            model.resp = "head"
            model.trailers = message.get("trailers", False)
            model.status = message["status"]
            headers = message.get("headers") or []
            lengths = [v for n, v in headers if n.lower() == b"content-length"]
            model.declared = int(lengths[0]) if lengths else None
            model.no_body = model.req.method == "HEAD" or model.status in (204, 304)
            if self.shutdown_at is not None or any(
                n == b"connection" and v == b"close" for n, v in headers
            ):
                model.close_expected = True
            return
        model.resp = "body"
        body = message.get("body", b"")
        if not model.no_body:
            model.sent += len(body)
            model.sent_body += body
        if not message.get("more_body", False):
            if model.trailers:
                model.resp = "trailers"  # HTTP-TX-09: wait for http.response.trailers
                assert not model.ended
                return
            model.resp = "done"
            assert model.ended, "a complete response ends the stream"

    def app_finishes(self, data: st.DataObject) -> None:
        sid = data.draw(st.sampled_from(self.live()), label="finish")
        raised = data.draw(st.booleans(), label="raised")
        model = self.streams[sid]
        if model.resp != "done" and not self._rarely(data):
            return
        closed_before = self.conn.closed
        exc = RuntimeError("app crashed") if raised else None
        self.conn.app_finished(sid, self.now, exc)
        model.finished = True
        self.pump()
        if model.resp != "done" and not closed_before:
            self._failed(model, model.resp)  # HTTP-ERR-01/02
        assert model.ended or self.conn.closed

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def contract_holds(self) -> None:
        conn = self.conn
        assert conn.closed == self.closed_seen
        if conn.closed:
            assert not conn.wants_read
            assert conn.get_timer() is None
            assert all(m.ended for m in self.streams.values())
        timer = conn.get_timer()
        assert timer is None or isinstance(timer, float)
        if self.eof:
            assert conn.closed

    @invariant()
    def output_matches_the_app(self) -> None:
        dec = self.decoder
        for index, reply in enumerate(dec.replies):
            model = self.streams.get(index + 1)
            done = index < dec.complete
            # The app tags every head with x-sid; anything else is the core's own answer.
            from_app = model is not None and (b"x-sid", b"%d" % model.sid) in reply["headers"]
            if model is None or (
                not from_app and model.bad and self.bad is not None
                and reply["status"] in self.bad.statuses
            ):
                # Only an error answer for a request the app never saw (or whose body was
                # bad), and it is the last.
                assert reply["status"] in CLIENT_ERROR_STATUSES, reply
                if self.bad is not None and index == len(self.reqs):
                    assert reply["status"] in self.bad.statuses | {408}, (self.bad, reply)
                assert (b"connection", b"close") in reply["headers"]
                assert index == len(dec.replies) - 1
                continue
            infos = reply["informational"]
            assert set(infos) <= {100, 103}
            assert infos.count(100) <= (1 if model.req.expect_continue else 0)  # SRV-05
            assert infos.count(103) == model.hints  # EXT-HINT-02
            if not from_app:
                # HTTP-ERR-01: the app failed before its head went out.
                assert reply["status"] == 500 and model.outcome.startswith("500"), (reply, model)
                if done and model.req.method == "HEAD":
                    assert reply["body"] == b""  # RFC 9110 9.3.2, or the next answer desyncs
                continue
            assert model.outcome != "500", "the app's head went out, yet a 500 was promised"
            if model.outcome in ("abort", "500|abort"):
                # The head, then the connection dies mid-body: the client can tell.
                # (A close-delimited HTTP/1.0 body cannot show it was cut short, and a
                # HEAD/204/304 answer is whole once its head is out.)
                cannot_show = (
                    model.no_body
                    or (model.req.version == "1.0" and model.declared is None)
                    or (model.declared is not None and model.sent == model.declared)
                )
                assert index == len(dec.replies) - 1 and (cannot_show or not done)
                assert (model.sent_body + model.failed_body).startswith(reply["body"])
                continue
            assert reply["status"] == model.status, (reply, model)
            expected = model.sent_body
            if done:
                assert reply["body"] == expected  # exact round trip
                chunked = not model.no_body and model.declared is None
                # EXT-TRAILERS-04: trailers go out only with chunked framing.
                assert reply["trailers"] == (model.sent_trailers if chunked else []), reply
            else:
                assert expected.startswith(reply["body"])
            if model.close_expected:
                assert (b"connection", b"close") in reply["headers"], reply
        # A response the app completed is complete on the wire (nothing held back).
        for sid, model in self.streams.items():
            if model.resp == "done" and model.outcome != "abort" and not dec.truncated:
                assert dec.complete >= sid, f"stream {sid}'s response is not on the wire"

    def teardown(self) -> None:
        if not self.conn.closed:
            # The client leaves: everything must end, exactly once.
            self.conn.receive_data(b"", self.now)
            self.pump()
        assert self.conn.closed
        assert all(m.ended for m in self.streams.values())


BAD_BODY_REQ = Req("POST", "1.1", b"/", (), b"", "chunked", False, True, b"")


@st.composite
def next_message(draw: st.DrawFn, model: StreamModel) -> tuple[Any, bool]:
    """The app's next send: mostly what the spec allows in this state, sometimes not."""
    if draw(st.integers(0, 9)) == 0:
        bad = draw(st.sampled_from([
            {"type": "http.response.start", "status": "200"},
            {"type": "http.response.start", "status": 200, "headers": [("a", "b")]},
            {"type": "http.response.start", "status": 200, "headers": [(b":path", b"/")]},
            {"type": "http.response.start", "status": 200, "headers": [(b"a", b"b\r\nc: d")]},
            {"type": "http.response.body", "body": "text"},
            {"type": "http.response.body", "body": b"", "more_body": 1},
            {"type": "http.response.nonsense"},
            ["not", "a", "dict"],
        ]))
        return bad, False
    if model.resp == "init":
        roll = draw(st.integers(0, 9))
        if roll == 0:
            return {"type": "http.response.body", "body": b"early"}, False  # HTTP-TX-01
        if roll == 1:
            # EXT-HINT-04: before start; a 103 with one link header per item.
            links = draw(st.lists(st.sampled_from([b"</a.css>; rel=preload", b"</b.js>"]),
                                  min_size=1, max_size=2))
            return {"type": "http.response.early_hint", "links": links}, True
        status = draw(st.sampled_from([200, 201, 204, 304, 404, 500, 299]))
        headers: list[tuple[bytes, bytes]] = [(b"x-sid", b"%d" % model.sid)]
        if draw(st.booleans()):
            headers.append((b"content-length", b"%d" % draw(st.integers(0, 150))))
        if draw(st.integers(0, 7)) == 0:
            headers.append((b"connection", b"close"))
        start = {"type": "http.response.start", "status": status, "headers": headers}
        if draw(st.integers(0, 2)) == 0:
            start["trailers"] = True
            # EXT-TRAILERS-05: only when the extension is in scope.
            return start, "http.response.trailers" in model.scope["extensions"]
        return start, True
    if model.resp == "trailers":
        if draw(st.integers(0, 9)) == 0:
            return {"type": "http.response.body", "body": b"x"}, False  # EXT-TRAILERS-01
        trailer = {"type": "http.response.trailers",
                   "headers": [(b"x-trailer", b"%d" % len(model.sent_trailers))]}
        if draw(st.booleans()):
            trailer["more_trailers"] = draw(st.booleans())
        return trailer, True
    if model.resp == "done":
        return {"type": "http.response.body", "body": b"late"}, False  # HTTP-ERR-04
    roll = draw(st.integers(0, 19))
    if roll == 0:
        return {"type": "http.response.start", "status": 200}, False  # HTTP-TX-04 / ERR-03
    if roll == 1:
        return {"type": "http.response.trailers", "headers": []}, False  # before the body ends
    declared = model.declared
    if declared is None or model.no_body:
        body = draw(st.binary(max_size=120))
        return {"type": "http.response.body", "body": body, "more_body": draw(st.booleans())}, True
    remaining = declared - model.sent
    roll = draw(st.integers(0, 9))
    if roll == 0:
        # SRV-01: more than content-length.
        body = b"x" * (remaining + draw(st.integers(1, 10)))
        return {"type": "http.response.body", "body": body, "more_body": True}, False
    if roll == 1 and remaining > 0:
        # SRV-02: the response ends short of content-length.
        return {"type": "http.response.body", "body": b"x" * (remaining - 1)}, False
    size = draw(st.integers(0, remaining))
    more = size < remaining or draw(st.booleans())
    return {"type": "http.response.body", "body": b"y" * size, "more_body": more}, True


TestHTTP11Machine = HTTP11Machine.TestCase
TestHTTP11Machine.settings = settings(stateful_step_count=steps(50))
