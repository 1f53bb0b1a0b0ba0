"""The metadata of a JWST data product, read as plain values without opening a data model.

Opening a product with stdatamodels converts and validates its whole ASDF tree (about a
second a product); a run manifest needs only a few plain entries of ``meta`` (the
provenance record coronalign writes, the step status). The tree is stored as YAML in the
file's ``ASDF`` extension; asdf reads it here without converting tags, so the values are
the plain strings, numbers, lists and dicts that were written.
"""

import io
from pathlib import Path

from coronalign.errors import InputFileError
from coronalign.io.paths import check_input

__all__ = ["read_meta"]


def read_meta(path, role="product"):
    """The ``meta`` tree of a FITS data product, as plain Python values.

    Parameters
    ----------
    path : path-like
        A FITS file written by stdatamodels (with an ``ASDF`` extension).
    role : str, optional
        What the file is, for messages.

    Returns
    -------
    dict
        The tree's ``meta`` (e.g. ``meta["cal_step"]["align_psfs"]``); empty if it has none.

    Raises
    ------
    InputFileError
        The file is missing, is not FITS or has no readable ASDF tree.
    """
    import asdf.util
    from astropy.io import fits

    path = Path(path)
    check_input(path, role)
    try:
        with fits.open(path, lazy_load_hdus=True) as hdulist:
            stored = bytes(hdulist["ASDF"].data["ASDF_METADATA"][0])
        tree = asdf.util.load_yaml(io.BytesIO(stored), tagged=False)
    except (OSError, KeyError, IndexError, TypeError, ValueError) as error:
        raise InputFileError(path, f"the {role} has no readable ASDF metadata: {error}") from None
    meta = tree.get("meta") if isinstance(tree, dict) else None
    return meta if isinstance(meta, dict) else {}
