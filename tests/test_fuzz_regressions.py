"""Replay the fuzz corpora and regression inputs (fuzz/) through each harness's ``run_one``.

Every committed input must pass with the open core bugs tolerated (``KNOWN_ISSUES``); regression
inputs are also replayed strictly, those named after an open bug as ``xfail(strict=True)``.
Below them, minimal reproductions of the core bugs the fuzzer found.  See fuzz/README.md.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest
import wsproto.connection
import wsproto.events
from h2.connection import ConnectionState
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from wsproto.frame_protocol import FrameProtocol

from asgi_sansio import (
    AppMisuseError,
    Config,
    ConnectionClosed,
    ServerConnection,
    StreamEnded,
    StreamStarted,
)

from .helpers import H2Client, Harness, parse_responses

FUZZ_DIR = Path(__file__).resolve().parent.parent / "fuzz"
sys.path.insert(0, str(FUZZ_DIR))

import _common  # noqa: E402
import fuzz_detect  # noqa: E402
import fuzz_http2  # noqa: E402
import fuzz_http11  # noqa: E402
import fuzz_lifespan  # noqa: E402
import fuzz_websocket  # noqa: E402

HARNESSES: dict[str, Any] = {
    "fuzz_http11": fuzz_http11,
    "fuzz_detect": fuzz_detect,
    "fuzz_lifespan": fuzz_lifespan,
    "fuzz_http2": fuzz_http2,
    "fuzz_websocket": fuzz_websocket,
}


def _inputs(kind: str) -> list[Any]:
    return [
        pytest.param(name, path, id=f"{name}/{path.name}")
        for name in HARNESSES
        for path in sorted((FUZZ_DIR / kind / name).glob("*"))
        if path.is_file()
    ]


CORPUS = _inputs("corpus")
REGRESSIONS = _inputs("regressions")


def test_every_harness_has_seeds() -> None:
    for name in HARNESSES:
        assert len(list((FUZZ_DIR / "corpus" / name).glob("seed-*"))) >= 12, name


@pytest.mark.parametrize(("harness", "path"), CORPUS)
def test_corpus_replays(harness: str, path: Path) -> None:
    HARNESSES[harness].run_one(path.read_bytes())


@pytest.mark.parametrize(("harness", "path"), REGRESSIONS)
def test_regression_replays(harness: str, path: Path) -> None:
    HARNESSES[harness].run_one(path.read_bytes())


# --- regressions, strictly ------------------------------------------------------------------


def _strict(param: Any) -> Any:
    """Known core bugs still open are strict xfails: a fix turns them into failures, so the
    entry in ``KNOWN_ISSUES`` (and with it this marker) goes."""
    name, path = param.values
    reason = _common.KNOWN_ISSUES.get(path.name)
    if reason is None:
        return param
    mark = pytest.mark.xfail(strict=True, raises=_common.Violation, reason=reason)
    return pytest.param(name, path, id=param.id, marks=mark)


def test_every_known_issue_has_a_regression_input() -> None:
    names = {path.name for path in (FUZZ_DIR / "regressions" / "fuzz_http11").glob("*")}
    assert set(_common.KNOWN_ISSUES) <= names


@pytest.mark.parametrize(("harness", "path"), [_strict(p) for p in REGRESSIONS])
def test_regression_strict(harness: str, path: Path) -> None:
    """Regression inputs with no invariant tolerated (fuzz/regressions/<harness>/<name>)."""
    HARNESSES[harness].run_one(path.read_bytes(), tolerate=())


# Minimal reproductions of core bugs the fuzzer found (fixed in 7ff9cff).


def test_head_request_error_response_has_no_body() -> None:
    """RFC 9110 9.3.2: no content in a response to HEAD, a 500 included; on a kept-alive
    connection its body would be read as the start of the next response."""
    h = Harness()
    h.feed(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    h.finish(1, RuntimeError("app failed"))
    h.respond(2)
    h.finish(2)
    replies = parse_responses(h.take_output(), methods=["HEAD", "GET"], eof=False)
    assert [(r.status, r.body) for r in replies] == [(500, b""), (200, b"ok")]


def test_app_connection_close_is_honoured() -> None:
    """RFC 9112 9.6: a server that sends ``close`` closes after that response, even when the
    app also sent another Connection header."""
    h = Harness()
    h.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    h.respond(1, headers=[(b"connection", b"close"), (b"connection", b"keep-alive"),
                          (b"content-length", b"2")])
    assert h.conn.closed
    assert len(h.started()) == 1


def test_unread_body_drain_has_a_deadline() -> None:
    """A client that stops sending a body the app did not read cannot hold the connection
    forever: once the app is done, a deadline is pending."""
    h = Harness()
    h.feed(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    h.respond(1)
    h.finish(1)
    assert h.conn.closed or h.conn.get_timer() is not None



def test_head_request_bad_body_framing_answer_has_no_body() -> None:
    """RFC 9110 9.3.2 again, for the 400 of a HEAD request whose chunked body breaks its
    framing (found by fuzz_detect): its body went out, read as junk after the response."""
    conn = ServerConnection(now=0.0)
    conn.receive_data(b"HEAD / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"2\r\n\r\n\x00\x03", 0.0)
    out = conn.data_to_send()
    assert out.startswith(b"HTTP/1.1 400 ") and out.endswith(b"\r\n\r\n")
    assert conn.closed



def test_h2c_upgrade_with_undecodable_settings_does_not_raise() -> None:
    """An h2c upgrade whose HTTP2-Settings do not decode ends in GOAWAY(PROTOCOL_ERROR); the
    connection window update after it raised h2's ProtocolError out of receive_data()
    (found by fuzz_http11: peer input must never raise)."""
    conn = ServerConnection(now=0.0)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n"
                      b"HTTP2-Settings: AAMAAABkAAQPRAAP__\r\n"
                      b"Connection: Upgrade, HTTP2-Settings\r\n\r\n", 0.0)
    out = conn.data_to_send()
    assert out.startswith(b"HTTP/1.1 101 ")
    assert conn.closed and ConnectionClosed() in conn.pop_events()


# Found by fuzz_http2 (fixed with the harness).


def _h2_connection(config: Config) -> tuple[ServerConnection, H2Client]:
    client = H2Client()
    conn = ServerConnection(config, now=0.0, alpn="h2")
    conn.receive_data(client.data(), 0.0)
    client.feed(conn.data_to_send())
    conn.receive_data(client.data(), 0.0)
    client.feed(conn.data_to_send())
    return conn, client


def test_h2_goaway_last_stream_id_never_grows() -> None:
    """RFC 9113 6.8: the GOAWAY that ends a graceful shutdown names no stream above the first
    GOAWAY's, even after the client opened (refused) streams in between."""
    conn, client = _h2_connection(Config(shutdown_timeout=3.0))
    sid = client.request()
    conn.receive_data(client.data(), 0.0)
    conn.shutdown(0.0)
    client.feed(conn.data_to_send())
    late = client.request()
    conn.receive_data(client.data(), 1.0)
    client.feed(conn.data_to_send())
    assert client.reply(late).reset == ErrorCodes.REFUSED_STREAM
    conn.handle_timer(3.0)  # the shutdown deadline: what is left is aborted
    client.feed(conn.data_to_send())
    assert conn.closed
    assert [g.last_stream_id for g in client.goaways] == [2**31 - 1, sid, sid]



