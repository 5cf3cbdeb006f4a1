"""WebSockets through both drivers over loopback, with the ``websockets`` client library.

The core's frame handling is tested with bytes elsewhere; here an independent client checks the
whole path: handshake, text, binary, fragments, size, permessage-deflate, subprotocols, denials,
close codes both ways, a lost transport, and shutdown.  Each test runs its own event loop under
a hard time bound and binds port 0.

Every test runs twice (the autouse ``driver`` fixture): the test body and its clients always on
asyncio, the server on the asyncio driver in the same loop, or on the trio driver in a trio
guest run hosted by that loop (``trio.lowlevel.start_guest_run``): trio's own scheduler and
I/O, on the same thread, so the apps below and the test body share plain state and the apps
sleep with anyio, which works on either loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidStatus
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from asgi_sansio import Config
from asgi_sansio._demo import app as demo_app

pytestmark = pytest.mark.network

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

TIME_LIMIT = 9.0


def run(coro: Awaitable[None]) -> None:
    """Run one test body on a fresh loop; no test may take longer than TIME_LIMIT."""

    async def bounded() -> None:
        await asyncio.wait_for(coro, TIME_LIMIT)

    asyncio.run(bounded())


_DRIVER = ["asyncio"]  # the driver of the running test, set by the ``driver`` fixture


@pytest.fixture(autouse=True, params=["asyncio", "trio"])
def driver(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "trio":
        pytest.importorskip("trio")
    _DRIVER[0] = request.param
    yield request.param
    _DRIVER[0] = "asyncio"


class Running:
    """A server serving beside the test body: an asyncio task, or a trio guest run."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        kwargs.setdefault("port", 0)
        kwargs.setdefault("lifespan", "off")
        module = importlib.import_module(f"asgi_sansio.{_DRIVER[0]}")
        self.server: Any = module.Server(app, **kwargs)

    async def start(self) -> Any:
        """Start serving and return the server once it accepts; raise what failed."""
        loop = asyncio.get_running_loop()
        up: asyncio.Future[None] = loop.create_future()
        self._done: asyncio.Future[Callable[[], object]] = loop.create_future()

        def ready(_: object) -> None:
            if not up.done():
                up.set_result(None)

        if _DRIVER[0] == "asyncio":
            self._shutdown = self.server.shutdown
            task = loop.create_task(
                self.server.serve(shutdown_trigger=asyncio.Event().wait, ready=ready)
            )
            task.add_done_callback(lambda t: self._done.set_result(t.result))
        else:
            import trio

            async def serve() -> None:
                token = trio.lowlevel.current_trio_token()
                self._shutdown = lambda: token.run_sync_soon(self.server.shutdown)
                await self.server.serve(shutdown_trigger=trio.Event().wait, ready=ready)

            trio.lowlevel.start_guest_run(
                serve, run_sync_soon_threadsafe=loop.call_soon_threadsafe,
                done_callback=lambda outcome: self._done.set_result(outcome.unwrap),
                host_uses_signal_set_wakeup_fd=True,
            )
        await asyncio.wait({up, self._done}, return_when=asyncio.FIRST_COMPLETED)
        if self._done.done():
            self._done.result()()  # raises what made it fail
        return self.server

    def shutdown(self) -> None:
        self._shutdown()

    async def wait(self, timeout: float = 5) -> None:
        """Wait for ``serve()`` to return; raise what it raised."""
        (await asyncio.wait_for(asyncio.shield(self._done), timeout))()


@contextlib.asynccontextmanager
async def serving(app: Any, **kwargs: Any) -> AsyncIterator[Any]:
    """A started server on 127.0.0.1:0, shut down gracefully on exit."""
    running = Running(app, **kwargs)
    server = await running.start()
    try:
        yield server
    finally:
        running.shutdown()
        await running.wait()


