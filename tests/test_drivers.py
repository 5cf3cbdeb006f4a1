"""Both drivers (asyncio, trio) over real loopback sockets, with real clients (httpx, curl, the
websockets client, raw sockets).

Every test takes the ``driver`` fixture and runs once per driver: its body runs on that driver's
own loop through anyio (``anyio.run(backend=...)``), so the apps and clients below use anyio's
primitives and work on either.  Each run is bounded by TIME_LIMIT; servers bind port 0.  The
core's protocol behaviour is tested with bytes elsewhere: here we check what only a driver can
get wrong: routing, waking, one writer at a time, backpressure, timers, TLS, lifespan, shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import importlib
import json
import logging
import shutil
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import anyio
import h11
import httpx
import pytest
from anyio.abc import SocketStream, TaskGroup
from anyio.streams.tls import TLSAttribute, TLSStream

from asgi_sansio import ClientDisconnected, Config
from asgi_sansio._demo import app as demo_app
from asgi_sansio._serving import LifespanStartupError

pytestmark = pytest.mark.network

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

TIME_LIMIT = 9.0


class Driver:
    """One driver module and how to run a test body on its loop."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.module: ModuleType = importlib.import_module(f"asgi_sansio.{name}")

    def __repr__(self) -> str:
        return self.name

    def run(self, main: Callable[[], Awaitable[None]]) -> None:
        """Run one test body on a fresh loop; no test may take longer than TIME_LIMIT."""

        async def bounded() -> None:
            with anyio.fail_after(TIME_LIMIT):
                await main()

        try:
            anyio.run(bounded, backend=self.name)
        except BaseException as exc:
            # Task groups wrap what leaves them: show the one failure itself.
            while len(getattr(exc, "exceptions", ())) == 1:
                exc = exc.exceptions[0]  # type: ignore[attr-defined]
            raise exc from None

    def server(self, app: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("port", 0)
        return self.module.Server(app, **kwargs)

    async def serve(self, app: Any, **kwargs: Any) -> None:
        await self.module.serve(app, **kwargs)

    async def start(self, tg: TaskGroup, server: Any) -> anyio.Event:
        """Start ``server`` in ``tg`` and wait until it accepts; the event is set when its
        ``serve()`` has returned.  A failure to start is raised here."""
        up, done = anyio.Event(), anyio.Event()
        failure: list[BaseException] = []

        async def run_server() -> None:
            try:
                await server.serve(shutdown_trigger=anyio.Event().wait, ready=lambda _: up.set())
            except Exception as exc:
                failure.append(exc)
            finally:
                done.set()
                up.set()

        tg.start_soon(run_server)
        await up.wait()
        if failure:
            raise failure[0]
        return done

    @contextlib.asynccontextmanager
    async def serving(self, app: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """A started server on 127.0.0.1:0 (or ``uds``), shut down gracefully on exit."""
        server = self.server(app, **kwargs)
        async with anyio.create_task_group() as tg:
            done = await self.start(tg, server)
            try:
                yield server
            finally:
                server.shutdown()
                with anyio.fail_after(5):
                    await done.wait()


@pytest.fixture(params=["asyncio", "trio"])
def driver(request: pytest.FixtureRequest) -> Driver:
    if request.param == "trio":
        pytest.importorskip("trio")
    return Driver(request.param)


def url(server: Any, path: str = "/") -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def read_body(receive: Receive) -> bytes:
    body = bytearray()  # not bytes +=, which copies all so far each time: 32 MB took seconds
    while True:
        message = await receive()
        assert message["type"] == "http.request"
        body += message["body"]
        if not message["more_body"]:
            return bytes(body)


async def respond(send: Send, body: bytes, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Client:
    """A raw loopback connection: bytes out, bytes in, responses read by an independent h11."""

    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self._buffer = b""

    @classmethod
    async def connect(cls, server: Any, request: bytes = b"") -> Client:
        """Connect to ``server`` and send ``request``, if any."""
        client = cls(await anyio.connect_tcp("127.0.0.1", server.port))
        if request:
            await client.write(request)
        return client

    @property
    def port(self) -> int:
        return int(self.stream.extra(anyio.abc.SocketAttribute.local_port))

    async def write(self, data: bytes) -> None:
        await self.stream.send(data)

    async def read(self) -> bytes:
        """The next bytes, ``b""`` at the end."""
        if self._buffer:
            data, self._buffer = self._buffer, b""
            return data
        try:
            return await self.stream.receive(65536)
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return b""

    async def read_until(self, separator: bytes) -> bytes:
        data = b""
        while separator not in data:
            chunk = await self.read()
            assert chunk, f"closed before {separator!r}: {data!r}"
            data += chunk
        end = data.index(separator) + len(separator)
        data, self._buffer = data[:end], data[end:]
        return data

    async def read_all(self) -> bytes:
        data = b""
        while chunk := await self.read():
            data += chunk
        return data

    async def responses(self, count: int) -> list[tuple[h11.Response, bytes]]:
        """Read ``count`` responses with an h11 client parser."""
        client = h11.Connection(h11.CLIENT)
        results = []
        for _ in range(count):
            # Let h11 expect a response to a GET, whatever request was written.
            if client.our_state is h11.IDLE:
                client.send(h11.Request(method="GET", target="/", headers=[("Host", "t")]))
                client.send(h11.EndOfMessage())
            head: h11.Response | None = None
            body = b""
            while True:
                event = client.next_event()
                if event is h11.NEED_DATA:
                    client.receive_data(await self.read())
                elif isinstance(event, h11.Response):
                    head = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                else:
                    raise AssertionError(f"unexpected {event!r}")
            assert head is not None
            results.append((head, body))
            if client.our_state is h11.DONE and client.their_state is h11.DONE:
                client.start_next_cycle()
        return results

    async def close(self) -> None:
        await self.stream.aclose()

    async def abort(self) -> None:
        """Close with a reset, not a FIN."""
        raw = self.stream.extra(anyio.abc.SocketAttribute.raw_socket)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await self.stream.aclose()


# --------------------------------------------------------------------------------------------


def test_demo_app_over_httpx(driver: Driver) -> None:
    async def main() -> None:
        async with driver.serving(demo_app) as server, httpx.AsyncClient() as client:
            page = await client.get(url(server))
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assert "Hello from asgi-sansio" in page.text and "/echo" in page.text

            echo = await client.post(url(server, "/echo"), content=b"ping",
                                     headers={"content-type": "text/x-ping"})
            assert (echo.status_code, echo.content) == (200, b"ping")
            assert echo.headers["content-type"] == "text/x-ping"

            stream = await client.get(url(server, "/stream"))
            assert stream.headers["transfer-encoding"] == "chunked"
            assert stream.text.splitlines() == [f"chunk {i}" for i in range(1, 6)]

            events = await client.get(url(server, "/events"))
            assert events.headers["content-type"] == "text/event-stream"
            assert events.text.count("data: tick") == 3

            headers = await client.get(url(server, "/headers"), headers={"x-demo": "yes"})
            assert ["x-demo", "yes"] in headers.json()["headers"]

            assert (await client.get(url(server, "/missing"))).status_code == 404

    driver.run(main)


def test_post_body_and_scope(driver: Driver) -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        seen.append(scope)
        body = await read_body(receive)
        await respond(send, hashlib.sha256(body).hexdigest().encode())

    async def main() -> None:
        config = Config(root_path="/api")
        async with driver.serving(app, config=config) as server, httpx.AsyncClient() as client:
            data = bytes(range(256)) * 1000
            reply = await client.post(url(server, "/x?q=1"), content=data)
            assert reply.text == hashlib.sha256(data).hexdigest()
        scope = seen[0]
        assert scope["method"] == "POST" and scope["path"] == "/api/x"
        assert scope["query_string"] == b"q=1" and scope["scheme"] == "http"
        assert scope["server"] == ("127.0.0.1", server.port)
        assert scope["client"][0] == "127.0.0.1"
        assert "state" not in scope  # the app does not support lifespan
        assert "tls" not in scope["extensions"]

    driver.run(main)


def test_keep_alive_reuses_one_connection(driver: Driver) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await respond(send, f"{scope['path']} from {scope['client'][1]}".encode())

    async def main() -> None:
        async with driver.serving(app, lifespan="off") as server:
            client = await Client.connect(server)
            for i in range(4):
                await client.write(get(f"/{i}"))
                [(head, body)] = await client.responses(1)
                assert head.status_code == 200
                assert body == f"/{i} from {client.port}".encode()
            await client.close()

    driver.run(main)


def test_pipelined_requests_answered_in_order(driver: Driver) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/slow":
            await anyio.sleep(0.05)  # a later request must still wait for this one
        await respond(send, scope["path"].encode())

    async def main() -> None:
        async with driver.serving(app, lifespan="off") as server:
            pipelined = get("/slow") + get("/a") + get("/b", "Connection: close")
            client = await Client.connect(server, pipelined)
            responses = await client.responses(3)
            assert [body for _, body in responses] == [b"/slow", b"/a", b"/b"]
            assert await client.read_all() == b""  # closed after the last, as asked
            await client.close()

    driver.run(main)


REQUEST_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="-")


def test_each_request_runs_in_its_own_context(driver: Driver) -> None:
    """A context variable an app sets is never seen by a later request, whether the next one
    comes on a new connection, after keep-alive, or pipelined behind it."""
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(REQUEST_VAR.get())
        REQUEST_VAR.set(scope["path"])
        await anyio.sleep(0.01)
        await respond(send, REQUEST_VAR.get().encode())

    async def main() -> None:
        async with driver.serving(app, lifespan="off") as server:
            client = await Client.connect(server, get("/a") + get("/b") + get("/c"))
            assert [body for _, body in await client.responses(3)] == [b"/a", b"/b", b"/c"]
            await client.write(get("/d"))
            assert [body for _, body in await client.responses(1)] == [b"/d"]
            await client.close()
            async with httpx.AsyncClient() as http:
                for path in ("/e", "/f"):
                    assert (await http.get(url(server, path))).text == path
        assert seen == ["-"] * 6

    driver.run(main)


def test_apps_use_task_groups_timeouts_and_cancellation(driver: Driver) -> None:
    """What an app does inside its task (a task group, a timeout, a cancelled child) works
    the same for every request, and the task is not left cancelled for the next one."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        steps = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep, 0.01)
            tg.start_soon(anyio.sleep_forever)
            await anyio.sleep(0.02)
            tg.cancel_scope.cancel()
        steps.append("group")
        with anyio.move_on_after(0.01) as scope_:
            await anyio.sleep_forever()
        steps.append("timeout" if scope_.cancelled_caught else "?")
        await anyio.sleep(0)
        await respond(send, " ".join(steps).encode())

    async def main() -> None:
        async with driver.serving(app, lifespan="off") as server:
            client = await Client.connect(server, get("/") + get("/"))
            assert [b for _, b in await client.responses(2)] == [b"group timeout"] * 2
            await client.write(get("/"))
            assert [b for _, b in await client.responses(1)] == [b"group timeout"]
            await client.close()

    driver.run(main)


def test_pipelined_request_after_an_app_error_with_large_answers(driver: Driver) -> None:
    """One writer at a time: the 500 queued by a failed app, a large response written while the
    client does not read, and the answers around them all come out whole and in order."""
    big = b"0123456789abcdef" * 65536  # 1 MiB, sent in 16 KiB pieces

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/boom":
            raise ValueError("boom")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/big":
            for i in range(0, len(big), 16384):
                await send({"type": "http.response.body", "body": big[i : i + 16384],
                            "more_body": True})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    async def main() -> None:
        async with driver.serving(app, lifespan="off") as server:
            client = await Client.connect(server)
            requests = [get("/boom"), get("/big"), get("/boom"), get("/a"), get("/big")]
            await client.write(b"".join(requests))
            await anyio.sleep(0.2)  # let the server fill the socket before we read
            responses = await client.responses(5)
            assert [head.status_code for head, _ in responses] == [500, 200, 500, 200, 200]
            bodies = [body for _, body in responses]
            assert bodies[1] == bodies[4] == big + b"/big"
            assert bodies[3] == b"/a"
            await client.close()

    driver.run(main)


def test_large_body_to_slow_app_pauses_reading_and_arrives_intact(driver: Driver) -> None:
    size = 32 * 1024 * 1024  # more than loopback socket buffers can absorb
    payload = hashlib.sha256(b"seed").digest() * (size // 32)
    gates: dict[str, anyio.Event] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await gates["read"].wait()
        body = await read_body(receive)
        await respond(send, f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode())

    async def main() -> None:
        gates["read"] = anyio.Event()
        sent = anyio.Event()
        config = Config(max_body_size=None)
        async with driver.serving(app, lifespan="off", config=config) as server:
            client = await Client.connect(server)

            async def upload() -> None:
                await client.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
                                   % size + payload)
                sent.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(upload)
                await anyio.sleep(0.3)
                # The app reads nothing, so the server must have stopped reading: the bytes
                # are stuck on our side, not in the server's memory.
                assert not sent.is_set()
                gates["read"].set()
            [(_, body)] = await client.responses(1)
            assert body == f"{size} {hashlib.sha256(payload).hexdigest()}".encode()
            await client.close()

    driver.run(main)


async def got_body(scope: Scope, receive: Receive, send: Send) -> None:
    await respond(send, b"got " + await read_body(receive))


def test_slow_writer_trickles_a_body(driver: Driver) -> None:
    async def main() -> None:
        async with driver.serving(got_body, lifespan="off") as server:
            client = await Client.connect(server)
            await client.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n")
            for piece in (b"ab", b"cde", b"fghij"):
                await anyio.sleep(0.05)
                await client.write(piece)
            [(head, body)] = await client.responses(1)
            assert (head.status_code, body) == (200, b"got abcdefghij")
            await client.close()

    driver.run(main)


def test_slow_reader_holds_the_apps_send_until_it_leaves(driver: Driver) -> None:
    chunk = b"x" * 1024 * 1024
    sent: list[int] = []
    outcome: dict[str, BaseException] = {}
    events: dict[str, anyio.Event] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(200):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent.append(1)
        except OSError as exc:
            outcome["send"] = exc
        finally:
            events["finished"].set()

    async def main() -> None:
        events["finished"] = anyio.Event()
        async with driver.serving(app, lifespan="off") as server:
            client = await Client.connect(server, get("/"))
            assert (await client.read_until(b"\r\n")).startswith(b"HTTP/1.1 200")
            await anyio.sleep(0.3)  # we read no more: the app's send() must be held
            assert 0 < len(sent) < 100
            await client.abort()
            await events["finished"].wait()
            assert isinstance(outcome["send"], ClientDisconnected)

    driver.run(main)


def test_many_connections_at_once(driver: Driver) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(4):
            await send({"type": "http.response.body", "body": body, "more_body": True})
            await anyio.sleep(0)
        await send({"type": "http.response.body", "body": b""})

    async def main() -> None:
        async with driver.serving(app, lifespan="off") as server:
            limits = httpx.Limits(max_connections=30)
            async with httpx.AsyncClient(limits=limits) as client:
                results: dict[int, bytes] = {}

                async def fetch(i: int) -> None:
                    reply = await client.post(url(server), content=b"%d-" % i * 5000)
                    results[i] = reply.content

                async with anyio.create_task_group() as tg:
                    for i in range(30):
                        tg.start_soon(fetch, i)
            assert results == {i: b"%d-" % i * 20000 for i in range(30)}

    driver.run(main)


def test_expect_100_continue_sent_when_the_app_reads(driver: Driver) -> None:
    async def main() -> None:
        async with driver.serving(got_body, lifespan="off") as server:
            client = await Client.connect(server)
            await client.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                               b"Expect: 100-continue\r\n\r\n")
            interim = await client.read_until(b"\r\n\r\n")
            assert interim.startswith(b"HTTP/1.1 100 ")
            await client.write(b"hello")
            [(head, body)] = await client.responses(1)
            assert (head.status_code, body) == (200, b"got hello")
            await client.close()

    driver.run(main)


def test_app_raising_before_start_gives_500(
    driver: Driver, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("boom")

    async def main() -> None:
        async with driver.serving(app, lifespan="off") as server, httpx.AsyncClient() as client:
            reply = await client.get(url(server))
            assert reply.status_code == 500

    with caplog.at_level(logging.ERROR, logger="asgi_sansio.error"):
        driver.run(main)
    errors = [r for r in caplog.records if r.name == "asgi_sansio.error"]
    assert any("Exception in ASGI application" in r.getMessage() for r in errors)
    assert any(r.exc_info and isinstance(r.exc_info[1], ValueError) for r in errors)


def test_app_raising_after_start_truncates_the_response(driver: Driver) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("boom")

    async def main() -> None:
        async with driver.serving(app, lifespan="off") as server:
            client = await Client.connect(server, get("/"))
            received = await client.read_all()
            assert received.startswith(b"HTTP/1.1 200 ")
            assert b"partial" in received
            assert not received.endswith(b"0\r\n\r\n")  # no chunked terminator: truncated
            await client.close()
            async with httpx.AsyncClient() as http:
                with pytest.raises(httpx.RemoteProtocolError):
                    await http.get(url(server))

    driver.run(main)


def test_client_disconnect_reaches_the_app(
    driver: Driver, caplog: pytest.LogCaptureFixture
) -> None:
    outcome: dict[str, Any] = {}
    events: dict[str, anyio.Event] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            assert (await receive())["type"] == "http.request"
            outcome["next"] = await receive()  # the client leaves while we wait
            try:
                await send({"type": "http.response.start", "status": 200, "headers": []})
            except OSError as exc:
                outcome["send"] = exc
                raise  # escaping the app: the driver must swallow it silently
        finally:
            events["done"].set()

    async def main() -> None:
        events["done"] = anyio.Event()
        async with driver.serving(app, lifespan="off") as server:
            client = await Client.connect(server, get("/"))
            await anyio.sleep(0.05)
            await client.close()
            await events["done"].wait()
            await anyio.sleep(0.01)  # let the driver finish the task

    with caplog.at_level(logging.DEBUG, logger="asgi_sansio"):
        driver.run(main)
    assert outcome["next"] == {"type": "http.disconnect"}
    assert isinstance(outcome["send"], ClientDisconnected)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_lifespan_state_reaches_requests_and_shutdown_runs(driver: Driver) -> None:
    log: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                log.append(message["type"])
                if message["type"] == "lifespan.startup":
                    scope["state"]["db"] = "connected"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = json.dumps(scope["state"]).encode()
        scope["state"]["db"] = "changed"  # LIFE-11: a per-request copy; the next one won't see it
        await respond(send, body)

    async def main() -> None:
        async with driver.serving(app, lifespan="on") as server, httpx.AsyncClient() as client:
            assert log == ["lifespan.startup"]
            for _ in range(2):
                reply = await client.get(url(server))
                assert reply.json() == {"db": "connected"}
        assert log == ["lifespan.startup", "lifespan.shutdown"]

    driver.run(main)


@pytest.mark.parametrize("mode", ["on", "auto"])
def test_lifespan_startup_failure_is_fatal(
    driver: Driver, mode: Literal["on", "auto"], caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    async def main() -> None:
        with pytest.raises(LifespanStartupError, match="no database"):
            await driver.serve(app, port=0, lifespan=mode, shutdown_trigger=anyio.Event().wait)

    driver.run(main)
    assert "no database" in caplog.text


def test_lifespan_unsupported_is_fatal_only_when_on(driver: Driver) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("unknown scope type")  # MAIN-14, LIFE-10
        await respond(send, b"ok")

    async def main() -> None:
        with pytest.raises(LifespanStartupError):
            await driver.serve(app, port=0, lifespan="on", shutdown_trigger=anyio.Event().wait)
        async with driver.serving(app, lifespan="auto") as server, httpx.AsyncClient() as client:
            assert (await client.get(url(server))).text == "ok"

    driver.run(main)


def test_lifespan_startup_timeout(driver: Driver, caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await anyio.sleep_forever()  # never answers startup

    async def main() -> None:
        start = anyio.current_time()
        with pytest.raises(LifespanStartupError, match="timed out"):
            await driver.serve(app, port=0, lifespan="on", lifespan_timeout=0.2,
                               shutdown_trigger=anyio.Event().wait)
        assert anyio.current_time() - start < 2  # 0.2 s, then 1 s for the app to return

    driver.run(main)
    assert "lifespan startup timed out after 0.2 s" in caplog.text


def test_lifespan_shutdown_runs_even_if_binding_fails(driver: Driver) -> None:
    log: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            log.append(message["type"])
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return

    async def main() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            with pytest.raises(OSError):
                await driver.serve(app, port=taken.getsockname()[1], lifespan="on",
                                   shutdown_trigger=anyio.Event().wait)
        assert log == ["lifespan.startup", "lifespan.shutdown"]

    driver.run(main)


def test_graceful_shutdown_lets_in_flight_request_finish(driver: Driver) -> None:
    gates: dict[str, anyio.Event] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        gates["entered"].set()
        await gates["release"].wait()
        await respond(send, b"finished")

    async def main() -> None:
        gates.update(entered=anyio.Event(), release=anyio.Event())
        server = driver.server(app, lifespan="off")
        async with anyio.create_task_group() as tg:
            done = await driver.start(tg, server)
            client = await Client.connect(server, get("/"))
            await gates["entered"].wait()
            server.shutdown()
            await anyio.sleep(0.1)
            assert not done.is_set()  # waiting for the request in flight
            with pytest.raises(OSError):  # no longer accepting
                await anyio.connect_tcp("127.0.0.1", server.port)
            gates["release"].set()
            [(head, body)] = await client.responses(1)
            assert body == b"finished"
            assert (b"connection", b"close") in head.headers
            with anyio.fail_after(2):
                await done.wait()
            await client.close()

    driver.run(main)


def test_shutdown_deadline_aborts_a_stuck_request(driver: Driver) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await anyio.sleep_forever()  # never answers, ignores everything

    async def main() -> None:
        server = driver.server(app, lifespan="off", config=Config(shutdown_timeout=0.2))
        async with anyio.create_task_group() as tg:
            done = await driver.start(tg, server)
            client = await Client.connect(server, get("/"))
            await anyio.sleep(0.05)
            server.shutdown()
            with anyio.fail_after(3):  # the core's deadline, then the app is cancelled
                await done.wait()
            assert await client.read_all() == b""
            await client.close()

    driver.run(main)


def test_serve_with_ready_callback_and_an_awaitable_trigger(driver: Driver) -> None:
    async def main() -> None:
        stop = anyio.Event()
        seen: list[int | None] = []

        async with anyio.create_task_group() as tg:

            async def fetch(server: Any) -> None:
                async with httpx.AsyncClient() as client:
                    seen.append((await client.get(url(server, "/"))).status_code)
                stop.set()

            def ready(server: Any) -> None:
                seen.append(server.port)
                tg.start_soon(fetch, server)

            await driver.serve(demo_app, port=0, shutdown_trigger=stop.wait(), ready=ready)
        assert isinstance(seen[0], int) and seen[1:] == [200]

    driver.run(main)


def test_keep_alive_timeout_closes_idle_connection(driver: Driver) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, b"ok")

    async def main() -> None:
        config = Config(keep_alive_timeout=0.2)
        async with driver.serving(app, lifespan="off", config=config) as server:
            client = await Client.connect(server, get("/"))
            await client.responses(1)
            start = anyio.current_time()
            with anyio.fail_after(3):
                assert await client.read_all() == b""
            assert 0.1 < anyio.current_time() - start < 2
            await client.close()

    driver.run(main)


def test_head_timeout_answers_408(driver: Driver) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, b"never")

    async def main() -> None:
        async with driver.serving(app, lifespan="off", config=Config(head_timeout=0.2)) as server:
            client = await Client.connect(server)
            await client.write(b"GET / HTTP/1.1\r\nHost: slow")
            with anyio.fail_after(3):
                received = await client.read_all()
            assert received.startswith(b"HTTP/1.1 408 ")
            await client.close()

    driver.run(main)


def test_http2_body_timeout_answers_408_and_the_connection_serves_on(driver: Driver) -> None:
    """The per-stream body timeout fires through the driver's one timer: the stalled upload
    gets a 408 and its app a disconnect, a request after it on the same connection a 200."""
    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.events import DataReceived, ResponseReceived, StreamEnded

    disconnects: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "POST":
            while (message := await receive())["type"] == "http.request":
                pass
            disconnects.append(message["type"])
            return
        await respond(send, b"fine")

    request = [(":method", "POST"), (":path", "/"), (":scheme", "http"), (":authority", "t")]

    async def main() -> None:
        config = Config(body_timeout=0.3)
        async with driver.serving(app, lifespan="off", config=config) as server:
            h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
            h2.initiate_connection()
            h2.send_headers(1, request)
            h2.send_data(1, b"part")  # and then nothing more
            client = await Client.connect(server, h2.data_to_send())
            statuses: dict[int, bytes] = {}
            bodies: dict[int, bytes] = {1: b"", 3: b""}
            ended: set[int] = set()
            with anyio.fail_after(5):
                while ended != {1, 3}:
                    data = await client.read()
                    assert data, "the connection closed"
                    for event in h2.receive_data(data):
                        if isinstance(event, ResponseReceived):
                            statuses[event.stream_id] = dict(event.headers)[b":status"]
                            if event.stream_id == 1:  # then a request on the same connection
                                h2.send_headers(3, [(":method", "GET"), *request[1:]],
                                                end_stream=True)
                        elif isinstance(event, DataReceived):
                            bodies[event.stream_id] += event.data
                            h2.acknowledge_received_data(event.flow_controlled_length,
                                                         event.stream_id)
                        elif isinstance(event, StreamEnded):
                            ended.add(event.stream_id)
                    await client.write(h2.data_to_send())
            assert statuses == {1: b"408", 3: b"200"} and bodies[3] == b"fine"
            await client.close()
        assert disconnects == ["http.disconnect"]

    driver.run(main)


def test_asgi2_double_callable_app(driver: Driver) -> None:
    class App:
        def __init__(self, scope: Scope) -> None:
            self.scope = scope

        async def __call__(self, receive: Receive, send: Send) -> None:
            await respond(send, b"asgi2 " + self.scope["path"].encode())

    async def main() -> None:
        async with driver.serving(App, lifespan="off") as server, httpx.AsyncClient() as client:
            assert (await client.get(url(server, "/x"))).text == "asgi2 /x"

    driver.run(main)


def test_an_asyncio_app_task_cancelled_before_its_first_step_leaves_the_server() -> None:
    # App tasks leave Server.tasks from run_app's end (no done callback per request); one that
    # is cancelled before it ever runs does not get there, and cancel_apps() must see to it.
    from asgi_sansio.asyncio import Server

    async def main() -> None:
        server = Server(respond, port=0)
        server.loop.bind()

        async def never() -> None:
            raise AssertionError("a cancelled task never runs")

        task = asyncio.get_running_loop().create_task(never())
        server.tasks.add(task)
        assert server.apps_running()
        server.cancel_apps()
        # Woken by the task's end, not by a deadline (the bound only guards against a hang).
        await asyncio.wait_for(server.loop.wait_until(lambda: not server.apps_running()), 5)
        assert task.cancelled()

    asyncio.run(main())


def test_unix_socket(driver: Driver, tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await respond(send, b"over unix")

    async def main() -> None:
        async with driver.serving(app, uds=path, lifespan="off"):
            transport = httpx.AsyncHTTPTransport(uds=path)
            async with httpx.AsyncClient(transport=transport) as client:
                reply = await client.get("http://localhost/")
                assert reply.text == "over unix"
        assert not Path(path).exists()  # removed on exit

    driver.run(main)
    assert seen[0]["client"] is None
    assert seen[0]["server"] == (path, None)


def test_an_existing_listening_socket(driver: Driver) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, b"on your socket")

    async def main() -> None:
        sock = socket.create_server(("127.0.0.1", 0))
        sock.setblocking(False)
        port = sock.getsockname()[1]
        async with (
            driver.serving(app, sock=sock, lifespan="off") as server,
            httpx.AsyncClient() as client,
        ):
            assert server.port == port
            assert (await client.get(url(server))).text == "on your socket"

    driver.run(main)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_get(driver: Driver) -> None:
    async def main() -> None:
        async with driver.serving(demo_app, access_log=True) as server:
            curl = await anyio.run_process(
                ["curl", "-sS", "--max-time", "5", "-i", url(server, "/stream")], check=False
            )
            assert curl.returncode == 0, curl.stderr
            assert curl.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
            assert curl.stdout.endswith(b"chunk 4\nchunk 5\n")

    driver.run(main)


async def addresses_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the scope's client and server, as JSON."""
    await respond(send, json.dumps([scope["client"], scope["server"]]).encode())


def test_proxy_protocol_headers_name_the_client(
    driver: Driver, caplog: pytest.LogCaptureFixture
) -> None:
    ipv6 = socket.inet_pton(socket.AF_INET6, "2001:db8::5"), socket.inet_pton(
        socket.AF_INET6, "2001:db8::80")
    v2 = b"\r\n\r\n\x00\r\nQUIT\n\x21\x21\x00\x24" + b"".join(ipv6) + struct.pack(
        "!HH", 40000, 8443)

    async def main() -> None:
        config = Config(proxy_protocol=True)
        async with driver.serving(addresses_app, lifespan="off", config=config) as server:
            for header, expected in (
                (b"PROXY TCP4 203.0.113.9 198.51.100.1 61000 80\r\n",
                 [["203.0.113.9", 61000], ["198.51.100.1", 80]]),
                (v2, [["2001:db8::5", 40000], ["2001:db8::80", 8443]]),
            ):
                client = await Client.connect(server, header + get("/") + get("/"))
                answers = await client.responses(2)  # keep-alive keeps the header's addresses
                assert [json.loads(body) for _, body in answers] == [expected] * 2
                await client.close()
            # Without a header: dropped, not a word written.
            client = await Client.connect(server, get("/"))
            assert await client.read_all() == b""
            await client.close()

    with caplog.at_level(logging.INFO, logger="asgi_sansio.error"):
        driver.run(main)
    assert "must begin with a PROXY protocol header" in caplog.text  # said once, at startup


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_sends_a_proxy_protocol_header_over_http11_and_http2(driver: Driver) -> None:
    async def main() -> None:
        config = Config(proxy_protocol=True)
        async with driver.serving(addresses_app, lifespan="off", config=config) as server:
            for version in ("--http1.1", "--http2-prior-knowledge"):
                curl = await anyio.run_process(
                    ["curl", "-sS", "--max-time", "5", "--haproxy-protocol", version,
                     "-w", " %{http_version} %{local_port}", url(server)], check=False)
                assert curl.returncode == 0, curl.stderr
                body, http_version, port = curl.stdout.decode().rsplit(" ", 2)
                assert http_version == ("1.1" if version == "--http1.1" else "2")
                # curl names its own socket's addresses: the real ones, read from the header.
                assert json.loads(body) == [["127.0.0.1", int(port)], ["127.0.0.1", server.port]]

    driver.run(main)


@pytest.fixture
def tls(tmp_path: Path) -> dict[str, Any]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    pem = cert.cert_chain_pems[0].bytes().decode()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return {"server": server_context, "client": client_context, "pem": pem, "ca_file": ca_file}


def test_tls_with_httpx(driver: Driver, tls: dict[str, Any]) -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await respond(send, b"secret " + await read_body(receive))

    async def main() -> None:
        async with (
            driver.serving(app, ssl=tls["server"], lifespan="off",
                           tls_server_cert=tls["pem"]) as server,
            httpx.AsyncClient(verify=tls["client"]) as client,
        ):
            for _ in range(2):  # keep-alive over TLS
                reply = await client.get(f"https://localhost:{server.port}/")
                assert reply.text == "secret "
            big = b"z" * 300_000
            reply = await client.post(f"https://localhost:{server.port}/", content=big)
            assert reply.content == b"secret " + big

    driver.run(main)
    scope = seen[0]
    assert scope["scheme"] == "https"
    tls_ext = scope["extensions"]["tls"]
    assert tls_ext["server_cert"] == tls["pem"]
    assert tls_ext["tls_version"] in (0x0303, 0x0304)
    assert isinstance(tls_ext["cipher_suite"], int)
    assert tls_ext["client_cert_chain"] == []


def test_proxy_protocol_before_tls_is_read_before_the_handshake(
    driver: Driver, tls: dict[str, Any]
) -> None:
    async def main() -> None:
        config = Config(proxy_protocol=True)
        async with driver.serving(addresses_app, lifespan="off", config=config,
                                  ssl=tls["server"]) as server:
            raw = await anyio.connect_tcp("127.0.0.1", server.port)
            # The header and the ClientHello may share a segment: not a byte too many is read.
            await raw.send(b"PROXY TCP4 203.0.113.9 198.51.100.1 61000 443\r\n")
            stream = await TLSStream.wrap(raw, hostname="localhost", ssl_context=tls["client"],
                                          standard_compatible=False)
            client = Client(stream)  # type: ignore[arg-type]
            await client.write(get("/"))
            [(head, body)] = await client.responses(1)
            assert head.status_code == 200 and json.loads(body) == [
                ["203.0.113.9", 61000], ["198.51.100.1", 443]]
            await stream.aclose()
            # A TLS client without the header is dropped before any handshake answer.
            raw = await anyio.connect_tcp("127.0.0.1", server.port)
            await raw.send(b"\x16\x03\x01\x00\x05hello")
            assert await Client(raw).read_all() == b""
            await raw.aclose()
            if shutil.which("curl") is None:
                return
            ca = Path(tls["ca_file"])
            for version in ("--http1.1", "--http2"):
                curl = await anyio.run_process(
                    ["curl", "-sS", "--max-time", "5", "--haproxy-protocol", version,
                     "--cacert", str(ca), "-w", " %{http_version} %{local_port}",
                     f"https://localhost:{server.port}/"], check=False)
                assert curl.returncode == 0, curl.stderr
                answer, http_version, port = curl.stdout.decode().rsplit(" ", 2)
                assert http_version == ("1.1" if version == "--http1.1" else "2")
                assert json.loads(answer) == [["127.0.0.1", int(port)],
                                              ["127.0.0.1", server.port]]

    driver.run(main)


def test_tls_alpn_picks_the_clients_protocol_and_a_bad_handshake_is_dropped(
    driver: Driver, tls: dict[str, Any]
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, scope["http_version"].encode())

    async def main() -> None:
        async with driver.serving(app, ssl=tls["server"], lifespan="off") as server:
            plain = await Client.connect(server)  # not TLS at all: the server hangs up
            await plain.write(get("/"))
            assert await plain.read_all() == b""
            await plain.close()

            tls["client"].set_alpn_protocols(["http/1.1"])
            tcp = await anyio.connect_tcp("127.0.0.1", server.port)
            stream = await TLSStream.wrap(tcp, hostname="localhost",
                                          ssl_context=tls["client"], standard_compatible=False)
            assert stream.extra(TLSAttribute.alpn_protocol) == "http/1.1"
            await stream.send(get("/", "Connection: close"))
            received = b""
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                while True:
                    received += await stream.receive()
            assert received.startswith(b"HTTP/1.1 200 ") and b"\r\n1.1\r\n" in received
            await stream.aclose()

            tls["client"].set_alpn_protocols(["h2", "http/1.1"])
            async with httpx.AsyncClient(http2=True, verify=tls["client"]) as client:
                reply = await client.get(f"https://localhost:{server.port}/")
                assert (reply.http_version, reply.text) == ("HTTP/2", "2")

    driver.run(main)


def test_http2_many_streams_writing_at_once(driver: Driver) -> None:
    """h2c with prior knowledge: concurrent streams share one connection and its one writer,
    with responses larger than the flow-control window and uploads the app reads."""
    piece = bytes(range(256)) * 64  # 16 KiB

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(16):  # 256 KiB, four times the default window
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": hashlib.sha256(body).digest()})

    async def main() -> None:
        async with (
            driver.serving(app, lifespan="off") as server,
            httpx.AsyncClient(http1=False, http2=True) as client,
        ):
            results: dict[int, httpx.Response] = {}

            async def fetch(i: int) -> None:
                results[i] = await client.post(url(server, f"/{i}"), content=b"%d" % i * 40000)

            async with anyio.create_task_group() as tg:
                for i in range(20):
                    tg.start_soon(fetch, i)
        for i, reply in results.items():
            assert reply.http_version == "HTTP/2"
            assert reply.content == piece * 16 + hashlib.sha256(b"%d" % i * 40000).digest()
        assert len(results) == 20

    driver.run(main)


def test_slow_reader_over_tls_holds_the_apps_send(driver: Driver, tls: dict[str, Any]) -> None:
    """Over TLS every write goes through the writer task: the same backpressure holds."""
    chunk = b"y" * 256 * 1024
    sent: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"%d" % (len(chunk) * 100))]})
        for _ in range(100):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent.append(1)

    async def main() -> None:
        async with driver.serving(app, ssl=tls["server"], lifespan="off") as server:
            tcp = await anyio.connect_tcp("127.0.0.1", server.port)
            stream = await TLSStream.wrap(tcp, hostname="localhost",
                                          ssl_context=tls["client"], standard_compatible=False)
            await stream.send(get("/", "Connection: close"))
            await anyio.sleep(0.4)  # read nothing: the app's send() must be held
            assert len(sent) < 50, f"{len(sent)} sends of 256 KiB went through"
            received = 0
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
                while True:
                    received += len(await stream.receive())
            assert received > len(chunk) * 100 and len(sent) == 100
            await stream.aclose()

    driver.run(main)


