"""The PROXY protocol header (HAProxy's ``proxy-protocol.txt``, versions 1 and 2).

A load balancer that passes TCP through (HAProxy, AWS NLB, many Kubernetes ingresses) writes
one header before the client's first byte, naming the client's and the server's addresses.
Without it every request's ``client`` is the balancer.  The header is a prefix of the byte
stream, below HTTP, so it is read here, before protocol detection, by ``ServerConnection``
when ``Config.proxy_protocol`` is on.

The specification's rules that matter for safety, and how they are kept:

* The receiver must not guess whether a header is present: with the option on, a connection
  without a valid header is dropped, without any answer (the peer is not an HTTP client of
  ours); with it off, nothing here runs and ``PROXY ...`` is just a bad HTTP request.
* The header is bounded: version 1 is one line of at most 107 bytes, version 2 at most
  16 + 65,535 bytes.  It is refused as soon as it cannot become valid: at a byte that departs
  from both signatures, a lone CR or LF, the 107th byte of a line without its CRLF, or a
  version 2 block's fixed 16 bytes.  A version 1 line's fields are judged at its CRLF, as the
  specification says to wait for it.
* ``LOCAL`` (version 2), ``UNKNOWN`` (version 1) and address families other than TCP over
  IPv4 or IPv6 keep the connection's real endpoints, as the specification says.
* A version 2 header's ``PP2_TYPE_SSL`` field with its ``PP2_CLIENT_SSL`` bit says the client
  reached the balancer over TLS (HAProxy's ``send-proxy-v2-ssl``): the scope's scheme is then
  ``https`` (``wss``), as if TLS had ended here.  Other fields are skipped, and so are fields
  that overrun the block.

A TLS connection carries the header before the TLS handshake, out of the core's sight: a driver
that terminates TLS reads it from the raw socket first, ``proxy_header_wants`` bytes at a time
so that not one byte of the handshake is taken with it, and passes the addresses to
``ServerConnection`` as ``client``/``server`` (the built-in drivers do, in ``_serving``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

V1_PREFIX = b"PROXY "
V1_MAX = 107  # the longest version 1 line, CRLF included (the specification's figure)
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
# Bytes of the two addresses and two ports, by address family: UNSPEC, INET, INET6, UNIX.
_V2_ADDRESS_SIZE = (0, 12, 36, 216)
_V2_TCP = {0x11: 4, 0x21: 16}  # TCP over IPv4 or IPv6: the size of one address
_PP2_TYPE_SSL, _PP2_CLIENT_SSL = 0x20, 0x01


class ProxyHeaderError(ValueError):
    """The bytes are not a valid PROXY protocol header; the connection must be dropped."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A parsed header.  ``client`` and ``server`` are ``(host, port)`` for the scope, or
    ``None`` where the connection's real endpoints stand (``LOCAL``, ``UNKNOWN``, or an address
    family other than TCP over IPv4/IPv6).  ``tls``: the client spoke TLS to the balancer."""

    version: int
    client: tuple[str, int] | None
    server: tuple[str, int] | None
    tls: bool = False


def parse_proxy_header(data: bytes) -> tuple[ProxyHeader, int] | None:
    """Parse the header at the start of ``data``.

    Returns the header and how many bytes it took (the rest is the client's own stream), or
    ``None`` while ``data`` is a proper beginning of a header that needs more bytes.  Raises
    ``ProxyHeaderError`` as soon as ``data`` cannot begin a valid header.
    """
    if data[:12] == V2_SIGNATURE[: len(data)]:
        return _parse_v2(data) if len(data) >= 16 else None
    if data[:6] == V1_PREFIX[: len(data)]:
        return _parse_v1(data) if len(data) > 6 else None
    raise ProxyHeaderError("the connection does not begin with a PROXY protocol header")


def proxy_header_wants(data: bytes) -> int:
    """How many bytes to read next after ``data``, a proper beginning of a header, without
    reading past the header's end: the rest of a version 2 header is known from its length
    field, a version 1 line ends at the first CRLF (two bytes are safe unless the last was
    CR)."""
    if data[:1] == V2_SIGNATURE[:1]:
        if len(data) < 16:
            return 16 - len(data)
        return 16 + int.from_bytes(data[14:16], "big") - len(data)
    return 1 if not data or data[-1:] == b"\r" else 2


def _parse_v1(data: bytes) -> tuple[ProxyHeader, int] | None:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        # Refused as soon as it cannot end in time, or holds a CR or LF that is not its CRLF.
        if len(data) >= V1_MAX or b"\n" in data or b"\r" in data[:-1]:
            raise ProxyHeaderError("a version 1 header is one line of at most 107 bytes")
        return None
    if b"\r" in data[:end] or b"\n" in data[:end]:
        # A lone CR or LF before the CRLF: refused as it would be had the CRLF come later.
        raise ProxyHeaderError("a version 1 header is one line of at most 107 bytes")
    fields = data[6:end].split(b" ")
    if fields[0] == b"UNKNOWN":  # the rest of the line is to be ignored
        return ProxyHeader(1, None, None), end + 2
    if len(fields) != 5 or fields[0] not in (b"TCP4", b"TCP6"):
        raise ProxyHeaderError("a version 1 header is PROXY TCP4|TCP6|UNKNOWN src dst sport dport")
    source, destination = (_address(fields[0], text) for text in fields[1:3])
    return ProxyHeader(1, (source, _port(fields[3])), (destination, _port(fields[4]))), end + 2


def _address(kind: bytes, text: bytes) -> str:
    parse = ipaddress.IPv4Address if kind == b"TCP4" else ipaddress.IPv6Address
    try:
        if b"%" not in text:  # an IPv6 scope id means nothing to the far side
            return str(parse(text.decode("ascii")))
    except ValueError:  # UnicodeDecodeError and AddressValueError are ValueErrors
        pass
    raise ProxyHeaderError(f"a version 1 address is not a {kind.decode()} address")


def _port(text: bytes) -> int:
    # Decimal without sign, spaces or leading zeros, as the specification's examples write it.
    if not (text.isdigit() and text.isascii() and len(text) <= 5) or (
        len(text) > 1 and text[0] == 0x30
    ) or int(text) > 65535:
        raise ProxyHeaderError("a version 1 port is not a number from 0 to 65535")
    return int(text)


def _parse_v2(data: bytes) -> tuple[ProxyHeader, int] | None:
    version_command, family_transport = data[12], data[13]
    if version_command >> 4 != 2 or version_command & 0x0F > 1:
        raise ProxyHeaderError("a version 2 header must be version 2, command LOCAL or PROXY")
    if family_transport >> 4 > 3 or family_transport & 0x0F > 2:
        raise ProxyHeaderError("a version 2 header has an undefined address family or transport")
    length = int.from_bytes(data[14:16], "big")
    proxied = version_command & 0x0F == 1  # LOCAL's address block is discarded unread
    if proxied and length < _V2_ADDRESS_SIZE[family_transport >> 4]:
        raise ProxyHeaderError("a version 2 header is shorter than its addresses")
    total = 16 + length
    if len(data) < total:
        return None
    size = _V2_TCP.get(family_transport)
    if not proxied or size is None:
        # LOCAL (the balancer's own health check), or addresses a scope cannot hold: the real
        # endpoints stand.  What follows the addresses (TLVs) is skipped either way.
        return ProxyHeader(2, None, None), total
    kind = ipaddress.IPv4Address if size == 4 else ipaddress.IPv6Address
    body = data[16:total]
    source = str(kind(body[:size]))
    destination = str(kind(body[size : 2 * size]))
    source_port = int.from_bytes(body[2 * size : 2 * size + 2], "big")
    destination_port = int.from_bytes(body[2 * size + 2 : 2 * size + 4], "big")
    tls = _client_used_tls(body[2 * size + 4 :])
    return ProxyHeader(2, (source, source_port), (destination, destination_port), tls), total


def _client_used_tls(fields: bytes) -> bool:
    """Whether the TLV fields after the addresses hold PP2_TYPE_SSL with PP2_CLIENT_SSL."""
    at = 0
    while at + 3 <= len(fields):
        kind, size = fields[at], int.from_bytes(fields[at + 1 : at + 3], "big")
        value = fields[at + 3 : at + 3 + size]
        if len(value) < size:
            return False  # it overruns the block: nothing after it can be trusted
        if kind == _PP2_TYPE_SSL and size >= 5:  # client flags, then a 32-bit verify result
            return bool(value[0] & _PP2_CLIENT_SSL)
        at += 3 + size
    return False
