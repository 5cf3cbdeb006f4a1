"""The HTTP/2 fast paths against h2's own: same bytes, same events, same errors.

``_H2.send_headers`` / ``send_data`` / ``end_stream`` make h2's state transitions themselves and
write frame bytes directly, and ``_FrameBuffer`` with ``_H2._new_stream`` opens a stream from a
HEADERS frame without hyperframe's parsing or h2's generic frame handling (see
``asgi_sansio/_http2.py``).  Here a ``Twin`` stands in for
``ServerConnection``: two connections, one as shipped and one with ``_H2.fast`` off, take every
call the stateful machines make (interleaved streams, windows, resets, trailers, GOAWAY,
misbehaving apps, WebSockets over RFC 8441) and must agree on every return value, exception,
event and written byte.  The machines' own invariants still run on the fast side's answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import h2.events
import h2.settings
import pytest
from hypothesis import settings

from asgi_sansio import Config, ServerConnection, StreamStarted
from asgi_sansio._http2 import _H2

from . import test_http2_properties as h2_props
from . import test_websocket_h2_machine as ws_h2
from .conftest import steps
from .helpers import H2_PREFACE, H2Client


@contextmanager
def h2_path() -> Iterator[None]:
    """Every HTTP/2 connection sends through h2's own code while this is open."""
    _H2.fast = False
    try:
        yield
    finally:
        _H2.fast = True


def _differ(name: str, fast: Any, slow: Any) -> str:
    """A short account of a mismatch: where two outputs part, not both in full."""
    if isinstance(fast, tuple) and isinstance(slow, tuple) and fast[:1] == slow[:1] == ("value",):
        fast, slow = fast[1], slow[1]
    if isinstance(fast, bytes) and isinstance(slow, bytes):
        common = min(len(fast), len(slow))
        at = next((i for i in range(common) if fast[i] != slow[i]), common)
        return (f"{name}: fast and h2 paths part at byte {at} of {len(fast)} / {len(slow)}: "
                f"{fast[max(0, at - 16):at + 16]!r} != {slow[max(0, at - 16):at + 16]!r}")
    return f"{name}: {fast!r:.300} != {slow!r:.300}"


def _outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("value", call())
    except Exception as exc:  # compared below, then re-raised from the fast side
        return ("raised", type(exc), str(exc), exc)


