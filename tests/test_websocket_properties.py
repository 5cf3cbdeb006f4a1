"""Property-based and stateful tests of the WebSocket session over HTTP/1.1.

As in tests/test_websocket.py the driver is played by hand (no event loop) and the peer is an
independent wsproto *client* (``tests.helpers.WSClient``): it writes the upgrade request and the
masked, possibly compressed and fragmented frames, and it decodes every byte the server writes,
raising on anything malformed.
"""

from __future__ import annotations

import copy
import itertools
import random
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from wsproto.connection import ConnectionState
from wsproto.events import Ping, Pong

from asgi_sansio import (
    AppMisuseError,
    ClientDisconnected,
    ConnectionClosed,
    StreamEnded,
    StreamStarted,
)

from .conftest import examples, steps
from .helpers import Harness, WSClient, make_conn, parse_responses, raw_frame
from .strategies import (
    WS_APP_CLOSE_CODES,
    WS_BAD_CLOSE_CODES,
    Misused,
    WSBadFrame,
    WSUnit,
    ws_app_closes,
    ws_app_messages,
    ws_invalid_frames,
    ws_misused_app_messages,
    ws_valid_frames,
)

# -- payloads -------------------------------------------------------------------------------------

_TEXT_ALPHABET = "abc xyz-é€𝄞\u0000\u07ff"


