"""Serving an asyncio-only ASGI app (Django's handler, asgiref's ``WsgiToAsgi``) on the trio driver.

Such apps call asyncio themselves (asgiref's ``sync_to_async`` hands sync code to
``loop.run_in_executor`` with an executor of its own), so under trio they fail at
``asyncio.get_running_loop()``.  trio-asyncio does not fit either: its loop takes only its own
executor in ``run_in_executor``, and asgiref passes a ``ThreadPoolExecutor``.

So ``asyncio_app(app)`` runs the app's coroutines on a stock asyncio loop in a thread of its
own, and carries each ``receive()``/``send()`` the app awaits over to the trio side, where it
runs as a child of the app's trio task.  Calls run concurrently, as an app may wait in
``receive()`` for a disconnect while it sends.  A call the app cancels is cancelled on the trio
side, a cancelled trio task cancels the app's coroutine, and an exception from either side
reaches the other as it would have.  The app is unchanged and every byte still goes through
``asgi_sansio.trio``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import math
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import trio

Message = dict[str, Any]
App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class _Call:
    """One ``receive()`` or ``send()`` awaited by the app: done on trio, settled on asyncio."""

    def __init__(self, function: Callable[..., Awaitable[Any]], args: tuple[Any, ...],
                 future: asyncio.Future[Any]) -> None:
        self.function, self.args, self.future = function, args, future
        self.scope = trio.CancelScope()


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the app stopped waiting
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class _Bridge:
    def __init__(self, app: App, loop: asyncio.AbstractEventLoop) -> None:
        self.app, self.loop = app, loop

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        loop, token = self.loop, trio.lowlevel.current_trio_token()
        calls_in, calls_out = trio.open_memory_channel[_Call](math.inf)

        def cancel_on_trio(call: _Call, future: asyncio.Future[Any]) -> None:
            if future.cancelled():
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(call.scope.cancel)

        def enqueue(call: _Call) -> None:  # on trio's thread
            try:
                calls_in.send_nowait(call)
            except trio.ClosedResourceError:
                error = RuntimeError("the ASGI call this receive/send belonged to is over")
                loop.call_soon_threadsafe(_settle, call.future, None, error)

        def call_trio(function: Callable[..., Awaitable[Any]], *args: Any) -> asyncio.Future[Any]:
            future = loop.create_future()  # on the asyncio thread
            call = _Call(function, args, future)
            future.add_done_callback(functools.partial(cancel_on_trio, call))
            try:
                token.run_sync_soon(enqueue, call)
            except trio.RunFinishedError:
                future.set_exception(RuntimeError("the trio run serving this app is over"))
            return future

        async def asyncio_receive() -> Message:
            return await call_trio(receive)  # type: ignore[no-any-return]

        async def asyncio_send(message: Message) -> None:
            await call_trio(send, message)

        def app_done(_: concurrent.futures.Future[None]) -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(calls_in.close)

        async def run_app() -> None:  # a coroutine, whatever kind of awaitable the app returns
            await self.app(scope, asyncio_receive, asyncio_send)

        app_future = asyncio.run_coroutine_threadsafe(run_app(), loop)
        app_future.add_done_callback(app_done)
        try:
            async with trio.open_nursery() as nursery:
                async for call in calls_out:
                    nursery.start_soon(self._run, call)
        finally:
            calls_in.close()  # later calls fail at once
            if not app_future.done():  # this task was cancelled: so is the app's coroutine
                app_future.cancel()
        app_future.result()  # the app's own exception, if it raised one

    async def _run(self, call: _Call) -> None:
        with call.scope:
            try:
                result = await call.function(*call.args)
            except Exception as exc:  # the app gets it from its await, as it would have
                self.loop.call_soon_threadsafe(_settle, call.future, None, exc)
            else:
                self.loop.call_soon_threadsafe(_settle, call.future, result, None)


class _LoopThread(threading.Thread):
    """A stock asyncio loop in a daemon thread, closed as ``asyncio.run`` closes its own."""

    def __init__(self) -> None:
        super().__init__(name="asyncio-app-loop", daemon=True)
        self.loop = asyncio.new_event_loop()

    def run(self) -> None:
        loop = self.loop
        try:
            loop.run_forever()
            loop.run_until_complete(self._wind_down())
        finally:
            loop.close()

    async def _wind_down(self) -> None:
        """What an app left running is cancelled and awaited, as ``asyncio.run`` does."""
        tasks = asyncio.all_tasks() - {asyncio.current_task()}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.loop.shutdown_asyncgens()
        await self.loop.shutdown_default_executor()

    async def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        await trio.to_thread.run_sync(self.join)


@contextlib.asynccontextmanager
async def asyncio_app(app: App) -> AsyncIterator[App]:
    """``app``, for the trio driver, with an asyncio loop of its own for as long as the block
    lasts: ``async with asyncio_app(app) as trio_app: await serve(trio_app)``."""
    thread = _LoopThread()
    thread.start()
    try:
        yield _Bridge(app, thread.loop)
    finally:
        await thread.stop()
