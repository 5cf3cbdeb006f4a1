"""The asyncio driver over real loopback sockets, with real clients (httpx, curl, raw sockets).

Each test runs its own event loop under a hard time bound; servers bind port 0.  The core's
protocol behaviour is tested with bytes elsewhere: here we check what only a driver can get
wrong: routing, waking, backpressure, timers, TLS, lifespan, shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import shutil
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import h11
import httpx
import pytest

from asgi_sansio import ClientDisconnected, Config
from asgi_sansio._demo import app as demo_app
from asgi_sansio.asyncio import LifespanStartupError, Server, serve

pytestmark = pytest.mark.network

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

TIME_LIMIT = 9.0


def run(coro: Awaitable[None]) -> None:
    """Run one test body on a fresh loop; no test may take longer than TIME_LIMIT."""

    async def bounded() -> None:
        await asyncio.wait_for(coro, TIME_LIMIT)

    asyncio.run(bounded())


@contextlib.asynccontextmanager
async def serving(app: Any, **kwargs: Any) -> AsyncIterator[Server]:
    """A started server on 127.0.0.1:0 (or ``uds``), shut down gracefully on exit."""
    kwargs.setdefault("port", 0)
    server = Server(app, **kwargs)
    task = asyncio.create_task(server.serve(shutdown_trigger=asyncio.Event().wait))
    started = asyncio.create_task(server.wait_started())
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        started.cancel()
        await task  # raises what made it fail
    try:
        yield server
    finally:
        server.shutdown()
        await asyncio.wait_for(task, 5)


def url(server: Server, path: str = "/") -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        assert message["type"] == "http.request"
        body += message["body"]
        if not message["more_body"]:
            return body


async def respond(send: Send, body: bytes, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_responses(
    reader: asyncio.StreamReader, count: int
) -> list[tuple[h11.Response, bytes]]:
    """Read ``count`` responses with an independent h11 client parser."""
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
                client.receive_data(await reader.read(65536))
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


# --------------------------------------------------------------------------------------------


def test_demo_app_over_httpx() -> None:
    async def main() -> None:
        async with serving(demo_app) as server, httpx.AsyncClient() as client:
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

    run(main())


def test_post_body_and_scope() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        seen.append(scope)
        body = await read_body(receive)
        await respond(send, hashlib.sha256(body).hexdigest().encode())

    async def main() -> None:
        config = Config(root_path="/api")
        async with serving(app, config=config) as server, httpx.AsyncClient() as client:
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

    run(main())


def test_keep_alive_reuses_one_connection() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await respond(send, f"{scope['path']} from {scope['client'][1]}".encode())

    async def main() -> None:
        async with serving(app, lifespan="off") as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            port = writer.get_extra_info("sockname")[1]
            for i in range(4):
                writer.write(get(f"/{i}"))
                [(head, body)] = await read_responses(reader, 1)
                assert head.status_code == 200
                assert body == f"/{i} from {port}".encode()
            writer.close()

    run(main())


def test_pipelined_requests_answered_in_order() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/slow":
            await asyncio.sleep(0.05)  # a later request must still wait for this one
        await respond(send, scope["path"].encode())

    async def main() -> None:
        async with serving(app, lifespan="off") as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(get("/slow") + get("/a") + get("/b", "Connection: close"))
            responses = await read_responses(reader, 3)
            assert [body for _, body in responses] == [b"/slow", b"/a", b"/b"]
            assert await reader.read() == b""  # closed after the last, as asked
            writer.close()

    run(main())


def test_large_body_to_slow_app_pauses_reading_and_arrives_intact() -> None:
    size = 32 * 1024 * 1024  # more than loopback socket buffers can absorb
    payload = hashlib.sha256(b"seed").digest() * (size // 32)
    may_read = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await may_read.wait()
        body = await read_body(receive)
        await respond(send, f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode())

    async def main() -> None:
        config = Config(max_body_size=None)
        async with serving(app, lifespan="off", config=config) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
            writer.write(payload)
            drained = asyncio.create_task(writer.drain())
            await asyncio.sleep(0.3)
            # The app reads nothing, so the server must have stopped reading: the bytes are
            # stuck in our buffer, not in the server's memory.
            assert not drained.done()
            assert writer.transport.get_write_buffer_size() > 0
            may_read.set()
            await drained
            [(_, body)] = await read_responses(reader, 1)
            assert body == f"{size} {hashlib.sha256(payload).hexdigest()}".encode()
            writer.close()

    run(main())


def test_slow_reader_holds_the_apps_send_until_it_leaves() -> None:
    chunk = b"x" * 1024 * 1024
    sent: list[int] = []
    outcome: dict[str, BaseException] = {}
    finished = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(200):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                sent.append(1)
        except OSError as exc:
            outcome["send"] = exc
        finally:
            finished.set()

    async def main() -> None:
        async with serving(app, lifespan="off") as server:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server.port, limit=1024
            )
            writer.write(get("/"))
            assert (await reader.readline()).startswith(b"HTTP/1.1 200")
            await asyncio.sleep(0.3)  # we read no more: the app's send() must be held
            assert 0 < len(sent) < 100
            writer.transport.abort()
            await finished.wait()
            assert isinstance(outcome["send"], ClientDisconnected)

    run(main())


def test_expect_100_continue_sent_when_the_app_reads() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, b"got " + await read_body(receive))

    async def main() -> None:
        async with serving(app, lifespan="off") as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                         b"Expect: 100-continue\r\n\r\n")
            interim = await reader.readuntil(b"\r\n\r\n")
            assert interim.startswith(b"HTTP/1.1 100 ")
            writer.write(b"hello")
            [(head, body)] = await read_responses(reader, 1)
            assert (head.status_code, body) == (200, b"got hello")
            writer.close()

    run(main())


def test_app_raising_before_start_gives_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("boom")

    async def main() -> None:
        async with serving(app, lifespan="off") as server, httpx.AsyncClient() as client:
            reply = await client.get(url(server))
            assert reply.status_code == 500

    with caplog.at_level(logging.ERROR, logger="asgi_sansio.error"):
        run(main())
    errors = [r for r in caplog.records if r.name == "asgi_sansio.error"]
    assert any("Exception in ASGI application" in r.getMessage() for r in errors)
    assert any(r.exc_info and isinstance(r.exc_info[1], ValueError) for r in errors)


def test_app_raising_after_start_truncates_the_response() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("boom")

    async def main() -> None:
        async with serving(app, lifespan="off") as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(get("/"))
            received = b""
            while chunk := await reader.read(65536):
                received += chunk
            assert received.startswith(b"HTTP/1.1 200 ")
            assert b"partial" in received
            assert not received.endswith(b"0\r\n\r\n")  # no chunked terminator: truncated
            writer.close()
            async with httpx.AsyncClient() as client:
                with pytest.raises(httpx.RemoteProtocolError):
                    await client.get(url(server))

    run(main())


def test_client_disconnect_reaches_the_app(caplog: pytest.LogCaptureFixture) -> None:
    outcome: dict[str, Any] = {}
    done = asyncio.Event()

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
            done.set()

    async def main() -> None:
        async with serving(app, lifespan="off") as server:
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(get("/"))
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.close()
            await done.wait()
            await asyncio.sleep(0.01)  # let the driver finish the task

    with caplog.at_level(logging.DEBUG, logger="asgi_sansio"):
        run(main())
    assert outcome["next"] == {"type": "http.disconnect"}
    assert isinstance(outcome["send"], ClientDisconnected)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_lifespan_state_reaches_requests_and_shutdown_runs() -> None:
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
        async with serving(app, lifespan="on") as server, httpx.AsyncClient() as client:
            assert log == ["lifespan.startup"]
            for _ in range(2):
                reply = await client.get(url(server))
                assert reply.json() == {"db": "connected"}
        assert log == ["lifespan.startup", "lifespan.shutdown"]

    run(main())


@pytest.mark.parametrize("mode", ["on", "auto"])
def test_lifespan_startup_failure_is_fatal(
    mode: Literal["on", "auto"], caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    async def main() -> None:
        with pytest.raises(LifespanStartupError, match="no database"):
            await serve(app, port=0, lifespan=mode, shutdown_trigger=asyncio.Event().wait)

    run(main())
    assert "no database" in caplog.text


def test_lifespan_unsupported_is_fatal_only_when_on() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("unknown scope type")  # MAIN-14, LIFE-10
        await respond(send, b"ok")

    async def main() -> None:
        with pytest.raises(LifespanStartupError):
            await serve(app, port=0, lifespan="on", shutdown_trigger=asyncio.Event().wait)
        async with serving(app, lifespan="auto") as server, httpx.AsyncClient() as client:
            assert (await client.get(url(server))).text == "ok"

    run(main())


def test_graceful_shutdown_lets_in_flight_request_finish() -> None:
    entered = asyncio.Event()
    release = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        entered.set()
        await release.wait()
        await respond(send, b"finished")

    async def main() -> None:
        server = Server(app, port=0, lifespan="off")
        task = asyncio.create_task(server.serve(shutdown_trigger=asyncio.Event().wait))
        await server.wait_started()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(get("/"))
        await entered.wait()
        server.shutdown()
        await asyncio.sleep(0.1)
        assert not task.done()  # waiting for the request in flight
        with pytest.raises(OSError):  # no longer accepting
            await asyncio.open_connection("127.0.0.1", server.port)
        release.set()
        [(head, body)] = await read_responses(reader, 1)
        assert body == b"finished"
        assert (b"connection", b"close") in head.headers
        await asyncio.wait_for(task, 2)
        writer.close()

    run(main())


def test_shutdown_deadline_aborts_a_stuck_request() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.Event().wait()  # never answers, ignores everything

    async def main() -> None:
        server = Server(app, port=0, lifespan="off", config=Config(shutdown_timeout=0.2))
        task = asyncio.create_task(server.serve(shutdown_trigger=asyncio.Event().wait))
        await server.wait_started()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(get("/"))
        await asyncio.sleep(0.05)
        server.shutdown()
        await asyncio.wait_for(task, 3)  # the core's deadline, then the app is cancelled
        assert await reader.read() == b""
        writer.close()

    run(main())


def test_serve_with_ready_callback_and_an_awaitable_trigger() -> None:
    async def main() -> None:
        stop = asyncio.Event()
        seen: list[int | None] = []
        tasks: list[asyncio.Task[None]] = []

        def ready(server: Server) -> None:
            seen.append(server.port)

            async def fetch() -> None:
                async with httpx.AsyncClient() as client:
                    seen.append((await client.get(url(server, "/"))).status_code)
                stop.set()

            tasks.append(asyncio.get_running_loop().create_task(fetch()))

        await serve(demo_app, port=0, shutdown_trigger=stop.wait(), ready=ready)
        assert isinstance(seen[0], int) and seen[1:] == [200]

    run(main())


def test_keep_alive_timeout_closes_idle_connection() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, b"ok")

    async def main() -> None:
        config = Config(keep_alive_timeout=0.2)
        async with serving(app, lifespan="off", config=config) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(get("/"))
            await read_responses(reader, 1)
            loop = asyncio.get_running_loop()
            start = loop.time()
            assert await asyncio.wait_for(reader.read(), 3) == b""
            assert 0.1 < loop.time() - start < 2
            writer.close()

    run(main())


def test_head_timeout_answers_408() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, b"never")

    async def main() -> None:
        async with serving(app, lifespan="off", config=Config(head_timeout=0.2)) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: slow")
            received = await asyncio.wait_for(reader.read(), 3)
            assert received.startswith(b"HTTP/1.1 408 ")
            writer.close()

    run(main())


def test_asgi2_double_callable_app() -> None:
    class App:
        def __init__(self, scope: Scope) -> None:
            self.scope = scope

        async def __call__(self, receive: Receive, send: Send) -> None:
            await respond(send, b"asgi2 " + self.scope["path"].encode())

    async def main() -> None:
        async with serving(App, lifespan="off") as server, httpx.AsyncClient() as client:
            assert (await client.get(url(server, "/x"))).text == "asgi2 /x"

    run(main())


def test_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await respond(send, b"over unix")

    async def main() -> None:
        async with serving(app, uds=path, lifespan="off"):
            transport = httpx.AsyncHTTPTransport(uds=path)
            async with httpx.AsyncClient(transport=transport) as client:
                reply = await client.get("http://localhost/")
                assert reply.text == "over unix"
        assert not Path(path).exists()  # removed on exit

    run(main())
    assert seen[0]["client"] is None
    assert seen[0]["server"] == (path, None)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_get() -> None:
    async def main() -> None:
        async with serving(demo_app, access_log=True) as server:
            curl = await asyncio.create_subprocess_exec(
                "curl", "-sS", "--max-time", "5", "-i", url(server, "/stream"),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            out, err = await curl.communicate()
            assert curl.returncode == 0, err
            assert out.startswith(b"HTTP/1.1 200 OK\r\n")
            assert out.endswith(b"chunk 4\nchunk 5\n")

    run(main())


def test_tls_with_httpx() -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    pem = cert.cert_chain_pems[0].bytes().decode()
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await respond(send, b"secret")

    async def main() -> None:
        async with (
            serving(app, ssl=server_context, lifespan="off", tls_server_cert=pem) as server,
            httpx.AsyncClient(verify=client_context) as client,
        ):
            reply = await client.get(f"https://localhost:{server.port}/")
            assert reply.text == "secret"

    run(main())
    scope = seen[0]
    assert scope["scheme"] == "https"
    tls = scope["extensions"]["tls"]
    assert tls["server_cert"] == pem
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert isinstance(tls["cipher_suite"], int)
    assert tls["client_cert_chain"] == []