def make_payload(kind: str, size: int, compressible: bool, seed: int) -> str | bytes:
    """A deterministic message of ``size`` characters (text) or bytes."""
    rng = random.Random(seed)
    if kind == "text":
        if compressible:
            return ("hello " * (size // 6 + 1))[:size]
        return "".join(rng.choice(_TEXT_ALPHABET) for _ in range(size))
    if compressible:
        return bytes(size)
    return rng.randbytes(size)


def split_points(length: int, parts: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return sorted(rng.randint(0, length) for _ in range(parts - 1))


def fragments(payload: str | bytes, points: list[int]) -> list[str | bytes]:
    bounds = [0, *points, len(payload)]
    return [payload[a:b] for a, b in itertools.pairwise(bounds)]


@dataclass
class ClientMessage:
    payload: str | bytes
    parts: int
    ping_between: bool


client_messages = st.builds(
    lambda kind, size, compressible, parts, seed, ping: ClientMessage(
        make_payload(kind, size, compressible, seed), parts, ping),
    kind=st.sampled_from(["text", "bytes"]),
    size=st.one_of(st.integers(0, 30), st.integers(30, 3000)),
    compressible=st.booleans(),
    parts=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    ping=st.booleans(),
)


def encode(client: WSClient, message: ClientMessage, seed: int) -> bytes:
    """The frames for one message, with a ping between fragments if asked (RFC 6455 5.4;
    compressed too: test_ping_between_compressed_fragments_keeps_the_message)."""
    parts = fragments(message.payload, split_points(len(message.payload), message.parts, seed))
    out = b""
    for i, part in enumerate(parts):
        fin = i == len(parts) - 1
        out += client.text(part, fin) if isinstance(part, str) else client.binary(part, fin)
        if message.ping_between and not fin:
            out += client.send(Ping(b"mid"))
    return out


def expected_receive(payload: str | bytes) -> dict[str, Any]:
    if isinstance(payload, str):
        return {"type": "websocket.receive", "bytes": None, "text": payload}
    return {"type": "websocket.receive", "bytes": payload, "text": None}


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(points), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


# -- any split of the client's bytes gives the same ASGI messages ---------------------------------


@dataclass
class Script:
    deflate: bool
    messages: list[ClientMessage]
    pings: list[bytes]  # one ping (or none: b"-") after each message
    close: tuple[int | None, str] | None  # None: the client just leaves (EOF)


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    messages = draw(st.lists(client_messages, min_size=0, max_size=5))
    pings = [draw(st.sampled_from([b"-", b"", b"ping", b"p" * 125])) for _ in messages]
    close = draw(st.one_of(
        st.none(),
        st.tuples(st.sampled_from([None, 1000, 1001, 3000, 4999]),
                  st.sampled_from(["", "bye", "é" * 40])),
    ))
    if close is not None and close[0] is None:
        close = (None, "")
    return Script(draw(st.booleans()), messages, pings, close)


def record(script: Script) -> tuple[bytes, bytes, WSClient, list[bytes]]:
    """The client's whole byte stream (request, then frames) and a decoder for the answers.

    Frames depend on what the handshake negotiated, so one reference server run answers the
    handshake first; the stream is then fixed and replayed against fresh servers.
    """
    client = WSClient(deflate=script.deflate)
    decoder = copy.deepcopy(client)  # same key and offer, not yet answered
    h = Harness(make_conn())
    h.feed(client.request)
    h.receive(1)
    h.send(1, {"type": "websocket.accept"})
    client.feed(h.take_output())
    assert client.accepted is not None
    frames = b""
    pings: list[bytes] = []
    for i, (message, ping) in enumerate(zip(script.messages, script.pings, strict=True)):
        frames += encode(client, message, seed=i)
        if message.ping_between and message.parts > 1:
            pings += [b"mid"] * (len(fragments(message.payload, split_points(
                len(message.payload), message.parts, i))) - 1)
        if ping != b"-":
            frames += client.send(Ping(ping))
            pings.append(ping)
    if script.close is not None:
        frames += client.close_frame(*script.close) if script.close[0] is not None else (
            raw_frame(0x8, b""))
    return client.request, frames, decoder, pings


def run_split(request: bytes, frames: bytes, points: list[int], drain_each: bool,
              buffer: int) -> tuple[list[dict[str, Any]], Harness]:
    """Feed the stream in pieces; accept as soon as the app is called; collect every message."""
    h = Harness(make_conn(body_buffer_size=buffer))
    got: list[dict[str, Any]] = []
    accepted = False

    def drain() -> None:
        while not (got and got[-1]["type"] == "websocket.disconnect"):
            message = h.receive(1)
            if message is None:
                return
            got.append(message)

    for piece in cut(request + frames, points):
        h.feed(piece)
        if not accepted and h.started():
            assert h.receive(1) == {"type": "websocket.connect"}
            h.send(1, {"type": "websocket.accept"})
            accepted = True
        if accepted and drain_each:
            drain()
    drain()  # everything read so far reaches the app before the EOF does
    if not any(isinstance(e, ConnectionClosed) for e in h.events):
        h.feed(b"")
        drain()
    return got, h


@settings(max_examples=examples(60))
@given(script=scripts(), data=st.data())
def test_any_split_gives_the_same_messages(script: Script, data: st.DataObject) -> None:
    # ASGI: WS-07, WS-10, WS-11, WS-12, WS-13; RFC 6455 5.4 (fragments), 5.5.2 (pongs)
    request, frames, decoder, pings = record(script)
    whole = len(request) + len(frames)
    points = data.draw(st.lists(st.integers(1, max(1, whole - 1)), max_size=12), label="cuts")
    drain_each = data.draw(st.booleans(), label="drain_each")
    buffer = data.draw(st.sampled_from([64 * 1024, 100, 1]), label="body_buffer_size")
    got, h = run_split(request, frames, points, drain_each, buffer)

    expected = [expected_receive(m.payload) for m in script.messages]
    if script.close is None:
        expected.append({"type": "websocket.disconnect", "code": 1006, "reason": ""})
    else:
        code, reason = script.close
        expected.append({"type": "websocket.disconnect", "code": code or 1005, "reason": reason})
    assert got == expected
    assert sum(isinstance(e, StreamEnded) for e in h.events) == 1
    assert sum(isinstance(e, ConnectionClosed) for e in h.events) == 1

    decoder.feed(h.out)  # raises on anything malformed
    assert decoder.accepted is not None
    assert decoder.pongs == pings
    assert decoder.messages == []
    if script.close is not None:
        assert decoder.close is not None and int(decoder.close.code) == (script.close[0] or 1005)


def accepted(deflate: bool = False, **config: Any) -> tuple[WSClient, Harness]:
    """A client and a server connection whose app accepted the client's handshake."""
    client = WSClient(deflate=deflate)
    h = Harness(make_conn(**config))
    h.feed(client.request)
    h.receive(1)
    h.send(1, {"type": "websocket.accept"})
    client.feed(h.take_output())
    return client, h


@settings(max_examples=examples(60))
@given(garbage=st.binary(max_size=200), deflate=st.booleans(), points=st.lists(
    st.integers(1, 199), max_size=4))
def test_arbitrary_bytes_after_accept_never_raise(garbage: bytes, deflate: bool,
                                                  points: list[int]) -> None:
    # Bad peer input never raises (design: _errors.py); the answer is a well-formed Close.
    client, h = accepted(deflate, ws_max_message_size=100)
    for piece in cut(garbage, [p for p in points if p < len(garbage)]):
        h.feed(piece)
    client.feed(h.take_output())  # raises on anything malformed
    if any(isinstance(e, ConnectionClosed) for e in h.events):
        assert client.close is not None  # failed with a Close frame, or echoed the peer's
    while (message := h.receive(1)) is not None and message["type"] == "websocket.receive":
        pass


# RFC 6455 7.4.1: the codes a Close frame may carry (1005, 1006 and 1015 never go on the wire).
SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)})


