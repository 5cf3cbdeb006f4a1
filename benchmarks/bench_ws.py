"""WebSocket echo end to end: asgi-sansio's asyncio driver beside Uvicorn (wsproto) and Hypercorn.

Method (design.md, as bench_e2e.py): each server runs one worker pinned to CPU 0, the load client
runs pinned to CPU 1, the servers take turns in A B C A B C order, and the figure that matters is
the server process tree's own CPU time (utime + stime from /proc) per echoed message.

The load: one WebSocket connection, 32-byte text messages (``--binary`` for binary), 64 in
flight (``--inflight``): the client sends a new message for each echo it reads.  The client is
a small asyncio protocol speaking raw RFC 6455 frames (handshake by hand, no extension offered,
a fixed mask), so it costs far less per message than any server and the server stays the
bottleneck.  Warm-up traffic runs before the measured window; the window's message count and the
server's CPU are read at the same two moments.

Usage: python benchmarks/bench_ws.py [--rounds 3] [--duration 5] [--inflight 64] [--size 32]
Needs uvicorn + hypercorn installed (``pip install -e '.[bench]'``) and taskset.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import shutil
import struct
import subprocess
import sys
import time

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)

try:
    from benchmarks.bench_e2e import (
        HYPERCORN_CONFIG,
        ROOT,
        cpu_seconds,
        free_port,
        pinned_server,
        wait_ready,
    )
except ImportError:  # run as a script: benchmarks/ is sys.path[0]
    from bench_e2e import HYPERCORN_CONFIG, ROOT, cpu_seconds, free_port, pinned_server, wait_ready  # type: ignore[no-redef, import-not-found, unused-ignore]

APP = "benchmarks.ws_app:app"
SERVERS: dict[str, list[str]] = {
    "asgi-sansio": [sys.executable, "-m", "asgi_sansio", APP, "--no-access-log",
                    "--log-level", "warning", "--port", "{port}"],
    "uvicorn-wsproto": [sys.executable, "-m", "uvicorn", APP, "--ws", "wsproto", "--http", "h11",
                        "--loop", "asyncio", "--no-access-log", "--log-level", "warning",
                        "--port", "{port}"],
    "hypercorn": [sys.executable, "-m", "hypercorn", APP, "--log-level", "warning",
                  "--config", HYPERCORN_CONFIG, "--bind", "127.0.0.1:{port}"],
}
# Not in the default set: ``--servers asgi-sansio,asgi-sansio-trio`` compares the two drivers.
OPTIONAL: dict[str, list[str]] = {
    "asgi-sansio-trio": [*SERVERS["asgi-sansio"], "--driver", "trio"],
}
# The floor: wsproto's WSConnection under a bare asyncio protocol, no ASGI, one write per read.
REFERENCE: dict[str, list[str]] = {
    "wsproto-raw": [sys.executable, os.path.abspath(__file__), "--raw-server", "--port", "{port}"],
}

MASK = b"\x37\xfa\x21\x3d"


def client_frame(payload: bytes, opcode: int) -> bytes:
    """One masked client frame (payloads under 126 bytes)."""
    assert len(payload) < 126
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + MASK + masked


class EchoLoad(asyncio.Protocol):
    """Keeps ``inflight`` messages outstanding on one connection; counts echoes."""

    def __init__(self, inflight: int, size: int, binary: bool) -> None:
        self.inflight = inflight
        self.payload = (os.urandom(size // 2).hex() + "x")[:size].encode()
        self.opcode = 0x2 if binary else 0x1
        self.frame = client_frame(self.payload, self.opcode)
        self.buffer = bytearray()
        self.handshake_done = asyncio.get_running_loop().create_future()
        self.upgraded = False
        self.received = 0
        self.sending = True
        self.drained = asyncio.get_running_loop().create_future()
        self.outstanding = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def start(self) -> None:
        self.outstanding = self.inflight
        self.transport.write(self.frame * self.inflight)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end])
            del buffer[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self.handshake_done.set_exception(RuntimeError(f"handshake refused: {head!r}"))
                return
            self.upgraded = True
            self.handshake_done.set_result(None)
        count = 0
        pos = 0
        size = len(buffer)
        while size - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            length = second & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                (length,) = struct.unpack_from("!H", buffer, pos + 2)
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                (length,) = struct.unpack_from("!Q", buffer, pos + 2)
                header = 10
            if size - pos < header + length:
                break
            opcode = first & 0x0F
            if opcode == self.opcode:
                if buffer[pos + header : pos + header + length] != self.payload:
                    raise RuntimeError("the echo differs from what was sent")
                count += 1
            elif opcode == 0x9:  # a ping: answer it
                body = bytes(buffer[pos + header : pos + header + length])
                self.transport.write(bytes([0x8A, 0x80 | len(body)]) + MASK
                                     + bytes(b ^ MASK[i % 4] for i, b in enumerate(body)))
            elif opcode == 0x8 and self.sending:
                raise RuntimeError("the server closed the connection")
            pos += header + length
        if pos:
            del buffer[:pos]
        if count:
            self.received += count
            if self.sending:
                self.transport.write(self.frame * count)
            else:
                self.outstanding -= count
                if self.outstanding <= 0 and not self.drained.done():
                    self.drained.set_result(None)

    def stop(self) -> None:
        self.sending = False
        if self.outstanding <= 0:
            self.drained.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake_done.done():
            self.handshake_done.set_exception(ConnectionError("connection lost"))
        if not self.drained.done():
            self.drained.set_exception(ConnectionError("connection lost"))


async def client_main(port: int, duration: float, warmup: float, inflight: int, size: int,
                      binary: bool) -> None:
    """The load client (a subprocess pinned to CPU 1): prints START, then DONE <count>."""
    loop = asyncio.get_running_loop()
    _, load = await loop.create_connection(
        lambda: EchoLoad(inflight, size, binary), "127.0.0.1", port
    )
    key = base64.b64encode(os.urandom(16))
    load.transport.write(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (port, key)
    )
    await asyncio.wait_for(load.handshake_done, 10)
    load.outstanding = inflight
    load.start()
    await asyncio.sleep(warmup)
    start_count = load.received
    print("START", flush=True)
    started = time.perf_counter()
    cpu_started = time.process_time()
    await asyncio.sleep(duration)
    count = load.received - start_count
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    print(f"DONE {count} {elapsed:.6f} {cpu:.6f}", flush=True)
    load.stop()
    await asyncio.wait_for(load.drained, 10)
    load.transport.write(client_frame(b"\x03\xe8", 0x8))  # Close 1000
    await asyncio.sleep(0.05)
    load.transport.close()


class RawEcho(asyncio.Protocol):
    """The reference server: wsproto's own handshake and frames, echo, no ASGI layer."""

    def __init__(self) -> None:
        self.ws = WSConnection(ConnectionType.SERVER)
        self.head: bytes | None = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.head is not None:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            if b"upgrade: websocket" not in self.head.lower():  # the readiness probe
                self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n"
                                     b"connection: close\r\n\r\nok")
                self.transport.close()
                return
            data, self.head = self.head, None
        ws = self.ws
        ws.receive_data(data)
        out = []
        for event in ws.events():
            if isinstance(event, TextMessage):
                out.append(ws.send(TextMessage(data=event.data)))
            elif isinstance(event, BytesMessage):
                out.append(ws.send(BytesMessage(data=event.data)))
            elif isinstance(event, Request):
                out.append(ws.send(AcceptConnection()))
            elif isinstance(event, Ping):
                out.append(ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                out.append(ws.send(event.response()))
                self.transport.write(b"".join(out))
                self.transport.close()
                return
        if out:
            self.transport.write(b"".join(out))


async def raw_server(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(RawEcho, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def run_one(name: str, args: argparse.Namespace) -> tuple[float, int, float, float]:
    """One server, one measured window: (server CPU seconds, messages, seconds, client CPU
    seconds)."""
    port = free_port()
    with pinned_server({**SERVERS, **REFERENCE, **OPTIONAL}[name], port) as server:
        wait_ready(port)
        client = subprocess.Popen(
            ["taskset", "-c", "1", sys.executable, os.path.abspath(__file__), "--client",
             "--port", str(port), "--duration", str(args.duration), "--warmup", str(args.warmup),
             "--inflight", str(args.inflight), "--size", str(args.size),
             *(["--binary"] if args.binary else [])],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )
        assert client.stdout is not None
        line = client.stdout.readline()
        before = cpu_seconds(server.pid)
        if line.strip() != "START":
            raise RuntimeError(f"{name}: the client did not start: {line!r}")
        line = client.stdout.readline()
        after = cpu_seconds(server.pid)
        parts = line.split()
        if len(parts) != 4 or parts[0] != "DONE":
            raise RuntimeError(f"{name}: the client failed: {line!r}")
        if client.wait(30) != 0:
            raise RuntimeError(f"{name}: the client exited with {client.returncode}")
        return after - before, int(parts[1]), float(parts[2]), float(parts[3])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--binary", action="store_true", help="binary messages, not text")
    parser.add_argument("--servers", default=",".join([*SERVERS, *REFERENCE]),
                        help="comma-separated, from: " + ", ".join([*SERVERS, *REFERENCE]))
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--raw-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_server:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(raw_server(args.port))
        return
    if args.client:
        asyncio.run(client_main(args.port, args.duration, args.warmup, args.inflight,
                                args.size, args.binary))
        return
    if shutil.which("taskset") is None:
        sys.exit("taskset not found (util-linux)")
    names = args.servers.split(",")
    totals = {n: [0.0, 0, 0.0] for n in names}
    for r in range(args.rounds):
        for name in names:
            cpu, messages, seconds, client_cpu = run_one(name, args)
            total = totals[name]
            total[0] += cpu
            total[1] += messages
            total[2] += seconds
            print(f"round {r + 1} {name:16s} {messages / seconds:9.0f} msg/s  "
                  f"{cpu / max(messages, 1) * 1e6:6.2f} us CPU/msg  "
                  f"(CPU busy: server {cpu / seconds * 100:3.0f}%, "
                  f"client {client_cpu / seconds * 100:3.0f}%)", flush=True)
    kind = "binary" if args.binary else "text"
    print(f"\nWebSocket echo, {args.size}-byte {kind} messages, {args.inflight} in flight on one "
          f"connection, {args.rounds} x {args.duration:g}s")
    per = {n: t[0] / max(t[1], 1) * 1e6 for n, t in totals.items()}
    base = per.get("asgi-sansio")
    for name in names:
        rate = totals[name][1] / max(totals[name][2], 1e-9)
        ratio = f"  ({per[name] / base:.2f}x asgi-sansio)" if base and name != "asgi-sansio" else ""
        print(f"{name:16s} {per[name]:7.2f} us server CPU per message  {rate:9.0f} msg/s{ratio}")


if __name__ == "__main__":
    main()
