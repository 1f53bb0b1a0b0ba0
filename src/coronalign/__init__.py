"""coronalign: the JWST coronagraphic ``align_refs`` step, fast and reproducible.

The numerical core (:mod:`coronalign.badpix`, :mod:`coronalign.fourier`,
:mod:`coronalign.register`, :mod:`coronalign.align`) works on arrays only. File
input and output live in :mod:`coronalign.products`, the PSFMASK lookup in
:mod:`coronalign.references`, and the command line in :mod:`coronalign.cli`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("coronalign")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