def test_h2_websocket_denial_body_waits_for_the_window() -> None:
    """A WebSocket refused over HTTP/2 (here the 500 of an app that raised before accepting)
    writes its body as the client's window allows: app_finished() raised AppMisuseError
    when the window was too small."""
    client = H2Client(settings={SettingCodes.INITIAL_WINDOW_SIZE: 4})
    conn = ServerConnection(now=0.0, alpn="h2")
    sid = client.request(b"CONNECT", b"/ws", protocol=b"websocket", end=False,
                         headers=[(b"sec-websocket-version", b"13")])
    conn.receive_data(client.data(), 0.0)
    client.feed(conn.data_to_send())
    assert [type(e) for e in conn.pop_events()] == [StreamStarted]
    conn.app_finished(sid, 0.0, RuntimeError("app failed"))
    client.feed(conn.data_to_send())
    assert client.reply(sid).body == b"Inte" and not client.reply(sid).ended
    client.c.increment_flow_control_window(100, sid)
    conn.receive_data(client.data(), 0.0)
    client.feed(conn.data_to_send())
    reply = client.reply(sid)
    assert reply.status == 500 and reply.body == b"Internal Server Error" and reply.ended
    assert not conn._proto._ws  # forgotten once its last bytes left
    assert conn.get_timer() == Config().keep_alive_timeout



