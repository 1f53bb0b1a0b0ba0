"""Sphinx configuration of the coronalign documentation site (`make docs`)."""

project = "coronalign"
author = "the coronalign authors"
extensions = ["myst_parser", "sphinx.ext.autodoc", "numpydoc"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 4
# Links to files outside docs/ (config/README.md, benchmarks/) are not pages of the site;
# tests/test_docs.py checks that every linked path exists.
suppress_warnings = ["myst.xref_missing"]
numpydoc_show_class_members = False
html_theme = "alabaster"
