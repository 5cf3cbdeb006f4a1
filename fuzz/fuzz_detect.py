"""Fuzz a connection's first bytes: PROXY header, then HTTP/1.1 vs HTTP/2, with app calls.

Invariants, checked after every call (``_common.Driver`` for the first five):

* nothing escapes the core but AppMisuseError / ClientDisconnected from send(), each exactly when
  due; DriverMisuseError never;
* every StreamStarted stream gets one StreamEnded, and ConnectionClosed comes once, last;
* core buffers stay within Config limits (the held preface prefix under 24 bytes, a held PROXY
  header within its format's bound), and an idle connection always has a deadline;
* the output decodes (h11 as the apps' responses; HTTP/2 as frames and HPACK, our SETTINGS
  first), and while the bytes are a proper prefix of the HTTP/2 preface nothing happens;
* without PROXY: split reads give exactly what the bytes in one piece give, and anything but
  ALPN h2 or the preface gives exactly the events and output of ``HTTP11Connection``;
* with ``Config.proxy_protocol``, against ``ProxyModel`` (written from HAProxy's
  proxy-protocol.txt, not from ``asgi_sansio._proxy``): while the bytes may still become a valid
  header, nothing happens (no event, no byte, reading, timer = start + head_timeout); an invalid
  header, or EOF / shutdown / a timer at or after that deadline before it is whole, gives
  exactly [ConnectionClosed()], no byte, and nothing ever after; a valid header gives, from then
  on, call by call (app messages and timers included), exactly the events (scopes too) and
  bytes of a twin ServerConnection without PROXY created at that moment with the header's
  addresses (the real ones for UNKNOWN, LOCAL and families other than TCP over IPv4/IPv6),
  with an https scheme when a version 2 SSL field says the client spoke TLS, and fed what
  followed the header.

The input picks the ALPN, a start (often a preface prefix), arbitrary bytes and where they are
split; then the mode (0: no PROXY; a PROXY header generated valid, mutated, or arbitrary bytes,
put in front), how the connection ends, and a script of operations: the next read, the app's
receive() / send() / return, time passing and timers firing, shutdown(), EOF.  Inputs that end
after the split points (older corpus entries) run without PROXY and without app calls.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
from typing import Any

from _common import H2_PREFACE as PREFACE
from _common import (
    KNOWN_ISSUES,
    App,
    Checker,
    Config,
    ConnectionClosed,
    Driver,
    ServerConnection,
    StreamStarted,
    Violation,
    main,
    pick,
    provider,
)
from fuzz_http2 import H2App
from fuzz_http11 import DELTAS, make_message

from asgi_sansio._http11 import HTTP11Connection

STARTS = (
    b"", b"", PREFACE[:1], PREFACE[:3], PREFACE[:4], PREFACE[:14], PREFACE[:16], PREFACE[:18],
    PREFACE[:20], PREFACE[:23], PREFACE, PREFACE, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"PRI * HTTP/1.1\r\nHost: a\r\n\r\n", b"\r\n", b"PRI",
)
ALPNS = (None, None, "http/1.1", "h2")
REAL_CLIENT = ("10.0.0.1", 5555)  # what _common.Driver gives every connection
REAL_SERVER = ("10.0.0.2", 80)
START = 1000.0  # the driver's clock at the connection's start

# Core bugs this harness found that are not fixed yet: tolerated like ``KNOWN_ISSUES`` (which
# lives in _common.py; move them there), enforced by ``tolerate=()`` and FUZZ_STRICT=1.
def run_one(data: bytes, tolerate: Any = KNOWN_ISSUES, trace: list[str] | None = None) -> None:
    """Run one input; raises ``Violation`` (or whatever escaped the core) on failure."""
    run(provider(data), tolerate, trace)


def run(p: Any, tolerate: Any = KNOWN_ISSUES, trace: list[str] | None = None) -> None:
    check = Checker(tolerate)
    alpn = pick(p, ALPNS)
    eof = p.ConsumeIntInRange(0, 1) == 1
    cuts = [p.ConsumeIntInRange(0, 600) for _ in range(p.ConsumeIntInRange(0, 6))]
    payload = pick(p, STARTS) + p.ConsumeBytes(p.ConsumeIntInRange(0, 512))
    mode = p.ConsumeIntInRange(0, 3)
    header = make_header(p, mode) if mode else b""
    ending = p.ConsumeIntInRange(0, 2)
    data = header + payload
    cuts = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    pieces = [data[a:b] for a, b in itertools.pairwise(cuts)]
    if not mode:
        bytes_only(check, alpn, eof, pieces, payload, trace)
        if not p.remaining_bytes():
            return
    with contextlib.suppress(_Diverged):
        Lockstep(check, alpn, mode > 0, pieces, trace).run(p, eof, ending)


# --------------------------------------------------------------------------------------------
# Without PROXY, bytes only: split vs whole, and HTTP11Connection
# --------------------------------------------------------------------------------------------


def bytes_only(check: Checker, alpn: str | None, eof: bool, pieces: list[bytes], payload: bytes,
               trace: list[str] | None) -> None:
    speaks_h2 = alpn == "h2" or payload.startswith(PREFACE)
    config = Config()
    results = []
    for split in (pieces, [payload]):
        if trace is not None:
            trace.append(f"-- alpn={alpn!r} pieces={[len(x) for x in split]} eof={eof}")
        drv = Driver(config, check, trace=trace, alpn=alpn)
        seen = b""
        for piece in split:
            drv.feed(piece, force=True)
            seen += piece
            if alpn != "h2" and len(seen) < len(PREFACE) and PREFACE.startswith(seen):
                check(not drv.events and not drv.out_total and drv.conn.wants_read
                      and not drv.closed, "preface-prefix", f"{seen!r} acted on")
        if eof:
            drv.eof()
        results.append((list(drv.events), b"".join(drv.output)))
        drv.finish(0)
    if speaks_h2:
        # After a connection error h2 may or may not have flushed the frames earlier input
        # queued (a RST_STREAM before the GOAWAY): the events must agree, the bytes may not.
        check(results[0][0] == results[1][0], "split-differs",
              f"{results[0][0]!r} != {results[1][0]!r}")
    else:
        check(results[0] == results[1], "split-differs", f"{results[0]!r} != {results[1]!r}")

    holding = alpn != "h2" and not eof and PREFACE.startswith(payload)
    if not speaks_h2 and not holding:
        check(results[1] == reference(config, payload, eof), "not-like-h1",
              f"{results[1]!r} differs from HTTP11Connection")


def reference(config: Config, payload: bytes, eof: bool) -> tuple[list[Any], bytes]:
    """What HTTP/1.1 alone does with these bytes, fed at once (the driver's defaults)."""
    h1 = HTTP11Connection(config, now=START, client=REAL_CLIENT, server=REAL_SERVER, tls=None,
                          state=None, wall_offset=0.0)
    if payload:
        h1.receive_data(payload, START)
    if eof:
        h1.receive_data(b"", START)
    return h1.pop_events(), h1.data_to_send()


# --------------------------------------------------------------------------------------------
# The PROXY protocol, as the specification states it (HAProxy's proxy-protocol.txt)
# --------------------------------------------------------------------------------------------

V1_PREFIX = b"PROXY "
V1_LIMIT = 107  # the longest line a receiver must take, CRLF included
V2_SIGNATURE = bytes.fromhex("0d0a0d0a000d0a515549540a")
# v2 address block by family (UNSPEC, INET, INET6, UNIX): two addresses, and ports for IP
V2_BLOCK = (0, 4 + 4 + 2 + 2, 16 + 16 + 2 + 2, 108 + 108)
V2_MAX = 16 + 0xFFFF
Addr = tuple[str, int] | None
# Verdicts for an invalid header, by the rule it breaks
BAD_START, BAD_LONE, BAD_LONG = ("invalid", "start"), ("invalid", "lone-cr-lf"), ("invalid", "long")
BAD_FIELDS, BAD_V2 = ("invalid", "fields"), ("invalid", "v2")


class ProxyModel:
    """The rules, in the model's words:

    * Version 1 is one US-ASCII line: ``PROXY``, one space, then ``TCP4`` or ``TCP6`` with the
      source and destination address and port, one space apart, or ``UNKNOWN`` followed by
      anything, and CRLF.  IPv4 is four decimal numbers 0-255 without leading zeros; IPv6 the
      text forms of RFC 4291 2.2 (1-4 hex digits a group, one ``::`` at most, maybe a dotted
      IPv4 tail), 128 bits in all; a port a decimal 0-65535 without leading zeros.  The line
      ends with the first CRLF, within 107 bytes; a lone CR or LF is an error.  The receiver
      waits for the CRLF before it decodes the fields, so a bad field is refused at the CRLF,
      a bad line end at the offending byte, a missing CRLF at the 107th byte.
    * Version 2 begins with the 12-byte signature; the 13th byte is version 2 with command
      LOCAL (0) or PROXY (1), the 14th a defined family (UNSPEC, INET, INET6, UNIX) and
      transport (UNSPEC, STREAM, DGRAM), the 15th-16th the length of the rest.  These are
      read together once 16 bytes are in (the specification's way to tell the versions
      apart); a PROXY header's rest must hold its family's addresses (and ports).  The rest
      (addresses, then TLVs, which a receiver may skip) is taken whole.
    * Any byte that departs from ``PROXY `` and from the signature is refused at once.
    * LOCAL, UNKNOWN, and anything but TCP over IPv4 or IPv6 keep the real endpoints.

    ``judge`` is a function of the bytes so far, whose verdict never changes once given."""

    MORE = ("more",)

    @staticmethod
    def judge(data: bytes) -> tuple[Any, ...]:
        """``MORE``, ``("invalid", rule)`` or ``("valid", size, client, server, secure)``
        (``secure``: a v2 SSL field says the client spoke TLS to the balancer)."""
        if not data:
            return ProxyModel.MORE
        if data[0] == V1_PREFIX[0]:
            return _judge_v1(data)
        if data[0] == V2_SIGNATURE[0]:
            return _judge_v2(data)
        return BAD_START


def _judge_v1(data: bytes) -> tuple[Any, ...]:
    if data[:6] != V1_PREFIX[: len(data)]:
        return BAD_START
    for i in range(6, len(data)):
        byte = data[i]
        if byte == 0x0A:
            if data[i - 1] != 0x0D:
                return BAD_LONE
            return _v1_fields(data[6 : i - 1], i + 1)
        if data[i - 1] == 0x0D:  # a CR not before LF
            return BAD_LONE
        if i + 1 >= V1_LIMIT:  # 107 bytes, no CRLF
            return BAD_LONG
    return ProxyModel.MORE


def _v1_fields(body: bytes, size: int) -> tuple[Any, ...]:
    if body == b"UNKNOWN" or body.startswith(b"UNKNOWN "):
        return ("valid", size, None, None, False)
    fields = body.split(b" ")
    if len(fields) != 5 or fields[0] not in (b"TCP4", b"TCP6"):
        return BAD_FIELDS
    parse = _ipv4 if fields[0] == b"TCP4" else _ipv6
    source, destination = parse(fields[1]), parse(fields[2])
    sport, dport = _port(fields[3]), _port(fields[4])
    if source is None or destination is None or sport is None or dport is None:
        return BAD_FIELDS
    return ("valid", size, (_show(source), sport), (_show(destination), dport), False)


def _decimal(text: bytes, most: int) -> int | None:
    """A decimal number without sign or leading zeros, at most ``most``, or None."""
    if not text or len(text) > 5 or any(c not in b"0123456789" for c in text):
        return None
    if len(text) > 1 and text[0] == 0x30:
        return None
    value = int(text)
    return value if value <= most else None


def _port(text: bytes) -> int | None:
    return _decimal(text, 65535)


def _ipv4(text: bytes) -> bytes | None:
    parts = text.split(b".")
    if len(parts) != 4 or any(len(part) > 3 for part in parts):
        return None
    numbers = [_decimal(part, 255) for part in parts]
    return None if None in numbers else bytes(numbers)  # type: ignore[arg-type]


_HEX = frozenset(b"0123456789abcdefABCDEF")


def _groups(text: bytes) -> list[int] | None:
    if not text:
        return []
    out = []
    for group in text.split(b":"):
        if not 1 <= len(group) <= 4 or any(c not in _HEX for c in group):
            return None
        out.append(int(group, 16))
    return out


def _ipv6(text: bytes) -> bytes | None:
    tail = b""
    if b"." in text:  # x:x:x:x:x:x:d.d.d.d, or with "::" before the dotted part
        head, _, dotted = text.rpartition(b":")
        tail = _ipv4(dotted) or b""
        if not tail or not head:
            return None
        text = head + b":" if head.endswith(b":") else head
    wanted = 8 - len(tail) // 2
    if text.count(b"::") > 1:
        return None
    if b"::" in text:
        left, right = text.split(b"::")
        lg, rg = _groups(left), _groups(right)
        if lg is None or rg is None or len(lg) + len(rg) >= wanted:
            return None
        groups = lg + [0] * (wanted - len(lg) - len(rg)) + rg
    else:
        groups = _groups(text)  # type: ignore[assignment]
        if groups is None or len(groups) != wanted:
            return None
    return b"".join(g.to_bytes(2, "big") for g in groups) + tail


def _show(packed: bytes) -> str:
    """The scope's text for an address: RFC 5952's for IPv6 (the stdlib writes it)."""
    return str(ipaddress.ip_address(packed))


def _judge_v2(data: bytes) -> tuple[Any, ...]:
    if data[:12] != V2_SIGNATURE[: len(data)]:
        return BAD_START
    if len(data) < 16:
        return ProxyModel.MORE
    version, command = data[12] >> 4, data[12] & 0x0F
    family, transport = data[13] >> 4, data[13] & 0x0F
    length = int.from_bytes(data[14:16], "big")
    if version != 2 or command > 1 or family > 3 or transport > 2:
        return BAD_V2
    if command == 1 and length < V2_BLOCK[family]:
        return BAD_V2
    if len(data) < 16 + length:
        return ProxyModel.MORE
    if command == 0 or transport != 1 or family not in (1, 2):
        return ("valid", 16 + length, None, None, False)
    size = 4 if family == 1 else 16
    block = data[16 : 16 + 2 * size + 4]
    ports = block[2 * size :]
    return ("valid", 16 + length, (_show(block[:size]), int.from_bytes(ports[:2], "big")),
            (_show(block[size : 2 * size]), int.from_bytes(ports[2:], "big")),
            _ssl_client(data[16 + 2 * size + 4 : 16 + length]))


def _ssl_client(tlvs: bytes) -> bool:
    """The TLVs after a TCP header's addresses: the first PP2_TYPE_SSL (0x20) field decides,
    by its first byte's PP2_CLIENT_SSL bit, if it holds the flags and the 4-byte verify
    result; a field that runs past the block ends the reading, and nothing is believed."""
    while len(tlvs) >= 3:
        kind, size = tlvs[0], int.from_bytes(tlvs[1:3], "big")
        if size > len(tlvs) - 3:
            return False
        if kind == 0x20 and size >= 5:
            return tlvs[3] & 1 == 1
        tlvs = tlvs[3 + size :]
    return False


# --------------------------------------------------------------------------------------------
# Headers: built from the specification's layout, then maybe mutated
# --------------------------------------------------------------------------------------------

PORTS = (0, 1, 80, 443, 8080, 65535, -1)  # -1: drawn
UNKNOWN_TAILS = (b"", b" ", b" 192.0.2.1 198.51.100.2 56324 443",
                 b" ffff:f...f:ffff ffff:f...f:ffff 65535 65535")  # the spec's 107-byte line
V2_FAMILIES = (0x11, 0x21, 0x00, 0x12, 0x22, 0x31, 0x32, 0x01, 0x10, 0x20, 0x30)
TLV_TYPES = (0x01, 0x02, 0x03, 0x04, 0x05, 0x20, 0x30, 0xE0, 0xF8)


def make_header(p: Any, mode: int) -> bytes:
    """1: a valid header; 2: one mutated; 3: arbitrary bytes."""
    if mode == 3:
        return p.ConsumeBytes(p.ConsumeIntInRange(0, 300))
    header = v1_header(p) if p.ConsumeIntInRange(0, 1) == 0 else v2_header(p)
    return mutate(p, header) if mode == 2 else header


def _draw_port(p: Any) -> int:
    port = pick(p, PORTS)
    return p.ConsumeIntInRange(0, 65535) if port < 0 else port


def _draw_ip(p: Any, v6: bool) -> Any:
    kind = p.ConsumeIntInRange(0, 3)
    if not v6:
        return ipaddress.IPv4Address((0, 0x7F000001, 0xC0000201)[kind] if kind < 3
                                     else p.ConsumeIntInRange(0, 2**32 - 1))
    if kind < 3:
        return ipaddress.IPv6Address((0, 1, 0xFFFF_C000_0201)[kind])
    high, low = p.ConsumeIntInRange(0, 2**64 - 1), p.ConsumeIntInRange(0, 2**64 - 1)
    return ipaddress.IPv6Address(high << 64 | low)


def _v6_text(p: Any, address: Any) -> str:
    how = p.ConsumeIntInRange(0, 3)
    if how == 1:
        return address.exploded
    if how == 2:
        return str(address).upper()
    if how == 3:  # the dotted IPv4 tail of RFC 4291 2.2 (3)
        return address.exploded[:30] + str(ipaddress.IPv4Address(address.packed[12:]))
    return str(address)


def v1_header(p: Any) -> bytes:
    kind = p.ConsumeIntInRange(0, 2)
    if kind == 2:
        return b"PROXY UNKNOWN" + pick(p, UNKNOWN_TAILS) + b"\r\n"
    v6 = kind == 1
    src, dst = _draw_ip(p, v6), _draw_ip(p, v6)
    texts = [_v6_text(p, a) for a in (src, dst)] if v6 else [str(src), str(dst)]
    sport, dport = _draw_port(p), _draw_port(p)
    return f"PROXY TCP{6 if v6 else 4} {texts[0]} {texts[1]} {sport} {dport}\r\n".encode()


def v2_header(p: Any) -> bytes:
    command = p.ConsumeIntInRange(0, 3) != 0  # mostly PROXY
    family = pick(p, V2_FAMILIES)
    if family >> 4 in (1, 2):
        v6 = family >> 4 == 2
        block = _draw_ip(p, v6).packed + _draw_ip(p, v6).packed
        block += _draw_port(p).to_bytes(2, "big") + _draw_port(p).to_bytes(2, "big")
    elif family >> 4 == 3:
        block = b"/run/a.sock".ljust(108, b"\0") + b"/run/b.sock".ljust(108, b"\0")
    else:
        block = b""
    if not command and p.ConsumeIntInRange(0, 1):
        block = b""  # LOCAL usually says nothing
    for _ in range(p.ConsumeIntInRange(0, 3)):
        value = p.ConsumeBytes(p.ConsumeIntInRange(0, 24))
        block += bytes([pick(p, TLV_TYPES)]) + len(value).to_bytes(2, "big") + value
    return (V2_SIGNATURE + bytes([0x20 | command, family]) + len(block).to_bytes(2, "big")
            + block)


def mutate(p: Any, header: bytes) -> bytes:
    """A few byte-level edits: overwrite, +1 (65535 becomes 65536), delete, insert, cut, -1
    (a v2 length one short of its addresses)."""
    out = bytearray(header)
    for _ in range(p.ConsumeIntInRange(1, 4)):
        if not out:
            break
        at = p.ConsumeIntInRange(0, len(out) - 1)
        how = p.ConsumeIntInRange(0, 5)
        if how == 0:
            out[at] = p.ConsumeIntInRange(0, 255)
        elif how == 1:
            out[at] = (out[at] + 1) & 0xFF
        elif how == 2:
            del out[at]
        elif how == 3:
            out.insert(at, p.ConsumeIntInRange(0, 255))
        elif how == 4:
            del out[at:]
        else:
            out[at] = (out[at] - 1) & 0xFF
    return bytes(out)


# --------------------------------------------------------------------------------------------
# Lockstep: the connection under test and its twin, call by call
# --------------------------------------------------------------------------------------------


class ProxyDriver(Driver):
    """``Driver`` for the connection under test.  Its output is HTTP/2 when what follows the
    header starts with the preface (the harness says so: ``Driver`` looks at the first bytes,
    here the header), streams are judged by ``H2App`` on HTTP/2, and a stream there may end
    before its response (the fuzzed bytes may reset it)."""

    def __init__(self, config: Config, check: Checker, trace: list[str] | None,
                 alpn: str | None, proxied: bool) -> None:
        self.awaiting = proxied  # no protocol yet: the header is not whole (the model says)
        self.doomed = False  # ... and the model says it is dropped (checked by ``Lockstep``)
        super().__init__(config, check, now=START, trace=trace, alpn=alpn)
        if proxied:
            self.head = PREFACE  # the first bytes are the header's: speaks_h2 is set for us

    def _on_event(self, event: Any, ended_now: set[int]) -> None:
        super()._on_event(event, ended_now)
        if isinstance(event, StreamStarted) and event.scope.get("http_version") == "2":
            self.apps[event.stream_id] = H2App(event.stream_id, event.scope)

    def may_end_early(self, app: App) -> bool:
        return self.speaks_h2

    def _check_state(self) -> None:
        if not self.awaiting:
            super()._check_state()
            return
        conn, check = self.conn, self.check
        waiting = getattr(conn, "_proxy", None)  # the core's stand-in, while it reads the header
        held = len(waiting._buffer) if waiting is not None else 0
        if held > V2_MAX:
            check(False, "proxy-unbounded", f"{held} header bytes held")
        if self.closed:
            if conn.get_timer() is not None:
                check(False, "closed-but-live", f"timer={conn.get_timer()}")
            if conn.wants_read:
                check(False, "proxy-drop-wants-read", "dropped, but wants_read is True")
        elif self.doomed:
            pass
        elif not conn.wants_read or conn.get_timer() != START + self.config.head_timeout:
            check(False, "proxy-waiting",
                  f"wants_read={conn.wants_read} timer={conn.get_timer()}")


class TwinDriver(ProxyDriver):
    """The twin: no PROXY, created with the addresses the header gave, when it became whole."""

    def __init__(self, config: Config, check: Checker, now: float, alpn: str | None,
                 client: Addr, server: Addr) -> None:
        super().__init__(config, check, trace=None, alpn=alpn, proxied=False)
        # ``Driver`` made a connection with the real endpoints: start again with ours.
        self.now, self.events, self.output, self.out_total, self.h2client = now, [], [], 0, None
        self.conn = ServerConnection(config, now=now, client=client, server=server, alpn=alpn)
        self._pump()


class _Diverged(Exception):
    """A tolerated known issue took the connection where the model cannot follow."""


class Lockstep:
    """Runs the connection under test (fed ``pieces``) and, once its protocol is known, a twin
    fed the same bytes less the PROXY header (without PROXY: all of them, in one piece, once
    they stop being a preface prefix).  Every call goes to both; their new events and output
    must be equal, and ``ProxyModel`` says what happens before the twin exists."""

    def __init__(self, check: Checker, alpn: str | None, proxied: bool, pieces: list[bytes],
                 trace: list[str] | None) -> None:
        self.check, self.alpn, self.proxied, self.trace = check, alpn, proxied, trace
        self.config = Config(proxy_protocol=proxied)
        self.pieces = list(reversed(pieces))
        self.log(f"-- lockstep proxied={proxied} alpn={alpn!r} "
                 f"pieces={[len(x) for x in pieces]}")
        self.main = ProxyDriver(self.config, check, trace, alpn, proxied)
        self.twin: TwinDriver | None = None
        self.seen = b""  # PROXY: the header's bytes so far, while the model says MORE
        self.after = b""  # PROXY: the first bytes after the header (for the preface)
        self.held: bytes | None = None  # no PROXY: a preface prefix the twin has not had yet
        self.rule = "end"  # ... for breaking this rule (a check's name: proxy-drop-<rule>)
        self.drop_seen = False  # ... and the drop was checked
        self.marks = (0, 0, 0, 0)  # main events, main output, twin events, twin output
        if not proxied:
            self._make_twin(REAL_CLIENT, REAL_SERVER)
            self.held = b"" if alpn != "h2" else None

    def log(self, text: str) -> None:
        if self.trace is not None:
            self.trace.append(text)

    @property
    def dropped(self) -> bool:
        """The model says the connection is dropped."""
        return self.main.doomed

    @dropped.setter
    def dropped(self, value: bool) -> None:
        self.main.doomed = value

    def _make_twin(self, client: Addr, server: Addr, secure: bool = False) -> None:
        client, server = client or REAL_CLIENT, server or REAL_SERVER
        self.log(f"  twin: client={client} server={server} secure={secure} now={self.main.now}")
        self.twin = TwinDriver(Config(), self.check, self.main.now, self.alpn, client, server)
        if secure:
            # TLS ended at the balancer: the scheme is https, with no tls extension.  The public
            # constructor has no such argument, so the twin is told through the internals the
            # PROXY header sets (the model above decided it from the bytes on its own).
            conn = self.twin.conn
            conn._args["secure"] = True
            conn._proto._scheme = "https"
        if self.proxied:  # compared from now on (without PROXY, from the start)
            self.marks = (len(self.main.events), len(self.main.output), 0, 0)

    def _compare(self, what: str) -> None:
        main, twin, check = self.main, self.twin, self.check
        me, mo, te, to = self.marks
        events, out = main.events[me:], b"".join(main.output[mo:])
        if twin is None:  # PROXY, no protocol yet: nothing happens, or the model's drop
            if not self.dropped or self.drop_seen:
                if events or out:
                    check(False, "proxy-early", f"{what}: {events!r} {out[:80]!r}")
            else:
                self.drop_seen = True
                if events != [ConnectionClosed()] or out:
                    self._not_dropped(f"{what}: {events!r} {out[:80]!r}")
            self.marks = (len(main.events), len(main.output), 0, 0)
            return
        twin_events, twin_out = twin.events[te:], b"".join(twin.output[to:])
        if events != twin_events:
            check(False, "twin-events", f"{what}: {events!r} != twin's {twin_events!r}")
        if out != twin_out:
            check(False, "twin-output", f"{what}: {out[:200]!r} != twin's {twin_out[:200]!r}")
        self.marks = (len(main.events), len(main.output), len(twin.events), len(twin.output))

    def _not_dropped(self, detail: str) -> None:
        """The model dropped the connection, the core did not: if that is a tolerated known
        issue, the run ends here, having nothing left to compare with."""
        self.check(False, f"proxy-drop-{self.rule}", detail)
        raise _Diverged

    # -- operations -------------------------------------------------------------------------

    def feed(self) -> None:
        if not self.pieces:
            return
        piece = self.pieces.pop()
        main = self.main
        if main.closed or main.eof_sent:
            return
        rest = piece  # what the twin gets
        if not self.proxied:
            if self.held is not None:
                self.held += piece
                if len(self.held) < len(PREFACE) and PREFACE.startswith(self.held):
                    rest = b""
                else:
                    rest, self.held = self.held, None
        elif main.awaiting and not self.dropped:
            self.seen += piece
            verdict = ProxyModel.judge(self.seen)
            self.log(f"  model: {verdict!r}")
            rest = b""
            if verdict[0] == "invalid":
                self.dropped, self.rule = True, verdict[1]
            elif verdict[0] == "valid":
                rest = self.seen[verdict[1] :]
                self._make_twin(verdict[2], verdict[3], verdict[4])
                main.awaiting = False
        if self.proxied and not main.awaiting and len(self.after) < len(PREFACE):
            self.after += rest[: len(PREFACE) - len(self.after)]
            main.speaks_h2 = main.speaks_h2 or self.after == PREFACE
        if self.dropped and not self.drop_seen:
            try:  # the model's drop: the Driver's checks may misfire if the core goes on
                main.feed(piece, force=True)
            except Violation as exc:
                self._not_dropped(f"the core went on: {exc}")
        else:
            main.feed(piece, force=True)
        if self.twin is not None and rest:
            self.twin.feed(rest, force=True)
        self._compare(f"feed {piece[:60]!r}")

    def both(self, what: str, call: Any) -> None:
        call(self.main)
        if self.twin is not None:
            call(self.twin)
        self._compare(what)

    def _end_header(self) -> None:
        """EOF, shutdown, a due timer or the end of the run: an unfinished header drops."""
        if self.main.awaiting and not self.main.closed:
            self.dropped = True

    def _flush_held(self) -> None:
        """Before an EOF (which makes HTTP/1.1 take a held preface prefix), the twin gets the
        prefix too (and holds it until the EOF, as the connection under test does)."""
        if self.twin is not None and self.held:
            self.twin.feed(self.held, force=True)
        self.held = None

    def eof(self) -> None:
        self._flush_held()
        self._end_header()
        self.both("eof", lambda d: d.eof())

    def timer(self, delta: float) -> None:
        for drv in (self.main, self.twin):
            if drv is not None:
                drv.advance(delta)
        if self.main.now >= START + self.config.head_timeout:
            self._end_header()
        self.both("timer", lambda d: d.fire_timer())

    def shutdown(self) -> None:
        self._end_header()
        self.both("shutdown", lambda d: d.shutdown())

    def app_call(self, p: Any, op: int) -> None:
        main, twin = self.main, self.twin
        running = main.running
        if twin is None or not running:
            return
        http = [app for app in running if app.kind == "http"]  # WebSocket apps only finish
        if op < 2:
            if not http:
                return
            sid = pick(p, http).sid
            mine = main.receive(main.apps[sid])
            theirs = twin.receive(twin.apps[sid])
            if mine != theirs:
                self.check(False, "twin-receive", f"{mine!r} != twin's {theirs!r}")
            self._compare(f"receive({sid})")
        elif op < 5:
            if not http:
                return
            app = pick(p, http)
            message = make_message(p, app)
            self.both(f"send({app.sid})", lambda d: d.send(d.apps[app.sid], message))
        else:
            sid = pick(p, running).sid
            exc = RuntimeError("app failed") if p.ConsumeIntInRange(0, 1) else None
            self.both(f"app_finished({sid})", lambda d: d.app_finished(d.apps[sid], exc))

    def run(self, p: Any, eof: bool, ending: int) -> None:
        steps = 0
        while p.remaining_bytes() and steps < 200 and not (
                self.main.closed and not self.main.any_running):
            steps += 1
            op = p.ConsumeIntInRange(0, 15)
            if op < 5:
                self.feed()
            elif op < 11:
                self.app_call(p, op - 5)
            elif op < 14:
                self.timer(pick(p, DELTAS))
            elif op == 14:
                self.shutdown()
            else:
                self.eof()
        while self.pieces:
            self.feed()
        if eof:
            self.eof()
        self._end_header()
        self._flush_held()
        self.both(f"finish {ending}", lambda d: d.finish(ending))


if __name__ == "__main__":
    main(run_one, "fuzz_detect")
