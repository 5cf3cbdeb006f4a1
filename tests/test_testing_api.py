"""asgi_sansio.testing: the public harness and strategies that let users fuzz their own apps.

Each check here can fail: correct apps pass, buggy apps are caught (and hypothesis finds them),
and a broken core is reported as an InvariantError.
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import h11
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from asgi_sansio import AppMisuseError, Config, StreamEnded
from asgi_sansio.testing import (
    AppError,
    AppHarness,
    AsyncAppHarness,
    HarnessError,
    InvariantError,
    Response,
)
from asgi_sansio.testing.strategies import (
    HTTPRequest,
    MalformedRequest,
    http_requests,
    malformed_requests,
    misused_response_messages,
    response_messages,
    splits,
    websocket_messages,
)

from .conftest import examples

ROOT = Path(__file__).resolve().parent.parent
SMALL = Config(max_head_size=2048, max_target_length=512, max_header_count=24)
# Headers a server adds or owns per protocol: everything else must decode the same.
PER_PROTOCOL = {b"date", b"server", b"content-length", b"transfer-encoding", b"connection"}


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A correct app: answers with what it saw, so the tests can compare."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["greeting"] = "hi"
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = [(b"x-method", scope["method"].encode()), (b"x-path", scope["raw_path"]),
               (b"x-query", scope["query_string"] or b"-"),
               (b"x-state", str(scope.get("state", {}).get("greeting")).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def comparable(response: Response) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    return (response.status, [h for h in response.headers if h[0] not in PER_PROTOCOL],
            response.body)


def send_fields(harness: AppHarness, req: HTTPRequest, http2: bool = False) -> Response:
    return harness.request(req.method, req.target, req.headers, req.body, http2=http2,
                           chunked=req.chunked)


# -- a correct app passes -----------------------------------------------------------------------


@given(http_requests(methods=("GET", "POST", "PUT", "DELETE")))
def test_http1_and_http2_decode_identically(req: HTTPRequest) -> None:
    with AppHarness(echo) as harness:
        h1 = send_fields(harness, req)
        h2 = send_fields(harness, req, http2=True)
    assert (h1.http_version, h2.http_version) == ("1.1", "2")
    assert comparable(h1) == comparable(h2)
    assert h1.body == req.body
    assert h1.header("x-method") == req.method.encode()


@given(st.data())
def test_raw_wire_in_any_split_reaches_the_app_as_sent(data: st.DataObject) -> None:
    req = data.draw(http_requests())
    chunks = data.draw(splits(req.wire))
    with AppHarness(echo) as harness:
        conn = harness.connect()
        out = b"".join(conn.send(chunk) for chunk in chunks)
        (scope,) = conn.scopes
        out += conn.close()
    assert scope["method"] == req.method
    assert scope["raw_path"] + (b"?" + scope["query_string"] if "?" in req.target else b"") \
        == req.target.encode()
    assert [h for h in scope["headers"] if h[0] not in (b"host", b"content-length",
                                                        b"transfer-encoding")] \
        == list(req.headers)
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=req.method, target="/", headers=[("host", "x")]))
    client.receive_data(out)
    response = client.next_event()
    assert isinstance(response, h11.Response) and response.status_code == 200
    body = b""
    while isinstance(event := client.next_event(), h11.Data):
        body += event.data
    assert body == (b"" if req.method == "HEAD" else req.body)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(malformed_requests(SMALL))
def test_malformed_requests_are_refused_and_nothing_is_smuggled(bad: MalformedRequest) -> None:
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    with AppHarness(echo, config=SMALL) as harness:
        conn = harness.connect()
        wire = bad.wire if bad.outcome == "repaired" else bad.wire + smuggled
        out = conn.send(wire) + conn.close()
        paths = [scope["path"] for scope in conn.scopes]
    assert "/smuggled" not in paths
    status = int(out.split(b" ", 2)[1])
    if bad.outcome == "refused":
        assert paths == [] and 400 <= status < 600
    elif bad.outcome == "body_refused":
        assert paths == ["/"] and status == 400
    else:
        assert status == 200


@given(websocket_messages())
def test_websocket_echo(messages: list[str | bytes]) -> None:
    with AppHarness(echo) as harness:
        ws = harness.websocket("/chat")
        assert ws.accepted
        for message in messages:
            if isinstance(message, str):
                ws.send_text(message)
            else:
                ws.send_bytes(message)
            assert ws.receive() == message
        ws.close()
        assert ws.close_code == 1000


def test_lifespan_state_reaches_requests() -> None:
    with AppHarness(echo) as harness:
        harness.startup()
        assert harness.request().header("x-state") == b"hi"
        harness.shutdown()


def test_failed_startup_is_reported() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    with AppHarness(app) as harness, pytest.raises(HarnessError, match="no database"):
        harness.startup()


# -- the synthetic clock ----------------------------------------------------------------------


def test_keep_alive_timeout_closes_an_idle_connection_on_the_synthetic_clock() -> None:
    with AppHarness(echo, config=Config(keep_alive_timeout=5.0)) as harness:
        conn = harness.connect()
        assert conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 200 ")
        harness.advance(4.999)
        assert not conn.closed
        harness.advance(0.001)
        assert conn.closed and conn.read() == b""
        assert harness.now == 5.0


def test_head_timeout_answers_408() -> None:
    with AppHarness(echo, config=Config(head_timeout=20.0)) as harness:
        conn = harness.connect()
        assert conn.send(b"GET / HTTP/1.1\r\n") == b""
        harness.advance(19.0)
        assert conn.read() == b""
        harness.advance(1.0)
        assert conn.read().startswith(b"HTTP/1.1 408 ") and conn.closed


def test_app_sleeps_follow_the_synthetic_clock() -> None:
    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await asyncio.sleep(3600)  # an hour of the harness's clock, none of the real one
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    with AppHarness(slow, config=Config(keep_alive_timeout=7200)) as harness:
        conn = harness.connect()
        assert conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == b""
        harness.advance(3599)
        assert conn.read() == b""
        harness.advance(1)
        assert conn.read().startswith(b"HTTP/1.1 204 ")
        with pytest.raises(HarnessError, match="no complete response"):
            harness.request()


# -- buggy apps are caught ----------------------------------------------------------------------


def test_hypothesis_finds_an_app_that_crashes_on_some_input() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message["body"]
            if not message["more_body"]:
                break
        if b"\0" in body:  # the planted bug: a C-style string
            raise ValueError("NUL in the body")
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": body})

    def crashes(req: HTTPRequest) -> bool:
        with AppHarness(app) as harness:
            try:
                send_fields(harness, req)
            except AppError as error:
                assert isinstance(error.errors[0], ValueError)
                assert "NUL in the body" in str(error)  # the traceback is in the message
                return True
        return False

    # A search, not a property run: it stops at the first hit (derandomised, about 130 calls
    # with the shrinking), so its budget is what finding the bug takes and no profile scales it.
    found = find(http_requests(methods=("POST",)), crashes,
                 settings=settings(max_examples=500, database=None, derandomize=True))
    assert found.body == b"\0"  # shrunk to the smallest case


def test_hypothesis_finds_misordered_messages() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        if scope["query_string"]:  # the planted bug: the body goes out before the start
            await send({"type": "http.response.body", "body": b"early"})
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"ok"})

    @settings(max_examples=examples(200), database=None)
    @given(http_requests(methods=("GET",)))
    def app_serves(req: HTTPRequest) -> None:
        with AppHarness(app) as harness:
            send_fields(harness, req)

    with pytest.raises(AppError) as caught:
        app_serves()
    assert isinstance(caught.value.errors[0], AppMisuseError)


def test_an_unfinished_response_is_caught() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        # the planted bug: returns without the final body message

    for http2 in (False, True):
        with AppHarness(app) as harness, pytest.raises(HarnessError, match="no complete"):
            harness.request(http2=http2)


def test_raise_app_errors_false_shows_the_server_answer() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    with AppHarness(app, raise_app_errors=False) as harness:
        assert harness.request().status == 500
        assert harness.request(http2=True).status == 500
        assert [str(e) for e in harness.app_errors] == ["boom", "boom"]


@given(response_messages(), st.booleans())
def test_valid_response_scripts_decode(messages: list[dict[str, Any]], http2: bool) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        for message in messages:
            await send(message)

    with AppHarness(app) as harness:
        response = harness.request(http2=http2)
    assert response.status == messages[0]["status"]
    assert response.body == b"".join(m.get("body", b"") for m in messages[1:])


@given(misused_response_messages(), st.booleans())
def test_misused_response_scripts_are_reported(script: tuple[str, list[Any]],
                                               http2: bool) -> None:
    _name, messages = script

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        for message in messages:
            await send(message)

    with AppHarness(app, raise_app_errors=False) as harness:
        try:
            # 500 if nothing went out yet; 200 if the misuse came after a complete response
            assert harness.request(http2=http2).status in (200, 500)
        except HarnessError as error:  # an aborted response: the body had begun
            assert "no complete response" in str(error)
        assert any(isinstance(e, AppMisuseError) for e in harness.app_errors)


# -- a broken core is reported ---------------------------------------------------------------------


def test_a_core_exception_is_an_invariant_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from asgi_sansio import ServerConnection

    def broken(self: ServerConnection, data: bytes, now: float) -> None:
        raise KeyError("core bug")

    monkeypatch.setattr(ServerConnection, "receive_data", broken)
    with AppHarness(echo) as harness, pytest.raises(InvariantError, match="KeyError"):
        harness.request()


def test_a_stream_ended_twice_is_an_invariant_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from asgi_sansio import ServerConnection

    original = ServerConnection.pop_events

    def doubled(self: ServerConnection) -> list[Any]:
        events = original(self)
        return events + [e for e in events if isinstance(e, StreamEnded)]

    monkeypatch.setattr(ServerConnection, "pop_events", doubled)
    with AppHarness(echo) as harness, pytest.raises(InvariantError, match="StreamEnded twice"):
        harness.request()


def test_undecodable_output_is_an_invariant_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from asgi_sansio import ServerConnection

    original = ServerConnection.data_to_send

    def garbled(self: ServerConnection) -> bytes:
        return original(self).replace(b"HTTP/1.1 200", b"HTTP/1.1 2x0")

    monkeypatch.setattr(ServerConnection, "data_to_send", garbled)
    with AppHarness(echo) as harness, pytest.raises(InvariantError, match="does not decode"):
        harness.request()


# -- the async API, the example, packaging --------------------------------------------------------


def test_async_api_inside_a_running_loop() -> None:
    async def main() -> tuple[Response, Response, str | bytes]:
        async with AsyncAppHarness(echo) as harness:
            await harness.startup()
            h1 = await harness.request("POST", "/a?b", body=b"xyz")
            h2 = await harness.request("POST", "/a?b", body=b"xyz", http2=True)
            ws = await harness.websocket()
            await ws.send_text("ping")
            message = await ws.receive()
            await ws.close()
            return h1, h2, message

    h1, h2, message = asyncio.run(main())
    assert comparable(h1) == comparable(h2)
    assert h1.body == b"xyz" and h1.header("x-query") == b"b" and message == "ping"


def test_the_example_finds_its_planted_bug() -> None:
    spec = importlib.util.spec_from_file_location("fuzz_my_app", ROOT / "examples/fuzz_my_app.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    with pytest.raises(AppError) as caught:
        example.test_app_answers_every_request()
    assert isinstance(caught.value.errors[0], UnicodeDecodeError)
    with AppHarness(example.app) as harness:
        assert harness.request("GET", "/?Ada").body == b"hello, Ada"


def test_hypothesis_stays_optional() -> None:
    code = (
        "import sys, asgi_sansio, asgi_sansio.testing\n"
        "assert 'hypothesis' not in sys.modules, 'testing imported hypothesis'\n"
        "sys.modules['hypothesis'] = None\n"
        "try:\n"
        "    import asgi_sansio.testing.strategies\n"
        "except ImportError as e:\n"
        "    assert 'asgi-sansio[testing]' in str(e), e\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
