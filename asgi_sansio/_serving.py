"""What every driver shares and no core module may hold: it touches sockets, ``ssl`` and logs.

App normalisation (ASGI 2), listening sockets made before any event loop (so worker processes
can share them), the ``tls`` extension from an ``ssl`` object, and how a server reports each
lifespan outcome.  The asyncio driver uses it now and the trio driver will, so both behave the
same.
"""

from __future__ import annotations

import inspect
import logging
import os
import socket
import ssl as ssl_module
import stat
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from ._lifespan import (
    LifespanErrored,
    LifespanEvent,
    LifespanUnsupported,
    ShutdownFailed,
    StartupComplete,
    StartupFailed,
)

logger = logging.getLogger("asgi_sansio.error")
access_logger = logging.getLogger("asgi_sansio.access")

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGI3App = Callable[[dict[str, Any], Receive, Send], Awaitable[Any]]
LifespanMode = Literal["auto", "on", "off"]

# EXT-TLS-03: ``ssl`` speaks OpenSSL names; the tls extension wants IANA numbers.
_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_CIPHER_SUITES = {
    "TLS_AES_128_GCM_SHA256": 0x1301, "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303, "TLS_AES_128_CCM_SHA256": 0x1304,
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B, "ECDHE-RSA-AES128-GCM-SHA256": 0xC02F,
    "ECDHE-ECDSA-AES256-GCM-SHA384": 0xC02C, "ECDHE-RSA-AES256-GCM-SHA384": 0xC030,
    "ECDHE-ECDSA-CHACHA20-POLY1305": 0xCCA9, "ECDHE-RSA-CHACHA20-POLY1305": 0xCCA8,
    "DHE-RSA-AES128-GCM-SHA256": 0x009E, "DHE-RSA-AES256-GCM-SHA384": 0x009F,
    "ECDHE-ECDSA-AES128-SHA": 0xC009, "ECDHE-RSA-AES128-SHA": 0xC013,
    "ECDHE-ECDSA-AES256-SHA": 0xC00A, "ECDHE-RSA-AES256-SHA": 0xC014,
    "AES128-GCM-SHA256": 0x009C, "AES256-GCM-SHA384": 0x009D,
}


class LifespanStartupError(RuntimeError):
    """The app failed lifespan startup (LIFE-05), or did not support it with lifespan="on"."""


def asgi3(app: Callable[..., Any]) -> ASGI3App:
    """Wrap an ASGI 2 double-callable app (MAIN-07), detected as asgiref does."""
    call = getattr(app, "__call__", None)  # noqa: B004 - the method itself is what we inspect
    if not inspect.isclass(app) and (
        inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(call)
    ):
        return app

    async def app3(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        await app(scope)(receive, send)

    return app3


def tls_info(ssl_object: ssl_module.SSLObject, server_cert: str | None) -> dict[str, Any]:
    """The ``tls`` extension dict for one TLS connection (EXT-TLS-02)."""
    cipher = ssl_object.cipher()
    peer = ssl_object.getpeercert(binary_form=True)
    return {
        "server_cert": server_cert,
        "client_cert_chain": [ssl_module.DER_cert_to_PEM_cert(peer)] if peer else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": _CIPHER_SUITES.get(cipher[0]) if cipher else None,
    }


def bind_socket(
    host: str = "127.0.0.1", port: int = 8000, uds: str | None = None, backlog: int = 2048
) -> socket.socket:
    """A listening socket, made before the loop (and before forking workers) so that every
    worker process can share it."""
    if uds is not None:
        try:
            if stat.S_ISSOCK(os.stat(uds).st_mode):
                os.unlink(uds)  # a stale socket left by a previous run
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(uds)
        os.chmod(uds, 0o666)
        sock.listen(backlog)
    else:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, backlog=backlog)
    sock.setblocking(False)
    return sock


def socket_url(sock: socket.socket, tls: bool = False) -> str:
    """How a person would reach ``sock``: for the startup line."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{name}"
    host = f"[{name[0]}]" if sock.family == socket.AF_INET6 else name[0]
    return f"{'https' if tls else 'http'}://{host}:{name[1]}"


def report_lifespan(event: LifespanEvent, mode: LifespanMode) -> str | None:
    """Log a lifespan outcome as a server should; return why serving must stop, if it must.

    ``auto`` carries on when the app lacks lifespan (LIFE-10, LIFE-13); ``on`` makes that fatal.
    A failed startup is always fatal (LIFE-05); everything after startup is only reported.
    """
    if isinstance(event, StartupFailed):
        logger.error("Application startup failed. %s", event.message)
        return f"application startup failed: {event.message}"
    if isinstance(event, LifespanUnsupported):
        if mode == "on":
            logger.error("The app does not support lifespan (lifespan='on')", exc_info=event.exc)
            return "the app does not support lifespan (lifespan='on')"
        if event.exc is None:
            logger.warning("The lifespan app returned without answering startup.")
        else:
            logger.info("ASGI 'lifespan' protocol appears unsupported.")
    elif isinstance(event, ShutdownFailed):
        logger.error("Application shutdown failed. %s", event.message)
    elif isinstance(event, LifespanErrored):
        if event.exc is None:
            logger.error("The lifespan app returned before shutdown (LIFE-12).")
        else:
            logger.error("Exception in 'lifespan' protocol", exc_info=event.exc)
    elif isinstance(event, StartupComplete):
        logger.debug("Application startup complete.")
    else:
        logger.debug("Application shutdown complete.")
    return None
