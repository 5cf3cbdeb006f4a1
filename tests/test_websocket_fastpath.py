"""The WebSocket fast path against wsproto: same messages, same bytes, same close.

``WebSocketSession`` parses common client frames and frames app messages itself, and hands
everything else to wsproto (see ``asgi_sansio/_websocket.py``).  Here every script of frames, cut
at arbitrary points and read by an app that is sometimes behind, runs twice: once as shipped and
once with ``_FAST_PATH`` off, so that every byte goes through wsproto.  The two runs must agree
exactly: the messages and disconnect the app sees, the events, and every byte written.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from asgi_sansio import ClientDisconnected
from asgi_sansio._websocket import WebSocketSession, _frame, _unmask

from .conftest import examples
from .helpers import Harness, WSClient, make_conn
from .strategies import WS_MASK, ws_frame, ws_invalid_frames, ws_valid_frames

MASK = WS_MASK
masked = ws_frame  # a client frame with the fixed key


texts = st.text(max_size=40).map(lambda t: masked(0x81, t.encode()))
binaries = st.binary(max_size=40).map(lambda b: masked(0x82, b))
longs = st.tuples(st.sampled_from([0x81, 0x82]), st.integers(126, 3000)).map(
    lambda t: masked(t[0], b"a" * t[1]))
frames = st.one_of(
    texts, texts, binaries, binaries, longs,
    ws_valid_frames().map(lambda unit: unit.wire),  # fragments, control frames between them
    ws_invalid_frames().map(lambda bad: bad.wire),  # 1002 and 1007 closes
    st.just(masked(0xC1, b"rsv1")),  # compressed (or, without deflate, an error)
    st.just(masked(0x88, b"\x03\xe8bye")),  # close 1000
    st.binary(min_size=1, max_size=8),  # garbage
)


@contextmanager
def fast_path(enabled: bool) -> Iterator[None]:
    saved = WebSocketSession._FAST_PATH
    WebSocketSession._FAST_PATH = enabled
    try:
        yield
    finally:
        WebSocketSession._FAST_PATH = saved


def play(enabled: bool, wire: bytes, points: list[int], reads: list[bool], deflate: bool,
         buffer_size: int) -> tuple[list[Any], bytes, list[str]]:
    """Open a websocket, feed ``wire`` cut at ``points``; after each piece the app reads and
    echoes what is queued if ``reads`` says so.  Returns what the app saw, the server's bytes
    after the 101, and the events."""
    with fast_path(enabled):
        h = Harness(make_conn(body_buffer_size=buffer_size))
        client = WSClient(deflate=deflate)
        h.feed(client.request)
        sid = h.started()[-1].stream_id
        h.receive(sid)
        h.send(sid, {"type": "websocket.accept"})
        h.take_output()
        seen: list[Any] = []

        def read_all() -> None:
            while (message := h.receive(sid)) is not None:
                seen.append(message)
                if message["type"] != "websocket.receive":
                    return
                try:
                    h.send(sid, {"type": "websocket.send", "bytes": message["bytes"],
                                 "text": message["text"]})
                except ClientDisconnected:
                    seen.append("send refused")
                    return

        bounds = [0, *sorted(points), len(wire)]
        for i, (a, b) in enumerate(itertools.pairwise(bounds)):
            if not h.conn.closed:
                h.feed(wire[a:b])
            if reads[i % len(reads)]:
                read_all()
        read_all()
        events = [type(e).__name__ for e in h.events]
        return seen, h.out, events


@settings(max_examples=examples(300))
@given(
    script=st.lists(frames, max_size=12),
    data=st.data(),
    deflate=st.booleans(),
    buffer_size=st.sampled_from([64, 65536]),
)
def test_fast_path_agrees_with_wsproto(script: list[bytes], data: st.DataObject, deflate: bool,
                                       buffer_size: int) -> None:
    wire = b"".join(script)
    points = data.draw(st.lists(st.integers(0, len(wire)), max_size=6), label="points")
    reads = data.draw(st.lists(st.booleans(), min_size=1, max_size=6), label="reads")
    fast = play(True, wire, points, reads, deflate, buffer_size)
    slow = play(False, wire, points, reads, deflate, buffer_size)
    note(f"fast: {fast}\nslow: {slow}")
    assert fast == slow


def test_common_frames_skip_wsproto(monkeypatch: pytest.MonkeyPatch) -> None:
    # The point of the fast path: whole ordinary frames never reach wsproto's parser.
    from wsproto.connection import Connection

    def refuse(self: Any, data: Any) -> None:
        if data:  # wsproto's own constructor feeds it b""
            raise AssertionError("wsproto was fed a common frame")

    monkeypatch.setattr(Connection, "receive_data", refuse)
    seen, out, _ = play(True, masked(0x81, b"hi") + masked(0x82, b"\x00" * 300), [8],
                        [True], deflate=False, buffer_size=65536)
    assert seen == [
        {"type": "websocket.receive", "bytes": None, "text": "hi"},
        {"type": "websocket.receive", "bytes": b"\x00" * 300, "text": None},
    ]
    assert out == b"\x81\x02hi" + b"\x82\x7e\x01\x2c" + b"\x00" * 300


def test_frame_and_unmask() -> None:
    # RFC 6455 5.7's examples: a masked "Hello" and the 256- and 65536-byte length forms.
    assert _unmask(bytes.fromhex("7f9f4d5158"), bytes.fromhex("37fa213d")) == b"Hello"
    assert _unmask(b"", MASK) == b""
    assert _frame(0x81, b"Hello") == bytes.fromhex("810548656c6c6f")
    assert _frame(0x82, bytes(256))[:4] == bytes.fromhex("827e0100")
    assert _frame(0x82, bytes(65536))[:10] == bytes.fromhex("827f0000000000010000")
