"""Events the core hands the driver.

Every contract method may queue events; the driver drains them with ``pop_events()`` after each
call, together with ``data_to_send()``.  They are small frozen values: the driver only routes them
to the right app task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class StreamStarted:
    """A request (or WebSocket, later) arrived: call the app with ``scope`` and route its
    ``receive``/``send`` to this ``stream_id``."""

    stream_id: int
    scope: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamReadable:
    """``receive(stream_id)`` returned ``None`` before and now has a message: wake the app."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamWritable:
    """``writable(stream_id)`` was False and is True again: release the app's ``send()``."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """The stream is over on the wire (response complete, peer gone, or aborted).

    Emitted exactly once per stream.  From now on ``receive()`` returns a disconnect and a
    ``send()`` raises; the app task may still be running and must still be reported with
    ``app_finished()``.
    """

    stream_id: int


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The core is done with this connection: write ``data_to_send()``, then close the
    transport.  Emitted exactly once, always after every stream's ``StreamEnded``."""


Event = StreamStarted | StreamReadable | StreamWritable | StreamEnded | ConnectionClosed
