"""Generators for the reference pages, from the code itself; no Sphinx needed to run them.

* State machines: ``lifespan_machine`` reads ``_lifespan``'s tables; ``response_machine`` and
  ``websocket_machine`` read the tables in ``_http_messages`` and ``_websocket``, which only say
  which app message is legal in which state (the handler picks the next state from the
  message's flags), so ``legality_machine`` finds the edges by driving a real
  ``ServerConnection`` through every legal message and reading the state it lands in.
  ``to_dot`` turns a ``Machine`` into Graphviz source.
* ``config_fields``: every ``Config`` field with its default and the reason written in the
  comment above it in ``_config.py`` (read with ``tokenize`` and ``ast``); ``config_rst``.
* ``cli_rst``: every option of an argparse parser, as reST ``.. option::`` entries.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import io
import re
import tokenize
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

# ---------------------------------------------------------------------------------------------
# State machines
# ---------------------------------------------------------------------------------------------

# Edge kinds and how they are drawn.
EDGE_STYLE = {
    "app": "",  # a message the app sends
    "driver": 'style=bold, color="#1f5fa8", fontcolor="#1f5fa8"',  # queued by the driver
    "peer": 'style=dashed, color="#555555", fontcolor="#555555"',  # input from the client
    "exit": 'style=dashed, color="#a83232", fontcolor="#a83232"',  # the app task ended
    "bad": 'style=dotted, color="#a83232", fontcolor="#a83232"',  # a malformed app answer
}


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    label: str
    kind: str = "app"


@dataclass
class Machine:
    """What a diagram and its table show; built from the tables, never by hand."""

    name: str
    states: list[str]
    initial: str
    terminal: frozenset[str]
    edges: list[Edge]
    header: tuple[str, ...] = ()
    rows: list[tuple[str, ...]] = field(default_factory=list)
    rankdir: str = "LR"


def _dot_id(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(machine: Machine) -> str:
    """Graphviz source for ``machine``: one node per state, edges with the same ends and kind
    merged into one edge whose label lists them all."""
    lines = [
        f"digraph {_dot_id(machine.name)} {{",
        f'  rankdir={machine.rankdir}; nodesep=0.6; bgcolor="transparent";',
        '  node [shape=box, style="rounded", fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9];',
        '  "__start" [shape=point, width=0.12, label=""];',
    ]
    for state in machine.states:
        extra = ", peripheries=2" if state in machine.terminal else ""
        lines.append(f"  {_dot_id(state)} [label={_dot_id(state)}{extra}];")
    lines.append(f'  "__start" -> {_dot_id(machine.initial)};')
    merged: dict[tuple[str, str, str], list[str]] = {}
    for edge in machine.edges:
        labels = merged.setdefault((edge.src, edge.dst, edge.kind), [])
        if edge.label not in labels:
            labels.append(edge.label)
    for (src, dst, kind), labels in merged.items():
        label = "\\n".join(x.replace('"', '\\"') for x in labels)
        style = EDGE_STYLE[kind]
        attrs = f'label="{label}"' + (", " + style if style else "")
        lines.append(f"  {_dot_id(src)} -> {_dot_id(dst)} [{attrs}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _short(message_type: str, prefix: str) -> str:
    return message_type[len(prefix):] if message_type.startswith(prefix) else message_type


def lifespan_machine(
    transitions: Mapping[tuple[str, str], str] | None = None,
    on_app_exit: Mapping[str, str] | None = None,
    on_bad_answer: Mapping[str, str] | None = None,
    answers: Iterable[str] | None = None,
    statuses: Sequence[str] | None = None,
    terminal: Iterable[str] | None = None,
) -> Machine:
    """The lifespan machine from ``_lifespan``'s tables (or the ones given, for tests)."""
    from asgi_sansio import _lifespan as life

    # The module's tables are keyed by a Literal type; here any string will do.
    table = cast(Mapping[tuple[str, str], str], life._TRANSITIONS) \
        if transitions is None else transitions
    on_exit = cast(Mapping[str, str], life._ON_APP_EXIT) if on_app_exit is None else on_app_exit
    on_bad = cast(Mapping[str, str], life._ON_BAD_ANSWER) \
        if on_bad_answer is None else on_bad_answer
    app_answers = frozenset(life._ANSWERS if answers is None else answers)
    names = list(typing.get_args(life.LifespanStatus) if statuses is None else statuses)
    final = frozenset(life.TERMINAL_STATUSES if terminal is None else terminal)

    edges: list[Edge] = []
    for (src, mtype), dst in table.items():
        if mtype in app_answers:
            edges.append(Edge(src, dst, _short(mtype, "lifespan."), "app"))
        else:  # queued by the driver's startup()/shutdown()
            edges.append(Edge(src, dst, _short(mtype, "lifespan.") + "()", "driver"))
    for src, dst in on_exit.items():
        edges.append(Edge(src, dst, "app ends", "exit"))
    for src, dst in on_bad.items():
        edges.append(Edge(src, dst, "bad answer", "bad"))

    rows: list[tuple[str, ...]] = []
    for status in names:
        normal = ", ".join(
            f"``{mtype}`` → ``{dst}``" for (src, mtype), dst in table.items() if src == status
        )
        rows.append((
            f"``{status}``",
            normal or "—",
            f"``{on_exit[status]}``" if status in on_exit else "—",
            f"``{on_bad[status]}``" if status in on_bad else "—",
        ))
    return Machine(
        "lifespan", names, names[0], final, edges,
        ("Status", "Message → next status", "App task ends", "Malformed or early answer"), rows,
    )