def test_h2_finished_responses_waiting_for_the_window_have_a_deadline() -> None:
    """Every app is done and a response's tail waits for a window the client never opens:
    the connection gets the idle deadline (moved on by each WINDOW_UPDATE) instead of none."""
    client = H2Client(settings={SettingCodes.INITIAL_WINDOW_SIZE: 2}, auto_ack=False)
    conn = ServerConnection(Config(keep_alive_timeout=5.0), now=0.0, alpn="h2")
    sid = client.request()
    conn.receive_data(client.data(), 0.0)
    client.feed(conn.data_to_send())
    conn.send(sid, {"type": "http.response.start", "status": 200, "headers": []}, 0.0)
    conn.send(sid, {"type": "http.response.body", "body": b"hello"}, 0.0)
    conn.app_finished(sid, 1.0)
    client.feed(conn.data_to_send())
    assert client.reply(sid).body == b"he" and not conn.closed
    assert conn.get_timer() == 6.0
    client.c.increment_flow_control_window(1, sid)
    conn.receive_data(client.data(), 4.0)
    client.feed(conn.data_to_send())
    assert client.reply(sid).body == b"hel" and conn.get_timer() == 9.0
    conn.handle_timer(9.0)
    client.feed(conn.data_to_send())
    assert conn.closed and [g.error_code for g in client.goaways] == [ErrorCodes.NO_ERROR]



def _h2_websocket(client: H2Client) -> tuple[ServerConnection, int]:
    conn = ServerConnection(now=0.0, alpn="h2")
    sid = client.request(b"CONNECT", b"/ws", protocol=b"websocket", end=False,
                         headers=[(b"sec-websocket-version", b"13")])
    conn.receive_data(client.data(), 0.0)
    client.feed(conn.data_to_send())
    assert conn.receive(sid) == {"type": "websocket.connect"}
    return conn, sid


DENY = "websocket.http.response.start"


def test_h2_websocket_denial_content_length_is_checked() -> None:
    """An HTTP/2 denial response follows the HTTP/1.1 rules for content-length: a malformed
    one is misuse (a 500 goes instead), a body that breaks it is misuse (the stream is
    reset); the h2 client refused both."""
    client = H2Client()
    conn, sid = _h2_websocket(client)
    with pytest.raises(AppMisuseError):
        conn.send(sid, {"type": DENY, "status": 401, "headers": [(b"content-length", b"x")]}, 0.0)
    client.feed(conn.data_to_send())
    assert client.reply(sid).status == 500 and client.reply(sid).ended

    client = H2Client()
    conn, sid = _h2_websocket(client)
    conn.send(sid, {"type": DENY, "status": 401, "headers": [(b"content-length", b"5")]}, 0.0)
    with pytest.raises(AppMisuseError):
        conn.send(sid, {"type": "websocket.http.response.body", "body": b"abc"}, 0.0)
    client.feed(conn.data_to_send())
    assert client.reply(sid).status == 401 and client.reply(sid).reset == ErrorCodes.CANCEL


