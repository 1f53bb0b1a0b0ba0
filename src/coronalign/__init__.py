"""coronalign: the JWST coronagraphic ``align_refs`` step, fast and reproducible.

Layers, each importing only those below it (``tests/test_layers.py`` checks):

* :mod:`coronalign.errors` and :mod:`coronalign.dq`: the errors and the quality vocabulary
  (DQ bits, fit statuses) every layer shares;
* :mod:`coronalign.core`: the numerical core, arrays in and arrays out;
* :mod:`coronalign.io`: files (data models, products, tables, reports, provenance);
* :mod:`coronalign.references`: the PSFMASK (CRDS lookup, loading, the selection record);
* :mod:`coronalign.steps`: one module per command, and the step parameters;
* :mod:`coronalign.cli`: the command line.

:mod:`coronalign.simulation` (synthetic data with an exact truth) stands apart: it never
imports the core, so its truth stays independent.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("coronalign")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
