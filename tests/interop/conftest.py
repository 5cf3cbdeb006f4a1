"""Fixtures shared by the interop tests: our real server, on either driver, with or without TLS.

``start_server(app, driver, tls=False, **options)`` serves ``app`` on a free 127.0.0.1 port in a
thread of its own, through the driver's public ``serve()`` (lifespan included), and returns the
base URL; every server it started is shut down gracefully when the module is done.  Clients
then talk to it from the test's thread over real sockets.  ``driver`` runs a test (or a
module-scoped server fixture) once per driver, and ``tls_certs`` is a throwaway CA (trustme)
with a certificate for 127.0.0.1 and the CA file clients trust.

``asyncio_app=True`` is for an app that calls asyncio itself (Django's handler, asgiref's
``WsgiToAsgi``): on trio its coroutines then run on an asyncio loop of their own, bridged to
the trio driver by ``_asyncio_on_trio.asyncio_app``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import importlib
import logging
import shutil
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from asgi_sansio import Config

DRIVERS = ["asyncio", "trio"]
START_TIMEOUT = 15.0  # lifespan startup included
STOP_TIMEOUT = 15.0
# Short enough that a response left streaming at the end of a module does not hold the run up.
SHUTDOWN_TIMEOUT = 2.0


class TLSCerts:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost."""

    def __init__(self, directory: Path) -> None:
        trustme = pytest.importorskip("trustme")
        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = directory / "ca.pem"  # for curl --cacert and the like
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.cert.configure_cert(context)
        return context  # the server sets its ALPN protocols itself

    def client_context(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if alpn:
            context.set_alpn_protocols(alpn)
        return context


@functools.cache
def _tls_certs() -> TLSCerts:
    directory = tempfile.mkdtemp(prefix="asgi-sansio-interop-")
    atexit.register(shutil.rmtree, directory, True)
    return TLSCerts(Path(directory))


class ServerThread:
    """Our server serving ``app`` in a thread, on a fresh event loop of ``driver``'s kind."""

    def __init__(
        self, app: Any, driver: str, ssl_context: ssl.SSLContext | None, options: dict[str, Any],
        asyncio_app: bool = False,
    ) -> None:
        self.app, self.driver, self.ssl_context = app, driver, ssl_context
        self.asyncio_app = asyncio_app and driver == "trio"
        self.options = {"config": Config(shutdown_timeout=SHUTDOWN_TIMEOUT), **options}
        self.module = importlib.import_module(f"asgi_sansio.{driver}")
        self.port: int | None = None
        self.failure: BaseException | None = None
        self._ready = threading.Event()
        self._stop: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._run, name=f"server-{driver}", daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise AssertionError(f"the {self.driver} server did not start")
        if self.failure is not None:
            raise self.failure

    def stop(self) -> None:
        if self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                self._stop()
        self._thread.join(STOP_TIMEOUT)
        if self._thread.is_alive():
            raise AssertionError(f"the {self.driver} server did not shut down")
        if self.failure is not None:
            raise self.failure

    def _run(self) -> None:
        try:
            if self.driver == "trio":
                import trio

                trio.run(self._serve_trio)
            else:
                asyncio.run(self._serve_asyncio())
        except BaseException as exc:
            self.failure = exc
        finally:
            self._ready.set()

    def _serve(self, trigger: Callable[[], Any], app: Any = None) -> Any:
        def ready(server: Any) -> None:
            self.port = server.port
            self._ready.set()

        return self.module.serve(
            self.app if app is None else app, host="127.0.0.1", port=0, ssl=self.ssl_context,
            signals=(), shutdown_trigger=trigger, ready=ready, **self.options,
        )

    async def _serve_asyncio(self) -> None:
        loop, stop = asyncio.get_running_loop(), asyncio.Event()
        self._stop = functools.partial(loop.call_soon_threadsafe, stop.set)
        await self._serve(stop.wait)

    async def _serve_trio(self) -> None:
        import trio

        token, stop = trio.lowlevel.current_trio_token(), trio.Event()
        self._stop = functools.partial(token.run_sync_soon, stop.set)
        if not self.asyncio_app:
            await self._serve(stop.wait)
            return
        from ._asyncio_on_trio import asyncio_app

        async with asyncio_app(self.app) as app:
            await self._serve(stop.wait, app)


@pytest.fixture(scope="module", params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    """Each driver in turn (module scope, so module-scoped servers can use it)."""
    if request.param == "trio":
        pytest.importorskip("trio")
    return str(request.param)


@pytest.fixture(scope="session")
def tls_certs() -> TLSCerts:
    return _tls_certs()


@pytest.fixture(scope="module")
def start_server() -> Iterator[Callable[..., str]]:
    """``start_server(app, driver="asyncio", tls=False, asyncio_app=False, **options) -> base
    URL``; ``options`` go to the driver's ``serve()``.  Every server started is stopped at the
    module's end."""
    servers: list[ServerThread] = []

    def start(
        app: Any, driver: str = "asyncio", tls: bool = False, asyncio_app: bool = False,
        **options: Any,
    ) -> str:
        if driver == "trio":
            pytest.importorskip("trio")
        context = _tls_certs().server_context() if tls else None
        server = ServerThread(app, driver, context, options, asyncio_app)
        server.start()
        servers.append(server)
        return server.url

    yield start
    failures = []
    for server in servers:
        try:
            server.stop()
        except BaseException as exc:
            failures.append(exc)
    if failures:
        raise failures[0]


@pytest.fixture
def no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail the test if the server logged an error (an app exception, a protocol failure)."""
    caplog.set_level(logging.WARNING, logger="asgi_sansio")
    yield
    errors = [
        record for record in caplog.get_records("call")
        if record.name.startswith("asgi_sansio") and record.levelno >= logging.ERROR
    ]
    assert not errors, "the server logged errors:\n" + "\n".join(
        f"{record.getMessage()} {record.exc_text or ''}" for record in errors
    )
