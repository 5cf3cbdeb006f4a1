"""Fuzz a small ASGI app through asgi-sansio's wire layer, in memory.

The app below has a planted bug: it decodes the percent-decoded query string as ASCII, which is
fine for every request its author tried and crashes on an escaped byte above 0x7F (``?%C3%A9``).
The hypothesis test finds it in a few seconds and shrinks it to a minimal target.

Run it with pytest (``pytest examples/fuzz_my_app.py``: the test fails, showing the bug) or
directly (``python examples/fuzz_my_app.py``: prints the minimal failing request).

Needs ``pip install 'asgi-sansio[testing]' pytest``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from hypothesis import given, settings

from asgi_sansio.testing import AppError, AppHarness
from asgi_sansio.testing.strategies import HTTPRequest, http_requests


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Greets whoever the query string names (``/?Ada`` says ``hello, Ada``)."""
    assert scope["type"] == "http"
    while (await receive()).get("more_body"):  # read (and ignore) the request body
        pass
    name = unquote_to_bytes(scope["query_string"]).decode("ascii") or "world"  # the bug
    body = f"hello, {name}".encode()
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"%d" % len(body))],
    })
    await send({"type": "http.response.body", "body": body})


@settings(max_examples=300, deadline=None)
@given(http_requests(methods=("GET", "HEAD", "POST")))
def test_app_answers_every_request(request: HTTPRequest) -> None:
    """Whatever a valid client sends, the app answers it without crashing."""
    with AppHarness(app) as harness:
        response = harness.request(request.method, request.target, request.headers,
                                   request.body, chunked=request.chunked)
        assert response.status == 200


if __name__ == "__main__":
    try:
        test_app_answers_every_request()
    except AppError as error:
        print("hypothesis found the planted bug:", type(error.errors[0]).__name__, error.errors[0])
    else:
        raise SystemExit("the planted bug was not found")