# -- WebSocket over HTTP/1.1, with the websockets client in a worker thread -------------------


def test_websocket_echo_with_the_websockets_client(driver: Driver) -> None:
    from websockets.sync.client import connect

    def talk(port: int) -> list[Any]:
        with connect(f"ws://127.0.0.1:{port}/ws", proxy=None, open_timeout=5,
                     close_timeout=5) as ws:
            replies: list[Any] = []
            for message in ("hello", b"\x00\x01bytes", "x" * 1_000_000):
                ws.send(message)
                replies.append(ws.recv(timeout=5))
            return replies

    async def main() -> None:
        async with driver.serving(demo_app, lifespan="off") as server:
            replies = await anyio.to_thread.run_sync(talk, server.port)
        assert replies == ["hello", b"\x00\x01bytes", "x" * 1_000_000]

    driver.run(main)


def test_websocket_closed_with_1001_on_shutdown(driver: Driver) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    def wait_for_close(port: int, connected: Callable[[], None]) -> int | None:
        with connect(f"ws://127.0.0.1:{port}/", proxy=None, open_timeout=5) as ws:
            connected()
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=5)
            return closed.value.rcvd.code if closed.value.rcvd else None

    async def main() -> None:
        server = driver.server(app, lifespan="off")
        async with anyio.create_task_group() as tg:
            done = await driver.start(tg, server)
            connected = anyio.Event()
            codes: list[int | None] = []

            async def client() -> None:
                codes.append(await anyio.to_thread.run_sync(
                    wait_for_close, server.port,
                    lambda: anyio.from_thread.run_sync(connected.set),
                ))

            tg.start_soon(client)
            await connected.wait()
            server.shutdown()
            with anyio.fail_after(5):
                await done.wait()
        assert codes == [1001]

    driver.run(main)
