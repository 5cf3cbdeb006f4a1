"""Sphinx configuration.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE / "_ext"), str(HERE.parent)]  # our extension; the package from source

import asgi_sansio  # noqa: E402

project = "asgi-sansio"
author = "the asgi-sansio authors"
copyright = "the asgi-sansio authors, MIT licence"
release = asgi_sansio.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.graphviz",
    "myst_parser",  # fuzzing.md is Markdown
    "asgi_sansio_docs",  # state diagrams, Config and CLI references, generated from the code
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_class_signature = "separated"

graphviz_output_format = "svg"

html_theme = "alabaster"
smartquotes = False  # keep quotes and dashes as written: flags like --max-body-size
html_theme_options = {
    "description": "The ASGI wire layer as pure state machines",
    "fixed_sidebar": True,
    "page_width": "1100px",
}
