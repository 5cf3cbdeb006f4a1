"""A Starlette app, unchanged, on both drivers, with real clients.

JSON both ways, a multipart upload, a streamed response, server-sent events that prove each
event leaves when it is sent, WebSocket echo and close codes, and lifespan state as Starlette
exposes it (``request.state``, the ASGI ``scope["state"]``, copied per request).  Clients:
httpx over HTTP/1.1, HTTP/2 with prior knowledge and HTTP/2 over TLS (ALPN), the aiohttp client
and the websockets client.  curl, h2load and wrk against the same app are in test_clients.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("python_multipart")  # Starlette's form parser

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .conftest import TLSCerts

pytestmark = [pytest.mark.network, pytest.mark.usefixtures("no_server_errors")]

UPLOAD = bytes(range(256)) * 2000  # 512000 bytes, every byte value


def make_app() -> Starlette:
    """A fresh app: its lifespan state (and SSE gates) belong to one server."""
    gates: dict[str, anyio.Event] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        yield {"greeting": "set at startup", "visits": []}

    async def get_json(request: Request) -> Response:
        return JSONResponse({
            "hello": "world", "http_version": request.scope["http_version"],
            "scheme": request.url.scheme, "query": dict(request.query_params),
        })

    async def post_json(request: Request) -> Response:
        data = await request.json()
        return JSONResponse({"received": data, "type": request.headers["content-type"]},
                            status_code=201)

    async def upload(request: Request) -> Response:
        async with request.form() as form:
            file = form["file"]
            assert not isinstance(file, str)
            content = await file.read()
            return JSONResponse({
                "name": form["name"], "filename": file.filename,
                "content_type": file.content_type, "size": len(content),
                "sha256": hashlib.sha256(content).hexdigest(),
            })

    async def stream(request: Request) -> Response:
        async def lines() -> AsyncIterator[bytes]:
            for n in range(10):
                yield b"line %d\n" % n
                await anyio.sleep(0)

        return StreamingResponse(lines(), media_type="text/plain")

    async def events(request: Request) -> Response:
        """Event 0, then waits until the client says it has seen it (``/sse/release``), then
        events 1 and 2: a server that buffered the stream would deadlock here."""
        gate = gates[request.query_params["id"]] = anyio.Event()

        async def generate() -> AsyncIterator[str]:
            yield "event: tick\ndata: 0\n\n"
            with anyio.fail_after(5):
                await gate.wait()
            yield "event: tick\ndata: 1\n\n"
            yield 'event: done\ndata: {"last": 2}\n\n'

        return StreamingResponse(generate(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache"})

    async def release(request: Request) -> Response:
        gates[request.query_params["id"]].set()
        return Response(status_code=204)

    async def state(request: Request) -> Response:
        keys = sorted(request.scope["state"])
        leaked = getattr(request.state, "per_request", None)  # set by an earlier request?
        request.state.per_request = "mine"  # Starlette writes it into scope["state"]
        request.state.visits.append(request.url.path)  # the shared list is the same object
        return JSONResponse({
            "greeting": request.state.greeting, "visits": len(request.state.visits),
            "scope_state_keys": keys, "leaked": leaked,
        })

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol=(websocket.scope["subprotocols"] or [None])[0])
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") == "close please":
                    await websocket.close(code=4000, reason="asked to")
                    return
                if message.get("text") is not None:
                    await websocket.send_text("echo: " + message["text"])
                else:
                    await websocket.send_bytes(message["bytes"][::-1])
        except WebSocketDisconnect:
            pass

    return Starlette(lifespan=lifespan, routes=[
        Route("/json", get_json, methods=["GET"]),
        Route("/json", post_json, methods=["POST"]),
        Route("/upload", upload, methods=["POST"]),
        Route("/stream", stream),
        Route("/sse", events),
        Route("/sse/release", release, methods=["POST"]),
        Route("/state", state),
        WebSocketRoute("/ws", echo),
    ])


@pytest.fixture(scope="module")
def url(start_server: Any, driver: str) -> str:
    return start_server(make_app(), driver)


@pytest.fixture(scope="module")
def tls_url(start_server: Any, driver: str) -> str:
    return start_server(make_app(), driver, tls=True)


CLIENTS = ["http1", "h2c", "h2-tls"]


@pytest.fixture(params=CLIENTS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(
    kind: str, driver: str, request: pytest.FixtureRequest, tls_certs: TLSCerts
) -> Iterator[httpx.Client]:
    """httpx over HTTP/1.1, HTTP/2 with prior knowledge, or HTTP/2 negotiated by TLS ALPN.
    (``driver`` is named so that pytest parametrizes the servers looked up below.)"""
    if kind == "h2-tls":
        base = request.getfixturevalue("tls_url")
        verify: Any = tls_certs.client_context()
    else:
        base, verify = request.getfixturevalue("url"), True
    with httpx.Client(
        base_url=base, http1=kind == "http1", http2=kind != "http1", verify=verify, timeout=10
    ) as http_client:
        yield http_client


def test_json_both_ways(client: httpx.Client, kind: str) -> None:
    got = client.get("/json", params={"q": "a b", "n": "1"})
    assert got.status_code == 200
    assert got.http_version == ("HTTP/1.1" if kind == "http1" else "HTTP/2")
    assert got.headers["content-type"] == "application/json"
    assert got.json() == {
        "hello": "world", "http_version": "1.1" if kind == "http1" else "2",
        "scheme": client.base_url.scheme, "query": {"q": "a b", "n": "1"},
    }
    document = {"text": "héllo ✓", "numbers": list(range(100)), "nested": {"ok": True}}
    posted = client.post("/json", json=document)
    assert posted.status_code == 201
    assert posted.json() == {"received": document, "type": "application/json"}


def test_multipart_upload(client: httpx.Client) -> None:
    response = client.post(
        "/upload", data={"name": "ünïcode"},
        files={"file": ("data.bin", UPLOAD, "application/octet-stream")},
    )
    assert response.status_code == 200
    assert response.json() == {
        "name": "ünïcode", "filename": "data.bin", "content_type": "application/octet-stream",
        "size": len(UPLOAD), "sha256": hashlib.sha256(UPLOAD).hexdigest(),
    }


def test_streaming_response(client: httpx.Client, kind: str) -> None:
    with client.stream("GET", "/stream") as response:
        body = b"".join(response.iter_bytes())
        assert response.status_code == 200
        assert "content-length" not in response.headers
        if kind == "http1":
            assert response.headers["transfer-encoding"] == "chunked"
    assert body == b"".join(b"line %d\n" % n for n in range(10))


def test_server_sent_events(client: httpx.Client, request: pytest.FixtureRequest) -> None:
    gate = request.node.callspec.id
    seen: list[str] = []
    with client.stream("GET", "/sse", params={"id": gate}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        for line in lines:
            seen.append(line)
            if line == "" and seen[:-1]:
                break  # the first event is complete; the server now waits for us
        assert seen == ["event: tick", "data: 0", ""]
        # Over HTTP/2 the release goes on the same connection as the open stream.
        assert client.post("/sse/release", params={"id": gate}).status_code == 204
        seen += list(lines)
    assert seen == [
        "event: tick", "data: 0", "", "event: tick", "data: 1", "",
        "event: done", 'data: {"last": 2}', "",
    ]


def test_lifespan_state(client: httpx.Client) -> None:
    first = client.get("/state").json()
    second = client.get("/state").json()
    assert first["greeting"] == "set at startup"
    assert first["scope_state_keys"] == ["greeting", "visits"]
    # Each request gets a shallow copy: attributes set on one are not seen by the next,
    # while the objects inside (the list) are shared.
    assert first["leaked"] is None and second["leaked"] is None
    assert second["visits"] == first["visits"] + 1


def test_websocket_with_the_websockets_client(url: str) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    ws_url = url.replace("http://", "ws://") + "/ws"
    with connect(ws_url, subprotocols=["chat"], open_timeout=5) as websocket:  # type: ignore[list-item]
        assert websocket.subprotocol == "chat"
        websocket.send("hello")
        assert websocket.recv(timeout=5) == "echo: hello"
        websocket.send(b"\x00\x01\x02" * 1000)
        assert websocket.recv(timeout=5) == b"\x02\x01\x00" * 1000
        big = "x" * 200_000  # beyond one read and one frame buffer
        websocket.send(big)
        assert websocket.recv(timeout=5) == "echo: " + big
        websocket.send("close please")
        with pytest.raises(ConnectionClosed) as closed:
            websocket.recv(timeout=5)
    assert websocket.close_code == 4000
    assert websocket.close_reason == "asked to"
    assert "4000" in str(closed.value)


def test_websocket_over_tls(tls_url: str, tls_certs: TLSCerts) -> None:
    from websockets.sync.client import connect

    ws_url = tls_url.replace("https://", "wss://") + "/ws"
    with connect(ws_url, ssl=tls_certs.client_context(), open_timeout=5) as websocket:
        websocket.send("secure")
        assert websocket.recv(timeout=5) == "echo: secure"


def test_aiohttp_client(url: str) -> None:
    aiohttp = pytest.importorskip("aiohttp")

    async def main() -> dict[str, Any]:
        results: dict[str, Any] = {}
        async with aiohttp.ClientSession(url, timeout=aiohttp.ClientTimeout(total=10)) as session:
            async with session.get("/json", params={"from": "aiohttp"}) as response:
                results["json"] = (response.status, response.version, await response.json())
            form = aiohttp.FormData()
            form.add_field("name", "aio")
            form.add_field("file", UPLOAD, filename="up.bin",
                           content_type="application/octet-stream")
            async with session.post("/upload", data=form) as response:
                results["upload"] = await response.json()
            async with session.get("/stream") as response:
                results["stream"] = [line async for line in response.content]
            async with session.ws_connect("/ws") as websocket:
                await websocket.send_str("from aiohttp")
                results["ws"] = (await websocket.receive(timeout=5)).data
        return results

    results = asyncio.run(main())
    status, version, document = results["json"]
    assert (status, version.major, version.minor) == (200, 1, 1)
    assert document["query"] == {"from": "aiohttp"}
    assert results["upload"]["sha256"] == hashlib.sha256(UPLOAD).hexdigest()
    assert results["upload"]["name"] == "aio"
    assert results["stream"] == [b"line %d\n" % n for n in range(10)]
    assert results["ws"] == "echo: from aiohttp"