class Twin:
    """A ``ServerConnection`` that is two: each call goes to both, the answers must match."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.fast = ServerConnection(*args, **kwargs)
        with h2_path():
            self.slow = ServerConnection(*args, **kwargs)
        self.twins = (self.fast, self.slow)

    def __getattr__(self, name: str) -> Any:
        fast_value = getattr(self.fast, name)
        if not callable(fast_value):
            with h2_path():
                slow_value = getattr(self.slow, name)
            assert fast_value == slow_value, _differ(name, fast_value, slow_value)
            return fast_value

        def both(*args: Any, **kwargs: Any) -> Any:
            fast = _outcome(lambda: getattr(self.fast, name)(*args, **kwargs))
            with h2_path():
                slow = _outcome(lambda: getattr(self.slow, name)(*args, **kwargs))
            assert fast[:3] == slow[:3], _differ(name, fast[:3], slow[:3])
            if fast[0] == "raised":
                raise fast[3]
            return fast[1]

        return both


class FastPathH2Machine(h2_props.H2Machine):
    def __init__(self) -> None:
        with mock.patch.object(h2_props, "ServerConnection", Twin):
            super().__init__()


class FastPathWebSocketH2Machine(ws_h2.WebSocketH2Machine):
    def __init__(self) -> None:
        with mock.patch.object(ws_h2, "ServerConnection", Twin):
            super().__init__()


TestFastPathH2Machine = FastPathH2Machine.TestCase
TestFastPathH2Machine.settings = settings(stateful_step_count=steps(80))
TestFastPathWebSocketH2Machine = FastPathWebSocketH2Machine.TestCase
TestFastPathWebSocketH2Machine.settings = settings(stateful_step_count=steps(40))


def _respond(conn: Any, client: H2Client, headers: list[tuple[bytes, bytes]],
             body: bytes) -> None:
    conn.receive_data(client.data(), 0.0)
    events = conn.pop_events()
    (started,) = [e for e in events if isinstance(e, StreamStarted)]
    sid = started.stream_id
    conn.send(sid, {"type": "http.response.start", "status": 200, "headers": headers}, 0.0)
    conn.send(sid, {"type": "http.response.body", "body": body}, 0.0)
    conn.app_finished(sid, 0.0, None)


def test_a_header_block_past_the_frame_size_goes_out_as_continuation_frames() -> None:
    """RFC 9113 6.10: a block larger than SETTINGS_MAX_FRAME_SIZE is split over CONTINUATION
    frames; the fast path splits it exactly as h2 does, and an h2 client reads it back."""
    big = [(b"x-big-%d" % i, b"v" * 4000) for i in range(10)]  # ~40 KB, no Huffman
    client = H2Client()
    conn = Twin(Config(date_header=False), now=0.0, alpn="h2")
    conn.receive_data(client.data(), 0.0)
    client.feed(conn.data_to_send())
    client.c.send_headers(1, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                              (":authority", "a")], end_stream=True)
    _respond(conn, client, big, b"hello")
    out = conn.data_to_send()
    # Three frames of header block at the default 16384-byte maximum: HEADERS, CONTINUATION x2.
    frame_types = []
    view = out
    while view:
        length = int.from_bytes(view[:3], "big")
        frame_types.append((view[3], view[4]))
        view = view[9 + length:]
    assert (0x1, 0x0) in frame_types and frame_types.count((0x9, 0x0)) == 1
    assert (0x9, 0x4) in frame_types  # the last CONTINUATION ends the block
    events = client.c.receive_data(out)
    (response,) = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
    assert [(n, v) for n, v in response.headers if n.startswith(b"x-big-")] == big
    (data,) = [e for e in events if isinstance(e, h2.events.DataReceived)]
    assert data.data == b"hello"
    assert any(isinstance(e, h2.events.StreamEnded) for e in events)


def test_the_connection_window_bounds_data_across_streams() -> None:
    """RFC 9113 6.9.1: DATA never exceeds the connection window, whatever the stream windows
    allow; the rest goes once the client's WINDOW_UPDATE for stream 0 arrives."""
    window = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**20}
    client = H2Client(auto_ack=False, settings=window)
    conn = Twin(Config(date_header=False), now=0.0, alpn="h2")
    conn.receive_data(client.data(), 0.0)
    client.feed(conn.data_to_send())
    request = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "a")]
    bodies = {1: b"a" * 40000, 3: b"b" * 40000}
    for sid in bodies:
        client.c.send_headers(sid, request, end_stream=True)
    conn.receive_data(client.data(), 0.0)
    for event in conn.pop_events():
        if isinstance(event, StreamStarted):
            sid = event.stream_id
            conn.send(sid, {"type": "http.response.start", "status": 200, "headers": []}, 0.0)
            conn.send(sid, {"type": "http.response.body", "body": bodies[sid]}, 0.0)
            conn.app_finished(sid, 0.0, None)
    received: dict[int, bytes] = {1: b"", 3: b""}

    def read() -> None:
        for event in client.c.receive_data(conn.data_to_send()):
            if isinstance(event, h2.events.DataReceived):
                received[event.stream_id] += event.data

    read()
    assert sum(map(len, received.values())) == 65535  # the initial connection window, all used
    client.c.increment_flow_control_window(2**20)
    conn.receive_data(client.data(), 0.0)
    read()
    assert received == bodies


def _frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    head = len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big")
    return head + payload


def _block(*fields: tuple[bytes, bytes]) -> bytes:
    """A header block of literal fields without indexing or Huffman (RFC 7541 6.2.2)."""
    out = b""
    for name, value in fields:
        out += b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
    return out


_GET = (
    (b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"a"),
)
_SETTINGS = _frame(0x4, 0, 0, b"")
_PRIORITY_FIELDS = b"\x00\x00\x00\x00\x10"  # depends on stream 0, weight 17
_END_STREAM_HEADERS = 0x5


