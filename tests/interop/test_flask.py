"""A Flask (WSGI) app, unchanged, through asgiref's ``WsgiToAsgi`` adapter behind our server.

Routes with query strings, a JSON body, an HTML form POST with a file, a streamed (generator)
response, a redirect and Flask's own 404 and 405.  Clients: httpx over HTTP/1.1 and HTTP/2 with
prior knowledge, and curl for the form.

Both drivers.  asgiref's adapter runs the WSGI app in a thread handed out by asyncio, so on trio
its coroutines run on an asyncio loop of their own and the conftest bridges them to the trio
driver (``_asyncio_on_trio``); the app is the same object and the wire is the trio driver's.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask")
pytest.importorskip("asgiref")

import httpx
from asgiref.wsgi import WsgiToAsgi
from flask import Flask, Response, jsonify, redirect, request, stream_with_context

pytestmark = [pytest.mark.network, pytest.mark.usefixtures("no_server_errors")]

UPLOAD = b"\x00flask\xff" * 50_000


def make_app() -> Flask:
    app = Flask("interop")

    @app.get("/")
    def index() -> str:
        return f"hello {request.args.get('who', 'flask')} over {request.environ['SERVER_PROTOCOL']}"

    @app.post("/json")
    def echo_json() -> Any:
        data = request.get_json()
        return jsonify(received=data, length=request.content_length), 201

    @app.post("/form")
    def form() -> Any:
        upload = request.files["attachment"]
        content = upload.read()
        return jsonify(name=request.form["name"], filename=upload.filename, size=len(content),
                       sha256=hashlib.sha256(content).hexdigest())

    @app.get("/stream")
    def stream() -> Response:
        def rows() -> Iterator[str]:
            for n in range(30):
                yield f"row {n}\n"

        return Response(stream_with_context(rows()), mimetype="text/plain")

    @app.get("/old")
    def old() -> Any:
        return redirect("/?who=redirected", code=302)

    return app


@pytest.fixture(scope="module")
def url(start_server: Any, driver: str) -> str:
    return start_server(WsgiToAsgi(make_app()), driver, asyncio_app=True)


@pytest.fixture(params=["http1", "h2c"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(kind: str, url: str) -> Iterator[httpx.Client]:
    h2 = kind == "h2c"
    with httpx.Client(base_url=url, http1=not h2, http2=h2, timeout=10) as http_client:
        yield http_client


def test_get_json_and_redirect(client: httpx.Client, kind: str) -> None:
    protocol = "HTTP/2" if kind == "h2c" else "HTTP/1.1"
    assert client.get("/", params={"who": "you"}).text == f"hello you over {protocol}"
    document = b'{"list": [1, 2, 3], "text": "ok"}'
    posted = client.post("/json", content=document, headers={"content-type": "application/json"})
    assert posted.status_code == 201
    assert posted.json() == {"received": {"list": [1, 2, 3], "text": "ok"},
                             "length": len(document)}
    redirected = client.get("/old", follow_redirects=True)
    assert [r.status_code for r in redirected.history] == [302]
    assert redirected.text == f"hello redirected over {protocol}"


def test_flask_errors_pass_through(client: httpx.Client) -> None:
    assert client.get("/nowhere").status_code == 404
    not_allowed = client.delete("/json")
    assert not_allowed.status_code == 405
    assert set(not_allowed.headers["allow"].replace(" ", "").split(",")) == {"POST", "OPTIONS"}


def test_form_post_with_file(client: httpx.Client) -> None:
    response = client.post("/form", data={"name": "httpx"},
                           files={"attachment": ("blob.bin", UPLOAD)})
    assert response.status_code == 200
    assert response.json() == {"name": "httpx", "filename": "blob.bin", "size": len(UPLOAD),
                               "sha256": hashlib.sha256(UPLOAD).hexdigest()}


def test_streamed_generator(client: httpx.Client) -> None:
    with client.stream("GET", "/stream") as response:
        assert response.status_code == 200
        lines = list(response.iter_lines())
    assert lines == [f"row {n}" for n in range(30)]


def test_form_post_with_curl(url: str, tmp_path: Path) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(UPLOAD)
    result = subprocess.run(
        [curl, "-sS", "--fail", "--max-time", "20", "-F", "name=curl",
         "-F", f"attachment=@{blob}", f"{url}/form"],
        capture_output=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert b'"sha256":"%s"' % hashlib.sha256(UPLOAD).hexdigest().encode() in result.stdout