Step = Any  # an app message (dict) or bytes from the peer
Probe = Callable[[Sequence[Step]], str]


def legality_machine(
    name: str,
    states: Sequence[str],
    table: Mapping[tuple[str, str], str],
    why_not: Mapping[str, tuple[str, str]],
    variants: Mapping[str, Sequence[tuple[str, dict[str, Any]]]],
    probe: Probe,
    peer: Sequence[tuple[str, bytes]] = (),
    prefix: str = "",
    depth: int = 5,
) -> Machine:
    """A machine whose ``table`` maps ``(state, message type)`` to the rule that allows it.

    ``variants`` gives, per message type, example messages with the flags that matter, and
    ``probe(path)`` replays a path of steps on a fresh connection and returns the state it
    ends in.  Every path of legal steps up to ``depth`` long is tried (a state's hidden flags,
    such as ``trailers`` set at start, make paths to the same state differ), plus every
    ``peer`` input in every state reached.
    """
    initial = states[0]
    missing = {mtype for _, mtype in table} - set(variants)
    if missing:
        raise ValueError(f"{name}: no example message for {sorted(missing)}")
    # (src, label, kind, dst) -> the labels of the steps before it, on each path that took it
    seen: dict[tuple[str, str, str, str], list[frozenset[str]]] = {}
    frontier: list[tuple[tuple[Step, ...], tuple[str, ...], str]] = [((), (), initial)]
    for _ in range(depth):
        following = []
        for path, before, state in frontier:
            steps: list[tuple[str, str, Step]] = []
            for (src, mtype), rule in table.items():
                if src == state:
                    steps += [(f"{label} [{rule}]", "app", msg) for label, msg in variants[mtype]]
            steps += [(label, "peer", data) for label, data in peer]
            for label, kind, step in steps:
                dst = probe((*path, step))
                key = (state, label, kind, dst)
                if key in seen and dst == state:
                    continue  # a self-loop already explored leads nowhere new
                seen.setdefault(key, []).append(frozenset(before))
                following.append(((*path, step), (*before, label.split(" [")[0]), dst))
        frontier = following
    edges = []
    for (src, label, kind, dst), histories in seen.items():
        if kind == "peer" and src == dst:
            continue  # peer input that changes nothing here
        # The same step from the same state may land in different states, after different
        # earlier steps (flags set at start, bytes that arrived early): say which.
        others = [frozenset.intersection(*h) for (s, lab, k, d), h in seen.items()
                  if (s, lab, k) == (src, label, kind) and d != dst]
        if others:
            mine = frozenset.intersection(*histories)
            after = sorted(mine - frozenset.intersection(*others))
            if after:
                label += ", after " + " and ".join(after)
        edges.append(Edge(src, dst, label, kind))
    rows: list[tuple[str, ...]] = []
    for state in states:
        accepts = ", ".join(
            f"``{_short(mtype, prefix)}`` ({rule})" for (src, mtype), rule in table.items()
            if src == state
        )
        rule, why = why_not.get(state, ("", ""))
        rows.append((f"``{state}``", accepts or "nothing", f"{rule}: {why}" if rule else "—"))
    leaving = {e.src for e in edges if e.dst != e.src}
    return Machine(
        name, list(states), initial, frozenset(s for s in states if s not in leaving),
        edges, ("State", "The app may send", "Anything else raises AppMisuseError"), rows,
    )