@given(prefix=st.lists(ws_valid_frames(), max_size=4), bad=ws_invalid_frames(100),
       deflate=st.booleans(), points=st.lists(st.integers(1, 400), max_size=5))
def test_invalid_frames_close_with_the_rfc_code(prefix: list[WSUnit], bad: WSBadFrame,
                                                deflate: bool, points: list[int]) -> None:
    # RFC 6455 7.1.7, 7.4.1: after any valid frames, however cut, an invalid frame fails the
    # connection with a Close carrying its code; the app gets every message before it, then
    # websocket.disconnect with that code (WS-11); nothing raises, the connection ends once.
    client, h = accepted(deflate, ws_max_message_size=100)
    wire = b"".join(unit.wire for unit in prefix) + bad.wire
    for piece in cut(wire, [p for p in points if p < len(wire)]):
        h.feed(piece)
    client.feed(h.take_output())  # raises on anything malformed
    assert client.close is not None, bad.name
    assert int(client.close.code) == bad.code and bad.code in SENDABLE_CODES, bad.name
    got = []
    while (message := h.receive(1)) is not None and message["type"] == "websocket.receive":
        got.append(message["text"] if message["bytes"] is None else message["bytes"])
    assert got == [unit.message for unit in prefix if unit.message is not None]
    assert message is not None and (message["type"], message["code"]) == (
        "websocket.disconnect", bad.code)
    assert sum(isinstance(e, ConnectionClosed) for e in h.events) == 1
    assert sum(isinstance(e, StreamEnded) for e in h.events) == 1


@given(sends=st.lists(ws_app_messages(), max_size=4),
       last=st.one_of(ws_app_closes(), ws_misused_app_messages()))
def test_app_messages_reach_the_client_or_fail_with_their_rule(
        sends: list[dict[str, Any]], last: dict[str, Any] | Misused) -> None:
    # WS-08, WS-19: valid sends reach the client whole and in order, a valid close goes out
    # as sent; a misused message raises AppMisuseError naming its rule and the client gets
    # Close 1011 (WS-14), never a malformed frame.
    client = WSClient()
    h = Harness(make_conn())
    h.feed(client.request)
    h.receive(1)
    h.send(1, {"type": "websocket.accept"})
    for message in sends:
        h.send(1, message)
    if isinstance(last, Misused):
        with pytest.raises(AppMisuseError) as caught:
            h.send(1, last.message)
        assert caught.value.rule == last.rule, last.name
        code, reason = 1011, None
    else:
        h.send(1, last)
        code, reason = last.get("code", 1000), last.get("reason") or ""
    client.feed(h.take_output())  # raises on anything malformed
    assert client.messages == [m.get("text") if m.get("bytes") is None else m["bytes"]
                               for m in sends]
    assert client.close is not None and int(client.close.code) == code
    if reason is not None:
        assert client.close.reason == reason


