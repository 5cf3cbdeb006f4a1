"""The core in a loop of your own: a simulated network on a synthetic clock.

``ServerConnection`` never reads a clock: every call takes ``now``, and ``get_timer()`` says
when it next needs ``handle_timer(now)``.  So a loop that is not an event loop at all can
drive it.  Here a discrete-event simulation keeps a number for the time and jumps from one
scheduled callback to the next: the keep-alive timeout (5 s), the request head timeout (20 s)
and an app that sleeps for 2 s all happen in a few milliseconds of real time, and every run
prints the same transcript.  Run it with::

    python examples/custom_loop.py

The same shape fits a test harness, a game loop, or a network stack of your own.
"""

from __future__ import annotations

import heapq
import itertools
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any

from asgi_sansio import ConnectionClosed, ServerConnection, StreamStarted

LATENCY = 0.010  # one-way delay of the simulated network, seconds


class Loop:
    """Callbacks at times on a synthetic clock, run in time order; ``now`` jumps between them."""

    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._order = itertools.count()  # equal times run in the order they were scheduled

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> None:
        heapq.heappush(self._queue, (when, next(self._order), callback, args))

    def call_later(self, delay: float, callback: Callable[..., None], *args: Any) -> None:
        self.call_at(self.now + delay, callback, *args)

    def run(self) -> None:
        while self._queue:
            self.now, _, callback, args = heapq.heappop(self._queue)
            callback(*args)


@types.coroutine
def sleep(seconds: float) -> Generator[float, None, None]:
    """For apps: pause for ``seconds`` of simulated time (the stepper reads the number)."""
    yield seconds


@types.coroutine
def wait_for_core() -> Generator[None, None, None]:
    """For receive() and send(): pause until the core has news for this stream."""
    yield None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/slow`` answers after 2 s of (simulated) work; anything else at once."""
    while (await receive()).get("more_body"):
        pass
    if scope["path"] == "/slow":
        await sleep(2.0)
    text = f"hello from {scope['path']}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(text)).encode())]})
    await send({"type": "http.response.body", "body": text})


class Client:
    """A scripted peer: writes bytes, and logs what comes back."""

    def __init__(self, loop: Loop, name: str, log: Callable[[str], None]) -> None:
        self.loop, self.name, self.log = loop, name, log
        self.server = Server(loop, self, log)

    def write(self, data: bytes) -> None:
        self.log(f"{self.name} sends {data!r}")
        self.loop.call_later(LATENCY, self.server.receive_data, data)

    def deliver(self, data: bytes) -> None:
        status_line = data.partition(b"\r\n")[0].decode()
        body = data.partition(b"\r\n\r\n")[2]
        self.log(f"{self.name} receives {status_line} {body!r}")

    def hang_up(self) -> None:
        self.log(f"{self.name} sees the server close the connection")


class Server:
    """The server side of one simulated connection: the core, the timer, the app tasks."""

    def __init__(self, loop: Loop, client: Client, log: Callable[[str], None]) -> None:
        self.loop, self.client, self.log = loop, client, log
        self.core = ServerConnection(now=loop.now, client=(client.name, 1))
        self.apps: dict[int, Coroutine[Any, Any, None]] = {}
        self.waiting: set[int] = set()  # apps paused in receive() or send(), not asleep
        self.armed: float | None = None  # the deadline our one timer callback is set for

    def receive_data(self, data: bytes) -> None:
        self.core.receive_data(data, self.loop.now)
        self.pump()

    def pump(self) -> None:
        """Start and wake apps, carry the bytes to the client, arm the core's timer."""
        closed = False
        while events := self.core.pop_events():
            for event in events:
                if isinstance(event, ConnectionClosed):
                    closed = True  # after the last bytes
                    continue
                sid = event.stream_id
                if isinstance(event, StreamStarted):
                    self.start(sid, event.scope)
                elif sid in self.waiting:
                    self.step(sid)
        if data := self.core.data_to_send():
            self.loop.call_later(LATENCY, self.client.deliver, data)
        if closed:
            self.loop.call_later(LATENCY, self.client.hang_up)
            return
        deadline = self.core.get_timer()
        if deadline is not None and deadline != self.armed:
            self.armed = deadline  # an earlier callback for another deadline will see it is stale
            self.loop.call_at(deadline, self.on_timer, deadline)

    def on_timer(self, deadline: float) -> None:
        if deadline == self.armed and not self.core.closed:
            self.armed = None
            self.log(f"server: the core's timer for {self.client.name} is due")
            self.core.handle_timer(self.loop.now)
            self.pump()

    def start(self, sid: int, scope: dict[str, Any]) -> None:
        async def receive() -> dict[str, Any]:
            while (message := self.core.receive(sid)) is None:
                await wait_for_core()
            return message

        async def send(message: dict[str, Any]) -> None:
            self.core.send(sid, message, self.loop.now)
            while not self.core.writable(sid):
                await wait_for_core()

        self.log(f"server starts the app for {scope['method']} {scope['path']}")
        self.apps[sid] = app(scope, receive, send)
        self.step(sid)

    def step(self, sid: int) -> None:
        """Run the app to its next pause: a sleep is a timer, anything else waits for news."""
        self.waiting.discard(sid)
        try:
            pause = self.apps[sid].send(None)
        except StopIteration:
            error = None
        except Exception as exc:
            error = exc
        else:
            if pause is None:
                self.waiting.add(sid)
            else:
                self.loop.call_later(pause, self.wake, sid)
            return
        del self.apps[sid]
        self.core.app_finished(sid, self.loop.now, error)

    def wake(self, sid: int) -> None:
        self.step(sid)
        self.pump()


def simulate() -> list[str]:
    """Run the scenario; return the transcript, one line per happening, stamped with the time."""
    loop = Loop()
    transcript: list[str] = []

    def log(line: str) -> None:
        transcript.append(f"{loop.now:7.3f}  {line}")

    # A asks for a slow page, gets it 2 s later, then idles until keep-alive runs out (5 s).
    a = Client(loop, "A", log)
    loop.call_at(0.0, a.write, b"GET /slow HTTP/1.1\r\nHost: sim\r\n\r\n")
    # B sends two requests on one connection, then half a head, and stalls: 408 after 20 s.
    b = Client(loop, "B", log)
    loop.call_at(1.0, b.write, b"GET /one HTTP/1.1\r\nHost: sim\r\n\r\n")
    loop.call_at(1.5, b.write, b"GET /two HTTP/1.1\r\nHost: sim\r\n\r\n")
    loop.call_at(2.0, b.write, b"GET /three HTTP/1.1\r\nHo")
    loop.run()
    return transcript


if __name__ == "__main__":
    print("\n".join(simulate()))
