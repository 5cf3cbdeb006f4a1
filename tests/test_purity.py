"""The core is sans-IO: no module of it imports an event loop, sockets, TLS or a clock.

Checked on the source, so a lazy import inside a function is caught too.  The drivers
(asyncio.py, trio.py, _serving.py), the CLI and the demo app are the only places allowed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import asgi_sansio

PACKAGE = Path(asgi_sansio.__file__).parent
NOT_CORE = {"asyncio.py", "trio.py", "_serving.py", "__main__.py", "_demo.py"}
FORBIDDEN = {"asyncio", "trio", "socket", "ssl", "time", "selectors", "threading", "anyio"}
CORE = sorted(p for p in PACKAGE.glob("*.py") if p.name not in NOT_CORE)


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_module_imports_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN, f"{path.name} imports {sorted(imported & FORBIDDEN)}"


def test_the_core_list_is_not_empty() -> None:
    assert {p.name for p in CORE} >= {"_connection.py", "_http11.py", "_http2.py",
                                      "_websocket.py", "_lifespan.py"}
