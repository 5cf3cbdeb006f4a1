"""The h2c upgrade (RFC 7540 3.2): 101, then HTTP/2 with the upgrading request as stream 1.

The peer is h2 in client mode, upgraded the way RFC 7540 describes (``initiate_upgrade_
connection()`` gives the ``HTTP2-Settings`` value), so every byte after the 101 is checked by an
independent HTTP/2 implementation.  The requests that must not upgrade (a body, TLS, a second
request, no or two ``HTTP2-Settings``, ``Connection`` not naming it) are answered as HTTP/1.1.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, ResponseReceived, StreamEnded

from asgi_sansio import Config, ServerConnection

from .helpers import Harness, parse_responses


def upgrading_client() -> tuple[H2Connection, bytes]:
    client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    settings = client.initiate_upgrade_connection()
    return client, settings


def upgrade_request(settings: bytes | None, target: bytes = b"/up?x=1", extra: bytes = b"",
                    connection: bytes = b"Upgrade, HTTP2-Settings") -> bytes:
    """``settings=None``: no ``HTTP2-Settings`` field at all."""
    line = b"" if settings is None else b"HTTP2-Settings: " + settings + b"\r\n"
    return (b"GET " + target + b" HTTP/1.1\r\nHost: example.com\r\nConnection: " + connection
            + b"\r\nUpgrade: h2c\r\n" + line + extra + b"\r\n")


def answer(h: Harness, sid: int, body: bytes = b"over h2") -> None:
    assert h.receive(sid) == {"type": "http.request", "body": b"", "more_body": False}
    h.respond(sid, body=body)
    h.finish(sid)


def test_the_upgrading_request_is_stream_1_and_answered_over_http2() -> None:
    client, settings = upgrading_client()
    h = Harness()
    h.feed(upgrade_request(settings))
    head, _, rest = h.take_output().partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 101 Switching Protocols"
    assert b"upgrade: h2c" in head.lower()
    # After the 101: the server's preface (SETTINGS), then the client's, then HTTP/2 only.
    client.initiate_connection()
    h.feed(client.data_to_send())
    client.receive_data(rest + h.take_output())
    (started,) = h.started()
    assert started.stream_id == 1
    scope = started.scope
    assert (scope["http_version"], scope["method"], scope["path"], scope["query_string"]) == (
        "2", "GET", "/up", b"x=1")
    assert ("http2-settings" not in {n.decode() for n, _ in scope["headers"]})
    answer(h, 1)
    events = client.receive_data(h.take_output())
    response = next(e for e in events if isinstance(e, ResponseReceived))
    assert response.stream_id == 1 and dict(response.headers)[b":status"] == b"200"
    assert b"".join(e.data for e in events if isinstance(e, DataReceived)) == b"over h2"
    assert any(isinstance(e, StreamEnded) and e.stream_id == 1 for e in events)
    assert h.conn.http_version == "2"


def test_the_client_preface_in_the_same_read_as_the_request() -> None:
    client, settings = upgrading_client()
    client.initiate_connection()
    h = Harness()
    h.feed(upgrade_request(settings) + client.data_to_send())  # one segment
    out = h.take_output()
    assert out.startswith(b"HTTP/1.1 101 ")
    client.receive_data(out.partition(b"\r\n\r\n")[2])
    answer(h, h.started()[0].stream_id)
    events = client.receive_data(h.take_output())
    assert b"".join(e.data for e in events if isinstance(e, DataReceived)) == b"over h2"


@pytest.mark.parametrize(
    "why", ["body", "no-settings", "two-settings", "not-in-connection", "http10", "tls"])
def test_requests_that_may_not_upgrade_are_served_as_http11(why: str) -> None:
    # RFC 7540 3.2 and RFC 9110 7.8: ignoring an Upgrade is always allowed, so these get an
    # ordinary HTTP/1.1 answer rather than an error.
    _, settings = upgrading_client()
    request = upgrade_request(settings)
    tls = None
    if why == "body":
        request = upgrade_request(settings, extra=b"Content-Length: 2\r\n") + b"hi"
    elif why == "no-settings":
        request = upgrade_request(None)  # RFC 7540 3.2.1: exactly one is required
    elif why == "two-settings":
        request = upgrade_request(settings, extra=b"HTTP2-Settings: " + settings + b"\r\n")
    elif why == "not-in-connection":
        request = upgrade_request(settings, connection=b"keep-alive")
    elif why == "http10":
        request = request.replace(b"HTTP/1.1\r\n", b"HTTP/1.0\r\n", 1)
    else:
        tls = {"server_cert": None, "client_cert_chain": [], "tls_version": 0x0304,
               "cipher_suite": 0x1301}
    h = Harness(ServerConnection(Config(), now=0.0, client=("10.0.0.1", 1), server=("10.0.0.2", 80),
                                 tls=tls))
    h.feed(request)
    assert not h.conn.closed
    (started,) = h.started()
    assert started.scope["http_version"] in ("1.1", "1.0")
    body = h.read_body(started.stream_id)
    h.respond(started.stream_id, body=b"plain " + body)
    h.finish(started.stream_id)
    out = h.take_output()
    assert out.startswith(b"HTTP/1.1 200 ")  # no 101 before it
    (reply,) = parse_responses(out)
    assert (reply.status, reply.body) == (200, b"plain " + (b"hi" if why == "body" else b""))


def test_only_the_first_request_upgrades() -> None:
    _, settings = upgrading_client()
    h = Harness()
    h.feed(b"GET /first HTTP/1.1\r\nHost: example.com\r\n\r\n")
    first = h.started()[0].stream_id
    h.respond(first)
    h.finish(first)
    h.feed(upgrade_request(settings))
    second = h.started()[-1]
    assert second.stream_id != first and second.scope["http_version"] == "1.1"


def test_http2_settings_that_do_not_decode_end_in_goaway_not_an_exception() -> None:
    h = Harness()
    h.feed(upgrade_request(b"!!not-base64url!!"))
    out = h.take_output()
    assert out.startswith(b"HTTP/1.1 101 ")
    assert h.conn.closed  # GOAWAY(PROTOCOL_ERROR), written by h2 after the preface
    assert not h.started()


@pytest.mark.network
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_upgrades_to_h2c(tmp_path: object) -> None:
    # curl --http2 on a cleartext URL asks for the upgrade; the demo app answers over HTTP/2.
    server = subprocess.Popen(
        [sys.executable, "-m", "asgi_sansio", "--port", "0", "--no-access-log"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert server.stdout is not None
        url = None
        for _ in range(50):
            line = server.stdout.readline()
            if "http://" in line:
                url = line[line.index("http://"):].split()[0]
                break
        assert url is not None, "the server did not say where it listens"
        done = subprocess.run(["curl", "-sS", "-v", "--http2", "--max-time", "10", url + "/"],
                              capture_output=True, text=True, timeout=20)
        assert done.returncode == 0, done.stderr
        assert "HTTP/1.1 101" in done.stderr and "HTTP/2 200" in done.stderr, done.stderr
        assert done.stdout  # the demo page
    finally:
        server.terminate()
        server.wait(10)
