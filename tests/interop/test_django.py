"""A Django project's ASGI application, unchanged, behind our server.

Minimal settings made in code (no settings module, no database): a plain view, a JSON view, an
async view, a streamed response, and a form that takes a POST with Django's CSRF protection on
(the token comes from the GET, the cookie with it) and a file upload.  Clients: httpx over
HTTP/1.1 and HTTP/2 with prior knowledge.

Both drivers.  Django's ASGI handler calls asyncio itself (through asgiref), so on trio its
coroutines run on an asyncio loop of their own and the conftest bridges them to the trio driver
(``_asyncio_on_trio``); the app is the same object and the wire is the trio driver's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

pytest.importorskip("django")

import django
import httpx
from django.conf import settings
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    JsonResponse,
    StreamingHttpResponse,
)
from django.middleware.csrf import get_token
from django.urls import path

pytestmark = [pytest.mark.network, pytest.mark.usefixtures("no_server_errors")]

UPLOAD = bytes(range(256)) * 1500


def index(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("hello from django\n", content_type="text/plain")
    response["X-Framework"] = "django"
    return response


def info(request: HttpRequest) -> JsonResponse:
    return JsonResponse({
        "method": request.method, "path": request.path, "query": request.GET.dict(),
        "http_version": request.scope["http_version"],  # type: ignore[attr-defined]
        "host": request.get_host(), "remote_addr": request.META["REMOTE_ADDR"],
    })


async def async_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"async": True, "user_agent": request.headers.get("user-agent", "")})


async def stream(request: HttpRequest) -> StreamingHttpResponse:
    async def parts() -> AsyncIterator[bytes]:
        for n in range(20):
            yield b"part %d\n" % n

    return StreamingHttpResponse(parts(), content_type="text/plain")


def form(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        token = get_token(request)
        return HttpResponse(
            '<form method="post" enctype="multipart/form-data">'
            f'<input type="hidden" name="csrfmiddlewaretoken" value="{token}">'
            '<input name="name"><input type="file" name="attachment"></form>'
        )
    if request.method != "POST":
        return HttpResponseNotAllowed(["GET", "POST"])
    attachment = request.FILES.get("attachment")
    content = attachment.read() if attachment is not None else b""
    return JsonResponse({
        "name": request.POST["name"], "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    })


urlpatterns = [
    path("", index),
    path("info", info),
    path("async", async_view),
    path("stream", stream),
    path("form", form),
]


def django_app() -> Any:
    if not settings.configured:
        settings.configure(
            DEBUG=False, SECRET_KEY="interop-tests-only", ALLOWED_HOSTS=["127.0.0.1"],
            ROOT_URLCONF=__name__, INSTALLED_APPS=[], DATABASES={},
            MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
            USE_TZ=True, LOGGING_CONFIG=None,
        )
        django.setup()
    from django.core.asgi import get_asgi_application

    return get_asgi_application()


@pytest.fixture(scope="module")
def url(start_server: Any, driver: str) -> str:
    return start_server(django_app(), driver, asyncio_app=True)


@pytest.fixture(params=["http1", "h2c"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(kind: str, url: str) -> Iterator[httpx.Client]:
    h2 = kind == "h2c"
    with httpx.Client(base_url=url, http1=not h2, http2=h2, timeout=10) as http_client:
        yield http_client


def test_plain_and_json_views(client: httpx.Client, kind: str, url: str) -> None:
    index_response = client.get("/")
    assert index_response.status_code == 200
    assert index_response.text == "hello from django\n"
    assert index_response.headers["x-framework"] == "django"
    assert index_response.headers["content-type"] == "text/plain"
    info_response = client.get("/info", params={"a": "1", "b": "two words"})
    assert info_response.json() == {
        "method": "GET", "path": "/info", "query": {"a": "1", "b": "two words"},
        "http_version": "2" if kind == "h2c" else "1.1",
        "host": url.removeprefix("http://"), "remote_addr": "127.0.0.1",
    }
    assert client.get("/missing").status_code == 404


def test_async_view_and_stream(client: httpx.Client) -> None:
    response = client.get("/async", headers={"user-agent": "interop/1"})
    assert response.json() == {"async": True, "user_agent": "interop/1"}
    with client.stream("GET", "/stream") as streamed:
        assert streamed.status_code == 200
        body = streamed.read()
    assert body == b"".join(b"part %d\n" % n for n in range(20))


def test_post_form_with_csrf_and_upload(client: httpx.Client) -> None:
    page = client.get("/form")
    assert page.status_code == 200
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert match is not None
    assert "csrftoken" in client.cookies
    posted = client.post(
        "/form", data={"csrfmiddlewaretoken": match.group(1), "name": "Zoë"},
        files={"attachment": ("a.bin", UPLOAD, "application/octet-stream")},
        headers={"referer": str(client.base_url) + "/form"},
    )
    assert posted.status_code == 200, posted.text
    assert posted.json() == {"name": "Zoë", "size": len(UPLOAD),
                             "sha256": hashlib.sha256(UPLOAD).hexdigest()}


def test_post_without_csrf_token_is_refused_by_django(url: str) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.post("/form", data={"name": "x"})
    assert response.status_code == 403
