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

__all__ = ["__version__"]


def __getattr__(name):
    """``__version__``, read from the installed package's metadata on first use.

    Importing :mod:`importlib.metadata` takes about 30 ms, which a command that never
    shows the version (or imports it anyway through astropy) need not pay up front.
    """
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("coronalign")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        value = "0.0.0+unknown"
    globals()["__version__"] = value
    return value