def ws_url(server: Any, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def client(server: Any, path: str = "/", **kwargs: Any) -> connect:
    """A ``websockets`` client connection (an async context manager), never via a proxy."""
    kwargs.setdefault("proxy", None)
    kwargs.setdefault("open_timeout", 5)
    kwargs.setdefault("close_timeout", 5)
    return connect(ws_url(server, path), **kwargs)


def response_headers(ws: ClientConnection) -> Any:
    """The headers of the server's handshake answer."""
    assert ws.response is not None
    return ws.response.headers


def echo_app(
    seen: list[Message] | None = None, scopes: list[Scope] | None = None, **accept: Any
) -> App:
    """Accept (with ``accept``'s fields), echo every message, record what the app received."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scopes is not None:
            scopes.append(scope)
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept", **accept})
        while True:
            message = await receive()
            if seen is not None:
                seen.append(message)
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})

    return app


async def wait_for_disconnect(seen: list[Message]) -> Message:
    """The app's last message, once it is a ``websocket.disconnect``."""
    while not seen or seen[-1]["type"] != "websocket.disconnect":
        await asyncio.sleep(0.01)
    return seen[-1]


# --------------------------------------------------------------------------------------------


def test_text_and_binary_echo_and_the_scope() -> None:
    seen: list[Message] = []
    scopes: list[Scope] = []

    async def main() -> None:
        async with serving(echo_app(seen, scopes)) as server:
            async with client(server, "/room/1?x=y") as ws:
                await ws.send("héllo")
                assert await ws.recv() == "héllo"
                await ws.send(b"\x00\xffbin")
                assert await ws.recv() == b"\x00\xffbin"
                await ws.send("")
                assert await ws.recv() == ""
                await ws.send(b"")
                assert await ws.recv() == b""
            assert (await wait_for_disconnect(seen))["code"] == 1000
        scope = scopes[0]
        assert scope["type"] == "websocket"
        assert (scope["scheme"], scope["path"], scope["query_string"]) == ("ws", "/room/1", b"x=y")
        assert scope["http_version"] == "1.1"
        assert scope["subprotocols"] == []
        assert "websocket.http.response" in scope["extensions"]
        received = [m for m in seen if m["type"] == "websocket.receive"]
        assert received[0] == {"type": "websocket.receive", "text": "héllo", "bytes": None}
        assert received[1] == {"type": "websocket.receive", "bytes": b"\x00\xffbin", "text": None}

    run(main())


def test_fragmented_messages_are_reassembled() -> None:
    seen: list[Message] = []

    def fragments() -> Iterator[str]:
        yield from ("frag", "men", "ted ", "text")

    async def main() -> None:
        async with serving(echo_app(seen)) as server, client(server) as ws:
            await ws.send(fragments())
            assert await ws.recv() == "fragmented text"
            await ws.send(iter([b"\x01" * 10, b"\x02" * 20, b"\x03"]))
            assert await ws.recv() == b"\x01" * 10 + b"\x02" * 20 + b"\x03"
        # The app saw each message whole, once.
        received = [m for m in seen if m["type"] == "websocket.receive"]
        assert [m["text"] or m["bytes"] for m in received] == [
            "fragmented text", b"\x01" * 10 + b"\x02" * 20 + b"\x03"
        ]

    run(main())


def test_large_messages_both_ways() -> None:
    big = os.urandom(1024 * 1024)
    text = "ü" * (512 * 1024)  # 1 MiB of UTF-8

    async def main() -> None:
        async with serving(echo_app()) as server, client(server, max_size=None) as ws:
            await ws.send(big)
            assert await ws.recv() == big
            await ws.send(text)
            assert await ws.recv() == text

    run(main())


def test_many_messages_in_flight_keep_their_order() -> None:
    async def main() -> None:
        async with serving(echo_app()) as server, client(server, compression=None) as ws:
            sent = [f"message {i}" for i in range(2000)]
            for message in sent:
                await ws.send(message)
            assert [await ws.recv() for _ in sent] == sent

    run(main())


def test_permessage_deflate_is_negotiated() -> None:
    payload = "compress me " * 10_000

    async def main() -> None:
        async with serving(echo_app()) as server, client(server, max_size=None) as ws:
            extensions = response_headers(ws)["Sec-WebSocket-Extensions"]
            assert extensions.startswith("permessage-deflate")
            assert [e.name for e in ws.protocol.extensions] == ["permessage-deflate"]
            await ws.send(payload)
            assert await ws.recv() == payload
            await ws.send(payload.encode())
            assert await ws.recv() == payload.encode()

    run(main())


def test_permessage_deflate_can_be_turned_off() -> None:
    async def main() -> None:
        config = Config(ws_per_message_deflate=False)
        async with serving(echo_app(), config=config) as server, client(server) as ws:
            assert "Sec-WebSocket-Extensions" not in response_headers(ws)
            assert ws.protocol.extensions == []
            await ws.send("plain")
            assert await ws.recv() == "plain"

    run(main())


def test_subprotocol_selection() -> None:
    scopes: list[Scope] = []

    async def main() -> None:
        app = echo_app(scopes=scopes, subprotocol="chat.v2")
        async with serving(app) as server, client(server, subprotocols=["v1", "chat.v2"]) as ws:
            assert ws.subprotocol == "chat.v2"
            assert response_headers(ws)["Sec-WebSocket-Protocol"] == "chat.v2"
            await ws.send("hi")
            assert await ws.recv() == "hi"
        assert scopes[0]["subprotocols"] == ["v1", "chat.v2"]

    run(main())


def test_accept_headers_reach_the_client() -> None:
    async def main() -> None:
        app = echo_app(headers=[(b"x-room", b"lobby"), (b"set-cookie", b"a=1")])
        async with serving(app) as server, client(server) as ws:
            assert response_headers(ws)["X-Room"] == "lobby"
            assert response_headers(ws)["Set-Cookie"] == "a=1"

    run(main())


def test_denial_response_reaches_the_client() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Basic")]})
        await send({"type": "websocket.http.response.body", "body": b"who ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"are you?"})

    async def main() -> None:
        async with serving(app) as server:
            with pytest.raises(InvalidStatus) as info:
                async with client(server):
                    pass
        response = info.value.response
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Basic"
        assert bytes(response.body or b"") == b"who are you?"

    run(main())


def test_close_before_accept_is_403() -> None:
    disconnects: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.close", "code": 4003})
        disconnects.append(await receive())

    async def main() -> None:
        async with serving(app) as server:
            with pytest.raises(InvalidStatus) as info:
                async with client(server):
                    pass
        assert info.value.response.status_code == 403
        assert disconnects and disconnects[0]["type"] == "websocket.disconnect"

    run(main())


def test_the_access_log_has_a_line_per_handshake_answer(caplog: pytest.LogCaptureFixture) -> None:
    # One line per websocket, with the status the client saw: 101 for an accept, 403 for a
    # close before it, a denial's own status; nothing more for what follows an accept.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"
        if scope["path"] == "/no":
            await send({"type": "websocket.close"})
        elif scope["path"] == "/deny":
            await send({"type": "websocket.http.response.start", "status": 401})
            await send({"type": "websocket.http.response.body", "body": b""})
        else:
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": "hi"})
            await send({"type": "websocket.close"})

    async def main() -> None:
        async with serving(app, access_log=True) as server:
            async with client(server, "/yes?a=1") as ws:
                assert await ws.recv() == "hi"
            for path in ("/no", "/deny"):
                with pytest.raises(InvalidStatus):
                    async with client(server, path):
                        pass

    with caplog.at_level("INFO", logger="asgi_sansio.access"):
        run(main())
    lines = [r.getMessage().split(" - ", 1)[1] for r in caplog.records
             if r.name == "asgi_sansio.access"]
    assert lines == ['"GET /yes?a=1 HTTP/1.1" 101', '"GET /no HTTP/1.1" 403',
                     '"GET /deny HTTP/1.1" 401']


def test_app_close_code_and_reason_reach_the_client() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        assert (await receive())["text"] == "bye please"
        await send({"type": "websocket.close", "code": 4001, "reason": "done here"})
        message = await receive()
        assert message["type"] == "websocket.disconnect"

    async def main() -> None:
        async with serving(app) as server, client(server) as ws:
            await ws.send("bye please")
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "done here")

    run(main())


def test_app_returning_after_accept_closes_with_1000() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "only this"})

    async def main() -> None:
        async with serving(app) as server, client(server) as ws:
            assert await ws.recv() == "only this"
            with pytest.raises(ConnectionClosedOK) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1000

    run(main())


