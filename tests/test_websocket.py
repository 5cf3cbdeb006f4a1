"""WebSocket over HTTP/1.1: exact bytes in, exact ASGI messages and decoded frames out.

No event loop: ``Harness`` plays the driver.  The peer is wsproto in *client* mode
(``tests/helpers.WSClient``): it builds the upgrade request and masked frames and it decodes the
101 (checking Sec-WebSocket-Accept), denial responses and every frame the server writes, so the
wire format is checked by an implementation independent of the server's own use of wsproto
(which is server mode, on the frame layer only).  Frames wsproto will not write (unmasked,
reserved opcodes, bad UTF-8) are built by hand with ``raw_frame``.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import tracemalloc
from typing import Any

import pytest
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from asgi_sansio import (
    AppMisuseError,
    ClientDisconnected,
    Config,
    ConnectionClosed,
    ServerConnection,
    StreamEnded,
    StreamReadable,
)

from .helpers import (
    Harness,
    WSClient,
    make_conn,
    parse_responses,
    raw_frame,
    ws_connect,
    ws_upgrade_bytes,
)

RFC_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3's example key
RFC_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # ... and its accept token
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

ACCEPT: dict[str, Any] = {"type": "websocket.accept"}


def text(data: str) -> dict[str, Any]:
    return {"type": "websocket.send", "text": data}


def binary(data: bytes) -> dict[str, Any]:
    return {"type": "websocket.send", "bytes": data}


def recv_text(data: str) -> dict[str, Any]:
    return {"type": "websocket.receive", "bytes": None, "text": data}


def recv_bytes(data: bytes) -> dict[str, Any]:
    return {"type": "websocket.receive", "bytes": data, "text": None}


def disconnect(code: int, reason: str = "") -> dict[str, Any]:
    return {"type": "websocket.disconnect", "code": code, "reason": reason}


def closed(h: Harness) -> bool:
    return any(isinstance(e, ConnectionClosed) for e in h.events)


def ended(h: Harness, sid: int) -> int:
    return sum(1 for e in h.events if e == StreamEnded(sid))


def tick(h: Harness, now: float) -> None:
    h.now = now
    h.conn.handle_timer(now)
    h.pump()


def opened(
    client: WSClient | None = None, accept: dict[str, Any] | None = None, **config: Any
) -> tuple[Harness, WSClient, int]:
    h = Harness(make_conn(**config))
    client = client if client is not None else WSClient()
    sid = ws_connect(h, client, accept)
    return h, client, sid


def deliver(h: Harness, client: WSClient) -> None:
    """Hand the server's output to the client."""
    client.feed(h.take_output())


