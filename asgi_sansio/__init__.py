"""asgi-sansio: the ASGI wire layer as pure state machines.

Bytes in, ASGI events out; ASGI send-messages in, bytes out.  No sockets, no event loop, no
clock: time comes in as ``now``.  Drivers for real sockets live in ``asgi_sansio.asyncio`` (and
``asgi_sansio.trio``).
"""

from ._config import Config
from ._connection import ServerConnection
from ._errors import AppMisuseError, ClientDisconnected, DriverMisuseError
from ._events import (
    ConnectionClosed,
    Event,
    StreamEnded,
    StreamReadable,
    StreamStarted,
    StreamWritable,
)
from ._proxy import ProxyHeader, ProxyHeaderError, parse_proxy_header

__version__ = "0.1.0"

__all__ = [
    "AppMisuseError",
    "ClientDisconnected",
    "Config",
    "ConnectionClosed",
    "DriverMisuseError",
    "Event",
    "ProxyHeader",
    "ProxyHeaderError",
    "ServerConnection",
    "StreamEnded",
    "StreamReadable",
    "StreamStarted",
    "StreamWritable",
    "__version__",
    "parse_proxy_header",
]
