"""One frozen bag of every limit and timeout the core enforces.

Each default is chosen to be safe on the public internet and says why beside it. The core reads
``Config``; the few fixed numbers outside it are not meant to be tuned and say why where they
stand (``_http2``'s 1 s wait for the shutdown PING's ACK, and its 4x header-list factor). Times
are seconds on the driver's clock (the ``now`` it passes in), sizes are bytes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Config:
    # --- HTTP/1.1 request head -------------------------------------------------------------
    # 64 KiB: h11 defaults to 16 KiB, nginx to 4 x 8 KiB buffers, node.js to 16 KiB; large
    # cookie jars behind SSO proxies overflow 16 KiB in practice, and 64 KiB still bounds a
    # connection's unparsed input to a small constant.  Exceeded -> 431.
    max_head_size: int = 64 * 1024
    # 8 KiB: Apache's LimitRequestLine is 8190; longer targets are almost always attacks or
    # broken clients.  Exceeded -> 414.
    max_target_length: int = 8 * 1024
    # 100: Apache's LimitRequestFields default; no real browser sends more than ~30.
    # Exceeded -> 431.
    max_header_count: int = 100

    # --- request bodies ----------------------------------------------------------------------
    # 100 MiB, or None for no limit: large enough for ordinary uploads, small enough that one
    # client cannot stream forever into an app that buffers.  Exceeded -> 413 (or an abort if
    # the response already started).
    max_body_size: int | None = 100 * 1024 * 1024
    # 64 KiB of body (or of complete WebSocket messages) received but not yet pulled by the
    # app: above it the core asks the driver to stop reading (``wants_read``).  Uvicorn uses
    # the same high-water mark.
    body_buffer_size: int = 64 * 1024
    # 64 KiB: after a response, a request body the app never read is read and thrown away up
    # to this many bytes to keep the connection alive; past it the connection is closed, so a
    # client cannot make us read a huge body nobody wants.
    max_body_drain: int = 64 * 1024

    # --- response output --------------------------------------------------------------------
    # 64 KiB: the same high-water mark asyncio transports use.  Above it a stream is not
    # ``writable`` and the driver holds the app's ``send()``.
    output_high_water: int = 64 * 1024

    # --- timers (seconds on the driver's clock) ------------------------------------------------
    # 5 s: Uvicorn's and Hypercorn's default; an idle keep-alive connection is cheap for the
    # client to reopen and costly for us to hold.
    keep_alive_timeout: float = 5.0
    # 20 s: the whole request head must arrive within this time of its first byte (a fixed
    # deadline, not reset per byte, which is what defeats slowloris).  Apache's mod_reqtimeout
    # uses 20-40 s.  Exceeded -> 408.
    head_timeout: float = 20.0
    # 60 s (nginx's client_body_timeout): while a request body is incomplete and the server is
    # reading it, the client must send something within this time of the last bytes it sent.
    # Not counted while the app leaves the body unread (HTTP/2: while the client has no window),
    # nor while the client waits for ``100 Continue``.  Exceeded -> 408 if no response started,
    # else HTTP/1.1 cuts the connection and HTTP/2 resets the stream (CANCEL).  None: no limit.
    body_timeout: float | None = 60.0
    # 10 s: after ``shutdown()`` in-flight requests may finish for this long, then are aborted.
    # Long enough for ordinary responses, short enough for an orchestrator's kill timeout.
    shutdown_timeout: float = 10.0

    # --- WebSocket ------------------------------------------------------------------------------
    # 16 MiB: Uvicorn's and Hypercorn's default.  Bounds a reassembled message and what
    # permessage-deflate may inflate for one message (wsproto bounds neither).  Exceeded -> 1009.
    ws_max_message_size: int = 16 * 1024 * 1024
    # permessage-deflate costs ~100 KiB of zlib state per socket (Uvicorn#1862); on by default
    # because most traffic compresses well, off for many idle sockets.
    ws_per_message_deflate: bool = True
    # 20 s: pings keep NAT and proxy mappings alive and find dead peers; None disables them.
    ws_ping_interval: float | None = 20.0
    # 20 s without a pong after a ping: the peer is gone; close with 1011.
    ws_ping_timeout: float = 20.0
    # 5 s for the peer to answer our Close frame before we hang up anyway.
    ws_close_timeout: float = 5.0

    # --- HTTP/2 -------------------------------------------------------------------------------
    # 100: h2's and nginx's default (RFC 9113 suggests at least 100).  A stream beyond it is
    # refused with RST_STREAM(REFUSED_STREAM), never the whole connection.
    h2_max_concurrent_streams: int = 100
    # Flood accounting window, seconds of the driver's clock.
    h2_flood_window: float = 10.0
    # Streams the client resets while live, plus streams we refuse, per window: past it,
    # GOAWAY(ENHANCE_YOUR_CALM) (rapid reset, CVE-2023-44487).  Browsers cancel a few per
    # navigation; hundreds in seconds is an attack.
    h2_max_resets: int = 200
    # PING (and PING ACK), SETTINGS, PRIORITY, unknown (RFC 9218 PRIORITY_UPDATE, GREASE) and
    # empty DATA frames per window: each costs us work (and an answer) and the peer nothing.
    # Past it, GOAWAY(ENHANCE_YOUR_CALM).
    h2_max_control_frames: int = 1000
    # Graceful shutdown as RFC 9113 6.8 advises: a first GOAWAY that refuses nothing, with a
    # PING, and the GOAWAY naming the last stream once the PING's ACK is back (1 s at most), so
    # requests the client sent before it saw the first are served, not refused for a retry.
    # False: one GOAWAY naming the last stream seen, at once.
    h2_shutdown_ping: bool = True

    # --- connections ---------------------------------------------------------------------------
    # Off: only a server behind a TCP load balancer that sends the PROXY protocol (HAProxy's
    # ``send-proxy``/``send-proxy-v2``, AWS NLB) may turn it on, for then every connection must
    # begin with a version 1 or 2 header (the specification forbids guessing), its addresses
    # become the scope's ``client`` and ``server``, and one without a valid header within
    # ``head_timeout`` is dropped unanswered.  Anyone who can connect directly could otherwise
    # claim any address.  Over TLS the header precedes the handshake: the drivers read it.
    proxy_protocol: bool = False

    # --- scope and response decoration -------------------------------------------------------
    # The ASGI ``root_path`` (mount point); it comes from configuration only (HTTP-SCOPE-09).
    root_path: str = ""
    # Added to responses that lack one (SRV-15); None to send no ``server`` header.
    server_header: bytes | None = b"asgi-sansio"
    # Add a ``date`` header (RFC 9110 6.6.1 says an origin server with a clock MUST).
    date_header: bool = True

    def __post_init__(self) -> None:
        for name in ("max_head_size", "max_target_length", "max_header_count", "body_buffer_size",
                     "output_high_water", "ws_max_message_size", "h2_max_concurrent_streams"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Config.{name} must be positive")
        if self.max_body_size is not None and self.max_body_size < 0:
            raise ValueError("Config.max_body_size must be None or >= 0")
        for name in ("keep_alive_timeout", "head_timeout", "shutdown_timeout", "max_body_drain",
                     "ws_ping_timeout", "ws_close_timeout"):
            if getattr(self, name) < 0:
                raise ValueError(f"Config.{name} must be >= 0")
        if self.body_timeout is not None and self.body_timeout <= 0:
            raise ValueError("Config.body_timeout must be None or positive")