def test_h2_websocket_denial_with_no_body_status_sends_no_body() -> None:
    """SRV-04 as on HTTP/1.1: a 204 denial carries no DATA (and no content-length)."""
    client = H2Client()
    conn, sid = _h2_websocket(client)
    conn.send(sid, {"type": DENY, "status": 204, "headers": [(b"content-length", b"2")]}, 0.0)
    conn.send(sid, {"type": "websocket.http.response.body", "body": b"no"}, 0.0)
    client.feed(conn.data_to_send())
    reply = client.reply(sid)
    assert reply.status == 204 and reply.body == b"" and reply.ended
    assert reply.header(b"content-length") is None



def test_h2_websocket_app_finished_after_close_writes_nothing() -> None:
    """Nothing goes out after ConnectionClosed: a WebSocket whose app returns after the
    connection closed used to give back its unread window with a WINDOW_UPDATE."""
    client = H2Client()
    conn = ServerConnection(Config(body_buffer_size=64), now=0.0, alpn="h2")
    sid = client.request(b"CONNECT", b"/ws", protocol=b"websocket", end=False,
                         headers=[(b"sec-websocket-version", b"13")])
    conn.receive_data(client.data(), 0.0)
    conn.receive(sid)
    conn.send(sid, {"type": "websocket.accept"}, 0.0)
    client.feed(conn.data_to_send())  # the client learns the 64-byte stream window
    ws = wsproto.connection.Connection(wsproto.ConnectionType.CLIENT)
    for _ in range(4):  # the app reads nothing: past body_buffer_size the window stays shut
        client.c.send_data(sid, ws.send(wsproto.events.BytesMessage(data=b"x" * 20)))
        conn.receive_data(client.data(), 0.0)
        client.feed(conn.data_to_send())
    conn.receive_data(b"", 0.0)
    conn.data_to_send()
    conn.pop_events()
    assert conn.closed
    conn.app_finished(sid, 0.0)
    assert conn.data_to_send() == b"" and conn.pop_events() == []



def test_websocket_reads_the_peers_close_after_the_app_left_messages_unread() -> None:
    """The app closed and returned with messages unread (past body_buffer_size): they are
    dropped and reading goes on, so the client's answering Close ends the session cleanly
    instead of the close timeout aborting it."""
    conn = ServerConnection(Config(body_buffer_size=16), now=0.0)
    conn.receive_data(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        0.0)
    conn.receive(1)
    conn.send(1, {"type": "websocket.accept"}, 0.0)
    proto = FrameProtocol(client=True, extensions=[])
    conn.receive_data(bytes(proto.send_data("x" * 20)), 0.0)  # queued, never read
    assert not conn.wants_read
    conn.send(1, {"type": "websocket.close", "code": 1000}, 0.0)
    conn.app_finished(1, 0.0)
    conn.pop_events()
    assert conn.wants_read
    conn.receive_data(bytes(proto.close(1000, "")), 0.1)
    assert conn.pop_events() == [StreamEnded(1), ConnectionClosed()]



def test_h2_nothing_due_is_left_after_handle_timer() -> None:
    """A WebSocket aborted by its close timeout leaves the connection idle; with a zero
    keep-alive that deadline is due at once, and the same handle_timer() call fires it."""
    client = H2Client()
    conn = ServerConnection(Config(ws_close_timeout=0.0, keep_alive_timeout=0.0), now=0.0,
                            alpn="h2")
    sid = client.request(b"CONNECT", b"/ws", protocol=b"websocket", end=False,
                         headers=[(b"sec-websocket-version", b"13")])
    conn.receive_data(client.data(), 0.0)
    conn.receive(sid)
    conn.send(sid, {"type": "websocket.accept"}, 0.0)
    conn.app_finished(sid, 0.0)  # close 1000 sent; the client never answers
    assert conn.get_timer() == 0.0
    conn.handle_timer(0.0)
    timer = conn.get_timer()
    assert conn.closed or (timer is not None and timer > 0.0)



