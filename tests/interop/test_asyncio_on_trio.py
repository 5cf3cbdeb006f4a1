"""The bridge that runs asyncio-only apps (Django, asgiref's ``WsgiToAsgi``) on the trio driver.

No server here: a trio run calls the bridged app with trio ``receive``/``send`` functions, as
the trio driver does, and checks what crosses between the two loops: messages, results,
exceptions and cancellations, both ways.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

trio = pytest.importorskip("trio")

from ._asyncio_on_trio import App, asyncio_app  # noqa: E402

GUARD = 10.0  # only against a deadlock hanging the run; no assertion depends on time
Message = dict[str, Any]


def run_bridged(app: App, drive: Callable[[App], Awaitable[None]]) -> None:
    """``drive(bridged app)`` in a trio run; the app's loop must be closed once it is over."""
    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        with trio.fail_after(GUARD):
            async with asyncio_app(app) as trio_app:
                loops.append(trio_app.loop)  # type: ignore[attr-defined]
                await drive(trio_app)

    trio.run(main)
    assert loops[0].is_closed()


def test_app_runs_on_a_stock_asyncio_loop_and_messages_cross_both_ways() -> None:
    sent: list[Message] = []
    trio_thread = threading.current_thread().name

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        loop = asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(1) as executor:  # as asgiref's sync_to_async
            answer = await loop.run_in_executor(executor, sum, [40, 2])
        request = await receive()
        await send({"type": "reply", "answer": answer, "request": request, "scope": scope,
                    "thread": threading.current_thread().name})

    async def receive() -> Message:
        return {"type": "http.request", "body": b"hi", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    async def drive(trio_app: App) -> None:
        await trio_app({"type": "http", "path": "/x"}, receive, send)

    run_bridged(app, drive)
    assert sent == [{
        "type": "reply", "answer": 42,
        "request": {"type": "http.request", "body": b"hi", "more_body": False},
        "scope": {"type": "http", "path": "/x"}, "thread": "asyncio-app-loop",
    }]
    assert trio_thread != "asyncio-app-loop"


def test_receive_runs_alongside_send_and_the_app_can_cancel_it() -> None:
    """Django waits in receive() for a disconnect while it sends, then cancels that wait."""
    events: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        listener = asyncio.ensure_future(receive())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        listener.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listener
        events.append("app done")

    async def drive(trio_app: App) -> None:
        receiving = trio.Event()

        async def receive() -> Message:
            events.append("receive waits")
            receiving.set()
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                events.append("receive cancelled")
                raise
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            await receiving.wait()  # so the receive above is in flight while this send runs
            events.append(f"sent {message['type']}")

        await trio_app({"type": "http"}, receive, send)

    run_bridged(app, drive)
    assert events[:2] == ["receive waits", "sent http.response.start"]
    # The last two happen on different threads, in either order.
    assert sorted(events[2:]) == ["app done", "receive cancelled"]


def test_an_error_from_send_reaches_the_app_and_the_apps_error_reaches_the_server() -> None:
    seen: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        except OSError as exc:  # ASGI: send() after a disconnect raises an OSError
            seen.append(exc)
        raise ValueError("the app failed")

    async def send(message: Message) -> None:
        raise ConnectionResetError("client gone")

    async def drive(trio_app: App) -> None:
        with pytest.raises(ValueError, match=r"^the app failed$"):
            await trio_app({"type": "http"}, None, send)

    run_bridged(app, drive)
    assert [(type(exc), str(exc)) for exc in seen] == [(ConnectionResetError, "client gone")]


def test_cancelling_the_trio_task_cancels_the_apps_coroutine() -> None:
    app_cancelled = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            # The cancellation may land while send() is still settling: either await counts.
            await send({"type": "waiting"})
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            app_cancelled.set()
            raise

    async def drive(trio_app: App) -> None:
        waiting = trio.Event()

        async def send(message: Message) -> None:
            waiting.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio_app, {"type": "http"}, None, send)
            await waiting.wait()
            nursery.cancel_scope.cancel()
        # The loop is still running: the cancellation came from the bridge, not its shutdown.
        assert await trio.to_thread.run_sync(app_cancelled.wait, GUARD)

    run_bridged(app, drive)
    assert app_cancelled.is_set()
