"""The app Autobahn|Testsuite talks to: accept every WebSocket and send each message back as is.

``python tests/autobahn/echo_app.py [PORT]`` serves it with the asyncio driver on 127.0.0.1 (port
0, the default, picks a free one) and prints ``PORT <n>`` once it accepts connections.  It stops
on SIGINT or SIGTERM.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

Message = dict[str, Any]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository's asgi_sansio
    from asgi_sansio.asyncio import Server, run

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0

    def ready(server: Server) -> None:
        print(f"PORT {server.port}", flush=True)

    run(app, host="127.0.0.1", port=port, ready=ready)


if __name__ == "__main__":
    main()
