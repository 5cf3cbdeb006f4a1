"""A FastAPI app, unchanged, on both drivers, with httpx (HTTP/1.1 and HTTP/2) and websockets.

What FastAPI adds over Starlette is exercised through the wire: pydantic validation (a 422 made
by the framework), form and file parameters, a dependency reading lifespan state through
``request.state``, a sync endpoint run in the framework's thread pool, a streamed response, and a
WebSocket route with a path parameter.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")

import anyio
import httpx
from fastapi import Depends, FastAPI, File, Form, Request, UploadFile, WebSocket
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

pytestmark = [pytest.mark.network, pytest.mark.usefixtures("no_server_errors")]

UPLOAD = b"fastapi upload\n" * 40_000  # 600 KB


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


def store(request: Request) -> dict[str, Item]:
    """A dependency: the lifespan's dict, shared by every request."""
    return request.state.store  # type: ignore[no-any-return]


# At module level: FastAPI resolves the (string) annotations in the module's namespace.
Store = Annotated[dict[str, Item], Depends(store)]


def make_app() -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"store": {}, "greeting": "from lifespan"}

    app = FastAPI(lifespan=lifespan)

    @app.put("/items/{item_id}", status_code=201)
    async def put_item(item_id: str, item: Item, items: Store) -> dict[str, Any]:
        items[item_id] = item
        return {"id": item_id, "item": item.model_dump(), "count": len(items)}

    @app.get("/items/{item_id}")
    def get_item(item_id: str, items: Store, request: Request) -> dict[str, Any]:  # a thread
        return {"item": items[item_id].model_dump(), "greeting": request.state.greeting,
                "http_version": request.scope["http_version"]}

    @app.post("/files")
    async def files(
        upload: Annotated[UploadFile, File()], note: Annotated[str, Form()]
    ) -> dict[str, Any]:
        content = await upload.read()
        return {"note": note, "filename": upload.filename, "size": len(content),
                "sha256": hashlib.sha256(content).hexdigest()}

    @app.get("/count")
    async def count(to: int = 5) -> StreamingResponse:
        async def numbers() -> AsyncIterator[str]:
            for n in range(to):
                yield f"{n}\n"
                await anyio.sleep(0)

        return StreamingResponse(numbers(), media_type="text/plain")

    @app.websocket("/rooms/{room}")
    async def room(websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        data = await websocket.receive_json()
        await websocket.send_json({"room": room, "got": data})
        await websocket.close(code=1000)

    return app


@pytest.fixture(scope="module")
def url(start_server: Any, driver: str) -> str:
    return start_server(make_app(), driver)


@pytest.fixture(params=["http1", "h2c"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(kind: str, url: str) -> Iterator[httpx.Client]:
    h2 = kind == "h2c"
    with httpx.Client(base_url=url, http1=not h2, http2=h2, timeout=10) as http_client:
        yield http_client


def test_validated_json_and_state(client: httpx.Client, kind: str) -> None:
    item_id = f"widget-{kind}"
    put = client.put(f"/items/{item_id}", json={"name": "Widget", "price": "9.5"})
    assert put.status_code == 201
    assert put.json()["item"] == {"name": "Widget", "price": 9.5, "tags": []}
    got = client.get(f"/items/{item_id}")
    assert got.status_code == 200
    assert got.json() == {
        "item": {"name": "Widget", "price": 9.5, "tags": []}, "greeting": "from lifespan",
        "http_version": "2" if kind == "h2c" else "1.1",
    }


def test_validation_error_is_fastapis_422(client: httpx.Client) -> None:
    response = client.put("/items/x", json={"name": "No price"})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [error["loc"] for error in detail] == [["body", "price"]]


def test_form_and_file(client: httpx.Client) -> None:
    response = client.post("/files", data={"note": "hello"},
                           files={"upload": ("notes.txt", UPLOAD, "text/plain")})
    assert response.status_code == 200
    assert response.json() == {"note": "hello", "filename": "notes.txt", "size": len(UPLOAD),
                               "sha256": hashlib.sha256(UPLOAD).hexdigest()}


def test_streamed_response(client: httpx.Client) -> None:
    with client.stream("GET", "/count", params={"to": 50}) as response:
        assert response.status_code == 200
        lines = list(response.iter_lines())
    assert lines == [str(n) for n in range(50)]


def test_websocket_route(url: str) -> None:
    from websockets.exceptions import ConnectionClosedOK
    from websockets.sync.client import connect

    with connect(url.replace("http://", "ws://") + "/rooms/lobby", open_timeout=5) as websocket:
        websocket.send('{"hello": [1, 2]}')
        assert websocket.recv(timeout=5) == '{"room":"lobby","got":{"hello":[1,2]}}'
        with pytest.raises(ConnectionClosedOK):  # the server closes
            websocket.recv(timeout=5)
    assert websocket.close_code == 1000
