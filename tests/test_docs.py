"""The docs: generators that read the code (docs/_ext/docgen.py) and a full Sphinx build.

The generator tests need nothing but the package.  The build runs only where Sphinx and
myst-parser are installed (the ``docs`` extra) and checks that the generated pages really list
every Config field with its reason, every CLI flag, every state and every public name.
"""

from __future__ import annotations

import dataclasses
import html
import importlib.util
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

import asgi_sansio
from asgi_sansio import Config, _lifespan, _websocket
from asgi_sansio import _http_messages as msgs
from asgi_sansio.__main__ import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import docgen  # noqa: E402


def _edges(machine: docgen.Machine) -> set[tuple[str, str, str, str]]:
    return {(e.src, e.dst, e.label, e.kind) for e in machine.edges}


# -- state machines ---------------------------------------------------------------------------


def test_lifespan_machine_follows_its_tables() -> None:
    machine = docgen.lifespan_machine()
    assert machine.states == [
        "idle", "starting", "started", "failed", "unsupported", "stopping", "stopped", "errored"
    ]
    assert machine.initial == "idle"
    assert machine.terminal == _lifespan.TERMINAL_STATUSES
    edges = _edges(machine)
    assert ("idle", "starting", "startup()", "driver") in edges
    assert ("starting", "started", "startup.complete", "app") in edges
    assert ("starting", "unsupported", "app ends", "exit") in edges
    assert ("stopping", "stopped", "bad answer", "bad") in edges
    expected = len(_lifespan._TRANSITIONS) + len(_lifespan._ON_APP_EXIT) + len(
        _lifespan._ON_BAD_ANSWER
    )
    assert len(machine.edges) == expected


def test_lifespan_diagram_changes_with_the_table() -> None:
    table: dict[tuple[str, str], str] = {k: v for k, v in _lifespan._TRANSITIONS.items()}
    before = docgen.to_dot(docgen.lifespan_machine(transitions=table))
    assert before == docgen.to_dot(docgen.lifespan_machine())
    table[("started", "lifespan.reload")] = "starting"  # a transition the code does not have
    after = docgen.to_dot(docgen.lifespan_machine(transitions=table))
    assert after != before
    assert '"started" -> "starting" [label="reload()", style=bold' in after
    del table[("starting", "lifespan.startup.failed")]
    fewer = docgen.to_dot(docgen.lifespan_machine(transitions=table))
    assert '"starting" -> "failed" [label="startup.failed"]' in before
    assert '"starting" -> "failed" [label="startup.failed"]' not in fewer


def _toy_probe(path: Sequence[object]) -> str:
    """A fake machine: A --go--> B --stop--> C, and 'jump' goes A -> C; 'poke' bytes do nothing
    except in B, where they lead to C."""
    state = "A"
    for step in path:
        if step == b"poke":
            state = "C" if state == "B" else state
            continue
        assert isinstance(step, dict)
        state = {("A", "go"): "B", ("B", "stop"): "C", ("A", "jump"): "C"}[(state, step["type"])]
    return state


def test_legality_machine_is_explored_from_the_table() -> None:
    variants = {t: [(t, {"type": t})] for t in ("go", "stop", "jump")}
    table = {("A", "go"): "R-1", ("B", "stop"): "R-2"}
    why = {"A": ("R-1", "go first"), "C": ("R-3", "over")}
    machine = docgen.legality_machine(
        "toy", ["A", "B", "C"], table, why, variants, _toy_probe, peer=[("poke", b"poke")]
    )
    assert _edges(machine) == {
        ("A", "B", "go [R-1]", "app"),
        ("B", "C", "stop [R-2]", "app"),
        ("B", "C", "poke", "peer"),  # the peer's self-loops in A are left out
    }
    assert machine.terminal == frozenset({"C"})
    assert machine.rows == [
        ("``A``", "``go`` (R-1)", "R-1: go first"),
        ("``B``", "``stop`` (R-2)", "—"),
        ("``C``", "nothing", "R-3: over"),
    ]
    dot = docgen.to_dot(machine)
    # A new legal message in the table is a new edge in the diagram.
    table[("A", "jump")] = "R-9"
    changed = docgen.legality_machine(
        "toy", ["A", "B", "C"], table, why, variants, _toy_probe, peer=[("poke", b"poke")]
    )
    assert ("A", "C", "jump [R-9]", "app") in _edges(changed)
    assert '"A" -> "C" [label="jump [R-9]"];' in docgen.to_dot(changed)
    assert "jump" not in dot


