"""``ServerConnection``: the one object a driver holds per transport connection.

The contract (design.md), in the order a driver meets it:

* ``receive_data(data, now)`` with bytes read from the peer; ``b""`` means the peer closed its
  sending side.
* ``pop_events()`` returns and clears the queued events (``StreamStarted`` and friends).
* ``data_to_send()`` returns and clears the bytes to write.
* ``receive(stream_id)`` gives the app's next ASGI receive-message, or ``None`` when the app must
  wait for a ``StreamReadable``.  Pull, not push: consuming input is what lets the core send
  ``100 Continue`` and resume reading.
* ``send(stream_id, message, now)`` takes an ASGI send-message.  Misuse raises
  ``AppMisuseError`` *after* the right wire answer was queued; a send after the peer left raises
  ``ClientDisconnected``.
* ``writable(stream_id)``: False while the stream's output is above the high-water mark; the
  driver holds the app's ``send()`` until a ``StreamWritable``.  ``wants_read``: False while the
  core holds enough unconsumed input; the driver stops reading until it is True again.
* ``app_finished(stream_id, now, exc)`` once the app task for a stream returned or raised.
* ``get_timer()`` gives the next deadline (or ``None``), ``handle_timer(now)`` fires what is due.
* ``shutdown(now)`` starts a graceful close.

Every method that can produce output is marked "Queues output": after calling one, the driver
drains ``pop_events()`` and ``data_to_send()``.  The core never reads a clock, never blocks, and
never imports an event loop: ``now`` is whatever monotonic clock the driver uses.

Protocol selection happens here: the first bytes are held until they either match the HTTP/2
client preface or cannot.  HTTP/2 itself is not implemented yet, so a preface is answered with the
server preface and a ``GOAWAY(HTTP_1_1_REQUIRED)`` (RFC 9113 3.4, 9.2.1), then a clean close.
"""

from __future__ import annotations

from typing import Any

from hyperframe.frame import GoAwayFrame, SettingsFrame

from ._config import Config
from ._errors import DriverMisuseError
from ._events import ConnectionClosed, Event
from ._http11 import HTTP11Connection

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HTTP_1_1_REQUIRED = 0xD


class ServerConnection:
    """One transport connection, whatever protocol it speaks.

    ``client`` and ``server`` are the ``(host, port)`` pairs for the scope (``None`` when unknown,
    ``(path, None)`` for a unix socket's server).  ``tls`` is the ``tls`` extension dict the driver
    builds from its TLS object (EXT-TLS), or ``None`` on plain connections; it also makes the
    scheme ``https``.  ``state`` is the lifespan state, shallow-copied into every scope.
    ``wall_offset`` is added to ``now`` to get Unix time for the ``date`` header, so the core can
    date responses without reading a clock.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        now: float,
        client: tuple[str, int] | None = None,
        server: tuple[str, int | None] | None = None,
        tls: dict[str, Any] | None = None,
        alpn: str | None = None,
        state: dict[str, Any] | None = None,
        wall_offset: float = 0.0,
    ) -> None:
        self.config = config if config is not None else Config()
        self._h1 = HTTP11Connection(
            self.config, now=now, client=client, server=server, tls=tls, state=state,
            wall_offset=wall_offset,
        )
        # Bytes held back while deciding between HTTP/1.1 and an HTTP/2 preface.  Bounded by
        # the preface length: as soon as the bytes stop being a prefix of it, they go to h1.
        self._sniff: bytes | None = b"" if alpn != "h2" else None
        self._refused_h2 = False
        self._h2_events: list[Event] = []
        self._h2_out = b""
        if alpn == "h2":
            self._refuse_h2()

    # -- protocol selection --------------------------------------------------------------------

    def _refuse_h2(self) -> None:
        self._refused_h2 = True
        goaway = GoAwayFrame(0)
        goaway.last_stream_id = 0
        goaway.error_code = _HTTP_1_1_REQUIRED
        self._h2_out = SettingsFrame(0).serialize() + goaway.serialize()
        self._h2_events.append(ConnectionClosed())
        self._h1.abandon()

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the peer; ``b""`` is end of input.  Queues output."""
        if self._refused_h2:
            return
        sniff = self._sniff
        if sniff is not None:
            if not data:
                self._sniff = None
                if sniff:
                    self._h1.receive_data(sniff, now)
                self._h1.receive_data(b"", now)
                return
            sniff += data
            if sniff.startswith(H2_PREFACE):
                self._sniff = None
                self._refuse_h2()
                return
            if H2_PREFACE.startswith(sniff):
                self._sniff = sniff
                return
            self._sniff = None
            data = sniff
        self._h1.receive_data(data, now)

    # -- the rest of the contract delegates to the selected protocol --------------------------

    def pop_events(self) -> list[Event]:
        """Return and clear the events queued by earlier calls."""
        if self._refused_h2:
            events, self._h2_events = self._h2_events, []
            return events
        return self._h1.pop_events()

    def data_to_send(self) -> bytes:
        """Return and clear the bytes to write to the peer."""
        if self._refused_h2:
            out, self._h2_out = self._h2_out, b""
            return out
        return self._h1.data_to_send()

    def receive(self, stream_id: int) -> dict[str, Any] | None:
        """The app's next receive-message for ``stream_id``, or ``None`` to wait for a
        ``StreamReadable``.  Queues output (``100 Continue``, resumed reading)."""
        if self._refused_h2:
            raise DriverMisuseError(f"no stream {stream_id} on this connection")
        return self._h1.receive(stream_id)

    def send(self, stream_id: int, message: dict[str, Any], now: float) -> None:
        """Take one ASGI send-message from the app.  Queues output.

        Raises ``AppMisuseError`` (after queueing a 500 or an abort) when the message breaks
        the spec, and ``ClientDisconnected`` when the peer already left.
        """
        if self._refused_h2:
            raise DriverMisuseError(f"no stream {stream_id} on this connection")
        self._h1.send(stream_id, message, now)

    def writable(self, stream_id: int) -> bool:
        """False while ``stream_id``'s output is above the high-water mark."""
        return True if self._refused_h2 else self._h1.writable(stream_id)

    def app_finished(self, stream_id: int, now: float, exc: BaseException | None = None) -> None:
        """The app task for ``stream_id`` returned (``exc`` None) or raised.  Queues output:
        a 500 if no response was started, an abort if one was left unfinished."""
        if not self._refused_h2:
            self._h1.app_finished(stream_id, now, exc)

    @property
    def wants_read(self) -> bool:
        """False while the core holds enough unconsumed input: stop reading until True."""
        return False if self._refused_h2 else self._h1.wants_read

    @property
    def closed(self) -> bool:
        """True once ``ConnectionClosed`` has been queued."""
        return self._refused_h2 or self._h1.closed

    def get_timer(self) -> float | None:
        """The earliest deadline on the driver's clock, or ``None`` when nothing is timed."""
        return None if self._refused_h2 else self._h1.get_timer()

    def handle_timer(self, now: float) -> None:
        """Fire every deadline at or before ``now``.  Queues output."""
        if not self._refused_h2:
            self._h1.handle_timer(now)

    def shutdown(self, now: float, restart: bool = False) -> None:
        """Begin a graceful close: finish in-flight work, accept no new requests, and abort
        what is left after ``Config.shutdown_timeout``.  WebSockets close with 1001, or 1012
        when ``restart`` says the server comes back.  Queues output."""
        if not self._refused_h2:
            self._h1.shutdown(now, restart)
