"""``python -m asgi_sansio [MODULE:APP]``: serve an ASGI app (the demo app when none is given).

``--driver asyncio`` (the default) or ``--driver trio`` picks the event loop; both serve the
same way.  The listening socket is made here, before any worker starts, so ``--workers N``
processes share one socket and the kernel spreads connections between them.  The parent only
supervises: it forwards SIGINT/SIGTERM to the workers as one SIGTERM each (a second signal
forces them), and restarts a worker that dies, unless it dies at once, which means it cannot
start at all.

Every ``Config`` field is a flag (``max_body_size`` is ``--max-body-size``), generated from the
dataclass so that a new limit needs no CLI change.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import importlib
import importlib.util
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any

from . import __version__
from . import asyncio as asyncio_driver
from ._config import Config
from ._serving import LifespanStartupError, bind_socket, socket_url

logger = logging.getLogger("asgi_sansio.error")

EXIT_STARTUP_FAILED = 3  # as Uvicorn: the app failed lifespan startup, so restarting won't help
_SIZE_SUFFIXES = {"k": 1024, "m": 1024**2, "g": 1024**3}


def _size(text: str) -> int:
    """An int, with an optional k/m/g (binary) suffix: ``64k``."""
    factor = _SIZE_SUFFIXES.get(text[-1:].lower(), 1)
    return int(text[:-1] if factor > 1 else text) * factor


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_or_none(text: str) -> Any:
        return None if text.lower() in ("none", "") else parse(text)

    return parse_or_none


def _config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ``Config`` field, typed from its default."""
    group = parser.add_argument_group("limits and timeouts (asgi_sansio.Config fields)")
    for field in dataclasses.fields(Config):
        flag = "--" + field.name.replace("_", "-")
        default = field.default
        nullable = "None" in str(field.type)
        shown = default.decode("latin-1") if isinstance(default, bytes) else repr(default)
        help_text = f"default: {shown}" + (" ('none' for None)" if nullable else "")
        if isinstance(default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                               help=f"default: {default}")
            continue
        parse: Callable[[str], Any]
        if isinstance(default, int):
            counts = field.name.endswith(("_count", "_streams", "_resets", "_frames"))
            parse, metavar = _size, "N" if counts else "BYTES"
        elif isinstance(default, float):
            parse, metavar = float, "SECONDS"
        elif isinstance(default, bytes):
            parse, metavar = str.encode, "TEXT"
        elif isinstance(default, str):
            parse, metavar = str, "TEXT"
        else:
            continue  # not expressible as one flag
        if nullable:
            parse = _optional(parse)
        group.add_argument(flag, type=parse, default=None, metavar=metavar, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m asgi_sansio",
        description="Serve an ASGI app over HTTP/1.1, HTTP/2 and WebSocket with asgi-sansio.",
    )
    parser.add_argument("app", nargs="?", metavar="MODULE:APP",
                        help="the app to serve, e.g. 'main:app' (default: the built-in demo)")
    parser.add_argument("--factory", action="store_true",
                        help="MODULE:APP is a callable returning the app")
    bind = parser.add_argument_group("binding")
    bind.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    bind.add_argument("--port", type=int, default=8000, help="port, 0: any free (default: 8000)")
    bind.add_argument("--uds", metavar="PATH", help="bind a unix domain socket instead")
    bind.add_argument("--fd", type=int, help="serve on this already-listening socket descriptor")
    bind.add_argument("--backlog", type=int, default=2048, help="listen backlog (default: 2048)")
    bind.add_argument("--certfile", help="PEM certificate (chain) file: serve TLS")
    bind.add_argument("--keyfile", help="PEM private key file, if not in --certfile")
    run = parser.add_argument_group("running")
    run.add_argument("--driver", choices=["asyncio", "trio"], default="asyncio",
                     help="event loop driver; trio needs the 'trio' extra (default: asyncio)")
    run.add_argument("--uvloop", action="store_true",
                     help="use uvloop if installed (asyncio driver only)")
    run.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    run.add_argument("--lifespan", choices=["auto", "on", "off"], default="auto",
                     help="lifespan protocol: auto carries on if the app lacks it (default: auto)")
    run.add_argument("--lifespan-timeout", type=float, default=60.0, metavar="SECONDS",
                     help="how long startup and shutdown may take (default: 60)")
    run.add_argument("--log-level", default="info",
                     choices=["critical", "error", "warning", "info", "debug"])
    run.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                     help="log one line per response (default: on)")
    run.add_argument("--version", action="version", version=f"asgi-sansio {__version__}")
    _config_flags(parser)
    return parser


def build_config(args: argparse.Namespace) -> Config:
    overrides = {}
    for field in dataclasses.fields(Config):
        value = getattr(args, field.name, None)
        if value is not None:
            overrides[field.name] = value
    return Config(**overrides)


def load_app(spec: str | None, factory: bool) -> Callable[..., Any]:
    """Import ``module:attr`` (attr may be dotted) from the current directory, as Uvicorn."""
    if spec is None:
        from ._demo import app

        return app
    module_name, _, attrs = spec.partition(":")
    if not module_name or not attrs:
        raise ImportError(f"app must look like 'module:app', not {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj: Any = importlib.import_module(module_name)
    for attr in attrs.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise ImportError(f"{module_name!r} has no attribute {attrs!r}") from None
    if factory:
        obj = obj()
    if not callable(obj):
        raise ImportError(f"{spec!r} is not callable")
    return obj  # type: ignore[no-any-return]


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s [%(process)d] %(levelname)s %(message)s",
        stream=sys.stderr, force=True,
    )