def test_h2_websocket_reset_after_its_app_returned_is_forgotten() -> None:
    """The client resets a WebSocket stream whose app already returned (our Close awaiting
    its answer): the stream is forgotten and the idle connection gets its deadline.  It
    stayed, with no deadline at all."""
    client = H2Client()
    conn, sid = _h2_websocket(client)
    conn.send(sid, {"type": "websocket.accept"}, 0.0)
    conn.app_finished(sid, 0.0)  # Close 1000 goes out; its answer is awaited
    client.feed(conn.data_to_send())
    client.c.reset_stream(sid, ErrorCodes.CANCEL)
    conn.receive_data(client.data(), 1.0)
    assert StreamEnded(sid) in conn.pop_events()
    assert not conn._proto._ws
    assert conn.get_timer() == 1.0 + Config().keep_alive_timeout



def test_h2_websocket_end_stream_after_its_app_returned_ends_both_halves() -> None:
    """END_STREAM (the client's FIN) on a WebSocket whose app already returned: our half of
    the stream ends too and the stream is forgotten, so the idle connection gets its
    deadline (it stayed open on our side, with no deadline)."""
    client = H2Client()
    conn, sid = _h2_websocket(client)
    conn.send(sid, {"type": "websocket.accept"}, 0.0)
    conn.app_finished(sid, 0.0)
    client.feed(conn.data_to_send())
    client.c.end_stream(sid)
    conn.receive_data(client.data(), 1.0)
    client.feed(conn.data_to_send())
    assert StreamEnded(sid) in conn.pop_events()
    assert client.reply(sid).ended and not conn._proto._ws
    assert conn.get_timer() == 1.0 + Config().keep_alive_timeout



def test_h2_answers_queued_before_a_client_goaway_still_go_out() -> None:
    """h2 drops its queued output when a GOAWAY arrives: the RST_STREAM for a request body
    over its content-length, read in the same batch just before, was lost, so the client
    never learnt its stream was over."""
    conn, client = _h2_connection(Config())
    sid = client.request(b"POST", headers=[(b"content-length", b"5")], end=False)
    client.c.send_data(sid, b"x" * 64, end_stream=True)
    client.c.close_connection()
    client.c.state_machine.state = ConnectionState.CLIENT_OPEN  # h2 would refuse the answer
    conn.receive_data(client.data(), 0.0)
    client.feed(conn.data_to_send())
    assert client.reply(sid).reset == ErrorCodes.PROTOCOL_ERROR



def test_h2_websocket_queue_stops_at_its_bound_however_the_data_is_framed() -> None:
    """Complete messages waiting for the app stop at body_buffer_size plus one message: each
    DATA frame HTTP/2 delivers while the queue is full used to queue one more (with
    permessage-deflate, up to ws_max_message_size each)."""
    client = H2Client()
    conn = ServerConnection(Config(body_buffer_size=64), now=0.0, alpn="h2")
    sid = client.request(b"CONNECT", b"/ws", protocol=b"websocket", end=False,
                         headers=[(b"sec-websocket-version", b"13")])
    conn.receive_data(client.data(), 0.0)
    conn.receive(sid)
    conn.send(sid, {"type": "websocket.accept"}, 0.0)
    client.feed(conn.data_to_send())
    proto = FrameProtocol(client=True, extensions=[])
    for _ in range(4):  # 16-byte frames, one DATA frame each: the 64-byte window's worth
        client.c.send_data(sid, bytes(proto.send_data(b"m" * 10)))
    conn.receive_data(client.data(), 0.0)
    assert conn._proto._ws[sid]._queued_bytes <= 64 + 26  # 26: one message's cost
    got = [conn.receive(sid) for _ in range(4)]
    assert [m and m["bytes"] for m in got] == [b"m" * 10] * 4  # nothing lost



def test_h2_pushed_response_offers_no_early_hints() -> None:
    """A pushed stream is reserved until its response starts and h2 cannot send a 103 there:
    an early hint escaped as h2's ProtocolError.  The pushed scope no longer offers them, so
    one is misuse (and a 500 goes out on the pushed stream)."""
    conn, client = _h2_connection(Config())
    sid = client.request()
    conn.receive_data(client.data(), 0.0)
    conn.pop_events()
    conn.send(sid, {"type": "http.response.start", "status": 200, "headers": []}, 0.0)
    conn.send(sid, {"type": "http.response.push", "path": "/style.css", "headers": []}, 0.0)
    (pushed,) = [e for e in conn.pop_events() if isinstance(e, StreamStarted)]
    assert "http.response.early_hint" not in pushed.scope["extensions"]
    with pytest.raises(AppMisuseError):
        conn.send(pushed.stream_id, {"type": "http.response.early_hint", "links": [b"</a>"]},
                  0.0)
    client.feed(conn.data_to_send())
    assert client.reply(pushed.stream_id).status == 500



