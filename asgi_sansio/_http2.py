"""HTTP/2 as an ASGI connection, on h2.

h2 does the framing, HPACK and the stream state machine; the stream policy is ours:

* **Flow control follows the app.**  A stream's receive window is credited only when its app
  pulls the bytes through ``receive()``, so a slow app stalls only its own stream.  The
  connection window is ``h2_max_concurrent_streams`` stream windows, so streams that do not
  read can never starve the others.  Outbound DATA waits on each stream's window without
  blocking the rest; ``writable()`` holds an app whose stream has more than
  ``output_high_water`` bytes waiting.
* **Stream errors stay stream errors.**  h2's inbound header validation raises connection
  errors, so it is off and ``_check_request`` applies RFC 9113 8.2/8.3 itself, answering a
  malformed request with ``RST_STREAM(PROTOCOL_ERROR)`` and keeping the connection.
* **Excess streams are refused, not fatal.**  A HEADERS frame beyond
  ``SETTINGS_MAX_CONCURRENT_STREAMS`` gets ``RST_STREAM(REFUSED_STREAM)`` (RFC 9113 5.1.2);
  h2 alone would end the whole connection (Hypercorn#335).
* **Floods are counted** per ``h2_flood_window`` seconds of the driver's clock: client resets
  of live streams (rapid reset, CVE-2023-44487) and refused streams against
  ``h2_max_resets``; PING, SETTINGS, PRIORITY, unknown (such as RFC 9218's PRIORITY_UPDATE,
  which is read and ignored) and empty DATA frames against ``h2_max_control_frames``.  Past
  either, ``GOAWAY(ENHANCE_YOUR_CALM)``.
* **Request limits are HTTP/1.1's**: more fields than ``max_header_count`` is 431, a
  ``:path`` longer than ``max_target_length`` is 414, and a header list past the advertised
  ``SETTINGS_MAX_HEADER_LIST_SIZE`` (``max_head_size``) is 431, all on the stream alone.
* **Graceful shutdown** writes its own GOAWAY (h2 would refuse every later frame once it sent
  one), lets the streams it names finish, refuses newer ones with REFUSED_STREAM, and aborts
  what is left at the deadline.  With ``h2_shutdown_ping`` it follows RFC 9113 6.8's advice:
  a first GOAWAY naming stream 2^31-1 and a PING; once the ACK is back (or after
  ``SHUTDOWN_PING_WAIT``) the second names the last stream, so the streams the client opened
  before it saw the first are served, not refused.

The ASGI response rules are shared with HTTP/1.1 (``_http_messages``); WebSockets arrive as
RFC 8441 extended CONNECT and reuse ``WebSocketSession`` with this connection as carrier.
"""

from __future__ import annotations

import contextlib
import re
import struct
from collections import deque
from typing import Any
from urllib.parse import quote, unquote

from h2.config import H2Configuration
from h2.connection import (
    AllowedStreamIDs,
    ConnectionInputs,
    ConnectionState,
    H2Connection,
    H2ConnectionStateMachine,
    _decode_headers,
)
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    PingAckReceived,
    PingReceived,
    PriorityUpdated,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    UnknownFrameReceived,
    WindowUpdated,
)
from h2.exceptions import (
    FrameDataMissingError,
    InvalidBodyLengthError,
    ProtocolError,
    StreamClosedError,
)
from h2.frame_buffer import FrameBuffer
from h2.settings import SettingCodes, Settings
from h2.stream import H2Stream, H2StreamStateMachine, StreamClosedBy, StreamInputs, StreamState
from h2.stream import _transitions as _stream_transitions
from hpack import Decoder, OversizedHeaderListError
from hpack.table import HeaderTable
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, RstStreamFrame

from . import _h1writer as writer
from . import _http_messages as msgs
from ._config import Config
from ._errors import AppMisuseError, ClientDisconnected, DriverMisuseError
from ._events import ConnectionClosed, Event, StreamReadable, StreamStarted, StreamWritable
from ._events import StreamEnded as StreamEndedEvent
from ._hpack import StaticEncoder
from ._http11 import H2cUpgrade, http_date
from ._http_messages import Resp
from ._websocket import DENY_BODY, DENY_START, WebSocketSession, offered_subprotocols

PUSH = "http.response.push"
# RFC 9113 6.8: how long graceful shutdown waits for its PING's ACK before the second GOAWAY
# names the last stream anyway.  The RFC asks for at least one round trip; 1 s covers nearly
# every path, and is all a client that never answers PINGs (it MUST) or never reads costs.
SHUTDOWN_PING_WAIT = 1.0
_SHUTDOWN_PING = b"shutdown"  # our PING's opaque data: no other PING of ours is in flight
_PSEUDO_REQUEST = frozenset({b":method", b":scheme", b":authority", b":path", b":protocol"})
_NAME_RE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")  # lowercase tokens only (RFC 9113 8.2.1)
_BAD_VALUE_RE = re.compile(rb"[\x00\r\n]|^[ \t]|[ \t]$")  # RFC 9113 8.2.1
# What we send: no control characters but HTAB, as on HTTP/1.1 (_h1writer).
_BAD_OUT_VALUE_RE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]|^[ \t]|[ \t]$")


class _StreamMalformed:
    """h2 found a stream's request malformed (its content-length); we reset just that stream."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


# How far past SETTINGS_MAX_HEADER_LIST_SIZE a header block is still decoded to answer 431:
# beyond it the decoding work is the client's attack, and it stays a connection error.
_OVERSIZED_DECODE_FACTOR = 4


_CACHED_BLOCKS = 64  # header blocks kept per connection while its HPACK table stands still
_CACHED_BLOCK_SIZE = 1024  # bytes: bigger blocks are rare and would make the cache big


class _Table(HeaderTable):
    """hpack's header table, counting its changes: equal ``generation``, equal contents."""

    generation = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.generation += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return HeaderTable.maxsize.fget(self)  # type: ignore[attr-defined, no-any-return]

    @maxsize.setter
    def maxsize(self, value: int) -> None:
        self.generation += 1
        HeaderTable.maxsize.fset(self, value)  # type: ignore[attr-defined]


class _Decoder(Decoder):
    """hpack's decoder with a header list past the advertised limit made a stream error, and
    a cache of the blocks that leave the dynamic table as it was.

    hpack stops at the limit with the dynamic table half updated, so only the connection could
    end.  This one decodes the whole block (keeping the table in sync) up to
    ``_OVERSIZED_DECODE_FACTOR`` times the limit, then keeps only the pseudo-header fields and
    sets ``oversized``, so that stream alone gets 431 (RFC 9113 10.5.1).

    A client repeating a request sends the same bytes, all indexes into tables that did not
    change, and decoding them was a tenth of an HTTP/2 request's server CPU.  A block that
    changed nothing in the table decodes the same while the table's ``generation`` stays, so
    it is kept (bounded) until the table next changes.
    """

    oversized = False
    limit = 0

    def __init__(self) -> None:
        super().__init__()
        self.header_table = self._table = _Table()
        self._cache: dict[tuple[bytes, bool], list[Any]] = {}
        self._cache_generation = 0

    @property
    def max_header_list_size(self) -> int:
        return self.limit * _OVERSIZED_DECODE_FACTOR

    @max_header_list_size.setter
    def max_header_list_size(self, value: int) -> None:
        self.limit = value  # h2 sets the value it advertised

    def decode(self, data: bytes, raw: bool = False) -> Any:
        table = self._table
        generation = table.generation
        if generation != self._cache_generation:
            self._cache.clear()
            self._cache_generation = generation
        key = (bytes(data), raw)
        cached = self._cache.get(key)
        if cached is not None:
            return list(cached)
        headers = super().decode(data, raw)
        size = 0
        for name, value in headers:
            size += 32 + len(name) + len(value)  # RFC 9113 6.5.2's accounting
        if size <= self.limit:
            if table.generation == generation and len(key[0]) <= _CACHED_BLOCK_SIZE:
                if len(self._cache) >= _CACHED_BLOCKS:
                    self._cache.clear()
                self._cache[key] = list(headers)
            return headers
        self.oversized = True
        return [field for field in headers if field[0][:1] == b":"]


# RFC 9113 4.1: the 9-octet frame header (a 24-bit length split as 16 + 8 bits).
_FRAME_HEAD = struct.Struct(">HBBBL").pack
_END_STREAM, _END_HEADERS = 0x1, 0x4
_SEND_HEADERS, _SEND_DATA = ConnectionInputs.SEND_HEADERS, ConnectionInputs.SEND_DATA
_RECV_HEADERS, _CLIENT_IDS = ConnectionInputs.RECV_HEADERS, AllowedStreamIDs.ODD
_Step = tuple[StreamInputs, dict[StreamState, Any]]


def _stream_step(event: StreamInputs) -> _Step:
    """A stream input with its row of h2's transition table, keyed by state alone."""
    return event, {state: to for (state, by), to in _stream_transitions.items() if by is event}


_STREAM_HEADERS = _stream_step(StreamInputs.SEND_HEADERS)
_STREAM_INFO = _stream_step(StreamInputs.SEND_INFORMATIONAL_HEADERS)
_STREAM_DATA = _stream_step(StreamInputs.SEND_DATA)
_STREAM_END = _stream_step(StreamInputs.SEND_END_STREAM)
_STREAM_RECV_HEADERS = _stream_step(StreamInputs.RECV_HEADERS)
_STREAM_RECV_END = _stream_step(StreamInputs.RECV_END_STREAM)


def _step(machine: H2StreamStateMachine, step: _Step) -> list[Any]:
    """h2's ``H2StreamStateMachine.process_input`` for a known input, step for step, but with
    a lookup on the state alone (an IntEnum, hashed in C, where h2's key pairs it with an
    Enum hashed in Python): four such steps are a tenth of a simple request's cost."""
    event, row = step
    previous = machine.state
    entry = row.get(previous)
    if entry is None:
        return machine.process_input(event)  # not allowed: h2 closes the stream and raises
    func, machine.state = entry
    if func is None:
        return []
    try:
        return func(machine, previous)  # type: ignore[no-any-return]
    except ProtocolError:
        machine.state = StreamState.CLOSED
        raise
    except AssertionError as err:  # as h2
        machine.state = StreamState.CLOSED
        raise ProtocolError(err) from err