# -- the stateful machine --------------------------------------------------------------------------

BUFFER = 512
MAX_MESSAGE = 2000
CHUNK = 700
VALID_CODES = list(WS_APP_CLOSE_CODES)
INVALID_CODES = list(WS_BAD_CLOSE_CODES)
# Rules that end the session act only when this is True (about one call in ten), so that runs
# get past them.  Hypothesis favours the ends of a range, hence a value from the middle.
RARELY = st.integers(0, 9).map(lambda n: n == 7)
INVALID_FRAMES = {
    "unmasked": lambda: raw_frame(0x1, b"hi", mask=False),
    "opcode-3": lambda: raw_frame(0x3, b"x"),
    "bad-utf8": lambda: raw_frame(0x1, b"\xff"),
    "rsv2": lambda: bytes([0xA1, 0x80, 0, 0, 0, 0]),
    "close-1-byte": lambda: raw_frame(0x8, b"\x03"),
    "bad-deflate": lambda: raw_frame(0x2, b"\xff\xff\xff\xff", rsv1=True),
}


class WebSocketMachine(RuleBasedStateMachine):
    """A driver, an app and a wsproto client, interleaved at random.

    Invariants: only AppMisuseError/ClientDisconnected come out of the contract; StreamEnded once
    and ConnectionClosed at most once, after it; everything written decodes with the client;
    what the app sent reaches the client whole and in order; what the client sent reaches the
    app in order; inbound bytes held for the app stay bounded when the driver obeys wants_read.
    """

    @initialize(deflate=st.booleans(), accept_now=st.integers(0, 9),
                auto_pong=st.integers(0, 9))
    def start(self, deflate: bool, accept_now: int, auto_pong: int) -> None:
        self.deflate = deflate
        self.auto_pong = auto_pong != 7  # most clients answer pings at once
        self.h = Harness(make_conn(
            body_buffer_size=BUFFER, ws_max_message_size=MAX_MESSAGE, ws_ping_interval=10.0,
            ws_ping_timeout=5.0, ws_close_timeout=3.0, shutdown_timeout=20.0,
        ))
        self.client = WSClient(deflate=deflate, subprotocols=["chat"])
        self.h.feed(self.client.request)
        (started,) = [e for e in self.h.events if isinstance(e, StreamStarted)]
        self.sid = started.stream_id
        # The app's side.
        self.phase = "connecting"  # -> denying / open / over
        self.app_done = False
        self.app_sent: list[str | bytes] = []
        self.received: list[dict[str, Any]] = []
        self.deny_aborted = False
        self.app_closed = False
        self.deny_body = b""
        # The client's side: frames waiting to be read by the driver, and what they hold.
        self.to_server = bytearray()
        self.fed = 0
        self.queued_wire = 0  # bytes appended to to_server so far
        self.segments: list[tuple[int, int, int]] = []  # (end offset, wire size, message index)
        self.control_wire_ends: list[tuple[int, int]] = []  # (end offset, wire size)
        self.client_sent: list[str | bytes] = []
        self.client_broken = False
        self.client_gone = False
        self.answered_pings = 0
        self.seed = 0
        if accept_now != 7:  # most runs: the app accepts at once (else the rules below decide)
            self.app_receive()
            self.app_accept(None, [])

    # -- plumbing ---------------------------------------------------------------------------

    def sync(self) -> None:
        if self.phase == "denying" and self.conn_closed:
            self.deny_aborted = True  # the shutdown deadline cut the answer short
            self.phase = "over"
        out = self.h.take_output()
        if out:
            note(f"server wrote {len(out)} bytes")
            self.client.feed(out)  # raises on anything malformed

    def contract(self, call: Any, *args: Any) -> BaseException | None:
        """Call the contract; only the two documented errors may escape."""
        try:
            call(*args)
        except (AppMisuseError, ClientDisconnected) as exc:
            return exc
        finally:
            self.h.pump()
            self.sync()
        return None

    @property
    def conn_closed(self) -> bool:
        return any(isinstance(e, ConnectionClosed) for e in self.h.events)

    def client_open(self) -> bool:
        return (self.client.accepted is not None and not self.client_gone
                and not self.client_broken and self.client.ws.state is ConnectionState.OPEN)

    def queue(self, data: bytes, message: int | None) -> None:
        self.to_server += data
        self.queued_wire += len(data)
        if message is None:
            self.control_wire_ends.append((self.queued_wire, len(data)))
        else:
            self.segments.append((self.queued_wire, len(data), message))

    # -- the client -------------------------------------------------------------------------

    @precondition(lambda self: self.client_open())
    @rule(message=client_messages, read=st.one_of(st.just(0), st.integers(1, CHUNK)))
    def client_message(self, message: ClientMessage, read: int) -> None:
        self.seed += 1
        index = len(self.client_sent)
        parts = fragments(message.payload, split_points(len(message.payload), message.parts,
                                                        self.seed))
        for i, part in enumerate(parts):
            fin = i == len(parts) - 1
            frame = (self.client.text(part, fin) if isinstance(part, str)
                     else self.client.binary(part, fin))
            self.queue(frame, index)
            if message.ping_between and not fin:
                self.queue(self.client.send(Ping(b"mid")), None)
        self.client_sent.append(message.payload)
        if read:
            self.transmit(read)  # the driver reads at once

    @precondition(lambda self: self.client_open())
    @rule(kind=st.sampled_from(sorted(INVALID_FRAMES)))
    def client_invalid(self, kind: str) -> None:
        self.queue(INVALID_FRAMES[kind](), None)
        self.client_broken = True  # the server fails the connection once it reads this

    @precondition(lambda self: self.client_open())
    @rule(payload=st.binary(max_size=20))
    def client_ping(self, payload: bytes) -> None:
        self.queue(self.client.send(Ping(payload)), None)

    @precondition(lambda self: self.client_open()
                  and len(self.client.pings) > self.answered_pings)
    @rule()
    def client_pong(self) -> None:
        for payload in self.client.pings[self.answered_pings:]:
            self.queue(self.client.send(Pong(payload)), None)
        self.answered_pings = len(self.client.pings)

    @precondition(lambda self: self.client_open())
    @rule(code=st.sampled_from([None, *VALID_CODES]), reason=st.sampled_from(["", "bye"]))
    def client_close(self, code: int | None, reason: str) -> None:
        self.queue(self.client.close_frame(code, reason if code else None), None)

    @precondition(lambda self: not self.client_gone and self.client.close is not None
                  and self.client.ws.state is ConnectionState.REMOTE_CLOSING)
    @rule()
    def client_answers_close(self) -> None:
        assert self.client.close is not None
        self.queue(self.client.send(self.client.close.response()), None)

    @precondition(lambda self: bool(self.to_server) and not self.client_gone)
    @rule(size=st.integers(1, CHUNK))
    def transmit(self, size: int) -> None:
        if not self.h.conn.wants_read:
            return  # a driver stops reading; the bytes wait in the socket
        piece = bytes(self.to_server[:size])
        del self.to_server[:size]
        self.fed += len(piece)
        self.contract(self.h.conn.receive_data, piece, self.h.now)

    @precondition(lambda self: not self.client_gone)
    @rule(now=RARELY)
    def client_leaves_sometimes(self, now: bool) -> None:
        if now:  # rarely: it ends the run's interesting part
            self.client_leaves()

    def client_leaves(self) -> None:
        self.client_gone = True
        if self.phase == "denying":
            self.deny_aborted = True  # the rest of the answer has nowhere to go
        self.contract(self.h.conn.receive_data, b"", self.h.now)

    # -- the app ----------------------------------------------------------------------------

    @rule()
    def app_receive(self) -> None:
        message = self.h.conn.receive(self.sid)
        self.h.pump()
        self.sync()
        if message is None:
            return
        if not self.received:
            assert message == {"type": "websocket.connect"}  # WS-01
        else:
            assert message["type"] in ("websocket.receive", "websocket.disconnect"), message
            last = self.received[-1]
            if last["type"] == "websocket.disconnect":
                assert message == last  # WS-16
        if message["type"] == "websocket.disconnect":
            assert type(message["code"]) is int and type(message["reason"]) is str  # WS-11
        elif message["type"] == "websocket.receive":
            assert (message["bytes"] is None) != (message["text"] is None)  # WS-07
        self.received.append(message)

    @precondition(lambda self: self.phase == "connecting" and not self.app_done)
    @rule(subprotocol=st.sampled_from([None, "chat", None, "chat", "other"]),
          headers=st.sampled_from([[], [(b"x-a", b"1")], [], [(b"sec-websocket-accept", b"x")]]))
    def app_accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        exc = self.contract(self.h.conn.send, self.sid, {
            "type": "websocket.accept", "subprotocol": subprotocol, "headers": headers},
            self.h.now)
        if exc is None:
            self.phase = "open"
            assert self.client.accepted is not None
            assert self.client.accepted.subprotocol == subprotocol
        else:
            self.phase = "over"
            if isinstance(exc, AppMisuseError):
                assert exc.rule in ("WS-03", "WS-04")
                assert self.client.rejected is not None
                assert self.client.rejected.status_code == 500

    @precondition(lambda self: self.phase == "connecting" and not self.app_done)
    @rule(code=st.sampled_from(VALID_CODES + INVALID_CODES))
    def app_close_before_accept(self, code: int) -> None:
        exc = self.contract(self.h.conn.send, self.sid, {"type": "websocket.close",
                                                          "code": code}, self.h.now)
        self.phase = "over"
        if exc is None or isinstance(exc, AppMisuseError):
            assert self.client.rejected is not None
            assert self.client.rejected.status_code == (403 if exc is None else 500)  # WS-05

    @precondition(lambda self: self.phase == "connecting" and not self.app_done)
    @rule(status=st.sampled_from([400, 401, 403, 404, 500, 503, 204, 304]),
          declared=st.one_of(st.none(), st.integers(0, 40)))
    def app_deny_start(self, status: int, declared: int | None) -> None:
        headers = [(b"content-type", b"text/plain")]
        if declared is not None:
            headers.append((b"content-length", b"%d" % declared))
        exc = self.contract(self.h.conn.send, self.sid, {
            "type": "websocket.http.response.start", "status": status, "headers": headers},
            self.h.now)
        assert exc is None or isinstance(exc, ClientDisconnected)
        self.phase = "denying" if exc is None else "over"
        self.deny_status = status
        self.deny_declared = None if status in (204, 304) else declared

    @precondition(lambda self: self.phase == "denying" and not self.app_done)
    @rule(body=st.binary(max_size=30), more=st.booleans())
    def app_deny_body(self, body: bytes, more: bool) -> None:
        exc = self.contract(self.h.conn.send, self.sid, {
            "type": "websocket.http.response.body", "body": body, "more_body": more},
            self.h.now)
        total = len(self.deny_body) + len(body)
        declared = self.deny_declared
        if isinstance(exc, AppMisuseError):
            # SRV-01/02 applied to the denial: its content-length is kept exactly.
            assert declared is not None and (total > declared or (not more and total < declared))
            assert exc.rule in ("SRV-01", "SRV-02")
            self.deny_aborted = True
            self.phase = "over"
            return
        if exc is not None:
            self.phase = "over"
            return
        assert declared is None or total <= declared
        self.deny_body += body
        if not more:
            self.phase = "over"
            assert self.client.rejected is not None  # EXT-WSDENY-01
            assert self.client.rejected.status_code == self.deny_status
            if self.deny_status in (204, 304):
                assert self.client.reject_body == b""  # SRV-04: never on the wire
            else:
                assert self.client.reject_body == self.deny_body
            assert self.client.reject_done

    @precondition(lambda self: self.phase == "open" and not self.app_done)
    @rule(message=st.sampled_from([
        {"type": "websocket.accept"},
        {"type": "websocket.http.response.start", "status": 403},
        {"type": "websocket.http.response.body", "body": b""},
    ]), misuse=RARELY)
    def app_handshake_again(self, message: dict[str, Any], misuse: bool) -> None:
        if misuse:
            exc = self.contract(self.h.conn.send, self.sid, dict(message), self.h.now)
            assert exc is not None  # the handshake is answered once (WS-08, WS-06, WS-15)

    @precondition(lambda self: self.phase == "open" and not self.app_done)
    @rule(kind=st.sampled_from(["text", "bytes"]),
          size=st.one_of(st.integers(0, 20), st.integers(20, 5000)),
          compressible=st.booleans(), misuse=RARELY)
    def app_send(self, kind: str, size: int, compressible: bool, misuse: bool) -> None:
        if misuse:
            kind = "both" if compressible else "neither"
        self.seed += 1
        payload = make_payload("text" if kind == "text" else "bytes", size, compressible,
                               self.seed)
        if kind == "both":
            message = {"type": "websocket.send", "bytes": b"x", "text": "x"}
        elif kind == "neither":
            message = {"type": "websocket.send"}
        else:
            message = {"type": "websocket.send", kind: payload}
        exc = self.contract(self.h.conn.send, self.sid, message, self.h.now)
        if exc is None:
            assert kind in ("text", "bytes")
            self.app_sent.append(payload)
        elif isinstance(exc, AppMisuseError):
            assert kind in ("both", "neither") and exc.rule == "WS-08"

    @precondition(lambda self: self.phase == "open" and not self.app_done
                  and not self.app_closed)
    @rule(code=st.sampled_from(VALID_CODES + INVALID_CODES),
          reason=st.sampled_from([None, "", "done", "é" * 62]), now=RARELY)
    def app_close(self, code: int, reason: str | None, now: bool) -> None:
        if not now:
            return
        self.app_closed = True
        exc = self.contract(self.h.conn.send, self.sid, {
            "type": "websocket.close", "code": code, "reason": reason}, self.h.now)
        if isinstance(exc, AppMisuseError):
            assert exc.rule == "WS-19"
            assert code in INVALID_CODES or reason == "é" * 62

    @precondition(lambda self: not self.app_done)
    @rule(raised=st.booleans(), now=RARELY)
    def app_finishes(self, raised: bool, now: bool) -> None:
        if not now:
            return
        self.app_done = True
        if self.phase == "denying":
            self.deny_aborted = True
        self.phase = "over"
        exc = RuntimeError("app failed") if raised else None
        assert self.contract(self.h.conn.app_finished, self.sid, self.h.now, exc) is None

    # -- the driver ---------------------------------------------------------------------------

    @rule(dt=st.sampled_from([0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 25.0]))
    def time_passes(self, dt: float) -> None:
        self.h.now += dt
        timer = self.h.conn.get_timer()
        if timer is not None and timer <= self.h.now:
            self.contract(self.h.conn.handle_timer, self.h.now)
        if self.auto_pong and self.client_open() and len(self.client.pings) > self.answered_pings:
            self.client_pong()
            self.transmit(CHUNK)

    @rule(restart=st.booleans(), now=RARELY)
    def shutdown(self, restart: bool, now: bool) -> None:
        if now:
            self.contract(self.h.conn.shutdown, self.h.now, restart)

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def stream_ended_once_and_closed_after_it(self) -> None:
        events = self.h.events
        ends = [i for i, e in enumerate(events) if e == StreamEnded(self.sid)]
        closes = [i for i, e in enumerate(events) if isinstance(e, ConnectionClosed)]
        assert len(ends) <= 1 and len(closes) <= 1, events
        if closes:
            assert ends and ends[0] < closes[0], events

    @invariant()
    def app_messages_reach_the_client_in_order(self) -> None:
        got = self.client.messages
        assert got == self.app_sent[:len(got)]
        if self.client.close is not None:
            # Everything sent before our Close frame arrived, whole (nothing after it).
            assert got == self.app_sent

    @invariant()
    def client_messages_reach_the_app_in_order(self) -> None:
        data = [m["text"] if m["bytes"] is None else m["bytes"]
                for m in self.received if m["type"] == "websocket.receive"]
        assert data == self.client_sent[:len(data)]

    @invariant()
    def http_answers_are_whole(self) -> None:
        if self.client.rejected is not None:
            assert self.client.accepted is None
            if self.conn_closed and not self.deny_aborted:
                assert self.client.reject_done

    @invariant()
    def inbound_is_bounded(self) -> None:
        # Wire bytes read but not yet consumed: control frames are consumed on parsing, data
        # frames when the app receives their message.  The driver obeys wants_read, so this
        # stays below what one read, one message and the buffer allow.
        if self.conn_closed:
            return
        taken = sum(1 for m in self.received if m["type"] == "websocket.receive")
        consumed = sum(size for end, size in self.control_wire_ends if end <= self.fed)
        consumed += sum(size for end, size, index in self.segments
                        if index < taken and end <= self.fed)
        pending = self.fed - consumed
        assert pending <= CHUNK + 2 * (MAX_MESSAGE + 64) + 16 * BUFFER, pending

    def teardown(self) -> None:
        if not hasattr(self, "h"):
            return
        # The peer leaves and the app ends: everything must be over, exactly once.
        if not self.client_gone:
            self.client_leaves()
        if not self.app_done:
            self.app_done = True
            self.deny_aborted = self.deny_aborted or self.phase == "denying"
            self.contract(self.h.conn.app_finished, self.sid, self.h.now, None)
        events = self.h.events
        assert events.count(StreamEnded(self.sid)) == 1, events
        assert sum(isinstance(e, ConnectionClosed) for e in events) == 1, events
        disconnect = self.h.conn.receive(self.sid)
        while disconnect is not None and disconnect["type"] != "websocket.disconnect":
            disconnect = self.h.conn.receive(self.sid)
        assert disconnect is not None and disconnect["type"] == "websocket.disconnect"
        assert self.h.conn.receive(self.sid) == disconnect
        assert self.client.messages == self.app_sent
        if self.client.rejected is not None and not self.deny_aborted:
            assert self.client.reject_done


TestWebSocketMachine = WebSocketMachine.TestCase
TestWebSocketMachine.settings = settings(stateful_step_count=steps(40))


def test_http_answers_decode_with_h11() -> None:
    # The non-101 answers also decode with a plain h11 client (parse_responses).
    for message in (
        {"type": "websocket.close"},
        {"type": "websocket.http.response.start", "status": 418, "headers": []},
    ):
        h = Harness()
        h.feed(WSClient().request)
        h.receive(1)
        h.send(1, message)
        if message["type"] == "websocket.http.response.start":
            h.send(1, {"type": "websocket.http.response.body", "body": b"tea"})
        (reply,) = parse_responses(h.out)
        assert reply.status in (403, 418)