def test_h2_no_empty_end_stream_data_while_the_window_is_negative() -> None:
    """RFC 9113 6.9.2: a SETTINGS change can leave a stream's window negative; the empty
    DATA frame ending the response then waits for a WINDOW_UPDATE (h2 clients fail the
    connection on it: "Flow control window shrunk below 0")."""
    client = H2Client(auto_ack=False)
    conn = ServerConnection(now=0.0, alpn="h2")
    sid = client.request(end=True)
    conn.receive_data(client.data(), 0.0)
    client.feed(conn.data_to_send())
    conn.send(sid, {"type": "http.response.start", "status": 200, "headers": []}, 0.0)
    conn.send(sid, {"type": "http.response.body", "body": b"x" * 100, "more_body": True}, 0.0)
    client.feed(conn.data_to_send())
    client.c.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 10})  # the window: 10 - 100
    conn.receive_data(client.data(), 0.0)
    conn.send(sid, {"type": "http.response.body", "body": b""}, 0.0)
    client.feed(conn.data_to_send())  # h2 raised FlowControlError here
    assert not client.reply(sid).ended
    client.c.increment_flow_control_window(200, sid)
    conn.receive_data(client.data(), 0.0)
    client.feed(conn.data_to_send())
    assert client.reply(sid).ended and client.reply(sid).body == b"x" * 100


# --- the harness machinery -----------------------------------------------------------------------


def test_internal_probe_sees_core_buffers() -> None:
    """The buffer-bound invariants read private attributes: fail loudly if they were renamed."""
    conn = ServerConnection(now=0.0)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0.0)
    assert any(isinstance(e, StreamStarted) for e in conn.pop_events())
    sizes = _common.internal_sizes(conn)
    assert sizes is not None and set(sizes["streams"]) == {1}


def _decode(p: Any, plan: list[tuple[str, int]]) -> list[Any]:
    out: list[Any] = [p.remaining_bytes()]
    for call, arg in plan:
        if call == "int":
            out.append(p.ConsumeIntInRange(3, 3 + arg))
        elif call == "bytes":
            out.append(p.ConsumeBytes(arg))
        else:
            out.append(p.ConsumeBool())
        out.append(p.remaining_bytes())
    return out


def _plan(rng: random.Random) -> list[tuple[str, int]]:
    return [
        (rng.choice(["int", "int", "bytes", "bool"]),
         rng.choice([0, 1, 5, 255, 256, 1000, 70_000, 2**32, 2**63]))
        for _ in range(rng.randint(0, 30))
    ]


def test_provider_matches_atheris() -> None:
    """The pure-Python provider decodes exactly as atheris's (inputs replay the same runs)."""
    atheris = pytest.importorskip("atheris")
    rng = random.Random(7)
    for _ in range(500):
        data = rng.randbytes(rng.randint(0, 64))
        plan = [(c, a if c != "bytes" else a % 40) for c, a in _plan(rng)]
        assert _decode(_common.Provider(data), plan) == _decode(
            atheris.FuzzedDataProvider(data), plan
        )


def test_recorded_choices_replay() -> None:
    """``Recorder.build()`` gives the bytes that make a provider repeat the recorded choices."""
    rng = random.Random(11)
    for _ in range(300):
        rec = _common.randomly(rng, rng.randint(0, 40))
        plan = [(c, a) for c, a in _plan(rng) if c != "bytes" or a < 300]
        recorded = _decode(rec, plan)[1::2]
        replayed = _decode(_common.Provider(rec.build()), plan)[1::2]
        assert replayed == recorded
