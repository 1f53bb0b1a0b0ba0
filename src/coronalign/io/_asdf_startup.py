"""Make asdf's one-off start-up cost small: parse its extension manifests with libyaml.

Every process that opens or writes a JWST data model makes asdf load the manifests of
all installed extensions (49 YAML documents with stdatamodels, asdf-astropy and friends).
asdf parses them with ``yaml.safe_load``, PyYAML's pure-Python loader, which takes about
0.9 s on this project's machines; asdf itself uses libyaml's ``CSafeLoader`` for every
other document it reads. ``CSafeLoader`` accepts the same safe tag set and builds the
same Python objects, so parsing the manifests with it changes nothing but the time
(about 0.1 s). Every command line call and every Snakemake job pays this once.

:func:`install` is idempotent and does nothing if libyaml is missing, if asdf's module
layout is not the one it knows, or if ``CORONALIGN_PLAIN_ASDF`` is set in the
environment (to compare against plain asdf). The test suite checks that the loaded
extensions are identical either way.
"""

import os
import types

__all__ = ["install"]


def install():
    """Route asdf's manifest parsing through libyaml's ``CSafeLoader`` when possible.

    Returns
    -------
    bool
        True if the faster loader is in place.
    """
    if os.environ.get("CORONALIGN_PLAIN_ASDF"):
        return False
    import yaml

    if not getattr(yaml, "__with_libyaml__", False):
        return False
    try:
        from asdf.extension import _manifest
    except ImportError:
        return False
    current = getattr(_manifest, "yaml", None)
    if isinstance(current, types.SimpleNamespace):
        return True  # already installed
    if current is not yaml:
        return False  # asdf changed: leave it alone

    def safe_load(stream):
        return yaml.load(stream, Loader=yaml.CSafeLoader)

    _manifest.yaml = types.SimpleNamespace(safe_load=safe_load)
    return True