# h2 transitions that change nothing (same state, no callback), read from h2's own tables: the
# fast paths skip them (each costs two Python-level enum hashes).  An open server connection
# stays open on sending or receiving headers and data; an open stream on sending data.
_OPEN = ConnectionState.SERVER_OPEN
_QUIET_CONNECTION = {
    event for event in (_SEND_HEADERS, _SEND_DATA, _RECV_HEADERS)
    if H2ConnectionStateMachine._transitions.get((_OPEN, event)) == (None, _OPEN)
}
_QUIET_SEND_HEADERS = _SEND_HEADERS in _QUIET_CONNECTION
_QUIET_SEND_DATA = _SEND_DATA in _QUIET_CONNECTION
_QUIET_RECV_HEADERS = _RECV_HEADERS in _QUIET_CONNECTION
_QUIET_DATA_STATES = tuple(
    state for state in StreamState if _STREAM_DATA[1].get(state) == (None, state)
)


_MAX_STREAMS = SettingCodes.MAX_CONCURRENT_STREAMS
_INITIAL_WINDOW = SettingCodes.INITIAL_WINDOW_SIZE
_ENABLE_PUSH = SettingCodes.ENABLE_PUSH


def _setting(settings: Settings, code: SettingCodes) -> int:
    """``settings[code]``, read where h2's mapping keeps it (first in a deque, never None
    for the standard settings), without its property and ``__getitem__`` in Python: five
    such reads are a twentieth of a simple request's cost."""
    return settings._settings[code][0]


class _Opening:
    """A HEADERS frame with END_HEADERS and at most END_STREAM set, as ``_FrameBuffer`` found
    it: what a request opens its stream with, with the three fields ``_H2`` reads."""

    __slots__ = ("data", "flags", "stream_id")

    def __init__(self, stream_id: int, flags: frozenset[str], data: bytes) -> None:
        self.stream_id, self.flags, self.data = stream_id, flags, data

    def parsed(self) -> HeadersFrame:
        """The same frame as hyperframe would have parsed it, for h2's own path."""
        frame = HeadersFrame(self.stream_id, self.data)
        for flag in self.flags:
            frame.flags.add(flag)
        return frame


_OPENING_FLAGS = {0x4: frozenset({"END_HEADERS"}), 0x5: frozenset({"END_HEADERS", "END_STREAM"})}


class _FrameBuffer(FrameBuffer):
    """h2's frame buffer, but a complete HEADERS frame with no padding, no priority and no
    CONTINUATION comes out as an ``_Opening`` rather than through hyperframe's generic
    parsing (as costly as the rest of the request's way in).  Every other frame, and any
    check that could fail (a frame past the size limit, stream 0), is hyperframe's."""

    def __next__(self) -> Any:
        data = self._data
        if len(data) < 9:
            return super().__next__()
        kind = data[3]
        if kind == 0x1 and _H2.fast and not self._headers_buffer:
            flags = _OPENING_FLAGS.get(data[4])
            length = (data[0] << 16) | (data[1] << 8) | data[2]
            sid = int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
            if flags and sid and length <= self.max_frame_size and len(data) >= 9 + length:
                frame = _Opening(sid, flags, bytes(data[9 : 9 + length]))
                del data[: 9 + length]
                return frame
        elif kind == 0x4 and data[4] & 0x1 and (data[0] | data[1] | data[2]):
            # RFC 9113 6.5: a SETTINGS ACK with a payload is a FRAME_SIZE_ERROR (hyperframe's
            # error would make it h2's PROTOCOL_ERROR); h2 answers this one with that code.
            raise FrameDataMissingError("a SETTINGS ACK frame with a payload")
        return super().__next__()


