"""The built-in demo app that ``python -m asgi_sansio`` serves when given none.

Each endpoint shows one thing the server does: a plain page, a request body read to the end, a
chunked streamed response, server-sent events, the scope's headers, and a WebSocket echo
(``/ws``) with a small page to talk to it (``/chat``).  It also speaks the lifespan protocol, so
the startup path is exercised too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Pause between streamed pieces: long enough to see them arrive one by one, short for tests.
TICK = 0.05

INDEX = b"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>asgi-sansio</title></head>
<body>
<h1>Hello from asgi-sansio</h1>
<p>This is the built-in demo app. Serve your own with
<code>python -m asgi_sansio module:app</code>.</p>
<ul>
<li><a href="/">/</a>: this page</li>
<li><code>POST /echo</code>: sends the request body back with its content-type</li>
<li><a href="/stream">/stream</a>: a chunked response, a piece at a time</li>
<li><a href="/events">/events</a>: a few server-sent events, then the end</li>
<li><a href="/headers">/headers</a>: the request headers as JSON</li>
<li><a href="/chat">/chat</a>: a page that talks to <code>/ws</code>, a WebSocket echoing
text and binary messages</li>
</ul>
</body>
</html>
"""


CHAT = b"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>asgi-sansio WebSocket echo</title>
<style>#log{white-space:pre-wrap;font-family:monospace}</style></head>
<body>
<h1>WebSocket echo</h1>
<p>Talks to <code>/ws</code>, which sends every message back
(<a href="/">all endpoints</a>).</p>
<p>Status: <span id="status">connecting...</span></p>
<form id="form"><input id="text" autocomplete="off" autofocus>
<button>Send</button></form>
<div id="log"></div>
<script>
(() => {
  const log = document.getElementById("log");
  const state = document.getElementById("status");
  const input = document.getElementById("text");
  const show = (line) => { log.textContent += line + "\\n"; };
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(scheme + "//" + location.host + "/ws");
  ws.onopen = () => { state.textContent = "open"; };
  ws.onclose = (e) => { state.textContent = "closed (" + e.code + ")"; };
  ws.onmessage = (e) => { show("< " + e.data); };
  document.getElementById("form").addEventListener("submit", (e) => {
    e.preventDefault();
    if (ws.readyState === WebSocket.OPEN && input.value) {
      ws.send(input.value);
      show("> " + input.value);
    }
    input.value = "";
  });
})();
</script>
</body>
</html>
"""


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes, extra: list[tuple[bytes, bytes]]
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body)), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _stream(send: Send, content_type: bytes, pieces: list[bytes]) -> None:
    headers = [(b"content-type", content_type), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for piece in pieces:
        await send({"type": "http.response.body", "body": piece, "more_body": True})
        await _sleep(TICK)
    await send({"type": "http.response.body", "body": b""})


async def _sleep(seconds: float) -> None:
    """Sleep on whichever loop serves the demo: asyncio's, or trio's (``--driver trio``)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        import trio

        await trio.sleep(seconds)
    else:
        await asyncio.sleep(seconds)


async def _lifespan(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["demo"] = "asgi-sansio demo"
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _websocket(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """``/ws``: accept, then send every text or binary message back until the peer closes.
    Any other path is refused before the handshake completes (HTTP 403)."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return  # the client left before we answered
    if scope["path"] != "/ws":
        await send({"type": "websocket.close"})
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """The demo ASGI 3 app."""
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
        return
    if scope["type"] == "websocket":
        await _websocket(scope, receive, send)
        return
    if scope["type"] != "http":
        raise RuntimeError(f"the demo app serves no {scope['type']!r} scopes")  # MAIN-14
    path, method = scope["path"], scope["method"]
    text = b"text/plain; charset=utf-8"
    if path == "/":
        await _respond(send, 200, INDEX, b"text/html; charset=utf-8", [])
    elif path == "/echo":
        if method not in ("POST", "PUT"):
            await _respond(send, 405, b"POST a body to /echo\n", text, [(b"allow", b"POST, PUT")])
            return
        body = await _read_body(receive)
        content_type = next(
            (v for n, v in scope["headers"] if n == b"content-type"), b"application/octet-stream"
        )
        await _respond(send, 200, body, content_type, [])
    elif path == "/chat":
        await _respond(send, 200, CHAT, b"text/html; charset=utf-8", [])
    elif path == "/stream":
        await _stream(send, text, [b"chunk %d\n" % i for i in range(1, 6)])
    elif path == "/events":
        events = [b"id: %d\nevent: tick\ndata: tick %d\n\n" % (i, i) for i in range(1, 4)]
        await _stream(send, b"text/event-stream", events)
    elif path == "/headers":
        pairs = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]]
        body = json.dumps({"headers": pairs}, indent=2).encode() + b"\n"
        await _respond(send, 200, body, b"application/json", [])
    else:
        await _respond(send, 404, b"Not Found\n", text, [])