def test_legality_machine_needs_an_example_of_every_message() -> None:
    with pytest.raises(ValueError, match="no example message for \\['stop'\\]"):
        docgen.legality_machine(
            "toy", ["A", "B"], {("B", "stop"): "R"}, {}, {}, _toy_probe
        )


def test_response_machine_matches_the_core() -> None:
    machine = docgen.response_machine()
    assert machine.states == [s.value for s in msgs.Resp]
    assert machine.terminal == frozenset({"DONE"})
    labels = {(e.src, e.dst): e.label for e in machine.edges if e.src != e.dst}
    # The body that ends a response goes to TRAILERS only when start asked for trailers.
    assert labels[("HEAD", "TRAILERS")] == "body [HTTP-TX-04], after start trailers=True"
    assert labels[("BODY", "DONE")] == "body [HTTP-TX-06], after start trailers=False"
    assert {src for src, _ in labels} == {"INIT", "HEAD", "BODY", "TRAILERS"}
    # Every legal (state, message) pair in the table shows up as an edge label.
    for (state, mtype), rule in msgs.TRANSITIONS.items():
        assert any(
            e.src == state.value and f"[{rule}]" in e.label
            and e.label.startswith(mtype.removeprefix("http.response."))
            for e in machine.edges
        ), (state, mtype)


def test_websocket_machine_matches_the_core() -> None:
    machine = docgen.websocket_machine()
    assert machine.states == [s.value for s in _websocket.WS]
    assert machine.terminal == frozenset({"CLOSED"})
    edges = _edges(machine)
    assert ("CONNECTING", "OPEN", "accept [WS-03]", "app") in edges
    assert ("OPEN", "CLOSING", "close [WS-06]", "app") in edges
    assert ("CLOSING", "CLOSED", "peer sends Close", "peer") in edges
    # A Close that arrived before the accept is read once the app accepts.
    assert ("CONNECTING", "CLOSED", "accept [WS-03], after peer sends Close", "app") in edges


# -- Config and CLI ------------------------------------------------------------------------------


def test_every_config_field_has_its_default_and_a_reason() -> None:
    fields = docgen.config_fields()
    declared = dataclasses.fields(Config)
    assert [f.name for f in fields] == [f.name for f in declared]
    for parsed, real in zip(fields, declared, strict=True):
        assert parsed.default == real.default, parsed.name
        assert len(parsed.reason) > 20, parsed.name
        assert parsed.section, parsed.name
    by_name = {f.name: f for f in fields}
    assert by_name["max_head_size"].default_source == "64 * 1024"
    assert by_name["max_head_size"].section == "HTTP/1.1 request head"
    assert by_name["head_timeout"].reason.startswith("20 s: the whole request head must arrive")
    assert by_name["head_timeout"].reason.endswith("Exceeded -> 408.")


def test_config_comments_are_read_from_the_source() -> None:
    source = '''
from dataclasses import dataclass

@dataclass
class Config:
    # --- sizes -------------------------------------------------------------
    # a stray note, not about any field

    # 10: the first reason,
    # on two lines.
    first: int = 10
    second: float | None = 2.5  # trailing reason
    # --- other things ----
    third: bytes = b"x"
'''
    fields = docgen.config_fields(source)
    assert [(f.name, f.annotation, f.default_source, f.default, f.section, f.reason)
            for f in fields] == [
        ("first", "int", "10", 10, "sizes", "10: the first reason, on two lines."),
        ("second", "float | None", "2.5", 2.5, "sizes", "trailing reason"),
        ("third", "bytes", 'b"x"', b"x", "other things", ""),
    ]
    lines = docgen.config_rst(fields, {"--first"})
    assert ".. py:attribute:: Config.first" in lines
    assert any(":option:`--first <python -m asgi_sansio --first>`" in x for x in lines)
    assert not any("--second" in x for x in lines)


