"""Sphinx configuration of the fame-aug manual: ``sphinx-build -W -n --keep-going docs build/docs``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fame_aug

project = "fame-aug"
author = "fame-aug developers"
copyright = "fame-aug developers"
release = fame_aug.__version__
version = release

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]
suppress_warnings = ["myst.header"]  # the changelog's own headings start below the page title

autodoc_default_options = {"members": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Without network access there is no intersphinx inventory for these libraries: their names in type hints are
# not links, and nitpicky mode (which fails the build on every other unresolved reference) skips them.
nitpick_ignore_regex = [
    ("py:.*", r"(torch|numpy|np|kornia|pathlib|collections|typing|os|cv2|av|argparse|logging)(\..*)?"),
    ("py:class", r"(float|int|bool|str|bytes|None|object|type|dict|list|tuple|Callable|Sequence|Iterator)"),
    # Names that string annotations use unqualified (their modules import them for type checking only).
    ("py:class", r"(Path|nn\.Module|FrameSize|VideoReader)"),
]

html_theme = "furo"
html_title = f"fame-aug {release}"