def accept_token(key: bytes) -> bytes:
    """RFC 6455 4.2.2, computed here rather than with wsproto's helper."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


# -- the handshake: scope ----------------------------------------------------------------------


def test_websocket_scope_exact() -> None:
    # ASGI: WS-SCOPE-01..13, AMB-08
    h = Harness(ServerConnection(now=0.0, client=("1.2.3.4", 1234), server=("5.6.7.8", 80),
                                 state={"db": 1}))
    h.feed(ws_upgrade_bytes(
        "/chat%20room/a%2Fb?token=x%20y",
        headers=[(b"Sec-WebSocket-Protocol", b"chat, superchat"),
                 (b"X-A", b"1"), (b"sec-websocket-protocol", b" v2 ,v3"), (b"x-a", b"2")],
    ))
    (ev,) = h.started()
    assert ev.scope == {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.5"},
        "http_version": "1.1",
        "scheme": "ws",
        "server": ("5.6.7.8", 80),
        "client": ("1.2.3.4", 1234),
        "root_path": "",
        "path": "/chat room/a/b",
        "raw_path": b"/chat%20room/a%2Fb",
        "query_string": b"token=x%20y",
        # WS-SCOPE-08: lowercased by h11, order and duplicates kept.
        "headers": [
            (b"host", b"example.com"), (b"upgrade", b"websocket"), (b"connection", b"Upgrade"),
            (b"sec-websocket-key", RFC_KEY), (b"sec-websocket-version", b"13"),
            (b"sec-websocket-protocol", b"chat, superchat"), (b"x-a", b"1"),
            (b"sec-websocket-protocol", b"v2 ,v3"), (b"x-a", b"2"),  # OWS trimmed
        ],
        # WS-SCOPE-10: every token of every (repeated, comma-listed) header, in order.
        "subprotocols": ["chat", "superchat", "v2", "v3"],
        "state": {"db": 1},
        "extensions": {"websocket.http.response": {}},  # EXT-WSDENY-01, no tls (EXT-TLS-01)
    }
    assert "method" not in ev.scope  # WS-SCOPE-13


def test_wss_scheme_with_tls_extension() -> None:
    # ASGI: WS-SCOPE-04, WS-SCOPE-12, EXT-TLS-01
    tls = {"server_cert": None, "tls_version": 0x0304, "cipher_suite": 0x1301}
    h = Harness(ServerConnection(now=0.0, tls=tls))
    h.feed(WSClient().request)
    scope = h.started()[0].scope
    assert scope["scheme"] == "wss"
    assert scope["extensions"]["tls"] is tls
    assert "websocket.http.response" in scope["extensions"]


def test_root_path_prefixes_path() -> None:
    # ASGI: WS-SCOPE-05, WS-SCOPE-07
    h = Harness(make_conn(root_path="/api"))
    h.feed(WSClient("/ws?x=1").request)
    scope = h.started()[0].scope
    assert (scope["root_path"], scope["path"], scope["raw_path"], scope["query_string"]) == (
        "/api", "/api/ws", b"/api/ws", b"x=1")


def test_no_subprotocols_is_empty_list_and_state_is_a_copy() -> None:
    # ASGI: WS-SCOPE-10, WS-SCOPE-11, LIFE-11
    shared: dict[str, Any] = {"k": [1]}
    h = Harness(ServerConnection(now=0.0, state=shared))
    h.feed(WSClient().request)
    scope = h.started()[0].scope
    assert scope["subprotocols"] == []
    assert scope["state"] == shared and scope["state"] is not shared


def test_connect_is_the_first_event_and_nothing_is_delivered_before_accept() -> None:
    # ASGI: WS-01, WS-02
    h = Harness()
    early = Connection(ConnectionType.CLIENT).send(TextMessage(data="early"))
    h.feed(ws_upgrade_bytes() + early)
    sid = h.started()[0].stream_id
    assert h.out == b""  # WS-01: no answer until the app replies
    assert h.receive(sid) == {"type": "websocket.connect"}
    assert h.receive(sid) is None  # WS-02: no websocket.receive before the accept
    assert h.receive(sid) is None
    assert h.out == b""
    h.send(sid, ACCEPT)
    assert StreamReadable(sid) in h.events
    assert h.receive(sid) == recv_text("early")


# -- the handshake: accept -----------------------------------------------------------------------


def test_accept_writes_101_with_the_rfc_accept_token() -> None:
    # RFC 6455 4.2.2 with 1.3's example key, computed independently of wsproto.
    assert accept_token(RFC_KEY) == RFC_ACCEPT
    h = Harness(ServerConnection(now=0.0, wall_offset=1_700_000_000.0))
    h.feed(ws_upgrade_bytes())
    h.receive(1)
    h.send(1, ACCEPT)
    assert h.out == (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        b"sec-websocket-accept: " + RFC_ACCEPT + b"\r\n"
        b"date: Tue, 14 Nov 2023 22:13:20 GMT\r\nserver: asgi-sansio\r\n\r\n"
    )
    assert not closed(h)


def test_accept_with_subprotocol_and_headers_is_decoded_by_the_client() -> None:
    # ASGI: WS-03, WS-SCOPE-10
    client = WSClient(subprotocols=["chat", "superchat"])
    h = Harness()
    h.feed(client.request)
    assert h.started()[0].scope["subprotocols"] == ["chat", "superchat"]
    h.receive(1)
    h.send(1, {"type": "websocket.accept", "subprotocol": "superchat",
               "headers": [(b"x-extra", b"1"), (b"set-cookie", b"a=b")]})
    key = next(v for n, v in h.started()[0].scope["headers"] if n == b"sec-websocket-key")
    raw = h.out
    assert b"\r\nsec-websocket-accept: " + accept_token(key) + b"\r\n" in raw
    client.feed(h.take_output())  # wsproto checks the token, Upgrade and Connection itself
    assert client.accepted is not None
    assert client.accepted.subprotocol == "superchat"
    extra = client.accepted.extra_headers
    assert (b"x-extra", b"1") in extra and (b"set-cookie", b"a=b") in extra
    assert StreamEnded(1) not in h.events and not closed(h)


def test_accept_with_unoffered_subprotocol_is_misuse_and_500() -> None:
    # ASGI: WS-04, STACK-WS-01
    h = Harness()
    h.feed(WSClient(subprotocols=["chat"]).request)
    h.receive(1)
    with pytest.raises(AppMisuseError) as info:
        h.send(1, {"type": "websocket.accept", "subprotocol": "other"})
    assert info.value.rule == "WS-04"
    (reply,) = parse_responses(h.out)
    assert reply.status == 500 and reply.headers[b"connection"] == b"close"
    assert closed(h) and ended(h, 1) == 1
    assert h.receive(1)["type"] == "websocket.disconnect"
    with pytest.raises(ClientDisconnected):
        h.send(1, ACCEPT)


@pytest.mark.parametrize("subprotocol", ["", 1, b"chat"])
def test_accept_with_bad_subprotocol_value_is_misuse(subprotocol: object) -> None:
    # ASGI: WS-03, WS-04
    h = Harness()
    h.feed(WSClient(subprotocols=["chat"]).request)
    h.receive(1)
    with pytest.raises(AppMisuseError):
        h.send(1, {"type": "websocket.accept", "subprotocol": subprotocol})
    assert parse_responses(h.out)[0].status == 500


@pytest.mark.parametrize("name", [
    b"sec-websocket-protocol", b"Sec-WebSocket-Protocol", b"sec-websocket-accept",
    b"sec-websocket-extensions", b"upgrade", b"connection",
])
def test_accept_with_handshake_header_is_misuse_and_500(name: bytes) -> None:
    # ASGI: WS-03
    h = Harness()
    h.feed(WSClient(subprotocols=["chat"]).request)
    h.receive(1)
    with pytest.raises(AppMisuseError) as info:
        h.send(1, {"type": "websocket.accept", "headers": [(name, b"chat")]})
    assert info.value.rule == "WS-03"
    assert parse_responses(h.out)[0].status == 500 and closed(h)


@pytest.mark.parametrize("headers", [
    [(b"x", b"1", b"2")], [("x", "1")], [(b":status", b"1")], 5,
])
def test_accept_with_malformed_headers_is_misuse_and_500(headers: object) -> None:
    # ASGI: WS-03, HTTP-TX-02
    h = Harness()
    h.feed(WSClient().request)
    h.receive(1)
    with pytest.raises(AppMisuseError):
        h.send(1, {"type": "websocket.accept", "headers": headers})
    assert parse_responses(h.out)[0].status == 500 and closed(h)


@pytest.mark.parametrize("header", [(b"x-a", b"1\r\nx-b: 2"), (b"bad name", b"1")])
def test_accept_with_injected_header_is_misuse_and_500(header: tuple[bytes, bytes]) -> None:
    # ASGI: WS-03; SRV-10.  Regression: the session stayed OPEN and wrote a Close frame
    # where the 101 should have been.
    h = Harness()
    h.feed(WSClient().request)
    h.receive(1)
    with pytest.raises(AppMisuseError) as info:
        h.send(1, {"type": "websocket.accept", "headers": [header]})
    assert info.value.rule == "SRV-10"
    (reply,) = parse_responses(h.out)  # raises on frame bytes written instead of a response
    assert reply.status == 500 and closed(h)


# -- the handshake: requests refused before the app is called -------------------------------------


@pytest.mark.parametrize(("wire", "status"), [
    pytest.param(ws_upgrade_bytes(method=b"POST"), 400, id="post"),
    pytest.param(ws_upgrade_bytes(method=b"PUT"), 400, id="put"),
    pytest.param(ws_upgrade_bytes(version=b"1.0"), 400, id="http10"),
    pytest.param(ws_upgrade_bytes(key=None), 400, id="no-key"),
    pytest.param(ws_upgrade_bytes(key=b"not base64!!"), 400, id="key-not-base64"),
    pytest.param(ws_upgrade_bytes(key=base64.b64encode(b"x" * 15)), 400, id="key-15-bytes"),
    pytest.param(ws_upgrade_bytes(key=base64.b64encode(b"x" * 17)), 400, id="key-17-bytes"),
    pytest.param(ws_upgrade_bytes(key=b""), 400, id="key-empty"),
    pytest.param(ws_upgrade_bytes(headers=[(b"Sec-WebSocket-Key", RFC_KEY)]), 400,
                 id="two-keys"),
    pytest.param(ws_upgrade_bytes(ws_version=b"8"), 426, id="version-8"),
    pytest.param(ws_upgrade_bytes(ws_version=b"14"), 426, id="version-14"),
    pytest.param(ws_upgrade_bytes(body=b"abc"), 400, id="content-length-body"),
    pytest.param(ws_upgrade_bytes(headers=[(b"Transfer-Encoding", b"chunked")])
                 + b"3\r\nabc\r\n0\r\n\r\n", 400, id="chunked-body"),
])
def test_bad_upgrade_is_refused_before_the_app(wire: bytes, status: int) -> None:
    # ASGI: WS-18 (RFC 6455 4.2.1, 4.4)
    h = Harness()
    h.feed(wire)
    assert h.started() == [] and closed(h)
    (reply,) = parse_responses(h.out)
    assert reply.status == status and reply.headers[b"connection"] == b"close"
    if status == 426:
        assert reply.headers[b"sec-websocket-version"] == b"13"
    else:
        assert b"sec-websocket-version" not in reply.headers


def test_missing_version_is_400() -> None:
    # ASGI: WS-18.  RFC 6455 4.2.1: a handshake without the field is malformed (400); 426 is
    # for a version the server does not speak (4.4).  Regression: it was 426.
    h = Harness()
    h.feed(ws_upgrade_bytes(ws_version=None))
    assert h.started() == [] and closed(h)
    assert parse_responses(h.out)[0].status == 400


def test_empty_content_length_is_not_a_body() -> None:
    h = Harness()
    h.feed(ws_upgrade_bytes(headers=[(b"Content-Length", b"0")]))
    assert h.started()[0].scope["type"] == "websocket"


def test_upgrade_without_connection_upgrade_is_plain_http() -> None:
    # RFC 9110 7.8: Upgrade counts only when Connection lists it.
    h = Harness()
    h.feed(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nSec-WebSocket-Key: "
           + RFC_KEY + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    scope = h.started()[0].scope
    assert scope["type"] == "http" and scope["method"] == "GET"
    h.respond(1)
    assert parse_responses(h.out)[0].status == 200


def test_upgrade_tokens_are_case_insensitive_and_listed() -> None:
    h = Harness()
    h.feed(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c, WebSocket\r\n"
           b"Connection: keep-alive, UPGRADE\r\nSec-WebSocket-Key: " + RFC_KEY
           + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert h.started()[0].scope["type"] == "websocket"


# -- the handshake: the app refusing or failing --------------------------------------------------


def test_close_before_accept_is_403() -> None:
    # ASGI: WS-05, EXT-WSDENY-04, STACK-WS-01
    client = WSClient()
    h = Harness()
    h.feed(client.request)
    h.receive(1)
    h.send(1, {"type": "websocket.close", "code": 4000, "reason": "nope"})
    raw = h.out
    client.feed(h.take_output())
    assert client.accepted is None and client.rejected is not None
    assert client.rejected.status_code == 403 and client.reject_done
    (reply,) = parse_responses(raw)
    assert reply.status == 403 and reply.headers[b"content-length"] == b"0"
    assert reply.headers[b"connection"] == b"close"
    assert closed(h) and ended(h, 1) == 1
    assert h.receive(1)["type"] == "websocket.disconnect"
    with pytest.raises(ClientDisconnected):
        h.send(1, ACCEPT)


def test_denial_response_streams_an_http_response_then_closes() -> None:
    # ASGI: EXT-WSDENY-01..03
    client = WSClient()
    h = Harness()
    h.feed(client.request)
    h.receive(1)
    h.send(1, {"type": "websocket.http.response.start", "status": 401,
               "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Basic")]})
    h.send(1, {"type": "websocket.http.response.body", "body": b"go ", "more_body": True})
    h.send(1, {"type": "websocket.http.response.body", "body": b"", "more_body": True})
    assert not closed(h) and ended(h, 1) == 0
    h.send(1, {"type": "websocket.http.response.body", "body": b"away"})
    raw = h.out
    client.feed(h.take_output())
    assert client.rejected is not None and client.rejected.status_code == 401
    assert (b"www-authenticate", b"Basic") in client.rejected.headers
    assert client.reject_body == b"go away" and client.reject_done
    (reply,) = parse_responses(raw)
    assert reply.status == 401 and reply.body == b"go away"
    assert reply.headers[b"connection"] == b"close"
    assert closed(h) and ended(h, 1) == 1
    # EXT-WSDENY-03: the app gets a disconnect (1006, as uvicorn).
    assert h.receive(1) == disconnect(1006)
    with pytest.raises(ClientDisconnected):
        h.send(1, {"type": "websocket.http.response.body", "body": b"more"})


def test_denial_with_content_length_is_not_chunked() -> None:
    # ASGI: EXT-WSDENY-01
    h = Harness()
    h.feed(WSClient().request)
    h.receive(1)
    h.send(1, {"type": "websocket.http.response.start", "status": 404,
               "headers": [(b"content-length", b"4")]})
    h.send(1, {"type": "websocket.http.response.body", "body": b"gone"})
    (reply,) = parse_responses(h.out)
    assert reply.status == 404 and reply.body == b"gone"
    assert b"transfer-encoding" not in reply.headers and closed(h)


@pytest.mark.parametrize("message", [
    {"type": "websocket.http.response.start", "status": 600},
    {"type": "websocket.http.response.start", "status": 99},
    {"type": "websocket.http.response.start", "status": "200"},
    {"type": "websocket.http.response.start", "status": 200, "trailers": True},
    {"type": "websocket.http.response.start", "status": 200, "headers": [(b"a", "b")]},
    # SRV-10: dropped (the framing is the server's), but checked first
    {"type": "websocket.http.response.start", "status": 403,
     "headers": [(b"transfer-encoding", b"a\x00")]},
])
def test_bad_denial_start_is_misuse_and_500(message: dict[str, Any]) -> None:
    # ASGI: EXT-WSDENY-03
    h = Harness()
    h.feed(WSClient().request)
    h.receive(1)
    with pytest.raises(AppMisuseError):
        h.send(1, message)
    assert parse_responses(h.out)[0].status == 500 and closed(h)


@pytest.mark.parametrize("message", [
    {"type": "websocket.send", "text": "x"},
    {"type": "websocket.accept"},
    {"type": "websocket.close"},
    {"type": "websocket.http.response.start", "status": 200},
    {"type": "websocket.http.response.body", "body": "text"},
    {"type": "websocket.http.response.body", "body": b"x", "more_body": 1},
])
def test_misuse_during_denial_aborts(message: dict[str, Any]) -> None:
    # ASGI: EXT-WSDENY-02: only websocket.http.response.body may follow the start.
    h = Harness()
    h.feed(WSClient().request)
    h.receive(1)
    h.send(1, {"type": "websocket.http.response.start", "status": 403, "headers": []})
    with pytest.raises(AppMisuseError):
        h.send(1, message)
    assert closed(h) and ended(h, 1) == 1
    assert h.receive(1)["type"] == "websocket.disconnect"


def test_app_ending_during_denial_aborts() -> None:
    h = Harness()
    h.feed(WSClient().request)
    h.receive(1)
    h.send(1, {"type": "websocket.http.response.start", "status": 403, "headers": []})
    h.send(1, {"type": "websocket.http.response.body", "body": b"x", "more_body": True})
    h.finish(1)
    assert closed(h) and ended(h, 1) == 1
    assert not h.out.endswith(b"0\r\n\r\n")  # truncated: the client cannot take it as whole


def test_denial_body_overflowing_content_length_is_misuse() -> None:
    # SRV-01 applied to EXT-WSDENY-01: never send more than the declared length.
    # Regression: the body was written as is.
    h = Harness()
    h.feed(WSClient().request)
    h.receive(1)
    h.send(1, {"type": "websocket.http.response.start", "status": 403,
               "headers": [(b"content-length", b"2")]})
    with pytest.raises(AppMisuseError):
        h.send(1, {"type": "websocket.http.response.body", "body": b"hello"})
    assert not h.out.endswith(b"hello")


def test_denial_body_short_of_content_length_is_misuse() -> None:
    # SRV-02 applied to EXT-WSDENY-01.  Regression: a short body completed the response.
    h = Harness()
    h.feed(WSClient().request)
    h.receive(1)
    h.send(1, {"type": "websocket.http.response.start", "status": 403,
               "headers": [(b"content-length", b"10")]})
    with pytest.raises(AppMisuseError):
        h.send(1, {"type": "websocket.http.response.body", "body": b"abc"})


@pytest.mark.parametrize("status", [204, 304])
def test_denial_without_body_status_is_well_formed(status: int) -> None:
    # RFC 9110 6.4.1 / RFC 9112 6.3: 204 and 304 carry no body, so no framing either.
    # Regression: they were chunked, and the 0-chunk read as a second response.
    h = Harness()
    h.feed(WSClient().request)
    h.receive(1)
    h.send(1, {"type": "websocket.http.response.start", "status": status, "headers": []})
    h.send(1, {"type": "websocket.http.response.body", "body": b""})
    (reply,) = parse_responses(h.out)
    assert reply.status == status and closed(h)


@pytest.mark.parametrize("exc", [RuntimeError("boom"), None])
def test_app_ending_before_accept_is_500(exc: BaseException | None) -> None:
    # ASGI: WS-17
    client = WSClient()
    h = Harness()
    h.feed(client.request)
    h.receive(1)
    h.finish(1, exc)
    raw = h.out
    client.feed(h.take_output())
    assert client.rejected is not None and client.rejected.status_code == 500
    assert parse_responses(raw)[0].body == b"Internal Server Error"
    assert closed(h) and ended(h, 1) == 1
    assert h.receive(1) == disconnect(1006)


@pytest.mark.parametrize(("message", "rule"), [
    ({"type": "websocket.send", "text": "x"}, "WS-02"),
    ({"type": "websocket.http.response.body", "body": b""}, "WS-02"),
    ({"type": "http.response.start", "status": 200}, "MAIN-09"),
    ({"type": "websocket.nonsense"}, "MAIN-09"),
    ({"text": "no type"}, "MAIN-09"),
    ([("type", "websocket.accept")], "MAIN-08"),
])
def test_misuse_before_accept_is_500(message: Any, rule: str) -> None:
    # ASGI: WS-02, MAIN-08, MAIN-09, WS-17
    h = Harness()
    h.feed(WSClient().request)
    h.receive(1)
    with pytest.raises(AppMisuseError) as info:
        h.send(1, message)
    assert info.value.rule == rule
    assert parse_responses(h.out)[0].status == 500 and closed(h)


def test_client_leaving_before_accept() -> None:
    # ASGI: WS-02 (receive returns disconnect if the client leaves), WS-13, WS-15
    h = Harness()
    h.feed(WSClient().request)
    assert h.receive(1) == {"type": "websocket.connect"}
    assert h.receive(1) is None
    h.feed(b"")
    assert StreamReadable(1) in h.events and ended(h, 1) == 1 and closed(h)
    assert h.receive(1) == disconnect(1006)
    with pytest.raises(ClientDisconnected) as info:
        h.send(1, ACCEPT)
    assert isinstance(info.value, OSError)
    h.finish(1)
    assert h.out == b""


# -- messages --------------------------------------------------------------------------------------


@pytest.mark.parametrize("deflate", [True, False])
def test_text_and_bytes_both_ways(deflate: bool) -> None:
    # ASGI: WS-07, WS-08
    h, client, sid = opened(WSClient(deflate=deflate))
    h.feed(client.text("héllo") + client.binary(b"\x00\xff") + client.text("")
           + client.binary(b""))
    assert [h.receive(sid) for _ in range(4)] == [
        recv_text("héllo"), recv_bytes(b"\x00\xff"), recv_text(""), recv_bytes(b"")]
    assert h.receive(sid) is None
    h.send(sid, text("wörld"))
    h.send(sid, binary(b"\x01\x02"))
    h.send(sid, text(""))
    h.send(sid, binary(b""))
    h.send(sid, {"type": "websocket.send", "bytes": bytearray(b"ba"), "text": None})
    h.send(sid, {"type": "websocket.send", "bytes": None, "text": "both keys"})
    deliver(h, client)
    assert client.messages == ["wörld", b"\x01\x02", "", b"", b"ba", "both keys"]
    assert client.close is None and not closed(h)


def test_message_wakes_a_waiting_app() -> None:
    h, client, sid = opened()
    assert h.receive(sid) is None
    h.feed(client.text("hi"))
    assert StreamReadable(sid) in h.events
    assert h.receive(sid) == recv_text("hi")


@pytest.mark.parametrize("message", [
    {"type": "websocket.send"},
    {"type": "websocket.send", "bytes": None, "text": None},
    {"type": "websocket.send", "bytes": b"x", "text": "x"},
    {"type": "websocket.send", "bytes": "x"},
    {"type": "websocket.send", "text": b"x"},
    {"type": "websocket.send", "text": 1},
])
def test_send_needs_exactly_one_of_bytes_and_text(message: dict[str, Any]) -> None:
    # ASGI: WS-08; the client gets close 1011 (AMB-10's error path)
    h, client, sid = opened()
    with pytest.raises(AppMisuseError) as info:
        h.send(sid, message)
    assert info.value.rule == "WS-08"
    deliver(h, client)
    assert client.close is not None and client.close.code == 1011
    assert client.messages == []
    h.feed(client.send(client.close.response()))
    assert h.receive(sid) == disconnect(1011)
    assert closed(h)


@pytest.mark.parametrize(("message", "rule"), [
    ({"type": "websocket.accept"}, "WS-08"),
    ({"type": "websocket.http.response.start", "status": 403}, "WS-08"),
    ({"type": "http.response.body"}, "MAIN-09"),
    ("text", "MAIN-08"),
])
def test_misuse_after_accept_closes_1011(message: Any, rule: str) -> None:
    h, client, sid = opened()
    with pytest.raises(AppMisuseError) as info:
        h.send(sid, message)
    assert info.value.rule == rule
    deliver(h, client)
    assert client.close is not None and client.close.code == 1011


@pytest.mark.parametrize("deflate", [True, False])
def test_fragmented_messages_are_reassembled(deflate: bool) -> None:
    # ASGI: WS-10
    h, client, sid = opened(WSClient(deflate=deflate))
    h.feed(client.text("he", fin=False))
    h.feed(client.text("", fin=False))
    assert h.receive(sid) is None  # WS-10: only whole messages
    h.feed(client.text("llo"))
    h.feed(client.binary(b"ab", fin=False) + client.binary(b"cd"))
    assert h.receive(sid) == recv_text("hello")
    assert h.receive(sid) == recv_bytes(b"abcd")


def test_utf8_split_across_fragments() -> None:
    # ASGI: WS-10: a multi-byte character may straddle two frames.
    h, _, sid = opened(WSClient(deflate=False))
    data = "é€𝄞".encode()
    h.feed(raw_frame(0x1, data[:1], fin=False) + raw_frame(0x0, data[1:4], fin=False)
           + raw_frame(0x0, data[4:]))
    assert h.receive(sid) == recv_text("é€𝄞")


def test_ping_between_fragments_is_answered_and_message_kept() -> None:
    # RFC 6455 5.4: control frames may be injected between fragments.
    h, client, sid = opened(WSClient(deflate=False))
    h.feed(client.text("ab", fin=False) + client.send(Ping(b"p")) + client.text("cd"))
    deliver(h, client)
    assert client.pongs == [b"p"]
    assert h.receive(sid) == recv_text("abcd")


def test_ping_between_compressed_fragments_keeps_the_message() -> None:
    # RFC 6455 5.4 with RFC 7692 6: the control frame must not end the compressed message.
    # Regression: wsproto's PerMessageDeflate resets its per-message state on the ping's
    # completion, so the continuation went through uninflated (garbage bytes to the app).
    h, client, sid = opened(WSClient(deflate=True))
    h.feed(client.binary(b"abc" * 100, fin=False) + client.send(Ping(b"p"))
           + client.binary(b"xyz" * 100))
    deliver(h, client)
    assert client.pongs == [b"p"] and client.close is None
    assert h.receive(sid) == recv_bytes(b"abc" * 100 + b"xyz" * 100)


def test_large_messages_both_ways_in_small_reads() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, barely compressible
    h, client, sid = opened(WSClient(deflate=False))
    wire = client.binary(payload) + client.text("t" * 200_000)
    for i in range(0, len(wire), 4096):
        h.feed(wire[i:i + 4096])
    assert h.receive(sid) == recv_bytes(payload)
    assert h.receive(sid) == recv_text("t" * 200_000)
    h.send(sid, binary(payload))
    deliver(h, client)
    assert client.messages == [payload]


def test_permessage_deflate_is_negotiated_and_round_trips() -> None:
    # wsproto's client offers permessage-deflate; the server agrees by default.
    client = WSClient(deflate=True)
    h = Harness()
    h.feed(client.request)
    h.receive(1)
    h.send(1, ACCEPT)
    head = h.out.split(b"\r\n\r\n", 1)[0].lower()
    assert b"\r\nsec-websocket-extensions: permessage-deflate" in head
    client.feed(h.take_output())
    assert client.accepted is not None
    assert [e.name for e in client.accepted.extensions] == ["permessage-deflate"]
    big = "compress me " * 10_000
    wire = client.text(big)
    assert len(wire) < len(big) // 20  # the client compressed it
    h.feed(wire)
    assert h.receive(1) == recv_text(big)
    h.send(1, binary(big.encode()))
    h.send(1, text(big))  # context takeover: the second message reuses the window
    out = h.take_output()
    assert len(out) < len(big) // 10
    client.feed(out)
    assert client.messages == [big.encode(), big]


@pytest.mark.parametrize(("config", "offer"), [
    ({"ws_per_message_deflate": False}, True),
    ({}, False),
])
def test_permessage_deflate_not_negotiated(config: dict[str, Any], offer: bool) -> None:
    client = WSClient(deflate=offer)
    h = Harness(make_conn(**config))
    h.feed(client.request)
    h.receive(1)
    h.send(1, ACCEPT)
    assert b"sec-websocket-extensions" not in h.out.lower()
    client.feed(h.take_output())
    assert client.accepted is not None and client.accepted.extensions == []
    h.send(1, text("x" * 1000))
    assert len(h.out) > 1000  # sent as is
    deliver(h, client)
    assert client.messages == ["x" * 1000]


def test_unknown_extension_offer_is_ignored() -> None:
    client = WSClient(deflate=False, extra_headers=[(b"Sec-WebSocket-Extensions", b"x-foo")])
    h = Harness()
    h.feed(client.request)
    h.receive(1)
    h.send(1, ACCEPT)
    assert b"sec-websocket-extensions" not in h.out.lower()
    client.feed(h.take_output())
    assert client.accepted is not None


# -- limits ------------------------------------------------------------------------------------


def _assert_failed(h: Harness, client: WSClient, sid: int, code: int) -> None:
    """The connection was failed: a Close frame with ``code``, then the transport closed."""
    deliver(h, client)
    assert client.close is not None and client.close.code == code
    assert closed(h) and ended(h, sid) == 1
    assert h.receive(sid) is not None
    assert h.conn.receive(sid)["code"] == code  # type: ignore[index]


@pytest.mark.parametrize("deflate", [True, False])
def test_message_over_max_size_is_1009(deflate: bool) -> None:
    # ASGI: WS-10 (size limit -> 1009)
    h, client, sid = opened(WSClient(deflate=deflate), ws_max_message_size=1000)
    h.feed(client.binary(b"a" * 1000))  # exactly the limit is fine
    assert h.receive(sid) == recv_bytes(b"a" * 1000)
    h.feed(client.binary(b"a" * 1001))
    _assert_failed(h, client, sid, 1009)
    assert h.receive(sid) == disconnect(1009, h.conn.receive(sid)["reason"])  # type: ignore[index]


def test_fragmented_message_over_max_size_is_1009() -> None:
    h, client, sid = opened(WSClient(deflate=False), ws_max_message_size=1000)
    for _ in range(3):
        h.feed(client.text("x" * 400, fin=False))
        if closed(h):
            break
    _assert_failed(h, client, sid, 1009)


def test_oversized_frame_is_refused_before_it_arrives_whole() -> None:
    # A frame header may announce far more than the limit; stop once the limit is passed.
    h, client, sid = opened(WSClient(deflate=False), ws_max_message_size=1000)
    wire = raw_frame(0x2, b"z" * 100_000)
    h.feed(wire[:2000])
    _assert_failed(h, client, sid, 1009)


def test_text_limit_counts_utf8_bytes() -> None:
    # Config: "sizes are bytes"; the compressed path (BoundedDeflate) counts bytes.
    # Regression: characters were counted, so 4-byte characters passed at 4x the limit.
    h, client, sid = opened(WSClient(deflate=False), ws_max_message_size=1000)
    h.feed(client.text("𝄞" * 300))  # 1200 bytes, 300 characters
    _assert_failed(h, client, sid, 1009)


def test_compression_bomb_is_1009_without_inflating_it() -> None:
    # ASGI: WS-10; BoundedDeflate stops at ws_max_message_size.
    client = WSClient(deflate=True)
    h, client, sid = opened(client, ws_max_message_size=64 * 1024)
    bomb = client.binary(bytes(10 * 1024 * 1024))
    assert len(bomb) < 64 * 1024
    tracemalloc.start()
    try:
        for i in range(0, len(bomb), 1024):
            h.feed(bomb[i:i + 1024])
            if closed(h):
                break
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024, peak  # 10 MiB would have been inflated otherwise
    _assert_failed(h, client, sid, 1009)


def test_fragmented_compression_bomb_is_1009() -> None:
    h, client, sid = opened(WSClient(deflate=True), ws_max_message_size=64 * 1024)
    for _ in range(40):
        h.feed(client.binary(bytes(1024 * 1024), fin=False))
        if closed(h):
            break
    _assert_failed(h, client, sid, 1009)


def test_invalid_compressed_data_is_1007() -> None:
    h, client, sid = opened(WSClient(deflate=True))
    h.feed(raw_frame(0x2, b"\xff\xff\xff\xff not deflate", rsv1=True))
    _assert_failed(h, client, sid, 1007)


@pytest.mark.parametrize("frames", [
    pytest.param([raw_frame(0x1, b"\xff\xfe")], id="whole"),
    pytest.param([raw_frame(0x1, b"ok\xc3", fin=False), raw_frame(0x0, b"(")], id="split"),
    pytest.param([raw_frame(0x1, b"\xed\xa0\x80")], id="surrogate"),
])
def test_invalid_utf8_text_is_1007(frames: list[bytes]) -> None:
    # ASGI: WS-10 (invalid UTF-8 -> 1007)
    h, client, sid = opened(WSClient(deflate=False))
    h.feed(b"".join(frames))
    _assert_failed(h, client, sid, 1007)


def test_invalid_utf8_close_reason_is_1007() -> None:
    h, client, sid = opened(WSClient(deflate=False))
    h.feed(raw_frame(0x8, b"\x03\xe8\xff"))
    _assert_failed(h, client, sid, 1007)


@pytest.mark.parametrize("frame", [
    pytest.param(raw_frame(0x1, b"hi", mask=False), id="unmasked"),
    pytest.param(raw_frame(0x3, b"x"), id="reserved-opcode-3"),
    pytest.param(raw_frame(0xB, b"x"), id="reserved-control-opcode"),
    pytest.param(raw_frame(0x0, b"x"), id="continuation-first"),
    pytest.param(raw_frame(0x9, b"x", fin=False), id="fragmented-ping"),
    pytest.param(raw_frame(0x9, b"x" * 126), id="long-ping"),
    pytest.param(raw_frame(0x1, b"x", rsv1=True), id="rsv1-without-deflate"),
    pytest.param(bytes([0xA1, 0x80, 0, 0, 0, 0]), id="rsv2"),
    pytest.param(raw_frame(0x1, b"a", fin=False) + raw_frame(0x2, b"b"), id="interleaved"),
    pytest.param(raw_frame(0x8, b"\x03"), id="close-1-byte"),
    pytest.param(raw_frame(0x8, b"\x03\xed"), id="close-1005-on-wire"),
    pytest.param(raw_frame(0x8, b"\x03\xe7"), id="close-999"),
    pytest.param(raw_frame(0x8, b"\x04\x04"), id="close-1028-reserved"),
])
def test_protocol_errors_are_1002(frame: bytes) -> None:
    # RFC 6455 5.1-5.5, 7.4: fail the connection with 1002.
    h, client, sid = opened(WSClient(deflate=False))
    h.feed(frame)
    _assert_failed(h, client, sid, 1002)
    assert h.conn.wants_read is False


# -- closing -------------------------------------------------------------------------------------


def test_client_close_with_code_and_reason() -> None:
    # ASGI: WS-11; RFC 6455 5.5.1: the close is echoed with the client's code.
    h, client, sid = opened()
    assert h.receive(sid) is None
    h.feed(client.text("last") + client.close_frame(4321, "bye bye"))
    assert StreamReadable(sid) in h.events
    assert h.receive(sid) == recv_text("last")  # messages before the close are delivered
    assert h.receive(sid) == disconnect(4321, "bye bye")
    deliver(h, client)
    assert client.close is not None and client.close.code == 4321
    assert closed(h) and ended(h, sid) == 1
    with pytest.raises(ClientDisconnected):
        h.send(sid, text("late"))


def test_client_close_without_code_is_1005() -> None:
    # ASGI: WS-12, STACK-WS-01
    h, _, sid = opened()
    h.feed(raw_frame(0x8, b""))
    assert h.receive(sid) == disconnect(1005)
    out = h.take_output()
    assert out == b"\x88\x00"  # the echo is an empty Close frame as well
    assert closed(h)


def test_eof_after_accept_is_1006() -> None:
    # ASGI: WS-13
    h, _, sid = opened()
    assert h.receive(sid) is None
    h.feed(b"")
    assert StreamReadable(sid) in h.events and ended(h, sid) == 1 and closed(h)
    assert h.receive(sid) == disconnect(1006)
    assert h.out == b""


def test_app_close_then_client_close() -> None:
    # ASGI: WS-06, WS-14: the peer's code wins when its Close arrives.
    h, client, sid = opened()
    in_flight = client.text("in flight")  # sent before the client saw our Close
    h.send(sid, {"type": "websocket.close", "code": 4000, "reason": "done"})
    deliver(h, client)
    assert client.close is not None and (client.close.code, client.close.reason) == (
        4000, "done")
    assert not closed(h) and ended(h, sid) == 0
    with pytest.raises(ClientDisconnected):
        h.send(sid, text("after close"))  # WS-15
    h.feed(in_flight + client.send(client.close.response()))
    assert h.receive(sid) == recv_text("in flight")
    assert h.receive(sid) == disconnect(4000, "done")
    assert closed(h) and ended(h, sid) == 1
    assert h.out == b""  # no second Close


def test_app_close_defaults_to_1000_and_peer_code_is_reported() -> None:
    # ASGI: WS-06 (code default 1000, reason None -> ""), WS-14
    h, client, sid = opened()
    h.send(sid, {"type": "websocket.close", "reason": None})
    deliver(h, client)
    assert client.close is not None and client.close.code == 1000
    assert client.close.reason == ""
    h.feed(client.close_frame(1001, "other"))
    assert h.receive(sid) == disconnect(1001, "other")


def test_app_close_then_eof_reports_the_app_code() -> None:
    # ASGI: WS-14: no peer Close, so the app's own code and reason.
    h, _, sid = opened()
    h.send(sid, {"type": "websocket.close", "code": 3001, "reason": "r"})
    h.feed(b"")
    assert h.receive(sid) == disconnect(3001, "r") and closed(h)


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 0, -1,
                                  1000.0, "1000", True])
def test_invalid_app_close_code_is_misuse(code: object) -> None:
    # ASGI: WS-19, STACK-WS-02
    h, client, sid = opened()
    with pytest.raises(AppMisuseError) as info:
        h.send(sid, {"type": "websocket.close", "code": code})
    assert info.value.rule == "WS-19"
    deliver(h, client)
    assert client.close is not None and client.close.code == 1011


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999])
def test_valid_app_close_codes_go_out_unchanged(code: int) -> None:
    # ASGI: WS-19.  Decoded by hand: wsproto 1.3.2 as a receiver refuses 1014 (it is missing
    # from its CloseReason enum), though IANA registered it and RFC 6455 7.4.2 allows it.
    h, _, sid = opened()
    h.take_output()
    h.send(sid, {"type": "websocket.close", "code": code})
    assert h.out == b"\x88\x02" + struct.pack("!H", code)


@pytest.mark.parametrize(("reason", "ok"), [
    ("x" * 123, True), ("é" * 61 + "x", True), ("x" * 124, False), ("é" * 62, False),
    (b"bytes", False), (5, False),
])
def test_close_reason_limit(reason: object, ok: bool) -> None:
    # ASGI: WS-19: at most 123 UTF-8 bytes.
    h, client, sid = opened()
    message = {"type": "websocket.close", "code": 1000, "reason": reason}
    if ok:
        h.send(sid, message)
        deliver(h, client)
        assert client.close is not None and client.close.reason == reason
    else:
        with pytest.raises(AppMisuseError) as info:
            h.send(sid, message)
        assert info.value.rule == "WS-19"
        deliver(h, client)
        assert client.close is not None and client.close.code == 1011


def test_send_after_disconnect_raises_oserror() -> None:
    # ASGI: WS-15
    h, client, sid = opened()
    h.feed(client.close_frame(1000))
    for message in (text("x"), {"type": "websocket.close"}, ACCEPT, {"nonsense": 1}):
        with pytest.raises(ClientDisconnected) as info:
            h.send(sid, message)
        assert isinstance(info.value, OSError)


def test_receive_after_disconnect_repeats_it() -> None:
    # ASGI: WS-16
    h, client, sid = opened()
    h.feed(client.close_frame(3333, "why"))
    first = h.receive(sid)
    assert first == disconnect(3333, "why")
    for _ in range(3):
        again = h.receive(sid)
        assert again == first and again is not first


@pytest.mark.parametrize(("exc", "code"), [(None, 1000), (RuntimeError("x"), 1011)])
def test_app_ending_after_accept_closes(exc: BaseException | None, code: int) -> None:
    # ASGI: WS-17, AMB-10: 1000 on a plain return, 1011 on an exception.
    h, client, sid = opened()
    h.finish(sid, exc)
    deliver(h, client)
    assert client.close is not None and client.close.code == code
    assert not closed(h)
    h.feed(client.send(client.close.response()))
    assert closed(h) and ended(h, sid) == 1
    assert h.receive(sid) == disconnect(code)


def test_app_ending_after_its_own_close_sends_nothing_more() -> None:
    h, client, sid = opened()
    h.send(sid, {"type": "websocket.close", "code": 1000})
    h.finish(sid, RuntimeError("late"))
    deliver(h, client)
    assert client.close is not None and client.close.code == 1000
    assert h.out == b""


def test_app_ending_after_disconnect_is_silent() -> None:
    h, client, sid = opened()
    h.feed(client.close_frame(1000))
    h.take_output()
    h.finish(sid, RuntimeError("x"))
    assert h.out == b"" and ended(h, sid) == 1
    assert sum(isinstance(e, ConnectionClosed) for e in h.events) == 1


@pytest.mark.parametrize("message", [
    {"type": "websocket.accept"},
    {"type": "websocket.http.response.start", "status": 403},
    {"type": "websocket.http.response.body", "body": b""},
])
def test_handshake_message_while_closing_is_misuse(message: dict[str, Any]) -> None:
    # Only AppMisuseError or ClientDisconnected may come out of send().  Regression: a
    # KeyError (no _WHY_NOT entry for CLOSING).
    h, _, sid = opened()
    h.send(sid, {"type": "websocket.close"})
    with pytest.raises((AppMisuseError, ClientDisconnected)):
        h.send(sid, message)


# -- ping, pong and timers -------------------------------------------------------------------------


def test_client_ping_is_answered_with_its_payload() -> None:
    # ASGI: WS-09
    h, client, sid = opened()
    h.feed(client.send(Ping(b"are you there")) + client.send(Ping(b"")))
    deliver(h, client)
    assert client.pongs == [b"are you there", b""]
    assert h.receive(sid) is None  # control frames are not app messages


def test_server_pings_on_the_interval_and_pong_rearms() -> None:
    # ASGI: WS-09
    h, client, _ = opened(ws_ping_interval=10.0, ws_ping_timeout=5.0)
    assert h.conn.get_timer() == 10.0
    tick(h, 9.9)
    assert h.out == b""
    tick(h, 10.0)
    deliver(h, client)
    assert len(client.pings) == 1
    assert h.conn.get_timer() == 15.0  # the pong deadline
    h.now = 12.0
    h.feed(client.send(client.events[-1].response()))
    assert h.conn.get_timer() == 22.0  # re-armed from the pong
    tick(h, 16.0)
    assert h.out == b"" and not closed(h)
    tick(h, 22.0)
    deliver(h, client)
    assert len(client.pings) == 2


def test_missing_pong_closes_1011_then_hangs_up() -> None:
    # ASGI: WS-09
    h, client, sid = opened(ws_ping_interval=10.0, ws_ping_timeout=5.0, ws_close_timeout=3.0)
    tick(h, 10.0)
    tick(h, 15.0)
    deliver(h, client)
    assert client.close is not None and client.close.code == 1011
    assert not closed(h)
    assert h.conn.get_timer() == 18.0
    tick(h, 18.0)
    assert closed(h) and ended(h, sid) == 1
    # No Close frame from the peer: 1006 (WS-13, WS-14: the app did not close).
    assert h.receive(sid) == disconnect(1006)


def test_no_pings_when_disabled() -> None:
    h, _, _ = opened(ws_ping_interval=None)
    assert h.conn.get_timer() is None
    tick(h, 1e9)
    assert h.out == b"" and not closed(h)


def test_our_close_unanswered_hangs_up_after_close_timeout() -> None:
    # ASGI: WS-14
    h, _, sid = opened(ws_close_timeout=2.0, ws_ping_interval=None)
    h.now = 1.0
    h.send(sid, {"type": "websocket.close", "code": 4001})
    assert h.conn.get_timer() == 3.0
    tick(h, 2.9)
    assert not closed(h)
    tick(h, 3.0)
    assert closed(h) and ended(h, sid) == 1
    assert h.receive(sid) == disconnect(4001)


@pytest.mark.parametrize(("restart", "code"), [(False, 1001), (True, 1012)])
def test_shutdown_closes_open_websockets(restart: bool, code: int) -> None:
    # ASGI: WS-20, SRV-14
    h, client, sid = opened()
    h.conn.shutdown(h.now, restart=restart)
    h.pump()
    deliver(h, client)
    assert client.close is not None and client.close.code == code
    assert not closed(h)
    h.feed(client.send(client.close.response()))
    assert closed(h) and h.receive(sid) == disconnect(code)


def test_shutdown_with_a_silent_client_hangs_up() -> None:
    # ASGI: WS-20: the app still gets its disconnect.
    h, _, sid = opened(ws_close_timeout=5.0, shutdown_timeout=10.0)
    h.conn.shutdown(0.0)
    h.pump()
    timer = h.conn.get_timer()
    assert timer is not None and timer <= 10.0
    tick(h, timer)
    assert closed(h) and h.receive(sid) == disconnect(1001)


def test_shutdown_before_accept_waits_then_aborts() -> None:
    h = Harness(make_conn(shutdown_timeout=10.0))
    h.feed(WSClient().request)
    h.receive(1)
    h.conn.shutdown(0.0)
    h.pump()
    assert not closed(h) and h.out == b""
    tick(h, 10.0)
    assert closed(h) and h.receive(1) == disconnect(1006)


# -- input ordering and backpressure ---------------------------------------------------------------


def test_frames_sent_before_the_101_are_delivered_after_accept() -> None:
    # The client may pipeline frames after its request (uncompressed: nothing negotiated yet).
    early = Connection(ConnectionType.CLIENT)
    h = Harness()
    client = WSClient(deflate=False)
    h.feed(client.request + early.send(TextMessage(data="one")) + early.send(Ping(b"p")))
    assert not h.conn.wants_read  # held in the parser until the accept
    h.feed(early.send(BytesMessage(data=b"two")))
    sid = h.started()[0].stream_id
    h.receive(sid)
    h.send(sid, ACCEPT)
    client.feed(h.take_output())  # the 101 first, then the pong
    assert client.accepted is not None and client.pongs == [b"p"]
    assert h.receive(sid) == recv_text("one")
    assert h.receive(sid) == recv_bytes(b"two")
    assert h.conn.wants_read


def test_early_close_frame_is_handled_after_accept() -> None:
    early = Connection(ConnectionType.CLIENT)
    h = Harness()
    h.feed(ws_upgrade_bytes() + early.send(CloseConnection(code=1000, reason="never mind")))
    h.receive(1)
    h.send(1, ACCEPT)
    assert h.receive(1) == disconnect(1000, "never mind")
    assert closed(h)


def test_backpressure_on_undelivered_messages() -> None:
    # SRV-06: wants_read is False once complete messages the app has not taken exceed
    # body_buffer_size, and True again after receive().
    h, client, sid = opened(WSClient(deflate=False), body_buffer_size=100)
    assert h.conn.wants_read
    h.feed(client.binary(b"a" * 60))
    assert h.conn.wants_read
    h.feed(client.binary(b"b" * 60) + client.binary(b"c" * 60) + client.binary(b"d" * 60))
    assert not h.conn.wants_read
    got = []
    while (message := h.receive(sid)) is not None:
        got.append(message["bytes"])
    assert got == [b"a" * 60, b"b" * 60, b"c" * 60, b"d" * 60]
    assert h.conn.wants_read


def test_backpressure_keeps_order_with_a_close_behind() -> None:
    h, client, sid = opened(WSClient(deflate=False), body_buffer_size=10)
    h.feed(b"".join(client.text(str(i) * 20) for i in range(5)) + client.close_frame(1000))
    assert not h.conn.wants_read and not closed(h)  # the Close waits behind the messages
    got = [h.receive(sid) for _ in range(6)]
    assert got == [recv_text(str(i) * 20) for i in range(5)] + [disconnect(1000)]
    assert closed(h)


def test_backpressure_bounds_a_flood_of_empty_messages() -> None:
    # SRV-06.  Regression: an empty message counted 0 bytes, so a flood of them (6 wire bytes
    # each, a dict each in memory) queued without bound and wants_read stayed True.
    h, client, _ = opened(WSClient(deflate=False), body_buffer_size=1024)
    frame = client.binary(b"")
    for _ in range(20):
        if not h.conn.wants_read:
            break
        h.feed(frame * 5000)
    assert not h.conn.wants_read


def test_no_output_after_connection_closed() -> None:
    # ConnectionClosed is final: input still held behind backpressure when the transport goes
    # is not parsed any more (no pong or Close echo after it).  What the app already had
    # queued is delivered, in order, then the disconnect.  Regression: the backlog was parsed
    # on receive() after ConnectionClosed and a pong went out.
    h, client, sid = opened(WSClient(deflate=False), body_buffer_size=10)
    h.feed(client.text("x" * 20) + client.text("y" * 20) + client.send(Ping(b"p"))
           + client.close_frame(1000))
    h.take_output()
    h.feed(b"")
    assert closed(h)
    got = []
    while (message := h.receive(sid)) is not None and message["type"] != "websocket.disconnect":
        got.append(message["text"])
    assert message is not None and message["type"] == "websocket.disconnect"
    assert got == ["x" * 20, "y" * 20][:len(got)] and got
    assert h.out == b""


# -- more than one exchange on the connection ------------------------------------------------


def test_upgrade_after_a_keep_alive_request() -> None:
    # A WebSocket may follow an ordinary request on the same connection (a new stream id).
    h = Harness()
    client = WSClient()
    h.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    h.respond(1, body=b"ok")
    assert parse_responses(h.take_output())[0].body == b"ok"
    h.feed(client.request)
    assert [(e.stream_id, e.scope["type"]) for e in h.started()] == [(1, "http"), (2, "websocket")]
    assert h.receive(2) == {"type": "websocket.connect"}
    h.send(2, ACCEPT)
    deliver(h, client)
    assert client.accepted is not None
    h.finish(1)  # the first app ending late changes nothing
    assert h.out == b"" and not closed(h)
    h.feed(client.text("hi"))
    assert h.receive(2) == recv_text("hi")


def test_pipelined_upgrade_waits_for_the_previous_response() -> None:
    # SRV-12: the upgrade is parsed only once the response before it is complete.
    h = Harness()
    client = WSClient()
    h.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" + client.request)
    assert [e.scope["type"] for e in h.started()] == ["http"]
    h.respond(1)
    assert [e.scope["type"] for e in h.started()] == ["http", "websocket"]


def test_websocket_accepted_during_shutdown_gets_1001() -> None:
    # ASGI: WS-20, SRV-14: every open WebSocket is told 1001 before the abort.
    h = Harness(make_conn(shutdown_timeout=10.0))
    client = WSClient()
    h.feed(client.request)
    h.receive(1)
    h.conn.shutdown(0.0)
    h.pump()
    h.now = 1.0
    h.send(1, ACCEPT)
    deliver(h, client)
    assert client.accepted is not None
    timer = h.conn.get_timer()
    assert timer is not None and timer <= 10.0
    tick(h, timer)
    deliver(h, client)
    assert client.close is not None and client.close.code == 1001


# -- the session against its Carrier protocol (what an HTTP/2 carrier will rely on) --------


class FakeCarrier:
    """A minimal ``Carrier``: records what the session asks of it."""

    def __init__(self) -> None:
        self.wire = b""
        self.events: list[Any] = []
        self.accepted: list[tuple[bytes, bytes]] | None = None
        self.finished: list[bool] = []

    def ws_accept(self, session: Any, headers: list[tuple[bytes, bytes]]) -> None:
        self.accepted = headers

    def ws_deny(self, session: Any, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.denied = status

    def ws_deny_body(self, session: Any, data: bytes, more: bool) -> None:
        pass

    def ws_write(self, session: Any, data: bytes) -> None:
        self.wire += data

    def ws_finished(self, session: Any, abort: bool) -> None:
        self.finished.append(abort)

    def emit(self, event: Any) -> None:
        self.events.append(event)


def session_for(carrier: FakeCarrier, **config: Any) -> Any:
    from asgi_sansio._websocket import WebSocketSession

    headers = [(b"sec-websocket-key", RFC_KEY), (b"sec-websocket-version", b"13")]
    return WebSocketSession(Config(**config), 7, carrier, headers, 0.0, http_version="2")


def test_session_over_a_fake_carrier() -> None:
    # WS-SCOPE-03 "2": no Sec-WebSocket-Accept on an extended-CONNECT answer (RFC 8441 5).
    carrier = FakeCarrier()
    session = session_for(carrier)
    assert session.receive() == {"type": "websocket.connect"}
    session.send(ACCEPT, 0.0)
    assert carrier.accepted == []
    peer = Connection(ConnectionType.CLIENT)
    session.receive_data(peer.send(TextMessage(data="hi")), 0.0)
    assert session.receive() == recv_text("hi")
    session.receive_data(peer.send(CloseConnection(code=1000)), 0.0)
    assert session.receive() == disconnect(1000)
    assert carrier.events.count(StreamEnded(7)) == 1 and carrier.finished == [False]


def test_session_ended_during_accept_has_no_timer() -> None:
    # Hidden on HTTP/1.1 (the connection is closed and stops asking), not on a carrier whose
    # other streams keep the timers running.
    carrier = FakeCarrier()
    session = session_for(carrier, ws_ping_interval=20.0)

    def accept_with_early_close(s: Any, headers: list[tuple[bytes, bytes]]) -> None:
        early = Connection(ConnectionType.CLIENT)
        s.receive_data(early.send(CloseConnection(code=1000)), 0.0)

    carrier.ws_accept = accept_with_early_close  # type: ignore[method-assign]
    session.receive()
    session.send(ACCEPT, 0.0)
    assert StreamEnded(7) in carrier.events
    assert session.get_timer() is None
    session.handle_timer(20.0)  # must not raise
