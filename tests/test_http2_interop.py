"""HTTP/2 through the asyncio driver with real clients over 127.0.0.1: httpx (h2c with prior
knowledge, and TLS with ALPN), curl (both ways) and an h2load smoke run.

The frame-level behaviour is tested with bytes in tests/test_http2.py; here we check that real
HTTP/2 stacks, which negotiate, multiplex and flow-control on their own, interoperate with ours.
Each test runs under a hard time bound well below 15 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import shutil
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from asgi_sansio import Config
from asgi_sansio.asyncio import Server

pytest.importorskip("h2")
pytestmark = pytest.mark.network

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

TIME_LIMIT = 12.0


def run(coro: Awaitable[None]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(coro, TIME_LIMIT)

    asyncio.run(bounded())


@contextlib.asynccontextmanager
async def serving(app: Any, **kwargs: Any) -> AsyncIterator[Server]:
    kwargs.setdefault("port", 0)
    kwargs.setdefault("lifespan", "off")
    server = Server(app, **kwargs)
    task = asyncio.create_task(server.serve(shutdown_trigger=asyncio.Event().wait))
    started = asyncio.create_task(server.wait_started())
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        started.cancel()
        await task
    try:
        yield server
    finally:
        server.shutdown()
        await asyncio.wait_for(task, 5)


@contextlib.contextmanager
def tls_contexts() -> Any:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    yield server_context, client_context, cert.cert_chain_pems[0].bytes().decode()


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        body += message["body"]
        if not message["more_body"]:
            return body


SCOPES: list[Scope] = []


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """/echo: the body's sha256 and length; /big?n=N: N bytes streamed; /slow: waits 1.5 s;
    anything else: the scope's http_version and path."""
    assert scope["type"] == "http"
    SCOPES.append(scope)
    path = scope["path"]
    if path == "/echo":
        body = await read_body(receive)
        text = f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"),
                                (b"content-length", b"%d" % len(text))]})
        await send({"type": "http.response.body", "body": text})
        return
    await read_body(receive)
    if path == "/big":
        size = int(scope["query_string"].decode().partition("=")[2])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        chunk = bytes(range(256)) * 256  # 64 KiB
        sent = 0
        while sent < size:
            part = chunk[: min(len(chunk), size - sent)]
            sent += len(part)
            await send({"type": "http.response.body", "body": part, "more_body": sent < size})
        return
    if path == "/slow":
        await asyncio.sleep(1.5)
    text = f"{scope['http_version']} {path}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": text})