@pytest.mark.parametrize("frames", [
    [_frame(0x1, _END_STREAM_HEADERS, 1, _block(*_GET))],
    [_frame(0x1, 0x4, 1, _block(*_GET)), _frame(0x0, 0x1, 1, b"body")],
    [_frame(0x1, _END_STREAM_HEADERS | 0x20, 1, _PRIORITY_FIELDS + _block(*_GET))],
    [_frame(0x1, _END_STREAM_HEADERS | 0x8, 1, b"\x03" + _block(*_GET) + b"\x00" * 3)],
    [_frame(0x1, 0x1, 1, _block(*_GET[:2])), _frame(0x9, 0x4, 1, _block(*_GET[2:]))],
    [_frame(0x1, _END_STREAM_HEADERS, 3, _block(*_GET)),
     _frame(0x1, _END_STREAM_HEADERS, 1, _block(*_GET))],  # a lower id after a higher one
    [_frame(0x1, _END_STREAM_HEADERS, 2, _block(*_GET))],  # an even id from the client
    [_frame(0x1, _END_STREAM_HEADERS, 1, _block(*_GET, (b"content-length", b"x")))],
    [_frame(0x1, 0x4, 1, _block(*_GET, (b"content-length", b"2"))),
     _frame(0x0, 0x1, 1, b"body")],  # RFC 9113 8.1.1: a stream error, the connection lives
    [_frame(0x1, _END_STREAM_HEADERS, 1, _block((b":status", b"100")))],
    [_frame(0x1, _END_STREAM_HEADERS, 1, _block((b":status", b"200")))],
    [_frame(0x1, _END_STREAM_HEADERS, 1, b"\xff\xff\xff\xff")],  # HPACK fails
    [_frame(0x1, _END_STREAM_HEADERS, 1, _block(*_GET)),
     _frame(0x1, _END_STREAM_HEADERS, 1, _block((b"x-trailer", b"1")))],  # after END_STREAM
    [_frame(0x1, 0x4, 1, _block(*_GET)),
     _frame(0x1, _END_STREAM_HEADERS, 1, _block((b"x-trailer", b"1")))],  # trailers
    [_frame(0x1, _END_STREAM_HEADERS, 0, _block(*_GET))],  # stream 0
    [_frame(0x1, _END_STREAM_HEADERS, 0x80000001, _block(*_GET))],  # the reserved bit set
    [_frame(0x1, _END_STREAM_HEADERS, 1, b"\x00" * 16385)],  # past SETTINGS_MAX_FRAME_SIZE
    [_frame(0x1, _END_STREAM_HEADERS | 0x2, 1, _block(*_GET))],  # an undefined flag
    [_frame(0x1, 0x1, 1, _block(*_GET[:2])),  # CONTINUATION interrupted by a HEADERS
     _frame(0x1, _END_STREAM_HEADERS, 3, _block(*_GET))],
    [(_frame(0x1, _END_STREAM_HEADERS, 1, _block(*_GET))
      + _frame(0x1, _END_STREAM_HEADERS, 3, _block(*_GET)))[:70],  # frames split anywhere
     (_frame(0x1, _END_STREAM_HEADERS, 1, _block(*_GET))
      + _frame(0x1, _END_STREAM_HEADERS, 3, _block(*_GET)))[70:]],
])
def test_headers_that_open_a_stream_take_either_path_alike(frames: list[bytes]) -> None:
    """The receive fast path (``_FrameBuffer`` and ``_H2._new_stream``) against h2's: each
    sequence of bytes, ordinary or not, must give the same events, bytes and errors on both."""
    conn = Twin(Config(date_header=False), now=0.0, alpn="h2")
    conn.receive_data(H2_PREFACE + _SETTINGS, 0.0)
    for frame in frames:
        conn.receive_data(frame, 0.0)
        events = conn.pop_events()
        for event in events:
            if isinstance(event, StreamStarted):
                conn.receive(event.stream_id)
        conn.data_to_send()
    assert conn.closed == conn.slow.closed


@pytest.mark.parametrize("late", [
    _frame(0x8, 0, 1, b"\x00\x00\x01\x00"),  # WINDOW_UPDATE
    _frame(0x3, 0, 1, b"\x00\x00\x00\x08"),  # RST_STREAM(CANCEL)
    _frame(0x0, 0x1, 1, b"late"),  # DATA
    _frame(0x1, _END_STREAM_HEADERS, 1, _block((b"x-trailer", b"1"))),  # HEADERS
    _frame(0x2, 0, 1, _PRIORITY_FIELDS),  # PRIORITY
    _frame(0x1, _END_STREAM_HEADERS, 3, _block(*_GET)),  # a new stream, then more
], ids=["window-update", "rst-stream", "data", "headers", "priority", "new-stream"])
def test_frames_for_a_finished_stream_are_answered_alike(late: bytes) -> None:
    """The fast path lets h2 drop a stream once it is closed and its app is done (h2 drops
    it on its next count of open streams): whatever the client still sends on it is
    answered the same way either way."""
    conn = Twin(Config(date_header=False), now=0.0, alpn="h2")
    conn.receive_data(H2_PREFACE + _SETTINGS + _frame(0x1, _END_STREAM_HEADERS, 1, _block(*_GET)),
                      0.0)
    assert [e.stream_id for e in conn.pop_events() if isinstance(e, StreamStarted)] == [1]
    conn.send(1, {"type": "http.response.start", "status": 200, "headers": []}, 0.0)
    conn.send(1, {"type": "http.response.body", "body": b"done"}, 0.0)
    conn.app_finished(1, 0.0, None)
    assert 1 not in conn.fast._proto._h2.streams  # dropped already on the fast path
    conn.data_to_send()
    for _ in range(2):
        conn.receive_data(late, 0.0)
        conn.pop_events()
        conn.data_to_send()
    assert conn.closed == conn.slow.closed