class _H2(H2Connection):
    """h2 with four stream-policy changes (see the module docstring): excess streams are
    refused with REFUSED_STREAM, a bad request content-length is a stream error (RFC 9113
    8.1.1; h2 makes it a connection error), a request header list past our limit is recorded in
    ``oversized`` for a 431 (h2 makes it a connection error), and a client GOAWAY leaves the
    streams it names free to finish (RFC 9113 6.8; h2 would refuse every later frame).

    And one change for speed: ``send_headers``, ``send_data`` and ``end_stream`` on a live
    stream make h2's state transitions and flow-control accounting themselves, in h2's order,
    and write the frame bytes directly instead of building hyperframe objects, which cost about
    as much as the rest of a response.  Anything unusual (padding, priority, an unknown
    stream, DATA past the window or the frame size) takes h2's own path, so h2 still raises
    every error.  On the receiving side, a HEADERS frame that opens a stream skips h2's
    generic frame handling and its (here disabled) header validation: ``_new_stream``.
    ``open_inbound_streams`` is cheaper too.  ``fast = False`` turns all of these off: the
    tests check that both ways give the same events, bytes and errors."""

    fast = True
    refuse_above: int | None = None  # shutting down: streams above this id are refused
    awaiting_ping = False  # graceful shutdown's PING is out
    refused = 0
    peer_goaway = False
    decoder: _Decoder
    encoder: StaticEncoder  # type: ignore[assignment]

    def __init__(self, config: H2Configuration) -> None:
        super().__init__(config)
        self.incoming_buffer = _FrameBuffer(server=True)
        self.decoder = _Decoder()
        self.oversized: set[int] = set()  # requests whose header list is past the limit

    def close_connection(
        self,
        error_code: ErrorCodes | int = 0,
        additional_data: bytes | None = None,
        last_stream_id: int | None = None,
    ) -> None:
        # RFC 9113 6.8: a later GOAWAY never names more streams than the first one did (h2
        # would name the highest stream seen, refused ones included).
        if last_stream_id is None:
            last_stream_id = self.refuse_above
        super().close_connection(error_code, additional_data, last_stream_id)

    def send_headers(  # type: ignore[override]
        self,
        stream_id: int,
        headers: list[tuple[bytes, bytes]],
        end_stream: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        stream = self.streams.get(stream_id)
        first = headers[0][0] if headers else None
        if stream is None or args or kwargs or not self.fast or type(first) is not bytes or (
            first[:1] == b":" and first != b":status"
        ):
            super().send_headers(stream_id, headers, end_stream, *args, **kwargs)
            return
        informational = first == b":status" and headers[0][1][:1] == b"1"
        if informational and end_stream:
            super().send_headers(stream_id, headers, end_stream)  # h2's error
            return
        if self.state_machine.state is not _OPEN or not _QUIET_SEND_HEADERS:
            self.state_machine.process_input(_SEND_HEADERS)
        machine = stream.state_machine
        _step(machine, _STREAM_INFO if informational else _STREAM_HEADERS)
        block = self.encoder.encode_plain(headers)  # after the transition, as h2: it may fail
        flags = 0
        if end_stream:
            _step(machine, _STREAM_END)
            flags = _END_STREAM
        elif machine.trailers_sent:
            raise ProtocolError("Trailers must have END_STREAM set.")
        stream.request_method = None  # as h2: the method named in the block sent, a response's
        limit, size = self.max_outbound_frame_size, len(block)
        if size <= limit:
            frames = _FRAME_HEAD(size >> 8, size & 0xFF, 0x1, flags | _END_HEADERS, stream_id)
            self._data_to_send += frames + block
            return
        parts = []  # RFC 9113 6.10: HEADERS, then CONTINUATION frames, the last ending it
        for start in range(0, size, limit):
            chunk = block[start : start + limit]
            n = len(chunk)
            last = start + limit >= size
            parts.append(_FRAME_HEAD(n >> 8, n & 0xFF, 0x9 if start else 0x1,
                                     (0 if start else flags) | (_END_HEADERS if last else 0),
                                     stream_id))
            parts.append(chunk)
        self._data_to_send += b"".join(parts)

    def send_data(  # type: ignore[override]
        self, stream_id: int, data: bytes, end_stream: bool = False, pad_length: Any = None
    ) -> None:
        stream = self.streams.get(stream_id)
        size = len(data)
        if stream is None or pad_length is not None or not self.fast or type(data) is not bytes or (
            size > self.max_outbound_frame_size
            or size > self.outbound_flow_control_window
            or size > stream.outbound_flow_control_window
        ):
            super().send_data(stream_id, data, end_stream, pad_length)
            return
        if self.state_machine.state is not _OPEN or not _QUIET_SEND_DATA:
            self.state_machine.process_input(_SEND_DATA)
        machine = stream.state_machine
        if machine.state not in _QUIET_DATA_STATES:
            _step(machine, _STREAM_DATA)
        flags = 0
        if end_stream:
            _step(machine, _STREAM_END)
            flags = _END_STREAM
        stream.outbound_flow_control_window -= size
        self._data_to_send += _FRAME_HEAD(size >> 8, size & 0xFF, 0x0, flags, stream_id) + data
        self.outbound_flow_control_window -= size

    def _begin_new_stream(self, stream_id: int, allowed_ids: AllowedStreamIDs) -> H2Stream:
        """h2's, for a client's stream: the same checks and stream, without three debug-log
        calls (one with every stream id) and the work out of which side opened it."""
        if (
            allowed_ids is not _CLIENT_IDS or not self.fast
            or stream_id <= self.highest_inbound_stream_id or stream_id % 2 != 1
        ):
            return super()._begin_new_stream(stream_id, allowed_ids)  # or h2's error
        stream = H2Stream(
            stream_id, self.config, _setting(self.local_settings, _INITIAL_WINDOW),
            _setting(self.remote_settings, _INITIAL_WINDOW),
        )
        stream.max_outbound_frame_size = self.max_outbound_frame_size
        self.streams[stream_id] = stream
        self.highest_inbound_stream_id = stream_id
        return stream

    def forget(self, stream_id: int) -> None:
        """Let a closed stream go now, as h2 does on its next count of open streams: that
        count walks every stream still held, once per ~limit new streams."""
        stream = self.streams.get(stream_id)
        if stream is not None and stream.closed and self.fast:
            del self.streams[stream_id]
            self._closed_streams[stream_id] = stream.closed_by

    def fits(self, stream_id: int, size: int) -> bool:
        """Whether ``size`` bytes of DATA can go on the stream now, in one frame."""
        stream = self.streams.get(stream_id)
        return stream is not None and size <= min(
            self.max_outbound_frame_size,
            self.outbound_flow_control_window,
            stream.outbound_flow_control_window,
        )

    def end_stream(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None or not self.fast:
            super().end_stream(stream_id)
            return
        if self.state_machine.state is not _OPEN or not _QUIET_SEND_DATA:
            self.state_machine.process_input(_SEND_DATA)
        _step(stream.state_machine, _STREAM_END)
        self._data_to_send += _FRAME_HEAD(0, 0, 0x0, _END_STREAM, stream_id)

    @property
    def open_inbound_streams(self) -> int:
        """An upper bound, exact from ``SETTINGS_MAX_CONCURRENT_STREAMS`` up: every use only
        compares it with that limit, and h2's count walks every stream on every new one.  h2
        drops closed streams while it counts, so ``streams`` stays within about the limit."""
        streams = len(self.streams)
        if streams < _setting(self.local_settings, _MAX_STREAMS) and self.fast:
            return streams
        return super().open_inbound_streams

    def _terminate_connection(self, error_code: ErrorCodes) -> None:
        self.close_connection(error_code)  # h2's own error path, with the same rule

    def _malformed(self, frame: Any, exc: Exception) -> list[Any]:
        """A bad request content-length is a stream error (RFC 9113 8.1.1), not h2's
        connection error; any other error goes on up."""
        if not isinstance(exc, InvalidBodyLengthError) and (
            type(exc) is not ProtocolError
            or not str(exc).startswith(("Invalid content-length", "Conflicting content-length"))
        ):
            raise exc
        sid = frame.stream_id
        if isinstance(frame, DataFrame):
            # The bytes count against the connection window even though nobody reads them.
            increment = self._inbound_flow_control_window_manager.process_bytes(
                frame.flow_controlled_length
            )
            if increment:
                self.increment_flow_control_window(increment)
        try:
            self.reset_stream(sid, ErrorCodes.PROTOCOL_ERROR)
        except (ProtocolError, StreamClosedError):
            rst = RstStreamFrame(sid)
            rst.error_code = ErrorCodes.PROTOCOL_ERROR
            self._prepare_for_sending([rst])
            self._closed_streams[sid] = StreamClosedBy.SEND_RST_STREAM
        return [_StreamMalformed(sid)]

    def _new_stream(self, frame: HeadersFrame | _Opening) -> tuple[list[Any], list[Any]]:
        """h2's ``_receive_headers_frame`` for the common case, a HEADERS frame that opens a
        stream without PRIORITY, with the same steps in the same order: what it skips is
        header validation and normalisation (turned off in our configuration), the
        concurrency check (``_receive_headers_frame`` refused the stream already) and the
        generic per-frame bookkeeping.  Anything else goes through h2."""
        headers: Any = _decode_headers(self.decoder, frame.data)  # a list, from _Decoder
        events: list[Any] = []
        if self.state_machine.state is not _OPEN or not _QUIET_RECV_HEADERS:
            events = self.state_machine.process_input(_RECV_HEADERS)
        stream = self._begin_new_stream(frame.stream_id, _CLIENT_IDS)  # h2's id checks
        end_stream = "END_STREAM" in frame.flags
        if headers and headers[0][0] == b":status":  # h2 takes it as a response
            frames, stream_events = stream.receive_headers(headers, end_stream, None)
            return frames, events + stream_events
        machine = stream.state_machine
        stream_events = _step(machine, _STREAM_RECV_HEADERS)
        request: Any = stream_events[0]  # RequestReceived
        if end_stream:
            ended = _step(machine, _STREAM_RECV_END)
            request.stream_ended = ended[0]
            stream_events += ended
        stream._initialize_content_length(headers)
        request.headers = list(headers)
        return [], events + stream_events

    def _receive_frame(self, frame: Any) -> list[Any]:
        kind = type(frame)
        if self.fast and (kind is _Opening or kind is HeadersFrame) and (
            frame.stream_id > self.highest_inbound_stream_id
        ):
            # A new stream: h2's wrapper would only catch errors about existing ones (and
            # format the frame for a trace log that is off).
            try:
                frames, events = self._receive_headers_frame(frame)
            except (InvalidBodyLengthError, ProtocolError) as exc:
                return self._malformed(frame, exc)
            self._prepare_for_sending(frames)
            return events
        if kind is _Opening:
            frame = frame.parsed()
        try:
            return super()._receive_frame(frame)
        except (InvalidBodyLengthError, ProtocolError) as exc:
            return self._malformed(frame, exc)

    def _receive_ping_frame(self, frame: Any) -> tuple[list[Any], list[Any]]:
        frames, events = super()._receive_ping_frame(frame)
        if self.awaiting_ping and "ACK" in frame.flags and frame.opaque_data == _SHUTDOWN_PING:
            # Graceful shutdown's PING came back: every stream the client opened before it saw
            # our first GOAWAY is in, so any later in this same read is refused already.
            self.awaiting_ping = False
            highest = self.highest_inbound_stream_id
            above = self.refuse_above
            self.refuse_above = highest if above is None else min(above, highest)
        return frames, events

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list[Any], list[Any]]:
        queued = self._data_to_send
        frames, events = super()._receive_goaway_frame(frame)
        # h2 drops what is queued: our answers to the frames before the GOAWAY (a RST_STREAM,
        # a SETTINGS or PING ACK) still go, with the streams it lets finish.
        self._data_to_send = queued + self._data_to_send
        self.peer_goaway = True
        self.refuse_above = min(self.refuse_above or self.highest_inbound_stream_id,
                                self.highest_inbound_stream_id)
        # Keep answering the in-flight streams.
        self.state_machine.state = ConnectionState.SERVER_OPEN
        return frames, events

    def _receive_headers_frame(
        self, frame: HeadersFrame | _Opening
    ) -> tuple[list[Any], list[Any]]:
        sid = frame.stream_id
        if (
            sid not in self.streams
            and sid % 2 == 1
            and sid > self.highest_inbound_stream_id
            and (
                self.open_inbound_streams >= _setting(self.local_settings, _MAX_STREAMS)
                or (self.refuse_above is not None and sid > self.refuse_above)
            )
        ):
            # Decode anyway: HPACK state is shared by the whole connection.
            _compression_errors(self.decoder, frame.data)
            self.highest_inbound_stream_id = sid
            self._closed_streams[sid] = StreamClosedBy.SEND_RST_STREAM
            rst = RstStreamFrame(sid)
            rst.error_code = ErrorCodes.REFUSED_STREAM
            self.refused += 1
            return [rst], []
        self.decoder.oversized = False
        try:
            if self.fast and sid > self.highest_inbound_stream_id and sid % 2 == 1 and (
                "PRIORITY" not in frame.flags
            ):
                frames, events = self._new_stream(frame)
            else:
                parsed = frame.parsed() if isinstance(frame, _Opening) else frame
                frames, events = super()._receive_headers_frame(parsed)
        except ProtocolError as exc:
            if type(exc) is ProtocolError and not isinstance(
                exc.__cause__, OversizedHeaderListError
            ) and exc.__cause__ is not None:
                exc.error_code = ErrorCodes.COMPRESSION_ERROR  # RFC 9113 4.3: HPACK failed
            raise
        if self.decoder.oversized:
            # Trailers past the limit need nothing: they never reach the app.
            self.oversized.update(e.stream_id for e in events if type(e) is RequestReceived)
        return frames, events


class _Stream:
    """One HTTP/2 request/response exchange."""

    __slots__ = (
        "app_done",
        "body",
        "body_bytes",
        "body_done",
        "body_restamp",
        "body_seen",
        "declared_in",
        "declared_length",
        "delivered_end",
        "end_pending",
        "ended",
        "extensions",
        "gone",
        "head",
        "is_head",
        "no_body",
        "out",
        "received",
        "resp",
        "sent",
        "stream_id",
        "trailer_block",
        "trailers",
        "trailers_ok",
        "unacked",
        "waiting",
        "was_blocked",
    )

    def __init__(self, stream_id: int, is_head: bool) -> None:
        self.stream_id = stream_id
        self.is_head = is_head
        self.body: deque[bytes] = deque()
        self.body_bytes = 0
        self.body_seen = 0.0  # Config.body_timeout: the client's last bytes (or the restart)
        self.body_restamp = False  # restarted at a time the core was not told: see _bodies
        self.received = 0
        self.unacked = 0  # flow-controlled bytes received and not yet credited back
        self.declared_in: int | None = None  # the request's content-length
        self.body_done = False
        self.delivered_end = False
        self.waiting = False
        self.resp = Resp.INIT
        self.head: list[tuple[bytes, bytes]] | None = None  # held until the first body
        self.declared_length: int | None = None
        self.sent = 0
        self.no_body = False
        self.trailers = False
        self.trailers_ok = False
        self.trailer_block: list[tuple[bytes, bytes]] = []
        self.out = bytearray()  # DATA waiting for flow-control window
        self.end_pending = False  # END_STREAM (or trailers) goes once ``out`` drains
        self.was_blocked = False  # writable() said False: a StreamWritable is owed
        self.extensions: dict[str, Any] = {}
        self.ended = False
        self.gone = False
        self.app_done = False


class HTTP2Connection:
    """ASGI over one HTTP/2 connection.  See ``ServerConnection`` for the contract."""

    def __init__(
        self,
        config: Config,
        *,
        now: float,
        client: tuple[str, int] | None,
        server: tuple[str, int | None] | None,
        tls: dict[str, Any] | None,
        state: dict[str, Any] | None,
        wall_offset: float,
        upgrade: H2cUpgrade | None = None,
        secure: bool = False,
    ) -> None:
        self.config = config
        self._client = client
        self._server = server
        self._tls = tls
        # The scheme of pushed requests; a client's request carries its own ``:scheme``.
        self._scheme = "https" if tls is not None or secure else "http"
        self._state = state
        self._wall_offset = wall_offset
        self._root_path = config.root_path
        self._root_path_raw = config.root_path.encode("utf-8")
        h2 = _H2(
            H2Configuration(
                client_side=False,
                header_encoding=None,
                validate_inbound_headers=False,
                normalize_inbound_headers=False,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        self._window = min(config.body_buffer_size, 2**31 - 1)
        # Replaced, not updated: h2's update() only queues values until the peer's ACK, and
        # the first SETTINGS frame would carry the old ones.
        h2.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: config.h2_max_concurrent_streams,
                SettingCodes.INITIAL_WINDOW_SIZE: self._window,
                SettingCodes.MAX_HEADER_LIST_SIZE: config.max_head_size,
                SettingCodes.ENABLE_CONNECT_PROTOCOL: 1,  # RFC 8441
                SettingCodes.ENABLE_PUSH: 0,
            },
        )
        h2.decoder.max_header_list_size = config.max_head_size
        h2.encoder = StaticEncoder()
        self._events: list[Event] = []
        if upgrade is None:
            h2.initiate_connection()
        else:
            try:
                h2.initiate_upgrade_connection(upgrade.settings)
            except Exception:  # HTTP2-Settings that do not decode: nothing to upgrade to
                h2.initiate_connection()
                h2.close_connection(error_code=ErrorCodes.PROTOCOL_ERROR)
                upgrade = None
                self._bad_upgrade = True
        conn_window = min(2**31 - 1, self._window * config.h2_max_concurrent_streams)
        # Not on a refused upgrade: h2 has closed the connection and would raise.
        if conn_window > 65535 and not getattr(self, "_bad_upgrade", False):
            h2.increment_flow_control_window(conn_window - 65535)
        self._h2 = h2
        self._streams: dict[int, _Stream] = {}
        self._apps_running = 0  # streams in _streams whose app has not finished
        self._ws: dict[int, WebSocketSession] = {}
        self._ws_out: dict[int, bytearray] = {}  # frames waiting for their stream's window
        self._ws_blocked: set[int] = set()  # writable() said False: a StreamWritable is owed
        # Config.body_timeout: streams whose request body the client owes (it has window to
        # send it).  Checked on every get_timer(), so kept to those: a stream whose body is
        # complete, or whose window the app holds by not reading, is not in it.
        self._bodies: dict[int, _Stream] = {}
        self._ws_end: set[int] = set()  # end these WebSocket streams once their frames left
        self._ws_app_done: set[int] = set()
        self._ws_open: set[int] = set()  # accepted: DATA goes to the session
        self._ws_early: dict[int, bytearray] = {}
        self._ws_unacked: dict[int, int] = {}  # WebSocket DATA bytes not yet credited back
        # Denial bodies: content-length bytes still owed; -1 no count, -2 a no-body status.
        self._ws_deny_left: dict[int, int] = {}
        self._scopes: dict[int, list[tuple[bytes, bytes]]] = {}  # request headers, for pushes
        # _check_request's answers for small header lists: a client repeats its requests'.
        self._checked: dict[tuple[tuple[bytes, bytes], ...], _Checked | str] = {}
        self._heads: dict[tuple[Any, ...], _Head] = {}  # _response_head's, by status and fields
        self._out: list[bytes] = [h2.data_to_send()]
        self.closed = False
        self._now = now
        self._shutting_down = False
        self._ws_shutdown_code = 1001  # the close code for websockets during shutdown
        self._peer_left = False  # the client sent GOAWAY
        self._idle_deadline: float | None = now + config.keep_alive_timeout
        self._shutdown_deadline: float | None = None
        self._ping_deadline: float | None = None  # the first shutdown GOAWAY awaits its PING
        self._two_phase_goaway = config.h2_shutdown_ping  # RFC 9113 6.8's two GOAWAYs
        self._flood_window_end = now + config.h2_flood_window
        self._resets = 0
        self._control_frames = 0
        if getattr(self, "_bad_upgrade", False):
            self._close()
        elif upgrade is not None:
            self._upgraded_request(upgrade)

    def _upgraded_request(self, up: H2cUpgrade) -> None:
        """RFC 7540 3.2: the request that asked for h2c is stream 1, its body already done."""
        headers = [
            (n, v) for n, v in up.headers if n not in (b"connection", b"upgrade", b"http2-settings")
        ]
        pseudo = {
            b":method": up.method, b":path": up.raw_path + (b"?" + up.query if up.query else b""),
            b":scheme": b"http",
        }
        stream = _Stream(1, up.method == b"HEAD")
        stream.body_done = True
        extensions: dict[str, Any] = {"http.response.early_hint": {}}
        if any(n == b"te" and v.lower() == b"trailers" for n, v in headers):
            extensions["http.response.trailers"] = {}
        stream.extensions = extensions
        self._streams[1] = stream
        self._apps_running += 1
        self._idle_deadline = None
        self._events.append(StreamStarted(1, self._scope("http", pseudo, headers, extensions)))
        if up.pending:
            self.receive_data(up.pending, self._now)
        if up.eof:
            self.receive_data(b"", self._now)

    # -- contract: output ------------------------------------------------------------------

    def pop_events(self) -> list[Event]:
        events = self._events
        self._events = []
        return events

    def data_to_send(self) -> bytes:
        data = self._h2.data_to_send()
        if data:
            self._out.append(data)
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    @property
    def wants_read(self) -> bool:
        return not self.closed

    def writable(self, stream_id: int) -> bool:
        stream = self._streams.get(stream_id)
        if stream is None:
            # A WebSocket: its frames wait in _ws_out for the window.
            if len(self._ws_out.get(stream_id, b"")) < self.config.output_high_water:
                return True
            if stream_id in self._ws:
                self._ws_blocked.add(stream_id)
            return False
        if len(stream.out) < self.config.output_high_water:
            return True
        stream.was_blocked = True
        return False

    # -- contract: input -------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        if self.closed:
            return
        self._now = now
        if not data:
            self._close()  # the peer left: every stream with it
            return
        h2 = self._h2
        if now >= self._flood_window_end:
            # A new accounting window starts before this batch is counted.
            self._flood_window_end = now + self.config.h2_flood_window
            self._resets = self._control_frames = 0
        refused = h2.refused
        acked = False
        try:
            events = h2.receive_data(data)
        except ProtocolError:
            self._close()  # h2 queued the GOAWAY with the right error code
            return
        for event in events:
            etype: type = type(event)
            if etype is DataReceived:
                self._data(event)  # type: ignore[arg-type]
            elif etype is RequestReceived:
                self._request(event, now)  # type: ignore[arg-type]
            elif etype is StreamEnded:
                self._request_ended(event.stream_id)  # type: ignore[attr-defined]
            elif etype is WindowUpdated:
                self._window_updated(event.stream_id)  # type: ignore[attr-defined]
            elif etype is StreamReset:
                self._reset_by_peer(event.stream_id)  # type: ignore[attr-defined]
            elif etype is TrailersReceived:
                # Well-formed ones are dropped: ASGI has no request trailers.
                if _malformed_trailers(event.headers or ()):  # type: ignore[attr-defined]
                    self._reset(event.stream_id, ErrorCodes.PROTOCOL_ERROR)  # type: ignore[attr-defined]
            elif etype is RemoteSettingsChanged:
                self._control_frames += 1
                if SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:  # type: ignore[attr-defined]
                    self._window_updated(0)
            elif etype is PingReceived or etype is PriorityUpdated or (
                    etype is UnknownFrameReceived):
                # Unknown frames too: RFC 9218's PRIORITY_UPDATE is one to h2, as is GREASE.
                self._control_frames += 1
            elif etype is PingAckReceived:
                self._control_frames += 1  # unasked-for ACKs cost work as PINGs do
                acked = acked or event.ping_data == _SHUTDOWN_PING  # type: ignore[attr-defined]
            elif etype is ConnectionTerminated:
                self._peer_goaway()
            elif etype is _StreamMalformed:
                stream = self._streams.get(event.stream_id)  # type: ignore[attr-defined]
                if stream is not None:
                    self._gone(stream)  # already reset by _H2
            if self.closed:
                return
        self._resets += h2.refused - refused
        self._check_floods(now)
        if acked and self._ping_deadline is not None and not self.closed:
            # After this batch: the streams it opened before the ACK are among those named.
            self._final_goaway()

    def _check_floods(self, now: float) -> None:
        config = self.config
        too_many = self._control_frames > config.h2_max_control_frames
        if too_many or self._resets > config.h2_max_resets:
            self._h2.close_connection(error_code=ErrorCodes.ENHANCE_YOUR_CALM)
            self._close()

    # -- requests --------------------------------------------------------------------------

    def _request(self, event: RequestReceived, now: float) -> None:
        sid = event.stream_id
        assert event.headers is not None
        if sid in self._h2.oversized:
            self._h2.oversized.discard(sid)
            # Past SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 10.5.1); the pseudo-fields are kept.
            self._answer(sid, 431, head=(b":method", b"HEAD") in event.headers)
            return
        checked = self._check_request(event.headers)
        if isinstance(checked, str):
            self._reset(sid, ErrorCodes.PROTOCOL_ERROR)
            return
        pseudo, headers, content_length, te_trailers = checked
        pseudo, headers = dict(pseudo), list(headers)  # the scope's own, and the push's
        # The HTTP/1.1 limits, on the fields an HTTP/1.1 request would carry: cookie crumbs
        # (RFC 9113 8.2.3, which browsers send one per cookie) count as one field.
        if len(headers) > self.config.max_header_count:
            self._answer(sid, 431, head=pseudo[b":method"] == b"HEAD")
            return
        if len(pseudo.get(b":path", b"")) > self.config.max_target_length:
            self._answer(sid, 414, head=pseudo[b":method"] == b"HEAD")
            return
        self._idle_deadline = None
        method = pseudo[b":method"]
        protocol = pseudo.get(b":protocol")
        if method == b"CONNECT":
            if protocol is None:
                self._answer(sid, 405)  # plain CONNECT: we are not a proxy (SRV-17)
            elif protocol.lower() != b"websocket":
                self._answer(sid, 501)  # an extended CONNECT protocol we do not speak
            else:
                self._websocket(sid, pseudo, headers, event.stream_ended is not None)
            return
        stream = _Stream(sid, method == b"HEAD")
        stream.declared_in = content_length
        max_body = self.config.max_body_size
        if content_length is not None and max_body is not None and content_length > max_body:
            self._answer(sid, 413, head=stream.is_head)
            return
        extensions: dict[str, Any] = {"http.response.early_hint": {}}
        if te_trailers:
            extensions["http.response.trailers"] = {}
        if self._tls is not None:
            extensions["tls"] = self._tls
        if _setting(self._h2.remote_settings, _ENABLE_PUSH):
            extensions[PUSH] = {}  # EXT-PUSH-01: only while the client allows it
            self._scopes[sid] = headers
        stream.extensions = extensions
        self._streams[sid] = stream
        self._apps_running += 1
        if event.stream_ended:
            stream.body_done = True
        else:
            self._body_clock(stream)
        self._events.append(StreamStarted(sid, self._scope("http", pseudo, headers, extensions)))

    def _check_request(self, fields: list[tuple[bytes, bytes]]) -> _Checked | str:
        """``_check_request``, remembered for header lists of a few small fields."""
        if len(fields) > _CHECKED_FIELDS:
            return _check_request(fields)
        key = tuple(fields)
        checked = self._checked.get(key)
        if checked is None:
            checked = _check_request(fields)
            if sum(len(name) + len(value) for name, value in fields) <= _CHECKED_SIZE:
                if len(self._checked) >= _CHECKED_LISTS:
                    self._checked.clear()
                self._checked[key] = checked
        return checked

    def _scope(
        self,
        kind: str,
        pseudo: dict[bytes, bytes],
        headers: list[tuple[bytes, bytes]],
        extensions: dict[str, Any],
    ) -> dict[str, Any]:
        raw_path, _, query = pseudo[b":path"].partition(b"?")
        path = raw_path.decode("ascii", "replace")
        if "%" in path:
            path = unquote(path, errors="replace")
        scheme = pseudo[b":scheme"].decode("ascii", "replace")
        scope: dict[str, Any] = {
            "type": kind,
            "asgi": dict(msgs.ASGI_VERSIONS),
            "http_version": "2",
            "server": self._server,
            "client": self._client,
            "scheme": scheme if kind == "http" else ("wss" if scheme == "https" else "ws"),
            "root_path": self._root_path,
            "path": self._root_path + path,
            "raw_path": self._root_path_raw + raw_path,
            "query_string": query,
            "headers": headers,
            "extensions": extensions,
        }
        if kind == "http":
            scope["method"] = pseudo[b":method"].decode("ascii")
        if self._state is not None:
            scope["state"] = self._state.copy()
        return scope

    def _data(self, event: DataReceived) -> None:
        sid = event.stream_id
        data = event.data or b""
        flow = event.flow_controlled_length or 0
        if not data and not event.stream_ended:
            self._control_frames += 1  # empty DATA frames cost us work and the peer nothing
        ws = self._ws.get(sid)
        if ws is not None:
            # Credit the window only while the session takes more: an app that reads nothing
            # stops the peer at one window of bytes.
            if flow:
                self._ws_unacked[sid] = self._ws_unacked.get(sid, 0) + flow
                if ws.wants_read:
                    self._ws_credit(sid)
            if data:
                if sid in self._ws_open:
                    ws.receive_data(data, self._now)
                else:  # frames sent before our 200: the session gets them on accept
                    self._ws_early.setdefault(sid, bytearray()).extend(data)
            return
        stream = self._streams.get(sid)
        if stream is None or stream.gone:
            if flow:
                self._h2.acknowledge_received_data(flow, sid)
            return
        stream.received += len(data)
        stream.unacked += flow
        max_body = self.config.max_body_size
        if (stream.declared_in is not None and stream.received > stream.declared_in) or (
            max_body is not None and stream.received > max_body
        ):
            # RFC 9113 8.1.1: more than content-length is malformed; past the limit is 413.
            if stream.resp is Resp.INIT and stream.declared_in is None:
                self._answer(sid, 413, head=stream.is_head)
                self._gone(stream)
            else:
                self._reset(sid, ErrorCodes.PROTOCOL_ERROR)
            return
        if data:
            stream.body.append(data)
            stream.body_bytes += len(data)
            if stream.waiting:
                stream.waiting = False
                self._events.append(StreamReadable(sid))
        if data and not event.stream_ended:
            self._body_clock(stream)  # body bytes, not empty or padding-only frames

    def _body_clock(self, stream: _Stream, restamp: bool = False) -> None:
        """(Re)start the wait for the client's next request bytes (``Config.body_timeout``),
        or stop it: the body is complete, or the client has no window to send in (the app
        leaves the body unread, and the wait is ours).  ``restamp``: restarted at a time the
        core was not told (the app's ``receive()``), so the first expiry only restarts it."""
        if self.config.body_timeout is None:
            return
        h2_stream = self._h2.streams.get(stream.stream_id)
        if stream.body_done or stream.gone or h2_stream is None or (
            h2_stream.inbound_flow_control_window <= 0
        ):
            self._bodies.pop(stream.stream_id, None)
            return
        stream.body_seen = self._now
        stream.body_restamp = restamp
        self._bodies[stream.stream_id] = stream

    def _request_ended(self, sid: int) -> None:
        ws = self._ws.get(sid)
        if ws is not None:
            if ws.end_of_input(self._now):
                return  # it reads the frames it held back first, then calls ws_finished()
            # The client half-closed the tunnel and nothing is held back: it is over.
            if sid in self._ws_open:
                self._ws_end.add(sid)  # our half ends too, once what is queued has left
                self._pump_ws(sid)
            else:  # no answer went out yet: nothing to finish
                with contextlib.suppress(StreamClosedError, ProtocolError):
                    self._h2.reset_stream(sid, ErrorCodes.CANCEL)
            self._forget_ws(sid)
            return
        stream = self._streams.get(sid)
        if stream is None or stream.gone:
            return
        if stream.declared_in is not None and stream.received != stream.declared_in:
            self._reset(sid, ErrorCodes.PROTOCOL_ERROR)  # RFC 9113 8.1.1
            return
        stream.body_done = True
        self._bodies.pop(sid, None)
        if stream.waiting:
            stream.waiting = False
            self._events.append(StreamReadable(sid))
        if stream.resp is Resp.DONE:
            self._forget_if_done(stream)

    # -- contract: the app's receive ---------------------------------------------------------

    def receive(self, stream_id: int) -> dict[str, Any] | None:
        ws = self._ws.get(stream_id)
        if ws is not None:
            message = ws.receive()
            if ws.wants_read and self._ws_unacked.get(stream_id):
                self._ws_credit(stream_id)
            return message
        stream = self._streams.get(stream_id)
        if stream is None:
            raise DriverMisuseError(f"no stream {stream_id} on this connection")
        if stream.ended or stream.gone:
            return {"type": "http.disconnect"}  # HTTP-RX-04
        if stream.body:
            body = stream.body
            data = body.popleft() if len(body) == 1 else b"".join(body)
            body.clear()
            stream.body_bytes = 0
            self._credit(stream)
            more = not stream.body_done
            if not more:
                stream.delivered_end = True
            return {"type": "http.request", "body": data, "more_body": more}
        if not stream.body_done:
            stream.waiting = True
            return None
        if not stream.delivered_end:
            stream.delivered_end = True
            return {"type": "http.request", "body": b"", "more_body": False}
        stream.waiting = True  # HTTP-RX-06
        return None

    def _credit(self, stream: _Stream) -> None:
        """The app took its bytes: give the window back (stream and connection)."""
        if stream.unacked:
            unacked, stream.unacked = stream.unacked, 0
            self._h2.acknowledge_received_data(unacked, stream.stream_id)
            if stream.stream_id not in self._bodies:
                self._body_clock(stream, restamp=True)  # the client may send again

    # -- contract: the app's send ------------------------------------------------------------

    def send(self, stream_id: int, message: dict[str, Any], now: float) -> None:
        self._now = now
        ws = self._ws.get(stream_id)
        if ws is not None:
            ws.send(message, now)
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            raise DriverMisuseError(f"no stream {stream_id} on this connection")
        if stream.gone:
            raise ClientDisconnected(f"stream {stream_id}: the client reset it or left")
        try:
            if type(message) is dict and message.get("type") == PUSH:
                self._send_push(stream, message)
                return
            mtype = msgs.check_transition(stream.resp, message, stream.extensions)
            if mtype == msgs.BODY:
                self._send_body(stream, message)
            elif mtype == msgs.START:
                self._send_start(stream, message)
            elif mtype == msgs.TRAILERS:
                self._send_trailers(stream, message)
            else:
                self._send_early_hint(stream, message)
        except AppMisuseError:
            self._fail(stream)
            raise

    def _send_start(self, stream: _Stream, message: dict[str, Any]) -> None:
        status, headers, trailers = msgs.validate_start(message)
        key = (status, *headers) if len(headers) <= _CHECKED_FIELDS else None
        head = self._heads.get(key) if key is not None else None
        if head is None:
            head = _response_head(status, headers)
            # Remembered, as requests are: most responses repeat a few heads.
            if key is not None and sum(len(n) + len(v) for n, v in headers) <= _CHECKED_SIZE:
                if len(self._heads) >= _CHECKED_LISTS:
                    self._heads.clear()
                self._heads[key] = head
        remembered, declared, has_date, has_server = head
        fields = list(remembered)
        if trailers and "http.response.trailers" not in stream.extensions:
            raise AppMisuseError(
                msgs.START, "EXT-TRAILERS-05", "trailers=True but the extension is not in scope"
            )
        if not has_date and self.config.date_header:
            fields.append((b"date", http_date(self._now + self._wall_offset)))
        if not has_server and self.config.server_header is not None:
            fields.append((b"server", self.config.server_header))
        stream.head = fields
        stream.no_body = stream.is_head or status in msgs.NO_BODY_STATUS
        stream.declared_length = declared
        stream.trailers = trailers
        stream.resp = Resp.HEAD

    def _send_body(self, stream: _Stream, message: dict[str, Any]) -> None:
        body, more = msgs.validate_body(message)
        declared = stream.declared_length
        if body and not stream.no_body:
            stream.sent += len(body)
            if declared is not None and stream.sent > declared:
                raise AppMisuseError(msgs.BODY, "SRV-01", f"body exceeds content-length {declared}")
        if not more and declared is not None and stream.sent < declared and not stream.no_body:
            raise AppMisuseError(
                msgs.BODY, "SRV-02", f"response ended after {stream.sent} of {declared} bytes"
            )
        h2 = self._h2
        sid = stream.stream_id
        if stream.resp is Resp.HEAD:
            head = stream.head
            assert head is not None
            stream.head = None
            # A response with nothing more to say ends with its HEADERS frame.
            only_head = not more and (stream.no_body or not body) and not stream.trailers
            h2.send_headers(sid, head, end_stream=only_head)
            stream.resp = Resp.BODY
            if only_head:
                self._response_done(stream)
                return
        if body and not stream.no_body:
            if not more and not stream.out and not stream.trailers and h2.fits(sid, len(body)):
                # The whole response body in one DATA frame, without a stay in ``out``.
                try:
                    h2.send_data(sid, body, end_stream=True)
                except StreamClosedError:
                    self._gone(stream)
                    return
                self._response_done(stream)
                return
            stream.out += body
        if more:
            self._pump(stream)
            return
        if stream.trailers:
            stream.resp = Resp.TRAILERS
            self._pump(stream)
            return
        # Complete for the app now (HTTP-ERR-04 for anything more), even if the tail still
        # waits for the client's window: END_STREAM goes when it has left.
        stream.resp = Resp.DONE
        stream.end_pending = True
        self._pump(stream)

    def _send_trailers(self, stream: _Stream, message: dict[str, Any]) -> None:
        headers, more = msgs.validate_trailers(message)
        fields = _h2_fields(msgs.TRAILERS, headers)
        stream.trailer_block.extend(fields)
        if more:
            return
        stream.trailers_ok = True  # EXT-TRAILERS-04: an HTTP/2 HEADERS frame with END_STREAM
        stream.resp = Resp.DONE
        stream.end_pending = True
        self._pump(stream)

    def _send_early_hint(self, stream: _Stream, message: dict[str, Any]) -> None:
        links = msgs.validate_early_hint(message)
        if stream.resp is not Resp.INIT or not links:
            return  # EXT-HINT-04: after start it is dropped, never raised
        fields = [(b"link", link) for link in links]
        _check_fields(msgs.EARLY_HINT, fields)
        self._h2.send_headers(stream.stream_id, [(b":status", b"103"), *fields])

    def _send_push(self, stream: _Stream, message: dict[str, Any]) -> None:
        """EXT-PUSH: a PUSH_PROMISE for a GET of ``path``, answered by a new app instance with
        a scope built as if the client had asked (EXT-PUSH-03/04)."""
        if PUSH not in stream.extensions:
            raise AppMisuseError(PUSH, "MAIN-15", "extension not advertised in scope")
        if stream.resp not in (Resp.HEAD, Resp.BODY):
            raise AppMisuseError(PUSH, "EXT-PUSH-02", "push goes after start, before the end")
        path = message.get("path")
        if type(path) is not str or not path.startswith("/"):
            raise AppMisuseError(PUSH, "EXT-PUSH-02", f"path must be an absolute str: {path!r}")
        fields = _h2_fields(PUSH, msgs.validate_headers(PUSH, message.get("headers")))
        h2 = self._h2
        if not h2.remote_settings.enable_push or self._shutting_down or self._peer_left:
            return  # EXT-PUSH-04: refused or disabled -> dropped silently
        parent = self._scopes.get(stream.stream_id)
        authority = next((v for n, v in parent or () if n == b"host"), b"")
        raw = quote(path, safe="/%:@!$&'()*+,;=-._~?").encode("ascii")
        pseudo = {b":method": b"GET", b":scheme": self._scheme.encode(), b":path": raw,
                  b":authority": authority}
        try:
            promised = h2.get_next_available_stream_id()
            h2.push_stream(stream.stream_id, promised, [*pseudo.items(), *fields])
        except (ProtocolError, StreamClosedError):
            return  # the client's limits or state refuse it: dropped, as the spec allows
        headers = [(b"host", authority), *[(n, v) for n, v in fields if n != b"host"]]
        pushed = _Stream(promised, False)
        pushed.body_done = True
        # No early hints: h2 cannot send a 1xx on a reserved stream, and nobody asked.
        pushed.extensions = {}
        self._streams[promised] = pushed
        self._apps_running += 1
        del pseudo[b":authority"]
        scope = self._scope("http", pseudo, headers, pushed.extensions)
        self._events.append(StreamStarted(promised, scope))

    def _pump(self, stream: _Stream) -> None:
        """Send what the stream's window allows; END_STREAM (or trailers) once it all left."""
        h2 = self._h2
        sid = stream.stream_id
        out = stream.out
        try:
            while out:
                window = h2.local_flow_control_window(sid)
                if window <= 0:
                    break
                size = min(window, h2.max_outbound_frame_size, len(out))
                last = size == len(out) and stream.end_pending and not stream.trailers_ok
                h2.send_data(sid, bytes(out[:size]), end_stream=last)
                del out[:size]
                if last:
                    self._response_done(stream)
                    return
            if not out and stream.end_pending:
                if stream.trailers_ok and stream.trailer_block:
                    h2.send_headers(sid, stream.trailer_block, end_stream=True)
                elif h2.local_flow_control_window(sid) < 0:
                    # RFC 9113 6.9.2: not even an empty DATA frame while a SETTINGS change
                    # left the window negative (h2 clients fail the connection on one).
                    return
                else:
                    h2.end_stream(sid)
                self._response_done(stream)
                return
        except StreamClosedError:
            self._gone(stream)
            return
        if stream.was_blocked and len(out) < self.config.output_high_water:
            stream.was_blocked = False
            self._events.append(StreamWritable(sid))

    def _window_updated(self, sid: int) -> None:
        if self._idle_deadline is not None and (self._streams or self._ws):
            # Finished responses waiting for the window move again: a new stall deadline.
            self._idle_deadline = self._now + self.config.keep_alive_timeout
        if sid:
            stream = self._streams.get(sid)
            if stream is not None and (stream.out or stream.end_pending) and not stream.gone:
                self._pump(stream)
            elif self._ws_out.get(sid):
                self._pump_ws(sid)
            return
        for stream in list(self._streams.values()):
            if (stream.out or stream.end_pending) and not stream.gone:
                self._pump(stream)
        for ws_sid in list(self._ws_out):
            self._pump_ws(ws_sid)

    def _response_done(self, stream: _Stream) -> None:
        stream.resp = Resp.DONE
        stream.end_pending = False
        self._end(stream)
        if not stream.body_done:
            # SRV-07, RFC 9113 8.1: the response is complete; we need no more request body.
            self._reset(stream.stream_id, ErrorCodes.NO_ERROR)
            return
        self._forget_if_done(stream)

    # -- the app's end ---------------------------------------------------------------------

    def app_finished(self, stream_id: int, now: float, exc: BaseException | None) -> None:
        self._now = now
        ws = self._ws.get(stream_id)
        if ws is not None:
            ws.app_finished(exc, now)
            if ws.wants_read and self._ws_unacked.get(stream_id):
                self._ws_credit(stream_id)  # it reads on: room for the client's Close
            self._ws_app_done.add(stream_id)
            self._forget_ws(stream_id)
            return
        stream = self._streams.get(stream_id)
        if stream is None:
            raise DriverMisuseError(f"no stream {stream_id} on this connection")
        self._fail(stream)
        if not stream.app_done:
            stream.app_done = True
            self._apps_running -= 1
        self._forget_if_done(stream)

    def _fail(self, stream: _Stream) -> None:
        """500 if nothing left yet, else RST_STREAM(INTERNAL_ERROR) (HTTP-ERR-01/02)."""
        if stream.gone or stream.resp is Resp.DONE:
            return
        if stream.resp in (Resp.INIT, Resp.HEAD):
            stream.head = None
            body = b"Internal Server Error"
            self._h2.send_headers(
                stream.stream_id,
                [(b":status", b"500"), (b"content-type", b"text/plain; charset=utf-8"),
                 (b"content-length", str(len(body)).encode())],
                end_stream=stream.is_head,
            )
            stream.resp = Resp.DONE
            if not stream.is_head:
                stream.out = bytearray(body)
                stream.end_pending = True
                self._pump(stream)
            else:
                self._response_done(stream)
            return
        self._reset(stream.stream_id, ErrorCodes.INTERNAL_ERROR)

    # -- ending streams --------------------------------------------------------------------

    def _answer(self, sid: int, status: int, head: bool = False) -> None:
        """A complete short response to a request the app never sees (no body to a HEAD)."""
        body = writer.REASONS.get(status, b"Error")
        try:
            self._h2.send_headers(
                sid,
                [(b":status", str(status).encode()), (b"content-type", b"text/plain"),
                 (b"content-length", str(len(body)).encode())],
                end_stream=head,
            )
            if not head:
                self._h2.send_data(sid, body, end_stream=True)
            if self._h2.streams.get(sid) is not None and not self._h2.streams[sid].closed:
                self._h2.reset_stream(sid, ErrorCodes.NO_ERROR)
        except (StreamClosedError, ProtocolError):
            pass
        self._maybe_idle()

    def _reset(self, sid: int, code: ErrorCodes) -> None:
        with contextlib.suppress(StreamClosedError, ProtocolError):
            self._h2.reset_stream(sid, code)
        stream = self._streams.get(sid)
        if stream is not None:
            self._gone(stream)
        ws = self._ws.get(sid)
        if ws is not None:
            self._ws_lost(sid, ws)

    def _reset_by_peer(self, sid: int) -> None:
        stream = self._streams.get(sid)
        if stream is not None:
            if stream.resp is not Resp.DONE:
                self._resets += 1  # a live stream cancelled: rapid reset counts these
            self._gone(stream)
        ws = self._ws.get(sid)
        if ws is not None:
            self._resets += 1
            self._ws_lost(sid, ws)

    def _ws_lost(self, sid: int, ws: WebSocketSession) -> None:
        """The stream under a WebSocket is gone: nothing more will leave on it."""
        ws.peer_lost()
        self._ws_out.pop(sid, None)
        self._ws_end.discard(sid)
        self._forget_ws(sid)  # the app may be done already

    def _gone(self, stream: _Stream) -> None:
        stream.gone = True
        self._bodies.pop(stream.stream_id, None)
        stream.out.clear()
        if stream.unacked:
            # Credit the connection for bytes nobody will read.
            unacked, stream.unacked = stream.unacked, 0
            self._h2.acknowledge_received_data(unacked, stream.stream_id)
        stream.body.clear()
        self._end(stream)
        self._forget_if_done(stream)

    def _end(self, stream: _Stream) -> None:
        if not stream.ended:
            stream.ended = True
            self._events.append(StreamEndedEvent(stream.stream_id))
        if stream.waiting:
            stream.waiting = False
            self._events.append(StreamReadable(stream.stream_id))
        if stream.was_blocked:
            stream.was_blocked = False
            self._events.append(StreamWritable(stream.stream_id))

    def _forget_if_done(self, stream: _Stream) -> None:
        if stream.ended and stream.app_done:
            self._streams.pop(stream.stream_id, None)
            self._scopes.pop(stream.stream_id, None)
            self._h2.forget(stream.stream_id)
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        if self.closed:
            return
        if self._streams or self._ws:
            if self._idle_deadline is None and self._stalled():
                # Only the client's window holds what is left: without a deadline a client
                # that never reads would pin the connection and its output forever.
                self._idle_deadline = self._now + self.config.keep_alive_timeout
            return
        if self._shutting_down or self._peer_left:
            if self._ping_deadline is not None and not self._peer_left:
                return  # streams sent before our first GOAWAY may still be on their way
            # The closing GOAWAY repeats the first one's last stream id: it never goes up.
            self._h2.close_connection(last_stream_id=self._h2.refuse_above)
            self._close()
        else:
            self._idle_deadline = self._now + self.config.keep_alive_timeout

    def _stalled(self) -> bool:
        """Every app is done and every stream waits only to write (for the window)."""
        return not self._apps_running and all(
            ws.ended and sid in self._ws_app_done for sid, ws in self._ws.items())

    def _peer_goaway(self) -> None:
        self._peer_left = True  # no new streams will come: close once these are done
        self._maybe_idle()

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for stream in self._streams.values():
            stream.gone = True
            stream.out.clear()
            self._end(stream)
        for ws in self._ws.values():
            ws.peer_lost()
        self._bodies.clear()
        self._idle_deadline = self._shutdown_deadline = self._ping_deadline = None
        self._events.append(ConnectionClosed())

    # -- WebSocket over HTTP/2 (RFC 8441) ------------------------------------------------------

    def _websocket(
        self,
        sid: int,
        pseudo: dict[bytes, bytes],
        headers: list[tuple[bytes, bytes]],
        ended: bool,
    ) -> None:
        versions = [v for n, v in headers if n == b"sec-websocket-version"]
        if ended:
            self._answer(sid, 400)  # a tunnel needs its stream open
            return
        if versions and versions != [b"13"]:
            self._answer(sid, 426)
            return
        extensions: dict[str, Any] = {"websocket.http.response": {}}
        if self._tls is not None:
            extensions["tls"] = self._tls
        scope = self._scope("websocket", pseudo, headers, extensions)
        scope["subprotocols"] = offered_subprotocols(headers)
        session = self._ws[sid] = WebSocketSession(
            self.config, sid, self, headers, self._now, http_version="2"
        )
        if self._shutting_down:
            # Opened before the client saw the first GOAWAY, so served; but the server is going
            # away: accepted, it closes at once with 1001 (WS-20), as over HTTP/1.1.
            session.shutdown(self._now, self._ws_shutdown_code)
        self._events.append(StreamStarted(sid, scope))

    def ws_accept(self, session: WebSocketSession, headers: list[tuple[bytes, bytes]]) -> None:
        fields = [(n.lower(), v) for n, v in headers]
        _check_fields("websocket.accept", fields)
        sid = session.stream_id
        self._h2.send_headers(sid, [(b":status", b"200"), *fields])
        self._ws_open.add(sid)
        early = self._ws_early.pop(sid, None)
        if early:
            session.receive_data(bytes(early), self._now)

    def ws_deny(
        self, session: WebSocketSession, status: int, headers: list[tuple[bytes, bytes]]
    ) -> None:
        fields = _h2_fields(DENY_START, headers)
        lengths = [v for n, v in fields if n == b"content-length"]
        if len(lengths) > 1 or any(not v.isdigit() for v in lengths):
            raise AppMisuseError(DENY_START, "SRV-01", f"bad content-length {lengths!r}")
        if status == 204:  # RFC 9110 8.6: never on a 204
            fields = [(n, v) for n, v in fields if n != b"content-length"]
        no_body = status in msgs.NO_BODY_STATUS  # SRV-04: nothing on the wire, as on HTTP/1.1
        self._ws_deny_left[session.stream_id] = (
            -2 if no_body else int(lengths[0]) if lengths else -1)
        self._h2.send_headers(session.stream_id, [(b":status", str(status).encode()), *fields])

    def ws_deny_body(self, session: WebSocketSession, data: bytes, more: bool) -> None:
        # The body waits for the stream's window (and is cut to frame size) as frames do; the
        # session's ws_finished() after the last part ends the stream once it has left.
        left = self._ws_deny_left.get(session.stream_id, -1)
        if left == -2:
            return
        if left >= 0:
            left -= len(data)
            if left < 0:
                raise AppMisuseError(DENY_BODY, "SRV-01", "body exceeds its content-length")
            if not more and left:
                raise AppMisuseError(DENY_BODY, "SRV-02", f"body ended {left} bytes short")
            self._ws_deny_left[session.stream_id] = left
        self.ws_write(session, data)

    def _ws_credit(self, sid: int) -> None:
        unacked = self._ws_unacked.pop(sid, 0)
        if unacked and not self.closed:  # nothing goes out after ConnectionClosed
            with contextlib.suppress(StreamClosedError, ProtocolError):
                self._h2.acknowledge_received_data(unacked, sid)

    def ws_write(self, session: WebSocketSession, data: bytes) -> None:
        if self.closed:
            return
        sid = session.stream_id
        buf = self._ws_out.setdefault(sid, bytearray())
        buf += data
        self._pump_ws(sid)

    def _pump_ws(self, sid: int) -> None:
        """Frames go out as the stream's window allows; nothing is dropped or reordered."""
        h2 = self._h2
        buf = self._ws_out.get(sid)
        try:
            while buf:
                window = h2.local_flow_control_window(sid)
                if window <= 0:
                    return
                size = min(window, h2.max_outbound_frame_size, len(buf))
                h2.send_data(sid, bytes(buf[:size]))
                del buf[:size]
                if sid in self._ws_blocked and len(buf) < self.config.output_high_water:
                    self._ws_blocked.discard(sid)
                    ws = self._ws.get(sid)
                    if ws is not None and not ws.ended:
                        self._events.append(StreamWritable(sid))  # the app's send() may go on
            if sid in self._ws_end:
                self._ws_end.discard(sid)
                stream = h2.streams.get(sid)
                if stream is not None and not stream.closed:
                    h2.end_stream(sid)
                self._forget_ws(sid)  # the last bytes left: nothing holds the stream now
        except (StreamClosedError, ProtocolError):
            ws = self._ws.get(sid)
            if ws is not None:
                self._ws_lost(sid, ws)
            else:
                self._ws_out.pop(sid, None)

    def ws_finished(self, session: WebSocketSession, abort: bool) -> None:
        sid = session.stream_id
        if abort:
            self._ws_out.pop(sid, None)
            with contextlib.suppress(StreamClosedError, ProtocolError):
                self._h2.reset_stream(sid, ErrorCodes.CANCEL)
        else:
            self._ws_end.add(sid)
            self._pump_ws(sid)
        self._forget_ws(sid)

    def _forget_ws(self, sid: int) -> None:
        ws = self._ws.get(sid)
        if ws is not None and ws.ended and sid in self._ws_app_done and sid not in self._ws_end:
            del self._ws[sid]
            self._ws_app_done.discard(sid)
            self._ws_open.discard(sid)
            self._ws_blocked.discard(sid)
            self._ws_out.pop(sid, None)
            self._ws_early.pop(sid, None)
            self._ws_deny_left.pop(sid, None)
            self._ws_credit(sid)  # give the connection window back
        self._maybe_idle()

    def emit(self, event: Event) -> None:
        self._events.append(event)

    # -- timers and shutdown -------------------------------------------------------------------

    def get_timer(self) -> float | None:
        timer = self._idle_deadline
        for deadline in (self._shutdown_deadline, self._ping_deadline):
            if deadline is not None and (timer is None or deadline < timer):
                timer = deadline
        for ws in self._ws.values():
            deadline = ws.get_timer()
            if deadline is not None and (timer is None or deadline < timer):
                timer = deadline
        if self._bodies:
            assert self.config.body_timeout is not None
            deadline = min(s.body_seen for s in self._bodies.values()) + self.config.body_timeout
            if timer is None or deadline < timer:
                timer = deadline
        return timer

    def handle_timer(self, now: float) -> None:
        if self.closed:
            return
        self._now = now
        if self._shutdown_deadline is not None and now >= self._shutdown_deadline:
            self._h2.close_connection()
            self._close()
            return
        if self._ping_deadline is not None and now >= self._ping_deadline:
            self._final_goaway()  # no ACK in time: name the streams seen so far
            if self.closed:
                return
        for ws in list(self._ws.values()):
            timer = ws.get_timer()
            if timer is not None and now >= timer:
                ws.handle_timer(now)
        timeout = self.config.body_timeout
        if self._bodies and timeout is not None:
            for stream in [s for s in self._bodies.values() if now >= s.body_seen + timeout]:
                if stream.body_restamp:
                    stream.body_seen, stream.body_restamp = now, False  # the wait starts now
                else:
                    self._body_timed_out(stream)
        # After the WebSockets: one that ends here may leave the connection idle at once.
        if self._idle_deadline is not None and now >= self._idle_deadline:
            self._h2.close_connection()  # GOAWAY(NO_ERROR), then close
            self._close()

    def _body_timed_out(self, stream: _Stream) -> None:
        """The client stopped sending a request body: 408 if nothing of the response left
        yet (then RST_STREAM(NO_ERROR): the rest is not wanted), else RST_STREAM(CANCEL)."""
        if stream.resp is Resp.INIT or stream.resp is Resp.HEAD:
            stream.head = None
            self._answer(stream.stream_id, 408, head=stream.is_head)
            self._gone(stream)
        else:
            self._reset(stream.stream_id, ErrorCodes.CANCEL)

    def shutdown(self, now: float, restart: bool = False) -> None:
        if self.closed or self._shutting_down:
            return
        self._now = now
        self._shutting_down = True
        self._shutdown_deadline = now + self.config.shutdown_timeout
        if self._two_phase_goaway and not self._peer_left:
            # RFC 9113 6.8: a first GOAWAY that refuses nothing stops the client opening
            # streams; the ACK of the PING behind it comes after every stream it opened before
            # it saw the GOAWAY, and those are served too.
            self._ping_deadline = min(now + SHUTDOWN_PING_WAIT, self._shutdown_deadline)
            self._goaway(2**31 - 1)
            self._h2.ping(_SHUTDOWN_PING)
            self._h2.awaiting_ping = True
        else:
            self._final_goaway(idle_check=False)
        self._ws_shutdown_code = 1012 if restart else 1001
        for ws in self._ws.values():
            ws.shutdown(now, self._ws_shutdown_code)
        self._maybe_idle()

    def _final_goaway(self, idle_check: bool = True) -> None:
        """The GOAWAY naming the last stream we serve; newer ones are refused from now on."""
        self._ping_deadline = None
        h2 = self._h2
        h2.awaiting_ping = False
        last = h2.highest_inbound_stream_id
        if h2.refuse_above is not None:  # fixed by the PING's ACK or the client's GOAWAY
            last = min(last, h2.refuse_above)
        h2.refuse_above = last
        if not idle_check:
            self._goaway(last)
            return
        if self._streams or self._ws:  # else the closing GOAWAY is this one
            self._goaway(last)
        self._maybe_idle()

    def _goaway(self, last: int) -> None:
        # Our own GOAWAY: h2's would make it refuse every later frame of the streams in flight.
        goaway = GoAwayFrame(0)
        goaway.last_stream_id = last
        goaway.error_code = ErrorCodes.NO_ERROR
        self._out.append(self._h2.data_to_send())
        self._out.append(goaway.serialize())


def _compression_errors(decoder: Any, block: bytes) -> None:
    """Decode a header block we refuse, keeping HPACK in sync; a bad block is a
    COMPRESSION_ERROR (RFC 9113 4.3)."""
    try:
        _decode_headers(decoder, block)
    except ProtocolError as exc:
        if not isinstance(exc.__cause__, OversizedHeaderListError):
            exc.error_code = ErrorCodes.COMPRESSION_ERROR
        raise


def _check_fields(mtype: str, fields: list[tuple[bytes, bytes]]) -> None:
    """SRV-10 for HTTP/2: lowercase token names, no CR/LF/NUL.  Edge whitespace, which
    RFC 9113 8.2.1 forbids but HTTP/1.1 tolerates, is trimmed rather than refused."""
    for index, (name, value) in enumerate(fields):
        if _NAME_RE.fullmatch(name) is None:
            raise AppMisuseError(mtype, "SRV-10", f"header name {name!r} is not a token")
        if _BAD_OUT_VALUE_RE.search(value) is not None:
            trimmed = value.strip(b" \t")
            if _BAD_OUT_VALUE_RE.search(trimmed) is not None:
                raise AppMisuseError(mtype, "SRV-10", f"header value {value!r} is not allowed")
            fields[index] = (name, trimmed)


_Head = tuple[list[tuple[bytes, bytes]], int | None, bool, bool]


def _response_head(status: int, headers: list[tuple[bytes, bytes]]) -> _Head:
    """A response head's HTTP/2 fields (``:status`` first), its content-length, and whether
    the app gave ``date`` and ``server``: a pure function of the two, so it can be remembered.
    The caller copies the fields before adding to them."""
    fields = [(b":status", str(status).encode("ascii"))]
    declared: int | None = None
    has_date = has_server = False
    for name, value in _h2_fields(msgs.START, headers):
        if name == b"content-length":
            declared = msgs.content_length(value, declared)
            if status == 204:
                continue  # RFC 9110 8.6: never on a 204
        elif name == b"date":
            has_date = True
        elif name == b"server":
            has_server = True
        fields.append((name, value))
    return fields, declared, has_date, has_server


def _h2_fields(mtype: str, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """An app's fields (a response head, trailers, a pushed request) as HTTP/2 carries them:
    lowercase (RFC 9113 8.2.1), checked (SRV-10), and without the connection-specific ones or
    a ``te`` other than "trailers" (SRV-09), which make the whole block malformed in HTTP/2
    (8.2.2).  Those are checked before they are dropped, so a malformed one is the app's error
    here as it is over HTTP/1.1."""
    fields = [(name.lower(), value) for name, value in headers]
    _check_fields(mtype, fields)  # may trim values in place
    return [field for field in fields if not msgs.connection_specific(*field)]


def _malformed_trailers(fields: Any) -> bool:
    """Whether a request's trailer section makes it malformed (RFC 9113 8.1.1): a
    pseudo-header field (8.1), or a field ``_check_request`` refuses in a header section
    (8.2.1, 8.2.2).  Trailers are rare, so this stays off ``_check_request``'s path.  A
    ``te: trailers`` trailer is not malformed: 8.2.2 allows that ``te`` in a request, and RFC
    9110 6.5.1 only keeps a recipient from acting on it, which dropping the trailers does."""
    for name, value in fields:
        if (
            name[:1] == b":"
            or _NAME_RE.fullmatch(name) is None
            or _BAD_VALUE_RE.search(value) is not None
            or msgs.connection_specific(name, value)
        ):
            return True
    return False


_Checked = tuple[dict[bytes, bytes], list[tuple[bytes, bytes]], int | None, bool]
_CHECKED_FIELDS = 24  # a header list with more fields is checked, not remembered
_CHECKED_SIZE = 1024  # bytes of names and values: nor is a bigger one
_CHECKED_LISTS = 16  # remembered per connection (~32 KB at most), dropped wholesale when full


def _check_request(raw: list[tuple[bytes, bytes]]) -> _Checked | str:
    """RFC 9113 8.2 and 8.3 checks on a request's fields; the reason if malformed.

    Returns the pseudo-header fields, the regular fields with ``:authority`` as a single
    ``host`` first (HTTP-SCOPE-11, AMB-05) and cookies joined (AMB-07), the content-length,
    and whether ``te: trailers`` is among them (EXT-TRAILERS-03).  The caller copies the first
    two before changing them: the answer may be remembered.
    """
    pseudo: dict[bytes, bytes] = {}
    headers: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] = []
    host: bytes | None = None
    content_length: int | None = None
    regular_seen = te_trailers = False
    for name, value in raw:
        if name[:1] == b":":
            if regular_seen:
                return "pseudo-header after a regular field"
            if name not in _PSEUDO_REQUEST or name in pseudo:
                return f"bad or repeated pseudo-header {name!r}"
            pseudo[name] = value
            continue
        regular_seen = True
        if _NAME_RE.fullmatch(name) is None:
            return f"field name {name!r} is not a lowercase token"
        if _BAD_VALUE_RE.search(value) is not None:
            return f"field value of {name!r} is malformed"
        if name in msgs.CONNECTION_SPECIFIC:  # RFC 9113 8.2.2
            return f"connection-specific field {name!r}"
        if name == b"te":
            if value.lower() != b"trailers":
                return "te other than trailers"
            te_trailers = True
        if name == b"host":
            if host is not None:
                return "repeated host"
            host = value
            continue
        if name == b"cookie":
            cookies.append(value)
            continue
        if name == b"content-length":
            if not value.isdigit() or (content_length is not None and int(value) != content_length):
                return "bad content-length"
            content_length = int(value)
        headers.append((name, value))
    method = pseudo.get(b":method")
    if method is None:
        return "missing :method"
    authority = pseudo.get(b":authority")
    if method == b"CONNECT" and b":protocol" not in pseudo:
        # RFC 9113 8.5: only :method and :authority.
        if authority is None or b":scheme" in pseudo or b":path" in pseudo:
            return "malformed CONNECT"
        pseudo[b":path"] = b""
        pseudo[b":scheme"] = b"https"
    else:
        if b":protocol" in pseudo and method != b"CONNECT":
            return ":protocol without CONNECT"
        path = pseudo.get(b":path")
        if b":scheme" not in pseudo or not path:
            return "missing :scheme or :path"
        if path[:1] != b"/" and not (path == b"*" and method == b"OPTIONS"):
            return "bad :path"
    if authority is not None:
        if msgs.HOST_RE.fullmatch(authority) is None or b"@" in authority:
            return "bad :authority"
        if host is not None and host != authority:
            return ":authority and host differ"  # SRV-11
        host = authority
    elif host is not None and msgs.HOST_RE.fullmatch(host) is None:
        return "bad host"
    if host is not None:
        headers.insert(0, (b"host", host))
    if cookies:
        headers.append((b"cookie", b"; ".join(cookies)))
    return pseudo, headers, content_length, te_trailers