_HTTP_REQUEST = b"GET / HTTP/1.1\r\nHost: docs.example\r\nTE: trailers\r\n\r\n"
_WS_REQUEST = (
    b"GET /ws HTTP/1.1\r\nHost: docs.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
# A masked client Close frame with code 1000 (mask 01 02 03 04).
_WS_CLIENT_CLOSE = bytes([0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xE8 ^ 2])


def _replay(request: bytes, path: Sequence[Step]) -> tuple[Any, int]:
    from asgi_sansio import ServerConnection, StreamStarted

    conn = ServerConnection(now=0.0)
    conn.receive_data(request, 0.0)
    started = [e for e in conn.pop_events() if isinstance(e, StreamStarted)]
    sid = started[0].stream_id
    conn.receive(sid)  # http.request or websocket.connect
    for step in path:
        if isinstance(step, bytes):
            conn.receive_data(step, 0.0)
        else:
            conn.send(sid, step, 0.0)
    return conn, sid


def probe_response(path: Sequence[Step]) -> str:
    """The response state after ``path`` on an HTTP/1.1 request that accepts trailers."""
    conn, sid = _replay(_HTTP_REQUEST, path)
    return str(conn._proto._streams[sid].resp.value)


def probe_websocket(path: Sequence[Step]) -> str:
    """The WebSocket state after ``path`` on an HTTP/1.1 Upgrade."""
    conn, _ = _replay(_WS_REQUEST, path)
    return str(conn._proto._ws.state.value)


def response_machine() -> Machine:
    from asgi_sansio import _http_messages as msgs

    variants: dict[str, list[tuple[str, dict[str, Any]]]] = {
        msgs.START: [
            ("start trailers=False", {"type": msgs.START, "status": 200}),
            ("start trailers=True", {"type": msgs.START, "status": 200, "trailers": True}),
        ],
        msgs.BODY: [
            ("body more_body=True", {"type": msgs.BODY, "body": b"x", "more_body": True}),
            ("body", {"type": msgs.BODY, "body": b"x"}),
        ],
        msgs.TRAILERS: [
            ("trailers more_trailers=True", {"type": msgs.TRAILERS, "more_trailers": True}),
            ("trailers", {"type": msgs.TRAILERS}),
        ],
        msgs.EARLY_HINT: [("early_hint", {"type": msgs.EARLY_HINT, "links": [b"</a.css>"]})],
    }
    machine = legality_machine(
        "response", [s.value for s in msgs.Resp],
        {(s.value, t): rule for (s, t), rule in msgs.TRANSITIONS.items()},
        {s.value: why for s, why in msgs._WHY_NOT.items()},
        variants, probe_response, prefix="http.response.",
    )
    machine.rankdir = "TB"
    return machine


def websocket_machine() -> Machine:
    from asgi_sansio import _websocket as wsm

    variants: dict[str, list[tuple[str, dict[str, Any]]]] = {
        wsm.ACCEPT: [("accept", {"type": wsm.ACCEPT})],
        wsm.CLOSE: [("close", {"type": wsm.CLOSE, "code": 1000})],
        wsm.SEND: [("send", {"type": wsm.SEND, "text": "x"})],
        wsm.DENY_START: [("http.response.start", {"type": wsm.DENY_START, "status": 403})],
        wsm.DENY_BODY: [
            ("http.response.body more_body=True",
             {"type": wsm.DENY_BODY, "body": b"x", "more_body": True}),
            ("http.response.body", {"type": wsm.DENY_BODY, "body": b"x"}),
        ],
    }
    peer = [("peer sends Close", _WS_CLIENT_CLOSE), ("peer disconnects", b"")]
    return legality_machine(
        "websocket", [s.value for s in wsm.WS],
        {(s.value, t): rule for (s, t), rule in wsm.TRANSITIONS.items()},
        {s.value: why for s, why in wsm._WHY_NOT.items()},
        variants, probe_websocket, peer=peer, prefix="websocket.",
    )


MACHINES: dict[str, Callable[[], Machine]] = {
    "response": response_machine,
    "websocket": websocket_machine,
    "lifespan": lifespan_machine,
}


def list_table(header: Sequence[str], rows: Iterable[Sequence[str]], widths: str = "") -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1"]
    if widths:
        lines.append(f"   :widths: {widths}")
    lines.append("")
    for row in [header, *rows]:
        for i, cell in enumerate(row):
            lines.append(("   * - " if i == 0 else "     - ") + (cell or "—"))
    return lines


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------

_SECTION_RE = re.compile(r"#\s*-{3,}\s*(.*?)\s*-*\s*$")


@dataclass(frozen=True)
class ConfigField:
    name: str
    annotation: str
    default_source: str
    default: Any
    section: str
    reason: str


def config_fields(source: str | None = None) -> list[ConfigField]:
    """The fields of ``class Config`` in ``source`` (default: ``_config.py``), each with the
    comment block right above it (and any comment at the end of its line) as its reason."""
    if source is None:
        from asgi_sansio import _config

        source = Path(_config.__file__).read_text(encoding="utf-8")
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                              tokenize.ENDMARKER):
            code_lines.update(range(tok.start[0], tok.end[0] + 1))
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Config")
    namespace: dict[str, Any] = {}
    out = []
    section = ""
    consumed = cls.lineno
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above: list[str] = []
        for line in range(consumed + 1, node.lineno):
            text = comments.get(line)
            if text is None or line in code_lines:
                above = []  # a blank or code line ends a comment block
                continue
            heading = _SECTION_RE.match(text)
            if heading:
                section, above = heading.group(1), []
            else:
                above.append(text.lstrip("#").strip())
        trailing = comments.get(node.end_lineno or node.lineno)
        if trailing and (node.end_lineno or node.lineno) in code_lines:
            above.append(trailing.lstrip("#").strip())
        consumed = node.end_lineno or node.lineno
        default_source = ast.get_source_segment(source, node.value) if node.value else ""
        default = eval(compile(ast.Expression(node.value), "<config>", "eval"), namespace) \
            if node.value else dataclasses.MISSING
        out.append(ConfigField(
            node.target.id, ast.get_source_segment(source, node.annotation) or "",
            default_source or "", default, section, " ".join(above),
        ))
    return out


