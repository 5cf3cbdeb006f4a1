"""Sphinx directives that write reference pages from the code (see ``docgen``), so the pages
cannot drift from it.

* ``.. state-diagram:: response|websocket|lifespan``: a Graphviz diagram and a table.  Without
  the ``dot`` binary the diagram is shown as its DOT source, so the build needs nothing beyond
  Python.
* ``.. config-reference::``: every ``Config`` field, its default and why.
* ``.. cli-reference::``: every option of ``python -m asgi_sansio``.
"""

from __future__ import annotations

import dataclasses
import shutil
from typing import Any

from docgen import MACHINES, cli_rst, config_fields, config_rst, list_table, to_dot
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Directives
# ---------------------------------------------------------------------------------------------

class _Generated(SphinxDirective):
    def parse_lines(self, lines: list[str]) -> list[nodes.Node]:
        container = nodes.container()
        source = self.get_source_info()[0] or "<generated>"
        self.state.nested_parse(StringList(lines, source=source), self.content_offset, container)
        return list(container.children)


class StateDiagram(_Generated):
    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        if name not in MACHINES:
            raise self.error(f"unknown state machine {name!r}; one of {sorted(MACHINES)}")
        machine = MACHINES[name]()
        dot = to_dot(machine)
        out: list[nodes.Node] = []
        if shutil.which(self.config.graphviz_dot):
            from sphinx.ext.graphviz import graphviz

            node = graphviz()
            node["code"] = dot
            node["options"] = {"docname": self.env.docname}
            node["alt"] = f"state diagram of the {name} machine"
            node["classes"] = ["state-diagram"]
            out.append(node)
        else:
            logger.info("graphviz 'dot' not found: showing the %s diagram as DOT source", name)
            out.append(nodes.literal_block(dot, dot))
        widths = "20 40 20 20" if len(machine.header) == 4 else "20 45 35"
        out += self.parse_lines(["", *list_table(machine.header, machine.rows, widths)])
        return out


class ConfigReference(_Generated):
    has_content = False

    def run(self) -> list[nodes.Node]:
        from asgi_sansio import Config, _config
        from asgi_sansio.__main__ import build_parser

        self.env.note_dependency(_config.__file__)
        fields = config_fields()
        found = {f.name for f in fields}
        for declared in dataclasses.fields(Config):
            if declared.name not in found:
                logger.warning("Config.%s was not found in _config.py", declared.name,
                               location=self.get_location())
        for f in fields:
            if not f.reason:
                logger.warning("Config.%s has no comment saying why its default is what it is",
                               f.name, location=self.get_location())
        flags = {o for a in build_parser()._actions for o in a.option_strings}
        return self.parse_lines([".. currentmodule:: asgi_sansio", "", *config_rst(fields, flags)])


class CliReference(_Generated):
    has_content = False

    def run(self) -> list[nodes.Node]:
        from asgi_sansio import __main__ as cli

        self.env.note_dependency(cli.__file__)
        return self.parse_lines(cli_rst(cli.build_parser()))


def setup(app: Sphinx) -> dict[str, Any]:
    app.setup_extension("sphinx.ext.graphviz")
    app.add_directive("state-diagram", StateDiagram)
    app.add_directive("config-reference", ConfigReference)
    app.add_directive("cli-reference", CliReference)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
