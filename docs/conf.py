"""Sphinx configuration: API reference (numpydoc) and the gallery of ``examples/``.

Build: ``python -m sphinx -b html docs docs/_build/html`` (or ``python docs/build.py``).
``-D plot_gallery=0`` renders the examples without running them (what CI does).
"""

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sklearn_ssse  # noqa: E402

project = "sklearn-ssse"
copyright = "the sklearn-ssse authors"
release = version = sklearn_ssse.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Cross-references to other projects resolve only with network access (intersphinx
# inventories); offline they stay plain text.
intersphinx_mapping = {}
if os.environ.get("SSSE_DOCS_INTERSPHINX"):
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
    }

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    # Scripts named plot_*.py are run (unless -D plot_gallery=0); others are shown.
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "download_all_examples": False,
    "matplotlib_animations": False,
    "remove_config_comments": True,
}

exclude_patterns = ["_build", "auto_examples/*.ipynb", "**.md5"]
templates_path = ["_templates"]
html_theme = "alabaster"
html_static_path = []
