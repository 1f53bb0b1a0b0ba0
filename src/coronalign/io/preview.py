"""Single image planes of FITS data products, read without opening a data model.

The report figure shows one plane of the science exposure, the PSF stack and the product.
Opening them as data models (stdatamodels) loads asdf and its extensions and validates the
whole tree, which costs more than drawing the figure; astropy.io.fits reads one plane of a
memory-mapped extension and the few primary-header keywords the figure needs.
"""

from pathlib import Path

import numpy as np

from coronalign.errors import InputFileError
from coronalign.io.paths import check_input

__all__ = ["Plane", "read_plane"]

#: Primary-header keywords of the subarray position (1-based) and size, by meta.subarray name.
SUBARRAY_KEYWORDS = {
    "xstart": "SUBSTRT1",
    "ystart": "SUBSTRT2",
    "xsize": "SUBSIZE1",
    "ysize": "SUBSIZE2",
}


class Plane:
    """One image plane: ``data`` (float64), ``dq`` (or None) and the file's ``subarray``.

    Parameters
    ----------
    data : numpy.ndarray
        The 2D SCI plane, float64.
    dq : numpy.ndarray or None
        The matching 2D DQ plane, when the file has a DQ extension of the same shape.
    subarray : dict
        ``xstart``, ``ystart``, ``xsize``, ``ysize`` from the primary header (None if absent).
    ndim : int
        Dimensions of the SCI array the plane was taken from.
    """

    def __init__(self, data, dq, subarray, ndim):
        self.data = data
        self.dq = dq
        self.subarray = subarray
        self.ndim = ndim


def read_plane(path, role, index=None):
    """Read one 2D plane of the SCI (and DQ) extension of a FITS product.

    Parameters
    ----------
    path : path-like
        A FITS file with a ``SCI`` image of 2 or more dimensions (a ``_calints``, a
        ``_psfstack``, a ``_psfalign`` product).
    role : str
        What the file is, for messages (``"product"``, ``"science exposure"``).
    index : tuple of int, optional
        The leading indices of the plane; default the first plane (all zeros).

    Returns
    -------
    Plane

    Raises
    ------
    InputFileError
        The file is missing, is not FITS or has no SCI image of 2 or more dimensions.
    """
    from astropy.io import fits

    path = Path(path)
    check_input(path, role)
    try:
        with fits.open(path, lazy_load_hdus=True) as hdulist:
            header = hdulist[0].header
            subarray = {name: header.get(key) for name, key in SUBARRAY_KEYWORDS.items()}
            sci = hdulist["SCI"]
            shape = sci.shape
            if len(shape) < 2:
                raise InputFileError(path, f"the {role} has no SCI image")
            # .section reads only the plane asked for (and applies BZERO, as DQ has)
            where = tuple(index) if index is not None else (0,) * (len(shape) - 2)
            data = np.array(sci.section[where], dtype=np.float64)
            dq = None
            if "DQ" in hdulist and hdulist["DQ"].shape in (shape, shape[-2:]):
                stored = hdulist["DQ"]
                plane = where if stored.shape == shape else ()
                dq = np.array(stored.section[plane] if plane else stored.data, dtype=np.uint32)
            return Plane(data, dq, subarray, len(shape))
    except (OSError, KeyError, IndexError, TypeError, ValueError) as error:
        raise InputFileError(path, f"cannot read a plane of the {role}: {error}") from None
