"""Property-based and stateful tests of the HTTP/1.1 core (asgi_sansio._http11 through the
``ServerConnection`` contract).

Every test plays the driver itself, with no event loop: bytes in through ``receive_data``,
events out through ``pop_events``, the app's ``receive``/``send`` called directly.  What the
server wrote is decoded by an independent h11 *client* (tests/helpers.py), never by the code
under test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import h11
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

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
    TEST_LIMITS,
    BadReq,
    Misuse,
    Req,
    Resp,
    arbitrary_bytes,
    bad_requests,
    misuses,
    pipeline_bytes,
    pipelines,
    responses,
    served,
    splits,
)

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
        self.out += self.conn.data_to_send()
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


def strip_continues(out: bytes) -> bytes:
    return out.replace(CONTINUE, b"")


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
        "out": strip_continues(run.out),
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

    # The reference never needs 100 Continue: the body is always there when asked for.
    assert CONTINUE not in runs[0].out
    for run in runs[1:]:
        # SRV-05: at most one 100 per request, only for Expect: 100-continue requests.
        answered = served(reqs)
        replies = parse_responses(run.out, [r.method for r in answered], eof=run.conn.closed)
        for reply, req in zip(replies, answered, strict=True):
            assert reply.informational in ([], [100])
            if reply.informational:
                assert req.expect_continue

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
        assert "http.response.trailers" not in exts  # EXT-TRAILERS-03: no TE: trailers sent

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
        if resp.with_length:
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


@given(junk=st.one_of(st.binary(max_size=200), arbitrary_bytes()), data=st.data())
def test_arbitrary_bytes_never_raise(junk: bytes, data: st.DataObject) -> None:
    """Any bytes, in any split, then EOF: no exception, one ConnectionClosed, and only
    well-formed responses on the wire."""
    chunks = data.draw(splits(junk), label="chunks")
    run = Run(ok_script)
    run.feed_all(chunks, eof=True)
    run.check_lifecycle()
    methods = [app.scope["method"] for app in run.apps.values()]
    check_bad_input_output(run, methods)


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