def _human(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1024:
        for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
            if value % size == 0:
                return f"{value // size} {unit}"
    return repr(value)


def config_rst(fields: Sequence[ConfigField], flags: set[str]) -> list[str]:
    lines: list[str] = []
    section = None
    for f in fields:
        if f.section != section:
            section = f.section
            lines += [f".. rubric:: {section[:1].upper() + section[1:]}", ""]
        human = _human(f.default)
        flag = "--" + f.name.replace("_", "-")
        notes = [f"{human}." if human != repr(f.default) else ""]
        if flag in flags:
            notes.append(f"Command line: :option:`{flag} <python -m asgi_sansio {flag}>`.")
        lines += [
            f".. py:attribute:: Config.{f.name}",
            f"   :type: {f.annotation}",
            f"   :value: {f.default_source}",
            "",
            "   " + " ".join(n for n in notes if n),
            "",
            f"   {f.reason}",
            "",
        ]
    return lines


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

def _escape(text: str) -> str:
    return re.sub(r"([\\*`|_])", r"\\\1", text)


def cli_rst(parser: argparse.ArgumentParser) -> list[str]:
    """``.. option::`` entries for every argument of ``parser``, grouped as ``--help`` groups
    them, with the defaults and choices argparse knows."""
    prog = parser.prog
    lines = [f".. program:: {prog}", "", "::", ""]
    lines += ["   " + line for line in parser.format_usage().strip().splitlines()]
    lines.append("")
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.help is not argparse.SUPPRESS]
        if not actions:
            continue
        title = group.title or ""
        lines += [f".. rubric:: {title[:1].upper() + title[1:]}", ""]
        for action in actions:
            metavar = action.metavar if isinstance(action.metavar, str) else None
            if action.option_strings:
                meta = ""
                if action.nargs != 0:
                    meta = " " + (metavar or action.dest.upper())
                    if action.choices and not metavar:
                        meta = " {" + ",".join(map(str, action.choices)) + "}"
                names = ", ".join(o + meta for o in action.option_strings)
            else:
                names = metavar or action.dest
            help_text = action.help or ""
            if "%(" in help_text:
                help_text = help_text % {**vars(action), "prog": prog}
            extra = []
            if action.choices and action.nargs != 0:
                extra.append("one of " + ", ".join(f"``{c}``" for c in action.choices))
            lines += [f".. option:: {names}", "", "   " + _escape(help_text)]
            if extra:
                lines += ["", "   " + "; ".join(extra).capitalize() + "."]
            lines.append("")
    return lines
