"""The two error families the core raises, and nothing else.

Bad input from the *peer* never raises: it becomes a queued wire answer (a 4xx, a close) and an
event.  Only the *app* (through ``send``) and the *driver* (calling the contract wrongly) can make
the core raise, and each error says which rule was broken.
"""

from __future__ import annotations


class AppMisuseError(Exception):
    """The app sent a message the ASGI spec does not allow here.

    Raised from ``send()`` after the core has queued the right wire answer (a 500 if the
    response had not started, an abort otherwise). ``rule`` is the ID from the ASGI checklist
    (for example ``"HTTP-TX-01"``) and ``message_type`` the offending message's ``type``.
    """

    def __init__(self, message_type: object, rule: str, detail: str) -> None:
        self.message_type = message_type
        self.rule = rule
        self.detail = detail
        super().__init__(f"{message_type!r}: {detail} (ASGI {rule})")


class ClientDisconnected(OSError):
    """``send()`` was called after the peer went away (ASGI www 2.4, HTTP-TX-10 / WS-15).

    It is an ``OSError`` as the spec asks, so apps that guard sends with ``except OSError``
    work; a driver should swallow it silently when it escapes the app (MAIN-13).
    """


class DriverMisuseError(RuntimeError):
    """The driver called the contract wrongly: a stream id the connection does not know, or
    lifespan's startup or shutdown called twice.  This is a bug in the driver, never caused by
    peer input."""