def test_cli_reference_lists_every_flag() -> None:
    parser = build_parser()
    text = "\n".join(docgen.cli_rst(parser))
    for action in parser._actions:
        for option in action.option_strings:
            assert re.search(rf"^\.\. option:: (.*, )?{re.escape(option)}\b", text, re.M), option
    assert ".. option:: --driver {asyncio,trio}" in text
    assert ".. option:: --max-body-size BYTES" in text


# -- the Sphinx build ----------------------------------------------------------------------------

needs_sphinx = pytest.mark.skipif(
    importlib.util.find_spec("sphinx") is None or importlib.util.find_spec("myst_parser") is None,
    reason="the docs extra (sphinx, myst-parser) is not installed",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(out / "doctrees"), str(DOCS), str(out / "html")],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out / "html"


def _text(site: Path, page: str) -> str:
    """A page's visible text, tags dropped and whitespace collapsed."""
    raw = (site / page).read_text(encoding="utf-8")
    raw = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", raw)).split())


def _squash(text: str) -> str:
    """Text without whitespace or reST literal backticks, to compare prose with rendered HTML
    (where markup splits it at other places)."""
    return re.sub(r"\s+", "", text.replace("``", ""))


@needs_sphinx
def test_config_page_has_every_field_with_its_reason(site: Path) -> None:
    text = _text(site, "config.html")
    for field in docgen.config_fields():
        assert f"Config.{field.name}" in text
        assert _squash(field.reason) in _squash(text), field.name


@needs_sphinx
def test_cli_page_has_every_flag(site: Path) -> None:
    text = _text(site, "cli.html")
    for action in build_parser()._actions:
        for option in action.option_strings:
            assert option in text, option


@needs_sphinx
def test_states_page_names_every_state_and_rule(site: Path) -> None:
    text = _text(site, "states.html")
    names = [s.value for s in msgs.Resp] + [s.value for s in _websocket.WS]
    names += list(_lifespan._ON_APP_EXIT) + list(_lifespan.TERMINAL_STATUSES)
    for name in names:
        assert name in text, name
    for rule in [*msgs.TRANSITIONS.values(), *_websocket.TRANSITIONS.values()]:
        assert rule in text, rule


@needs_sphinx
def test_contract_page_documents_every_public_name(site: Path) -> None:
    page = (site / "contract.html").read_text(encoding="utf-8")
    for name in asgi_sansio.__all__:
        if name != "__version__":
            assert f'id="asgi_sansio.{name}"' in page, name
    for method in ("receive_data", "pop_events", "data_to_send", "receive", "send", "writable",
                   "app_finished", "wants_read", "closed", "get_timer", "handle_timer",
                   "shutdown"):
        assert f'id="asgi_sansio.ServerConnection.{method}"' in page, method


@needs_sphinx
def test_tutorial_includes_the_example_itself(site: Path) -> None:
    text = _text(site, "tutorial.html")
    example = (ROOT / "examples" / "plain_socket_server.py").read_text(encoding="utf-8")
    for line in ("def pump(self) -> None:", "selector.select(timeout)",
                 "self.core.receive_data(data, time.monotonic())"):
        assert line in example and _squash(line) in _squash(text), line


@needs_sphinx
def test_index_links_every_page(site: Path) -> None:
    page = (site / "index.html").read_text(encoding="utf-8")
    for name in ("tutorial", "support", "security", "comparison", "contract", "states", "config",
                 "cli", "fuzzing"):
        assert f'href="{name}.html"' in page, name