def big_payload(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


# -- httpx -----------------------------------------------------------------------------------------


def test_httpx_h2c_prior_knowledge() -> None:
    # HTTP-SCOPE-03: "2", never "2.0"
    SCOPES.clear()

    async def main() -> None:
        async with serving(app) as server, httpx.AsyncClient(http1=False, http2=True) as client:
            reply = await client.get(f"http://127.0.0.1:{server.port}/hello?x=1")
            assert reply.http_version == "HTTP/2"
            assert reply.text == "2 /hello"
            assert reply.headers["server"] == "asgi-sansio"

    run(main())
    scope = SCOPES[-1]
    assert scope["http_version"] == "2" and scope["scheme"] == "http"
    assert scope["query_string"] == b"x=1"
    assert scope["headers"][0][0] == b"host"  # HTTP-SCOPE-11
    assert not any(name.startswith(b":") for name, _ in scope["headers"])


def test_httpx_tls_alpn_h2() -> None:
    # EXT-TLS-01, HTTP-SCOPE-05
    SCOPES.clear()
    with tls_contexts() as (server_context, client_context, pem):

        async def main() -> None:
            async with (
                serving(app, ssl=server_context, tls_server_cert=pem) as server,
                httpx.AsyncClient(http2=True, verify=client_context) as client,
            ):
                reply = await client.get(f"https://localhost:{server.port}/secure")
                assert reply.http_version == "HTTP/2"
                assert reply.text == "2 /secure"

        run(main())
    scope = SCOPES[-1]
    assert scope["scheme"] == "https" and scope["http_version"] == "2"
    assert scope["extensions"]["tls"]["server_cert"] == pem


def test_httpx_tls_http1_only_client_still_gets_http11() -> None:
    # ALPN falls back to http/1.1 for a client that does not offer h2
    with tls_contexts() as (server_context, client_context, pem):

        async def main() -> None:
            async with (
                serving(app, ssl=server_context, tls_server_cert=pem) as server,
                httpx.AsyncClient(verify=client_context) as client,
            ):
                reply = await client.get(f"https://localhost:{server.port}/one")
                assert reply.http_version == "HTTP/1.1" and reply.text == "1.1 /one"

        run(main())


def test_httpx_concurrent_streams_share_one_connection() -> None:
    # SRV-13: one scope per stream, a slow stream does not hold the others
    SCOPES.clear()

    async def main() -> None:
        async with serving(app) as server, httpx.AsyncClient(http1=False, http2=True) as client:
            base = f"http://127.0.0.1:{server.port}"
            slow = asyncio.create_task(client.get(f"{base}/slow"))
            replies = await asyncio.gather(*(client.get(f"{base}/n{i}") for i in range(20)))
            assert not slow.done()  # the others did not queue behind it
            assert [r.text for r in replies] == [f"2 /n{i}" for i in range(20)]
            assert (await slow).text == "2 /slow"
            assert all(r.http_version == "HTTP/2" for r in replies)

    run(main())
    ports = {scope["client"][1] for scope in SCOPES}
    assert len(ports) == 1, "every stream on one connection"
    assert len(SCOPES) == 21


def test_httpx_post_body_larger_than_the_window() -> None:
    # SRV-06: the window is credited as the app reads; the upload completes intact
    data = big_payload(1_000_000)  # ~15 default stream windows

    async def main() -> None:
        config = Config(body_buffer_size=65536)
        async with (
            serving(app, config=config) as server,
            httpx.AsyncClient(http1=False, http2=True) as client,
        ):
            reply = await client.post(f"http://127.0.0.1:{server.port}/echo", content=data)
            assert reply.http_version == "HTTP/2"
            assert reply.text == f"{len(data)} {hashlib.sha256(data).hexdigest()}"

    run(main())


def test_httpx_response_larger_than_the_window() -> None:
    # SRV-06: output waits for the client's WINDOW_UPDATEs without losing a byte
    size = 3_000_000

    async def main() -> None:
        async with serving(app) as server, httpx.AsyncClient(http1=False, http2=True) as client:
            base = f"http://127.0.0.1:{server.port}"
            big, small = await asyncio.gather(client.get(f"{base}/big?n={size}"),
                                              client.get(f"{base}/small"))
            assert big.content == big_payload(size)
            assert small.text == "2 /small"

    run(main())


def test_slow_reader_gets_the_whole_response_after_the_app_returned() -> None:
    # HTTP-TX-07: send() returning means the data is the server's to deliver
    from tests.helpers import H2Client

    size = 200_000
    returned = asyncio.Event()

    async def one_big_send(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": big_payload(size)})
        returned.set()

    async def main() -> None:
        async with serving(one_big_send) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            client = H2Client(auto_ack=False)  # a slow reader: it opens the window late
            sid = client.request()
            writer.write(client.data())
            while not client.reply(sid).ended and client.reply(sid).reset is None:
                data = await asyncio.wait_for(reader.read(65536), 5)
                assert data, "the server closed the connection"
                client.feed(data)
                if client.unacked.get(sid) and not returned.is_set():
                    await asyncio.sleep(0.1)  # let the server sit on a full window
                    client.ack(sid)
                elif client.unacked.get(sid):
                    await asyncio.sleep(0.1)  # the app is gone: still the whole body
                    client.ack(sid)
                writer.write(client.data())
            assert returned.is_set()
            reply = client.reply(sid)
            assert reply.reset is None and reply.body == big_payload(size)
            writer.close()

    run(main())


# -- curl ------------------------------------------------------------------------------------------

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


async def curl(*args: str) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--max-time", "8", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out, err


@needs_curl
def test_curl_h2c_prior_knowledge() -> None:
    async def main() -> None:
        async with serving(app) as server:
            code, out, err = await curl("--http2-prior-knowledge", "-i",
                                        f"http://127.0.0.1:{server.port}/curl")
            assert code == 0, err
            assert out.startswith(b"HTTP/2 200"), out
            assert out.endswith(b"\r\n\r\n2 /curl")

    run(main())


@needs_curl
def test_curl_tls_alpn_h2() -> None:
    with tls_contexts() as (server_context, _client_context, pem):

        async def main() -> None:
            async with serving(app, ssl=server_context, tls_server_cert=pem) as server:
                code, out, err = await curl("--http2", "-k", "-w", "\n%{http_version}",
                                            f"https://localhost:{server.port}/tls")
                assert code == 0, err
                assert out == b"2 /tls\n2", out

        run(main())


@needs_curl
def test_curl_upload_larger_than_the_window(tmp_path: Any) -> None:
    # SRV-06
    data = big_payload(300_000)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(data)

    async def main() -> None:
        async with serving(app) as server:
            code, out, err = await curl("--http2-prior-knowledge", "--data-binary", f"@{upload}",
                                        "-H", "content-type: application/octet-stream",
                                        f"http://127.0.0.1:{server.port}/echo")
            assert code == 0, err
            assert out == f"{len(data)} {hashlib.sha256(data).hexdigest()}".encode()

    run(main())


@needs_curl
def test_curl_parallel_streams_multiplexed(tmp_path: Any) -> None:
    # SRV-13.  Over TLS: curl 7.88's --parallel fails on h2c prior knowledge against any
    # server ("Error in the HTTP2 framing layer", Hypercorn too).
    SCOPES.clear()
    with tls_contexts() as (server_context, _client_context, pem):

        async def main() -> None:
            async with serving(app, ssl=server_context, tls_server_cert=pem) as server:
                outputs: list[str] = []
                for i in range(8):
                    outputs += ["-o", str(tmp_path / f"out{i}"),
                                f"https://localhost:{server.port}/p{i}"]
                code, out, err = await curl("--http2", "-k", "--parallel",
                                            "-w", "%{http_version}\n", *outputs)
                assert code == 0, err
                assert out.decode().split() == ["2"] * 8

        run(main())
    for i in range(8):
        assert (tmp_path / f"out{i}").read_bytes() == f"2 /p{i}".encode()
    assert len({scope["client"][1] for scope in SCOPES}) == 1  # one connection


# -- h2load ----------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client) missing")
def test_h2load_smoke() -> None:
    async def main() -> None:
        async with serving(app) as server:
            proc = await asyncio.create_subprocess_exec(
                "h2load", "-n", "200", "-c", "4", "-m", "10",
                f"http://127.0.0.1:{server.port}/load",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 10)
            text = out.decode()
            assert proc.returncode == 0, (text, err)
            match = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, "
                              r"(\d+) succeeded, (\d+) failed, (\d+) errored", text)
            assert match, text
            total, _, done, succeeded, failed, errored = map(int, match.groups())
            assert (total, done, succeeded, failed, errored) == (200, 200, 200, 0, 0), text
            assert "status codes: 200 2xx" in text, text
            assert "h2c" in text or "Application protocol: h2c" in text, text

    run(main())


# -- latency -----------------------------------------------------------------------------------


def test_accepted_sockets_disable_nagle() -> None:
    import socket

    nodelay: list[int] = []

    async def main() -> None:
        server_ref: list[Server] = []

        async def probe(scope: Scope, receive: Receive, send: Send) -> None:
            for connection in server_ref[0].connections:
                sock = connection._transport.get_extra_info("socket")  # type: ignore[attr-defined]
                nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            await send({"type": "http.response.start", "status": 204})
            await send({"type": "http.response.body"})

        async with serving(probe) as server, httpx.AsyncClient(http1=False, http2=True) as client:
            server_ref.append(server)
            reply = await client.get(f"http://127.0.0.1:{server.port}/")
            assert reply.status_code == 204

    run(main())
    assert nodelay and all(nodelay), nodelay