def test_app_raising_after_accept_closes_with_1011(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        raise RuntimeError("boom")

    async def main() -> None:
        async with serving(app) as server, client(server) as ws:
            await ws.send("trigger")
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1011

    run(main())
    assert "Exception in ASGI application" in caplog.text


def test_client_close_code_and_reason_reach_the_app() -> None:
    seen: list[Message] = []

    async def main() -> None:
        async with serving(echo_app(seen)) as server:
            ws = await client(server)
            await ws.send("hi")
            assert await ws.recv() == "hi"
            await ws.close(code=4002, reason="client done")
            # The server answered our Close with the same code.
            assert ws.protocol.close_rcvd is not None
            assert ws.protocol.close_rcvd.code == 4002
            disconnect = await wait_for_disconnect(seen)
        assert disconnect == {"type": "websocket.disconnect", "code": 4002, "reason": "client done"}

    run(main())


def test_abrupt_loss_gives_the_app_1006() -> None:
    seen: list[Message] = []

    async def main() -> None:
        async with serving(echo_app(seen)) as server:
            ws: ClientConnection = await client(server)
            await ws.send("hi")
            assert await ws.recv() == "hi"
            ws.transport.abort()  # no Close frame, the TCP connection reset
            disconnect = await wait_for_disconnect(seen)
        assert disconnect["code"] == 1006

    run(main())


def test_app_send_after_the_client_left_raises_oserror() -> None:
    outcome: list[BaseException] = []
    gone = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except OSError as exc:  # ClientDisconnected, MAIN-13
            outcome.append(exc)
        gone.set()

    async def main() -> None:
        async with serving(app) as server:
            ws: ClientConnection = await client(server)
            ws.transport.abort()
            await asyncio.wait_for(gone.wait(), 5)
        assert len(outcome) == 1

    run(main())


def test_server_shutdown_closes_with_1001() -> None:
    seen: list[Message] = []

    async def main() -> None:
        running = Running(echo_app(seen))
        server = await running.start()
        async with client(server) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
            running.shutdown()
            with pytest.raises(ConnectionClosedOK) as info:
                await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        await running.wait()
        assert seen[-1]["type"] == "websocket.disconnect"
        assert seen[-1]["code"] == 1001

    run(main())


def test_bad_handshakes_are_refused() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("the app must not see a bad handshake")

    async def exchange(port: int, request: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        data = await reader.read()  # the server closes after its answer
        writer.close()
        return data

    async def main() -> None:
        async with serving(app) as server:
            assert server.port is not None
            head = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
            wrong_version = await exchange(server.port, head + b"Sec-WebSocket-Version: 8\r\n\r\n")
            assert wrong_version.startswith(b"HTTP/1.1 426 ")
            assert b"sec-websocket-version: 13" in wrong_version.lower()
            no_key = head.replace(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b"")
            missing = await exchange(server.port, no_key + b"Sec-WebSocket-Version: 13\r\n\r\n")
            assert missing.startswith(b"HTTP/1.1 400 ")

    run(main())


def test_demo_app_ws_echo() -> None:
    async def main() -> None:
        async with serving(demo_app, lifespan="on") as server:
            async with client(server, "/ws") as ws:
                await ws.send("hello demo")
                assert await ws.recv() == "hello demo"
                await ws.send(b"\x01\x02")
                assert await ws.recv() == b"\x01\x02"
            with pytest.raises(InvalidStatus) as info:
                async with client(server, "/not-a-socket"):
                    pass
            assert info.value.response.status_code == 403

    run(main())


def test_demo_app_chat_page() -> None:
    async def main() -> None:
        async with serving(demo_app) as server:
            assert server.port is not None
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            page = await reader.read()
            writer.close()
        assert page.startswith(b"HTTP/1.1 200 ")
        assert b"text/html" in page and b"new WebSocket(" in page and b'"/ws"' in page

    run(main())


# -- limits, timers and backpressure ------------------------------------------------------------


async def raw_upgrade(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Connection]:
    """A hand-made handshake on a plain socket, and wsproto in client mode to read frames: a
    peer that does only what the test makes it do (no automatic pongs or close answers)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    return reader, writer, Connection(ConnectionType.CLIENT)


async def next_frame_event(reader: asyncio.StreamReader, ws: Connection) -> Any:
    """The next wsproto event from the server, or None at end of stream."""
    while True:
        for event in ws.events():
            return event
        data = await reader.read(65536)
        if not data:
            return None
        ws.receive_data(data)


def test_message_over_the_limit_closes_with_1009() -> None:
    seen: list[Message] = []

    async def main() -> None:
        config = Config(ws_max_message_size=1024)
        async with serving(echo_app(seen), config=config) as server:
            async with client(server, compression=None) as ws:
                await ws.send("x" * 1024)
                assert await ws.recv() == "x" * 1024
                await ws.send("y" * 1025)
                with pytest.raises(ConnectionClosed) as info:
                    await ws.recv()
                assert info.value.rcvd is not None and info.value.rcvd.code == 1009
            assert (await wait_for_disconnect(seen))["code"] == 1009

    run(main())


def test_a_peer_that_never_answers_pings_is_closed_with_1011() -> None:
    seen: list[Message] = []

    async def main() -> None:
        config = Config(ws_ping_interval=0.2, ws_ping_timeout=0.3, ws_close_timeout=0.3)
        async with serving(echo_app(seen), config=config) as server:
            assert server.port is not None
            reader, writer, ws = await raw_upgrade(server.port)
            ping = await next_frame_event(reader, ws)
            assert isinstance(ping, Ping)  # not answered
            close = await next_frame_event(reader, ws)
            assert isinstance(close, CloseConnection) and close.code == 1011
            # Nor is our Close answered: the server hangs up after its close timeout.
            assert await asyncio.wait_for(reader.read(), 2) == b""
            writer.close()
            # No Close frame ever came from the peer: RFC 6455 7.1.5 calls that 1006.
            assert (await wait_for_disconnect(seen))["code"] == 1006

    run(main())


def test_pongs_keep_a_quiet_connection_open() -> None:
    async def main() -> None:
        config = Config(ws_ping_interval=0.1, ws_ping_timeout=1.0)
        async with serving(echo_app(), config=config) as server:
            assert server.port is not None
            reader, writer, ws = await raw_upgrade(server.port)
            for _ in range(4):  # the server keeps pinging while we answer
                ping = await next_frame_event(reader, ws)
                assert isinstance(ping, Ping)
                writer.write(ws.send(ping.response()))
            writer.write(ws.send(TextMessage(data="still here")))
            echo = await next_frame_event(reader, ws)
            while isinstance(echo, Ping):
                writer.write(ws.send(echo.response()))
                echo = await next_frame_event(reader, ws)
            assert isinstance(echo, TextMessage) and echo.data == "still here"
            writer.close()

    run(main())


def test_the_app_close_unanswered_hangs_up_after_the_close_timeout() -> None:
    disconnects: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4005, "reason": "go"})
        disconnects.append(await receive())

    async def main() -> None:
        config = Config(ws_close_timeout=0.3)
        async with serving(app, config=config) as server:
            assert server.port is not None
            reader, writer, ws = await raw_upgrade(server.port)
            close = await next_frame_event(reader, ws)
            assert isinstance(close, CloseConnection)
            assert (close.code, close.reason) == (4005, "go")
            started = asyncio.get_running_loop().time()
            assert await asyncio.wait_for(reader.read(), 3) == b""
            assert asyncio.get_running_loop().time() - started < 2
            writer.close()
            while not disconnects:
                await asyncio.sleep(0.01)
        assert disconnects[0]["type"] == "websocket.disconnect"

    run(main())


def test_a_slow_app_gets_a_flood_intact_and_in_order() -> None:
    """Input backpressure: the client writes far more than the core's buffer while the app
    sleeps; reading pauses and resumes, and nothing is lost or reordered."""
    received: list[bytes] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await anyio.sleep(0.5)  # the flood piles up meanwhile
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            received.append(message["bytes"])
            if len(received) == 200:
                await send({"type": "websocket.send", "text": "got all"})

    async def main() -> None:
        chunks = [bytes([i]) * 65536 for i in range(200)]  # 12.5 MiB
        async with serving(app) as server, client(server, compression=None) as ws:
            for chunk in chunks:
                await ws.send(chunk)
            assert await ws.recv() == "got all"
        assert received == chunks

    run(main())


def test_a_client_that_does_not_read_holds_the_apps_send() -> None:
    """Output backpressure: the app's send() waits while the client reads nothing."""
    sent = 0
    block = b"z" * 256 * 1024
    total = 200  # 50 MiB if nothing held it back

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal sent
        await receive()
        await send({"type": "websocket.accept"})
        for _ in range(total):
            await send({"type": "websocket.send", "bytes": block})
            sent += 1

    async def main() -> None:
        async with serving(app) as server:
            assert server.port is not None
            reader, writer, ws = await raw_upgrade(server.port)
            await asyncio.sleep(0.7)  # read nothing
            held = sent
            assert held < total // 2, f"{held} sends of 256 KiB went through a full socket"
            count = 0
            while count < total:
                event = await next_frame_event(reader, ws)
                assert isinstance(event, BytesMessage), event
                if event.message_finished:
                    count += 1
            writer.close()
        assert sent == total

    run(main())


def test_a_socket_accepted_during_shutdown_is_closed_with_1001() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await anyio.sleep(0.3)  # still deciding when the server begins to shut down
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    async def main() -> None:
        running = Running(app, config=Config(shutdown_timeout=3.0))
        server = await running.start()

        async def opening() -> ClientConnection:
            return await client(server)

        connecting = asyncio.create_task(opening())
        await asyncio.sleep(0.1)
        running.shutdown()
        ws = await connecting
        started = asyncio.get_running_loop().time()
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        assert asyncio.get_running_loop().time() - started < 1.0
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        await running.wait()

    run(main())
