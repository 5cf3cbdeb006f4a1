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

Protocol selection happens here: TLS ALPN ``h2`` starts HTTP/2 at once; otherwise the first
bytes are held until they either match the HTTP/2 client preface (prior knowledge, RFC 9113
3.3) or cannot, and HTTP/1.1 takes them.  With ``Config.proxy_protocol`` a PROXY protocol
header comes before all that (``_proxy``): until it is whole, a small stand-in
(``_AwaitingProxyHeader``) answers for the protocol, so the hot path pays one attribute test.
"""

from __future__ import annotations

from typing import Any

from ._config import Config
from ._errors import DriverMisuseError
from ._events import ConnectionClosed, Event
from ._http2 import HTTP2Connection
from ._http11 import HTTP11Connection
from ._proxy import ProxyHeader, ProxyHeaderError, parse_proxy_header

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class ServerConnection:
    """One transport connection, whatever protocol it speaks.

    ``client`` and ``server`` are the ``(host, port)`` pairs for the scope (``None`` when unknown,
    ``(path, None)`` for a unix socket's server).  ``tls`` is the ``tls`` extension dict the driver
    builds from its TLS object (EXT-TLS), or ``None`` on plain connections; it also makes the
    scheme ``https``.  ``alpn`` is the protocol TLS negotiated: ``"h2"`` starts HTTP/2 at once.
    With ``Config.proxy_protocol`` and no ``tls``, a PROXY protocol header must come first and
    its addresses replace ``client`` and ``server``.  ``state`` is the lifespan state,
    shallow-copied into every scope.  ``wall_offset`` is added to ``now`` to get Unix time for
    the ``date`` header, so the core can date responses without reading a clock.
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
        self._args: dict[str, Any] = {
            "client": client, "server": server, "tls": tls, "state": state,
            "wall_offset": wall_offset, "secure": False,
        }
        self._proto: HTTP11Connection | HTTP2Connection | _AwaitingProxyHeader
        # Bytes held back while deciding between HTTP/1.1 and the HTTP/2 preface.  Bounded by
        # the preface length: as soon as the bytes stop being a prefix of it, they go to h1.
        self._sniff: bytes | None = None
        self._now = now  # the latest time we were told, for calls that take none
        self._early_out = b""  # the 101 of an h2c upgrade, written before HTTP/2's bytes
        self._early_events: list[Event] = []
        self._alpn = alpn
        # Until the PROXY header is whole: it reads the header and answers for the protocol.
        self._proxy: _AwaitingProxyHeader | None = None
        if self.config.proxy_protocol and tls is None:
            self._proto = self._proxy = _AwaitingProxyHeader(now + self.config.head_timeout)
        else:
            self._start(now)

    def _start(self, now: float) -> None:
        if self._alpn == "h2":
            self._proto = HTTP2Connection(self.config, now=now, **self._args)
        else:
            self._proto = HTTP11Connection(self.config, now=now, **self._args)
            self._sniff = b""

    def _proxied(self, header: ProxyHeader, now: float) -> None:
        """The PROXY header is whole: the protocol starts with its addresses."""
        self._proxy = None
        if header.client is not None:
            self._args["client"] = header.client
            self._args["server"] = header.server
        self._args["secure"] = header.tls  # TLS ended at the balancer: https all the same
        self._start(now)

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the peer; ``b""`` is end of input.  Queues output."""
        self._now = now
        if self._proxy is not None:
            found = self._proxy.feed(data)
            if found is None:
                return
            header, data = found
            self._proxied(header, now)
            if not data:  # the header alone: the client's bytes are yet to come
                return
        sniff = self._sniff
        if sniff is not None:
            if not data:
                self._sniff = None
                if sniff:
                    self._proto.receive_data(sniff, now)
                self._proto.receive_data(b"", now)
                return
            sniff += data
            if H2_PREFACE.startswith(sniff) and len(sniff) < len(H2_PREFACE):
                self._sniff = sniff
                return
            self._sniff = None
            if sniff.startswith(H2_PREFACE):
                # HTTP/2 with prior knowledge (RFC 9113 3.3): the h1 side never saw a byte.
                self._proto = HTTP2Connection(self.config, now=now, **self._args)
            data = sniff
        self._proto.receive_data(data, now)
        if self._proto.closed:
            self._switch(now)

    def _switch(self, now: float) -> None:
        """An ``Upgrade: h2c`` request was answered with 101: HTTP/2 takes over (RFC 7540 3.2).
        What HTTP/1.1 queued (the 101) goes out first."""
        h1 = self._proto
        if not isinstance(h1, HTTP11Connection) or h1.upgrade_h2c is None:
            return
        self._early_out = h1.data_to_send()
        self._early_events = h1.pop_events()
        self._proto = HTTP2Connection(self.config, now=now, upgrade=h1.upgrade_h2c, **self._args)

    def pop_events(self) -> list[Event]:
        """Return and clear the events queued by earlier calls."""
        if self._early_events:
            events, self._early_events = self._early_events, []
            return events + self._proto.pop_events()
        return self._proto.pop_events()

    def data_to_send(self) -> bytes:
        """Return and clear the bytes to write to the peer."""
        if self._early_out:
            out, self._early_out = self._early_out, b""
            return out + self._proto.data_to_send()
        return self._proto.data_to_send()

    def receive(self, stream_id: int) -> dict[str, Any] | None:
        """The app's next receive-message for ``stream_id``, or ``None`` to wait for a
        ``StreamReadable``.  Queues output (``100 Continue``, window updates)."""
        message = self._proto.receive(stream_id)
        if self._proto.closed:
            self._switch(self._now)
        return message

    def send(self, stream_id: int, message: dict[str, Any], now: float) -> None:
        """Take one ASGI send-message from the app.  Queues output.

        Raises ``AppMisuseError`` (after queueing a 500 or an abort) when the message breaks
        the spec, and ``ClientDisconnected`` when the peer already left.
        """
        try:
            self._proto.send(stream_id, message, now)
        finally:
            if self._proto.closed:
                self._switch(now)

    def writable(self, stream_id: int) -> bool:
        """False while ``stream_id``'s output is above the high-water mark."""
        return self._proto.writable(stream_id)

    def app_finished(self, stream_id: int, now: float, exc: BaseException | None = None) -> None:
        """The app task for ``stream_id`` returned (``exc`` None) or raised.  Queues output:
        a 500 if no response was started, an abort if one was left unfinished."""
        self._proto.app_finished(stream_id, now, exc)
        if self._proto.closed:
            self._switch(now)

    @property
    def wants_read(self) -> bool:
        """False while the core holds enough unconsumed input: stop reading until True."""
        return self._proto.wants_read

    @property
    def closed(self) -> bool:
        """True once ``ConnectionClosed`` has been queued."""
        return self._proto.closed

    @property
    def http_version(self) -> str:
        """``"1.1"`` or ``"2"``: the protocol this connection speaks (so far)."""
        return "2" if isinstance(self._proto, HTTP2Connection) else "1.1"

    def get_timer(self) -> float | None:
        """The earliest deadline on the driver's clock, or ``None`` when nothing is timed."""
        return self._proto.get_timer()

    def handle_timer(self, now: float) -> None:
        """Fire every deadline at or before ``now``.  Queues output."""
        self._proto.handle_timer(now)

    def shutdown(self, now: float, restart: bool = False) -> None:
        """Begin a graceful close: finish in-flight work, accept no new requests, and abort
        what is left after ``Config.shutdown_timeout``.  HTTP/2 sends GOAWAY; WebSockets close
        with 1001, or 1012 when ``restart`` says the server comes back.  Queues output."""
        self._proto.shutdown(now, restart)


class _AwaitingProxyHeader:
    """Reads the PROXY header and stands in for the protocol until it is whole: no streams,
    no output, and a deadline (``head_timeout`` from the connection's start) against peers
    that never finish it.  Ending in any way (a bad header, EOF, the deadline, shutdown) drops
    the connection without a word, as the specification asks, and ignores what comes after."""

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline
        self._buffer = b""  # the header so far: bounded by its format (parse_proxy_header)
        self.closed = False
        self._events: list[Event] = []

    def feed(self, data: bytes) -> tuple[ProxyHeader, bytes] | None:
        """The header and the bytes after it, once it is whole; else None."""
        if self.closed:
            return None
        if not data:  # the peer left before the header was whole
            self.drop()
            return None
        self._buffer += data
        try:
            parsed = parse_proxy_header(self._buffer)
        except ProxyHeaderError:
            self.drop()
            return None
        if parsed is None:
            return None
        header, size = parsed
        return header, self._buffer[size:]

    @property
    def wants_read(self) -> bool:
        return not self.closed  # as the protocols: nothing more is read once closed

    def drop(self) -> None:
        if not self.closed:
            self.closed = True
            self._buffer = b""
            self._events.append(ConnectionClosed())

    def pop_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> bytes:
        return b""

    def get_timer(self) -> float | None:
        return None if self.closed else self._deadline

    def handle_timer(self, now: float) -> None:
        if now >= self._deadline:
            self.drop()

    def shutdown(self, now: float, restart: bool = False) -> None:
        self.drop()

    def receive_data(self, data: bytes, now: float) -> None:
        """Never called: ``ServerConnection`` gives the bytes to ``feed()`` while this stands
        in (the method completes the protocol's surface for its callers' types)."""

    def _no_stream(self, stream_id: int, *args: object) -> Any:
        raise DriverMisuseError(f"no stream {stream_id} on this connection")

    receive = send = writable = app_finished = _no_stream
