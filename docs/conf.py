"""Sphinx configuration for the Jumpstarter docs (Markdown sources via MyST)."""

project = "Jumpstarter"
author = "Jumpstarter maintainers"
copyright = "Jumpstarter maintainers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
# wire-format.md describes the envelope of remote messages; it joins the guide with
# remote actors (ActorSystem(listen=...)), which are not part of the runtime yet.
exclude_patterns = ["_build"]

# MyST: generate anchors for headings down to level 3 so [text](page.md#anchor) works.
myst_heading_anchors = 3

# autodoc / napoleon: Google-style docstrings, members in source order.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_member_order = "bysource"

nitpicky = False

html_theme = "furo"
html_title = "Jumpstarter"