def _make_socket(args: argparse.Namespace) -> socket.socket:
    if args.fd is not None:
        sock = socket.socket(fileno=args.fd)
        sock.setblocking(False)
        return sock
    return bind_socket(args.host, args.port, args.uds, args.backlog)


def _tls(args: argparse.Namespace) -> tuple[ssl.SSLContext | None, str | None]:
    """The server's TLS context, and its certificate as PEM for the ``tls`` extension."""
    if args.certfile is None:
        return None, None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.certfile, args.keyfile)
    with open(args.certfile) as f:
        text = f.read()
    end = "-----END CERTIFICATE-----"
    start = text.find("-----BEGIN CERTIFICATE-----")
    pem = text[start : text.index(end, start) + len(end)] + "\n" if start >= 0 else None
    return context, pem


def _interrupted(exc: BaseException) -> bool:
    """A KeyboardInterrupt, alone or in an ExceptionGroup (trio wraps what leaves a nursery)."""
    inner = getattr(exc, "exceptions", None)
    if inner:
        return all(_interrupted(e) for e in inner)
    return isinstance(exc, KeyboardInterrupt)


def _run(
    args: argparse.Namespace, sock: socket.socket, app: Callable[..., Any], worker: bool
) -> int:
    context, pem = _tls(args)
    url = socket_url(sock, context is not None)

    def ready(server: object) -> None:
        # What exists once the server is up (modules, the app's startup state, the server's
        # own objects) lives as long as the process: frozen, the collector stops walking it on
        # every older-generation pass, about half its time under load.
        gc.freeze()
        if worker:
            logger.info("Worker %d ready", os.getpid())
        else:
            logger.info("asgi-sansio running on %s (Press CTRL+C to quit)", url)

    options: dict[str, Any] = dict(
        sock=sock, ssl=context, config=build_config(args), lifespan=args.lifespan, ready=ready,
        backlog=args.backlog, access_log=args.access_log, tls_server_cert=pem,
        lifespan_timeout=args.lifespan_timeout,
        # Only the parent listens for Ctrl+C; it tells each worker with one SIGTERM (a second
        # one forces the worker).
        signals=(signal.SIGTERM,) if worker else (signal.SIGINT, signal.SIGTERM),
    )
    try:
        if args.driver == "trio":
            from . import trio as trio_driver  # trio is an optional extra

            trio_driver.run(app, **options)
        else:
            asyncio_driver.run(app, uvloop=args.uvloop, **options)
    except LifespanStartupError:
        return EXIT_STARTUP_FAILED
    except BaseException as exc:
        if _interrupted(exc):  # Ctrl+C before the server was up
            return 130
        raise
    return 0


def _worker(args: argparse.Namespace, sock: socket.socket) -> None:
    """Entry point of a worker process (spawned: it imports the app itself)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _setup_logging(args.log_level)
    try:
        app = load_app(args.app, args.factory)
    except ImportError as exc:
        logger.error("%s", exc)
        sys.exit(1)
    sys.exit(_run(args, sock, app, worker=True))


def _supervise(args: argparse.Namespace, sock: socket.socket) -> int:
    spawn = multiprocessing.get_context("spawn")
    # A spawned child never re-imports a package's __main__ (multiprocessing skips it), so
    # under ``python -m`` the target must come from this module imported under its own name.
    target = importlib.import_module("asgi_sansio.__main__")._worker

    def start() -> tuple[multiprocessing.process.BaseProcess, float]:
        process = spawn.Process(target=target, args=(args, sock), name="asgi-sansio-worker")
        process.start()
        return process, time.monotonic()

    workers = [start() for _ in range(args.workers)]
    stopping = False
    exit_code = 0

    def stop(signum: int = signal.SIGTERM, frame: object = None) -> None:
        nonlocal stopping
        stopping = True  # a second signal is forwarded too, which forces the workers
        for process, _ in workers:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while True:
        alive = [p.sentinel for p, _ in workers if p.is_alive()]
        if not alive:
            break
        multiprocessing.connection.wait(alive, timeout=0.5)
        for index, (process, started) in enumerate(workers):
            if process.is_alive() or stopping:
                continue
            process.join()
            code = process.exitcode or 0
            if code == EXIT_STARTUP_FAILED or time.monotonic() - started < 1.0:
                logger.error("Worker %s exited at once (code %s): stopping", process.pid, code)
                exit_code = code or 1
                stop()
            else:
                logger.warning("Worker %s died (code %s): restarting", process.pid, code)
                workers[index] = start()
    return exit_code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level)
    if args.keyfile and not args.certfile:
        logger.error("--keyfile needs --certfile")
        return 2
    if args.uvloop and args.driver != "asyncio":
        logger.error("--uvloop goes with --driver asyncio")
        return 2
    if args.driver == "trio" and importlib.util.find_spec("trio") is None:
        logger.error("--driver trio needs trio: pip install 'asgi-sansio[trio]'")
        return 2
    app = None
    try:
        build_config(args)
        if args.workers <= 1:  # workers import it themselves (the parent stays app-free)
            app = load_app(args.app, args.factory)
    except (ImportError, ValueError, TypeError) as exc:
        logger.error("%s", exc)
        return 1
    try:
        sock = _make_socket(args)
    except OSError as exc:
        logger.error("cannot bind: %s", exc)
        return 1
    try:
        if app is not None:
            return _run(args, sock, app, worker=False)
        url = socket_url(sock, args.certfile is not None)
        logger.info("asgi-sansio running on %s with %d workers (Press CTRL+C to quit)",
                    url, args.workers)
        return _supervise(args, sock)
    finally:
        sock.close()
        if args.uds is not None and args.fd is None:
            with contextlib.suppress(OSError):
                os.unlink(args.uds)


if __name__ == "__main__":
    sys.exit(main())
