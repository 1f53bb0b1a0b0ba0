"""The PSFMASK as fit weights: loading, checking, and the cut-out to the science frame.

:func:`load_psfmask` reads the mask (a ``PsfMaskModel`` or any FITS file with a 2D ``SCI``
image) as float64 weights (1 = use, 0 = ignore, fractions allowed) and, if the mask is larger
than the science frame (e.g. a full-frame mask), cuts out the science subarray using both
files' subarray positions.
"""

import logging
from pathlib import Path

import numpy as np

from coronalign.errors import InputFileError
from coronalign.io.paths import check_input

__all__ = ["load_psfmask"]

log = logging.getLogger(__name__)


def load_psfmask(path, frame_shape, science_subarray: dict | None) -> np.ndarray:
    """Read a PSFMASK as float64 weights of the science frame's shape.

    Parameters
    ----------
    path : path-like
        A ``PsfMaskModel`` file or any FITS file with a 2D ``SCI`` image.
    frame_shape : tuple of int
        ``(ny, nx)`` of the science frames.
    science_subarray : dict or None
        Position of the science subarray on the detector, 1-based, as ``meta.subarray``:
        ``xstart``, ``ystart`` (and optionally ``xsize``, ``ysize``). Needed only when the
        mask is larger than the science frame.

    Returns
    -------
    numpy.ndarray
        float64 array of ``frame_shape``: 1 = use the pixel in the fit, 0 = ignore it,
        fractions weight it.

    Raises
    ------
    InputFileError
        The file is missing, not FITS, has no 2D ``SCI`` image, holds NaN/infinite or negative
        weights or only zeros, is smaller than the science frame, or the cut-out cannot be
        placed (unknown positions, or the science subarray lies outside the mask).
    """
    path = Path(path)
    ny, nx = (int(n) for n in frame_shape)
    data, mask_start = _read_sci(path)

    if data.shape == (ny, nx):
        weights = data
    elif data.shape[0] >= ny and data.shape[1] >= nx:
        weights = _cut_out(path, data, mask_start, (ny, nx), science_subarray)
    else:
        raise InputFileError(
            path,
            f"the PSFMASK is {_shape(data.shape)} but the science frames are {_shape((ny, nx))}; "
            "a mask must have the science frame's shape or be larger (e.g. full frame) so the "
            "science subarray can be cut out. Use the mask made for this subarray",
        )
    _check_weights(path, weights)
    return np.ascontiguousarray(weights, dtype=np.float64)


def _read_sci(path):
    """The SCI image as float64 and the mask's (xstart, ystart) if it declares one."""
    from astropy.io import fits

    check_input(path, "PSFMASK", "the PSFMASK file does not exist")
    try:
        with fits.open(path, memmap=False) as hdul:
            if "SCI" not in hdul:
                raise InputFileError(
                    path,
                    "has no SCI extension; a PSFMASK needs a 2D SCI image (1 = use, 0 = ignore)",
                )
            sci = hdul["SCI"]
            if sci.data is None or sci.data.ndim != 2:
                dims = "no data" if sci.data is None else f"{sci.data.ndim} dimensions"
                raise InputFileError(
                    path, f"the SCI image of the PSFMASK must be 2D, it has {dims}"
                )
            data = np.asarray(sci.data, dtype=np.float64)
            start = _declared_start(hdul[0].header, sci.header)
    except InputFileError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise InputFileError(path, f"is not a readable FITS file ({exc})") from None
    return data, start


def _declared_start(*headers):
    """(SUBSTRT1, SUBSTRT2) from the first header that has both, else None."""
    for header in headers:
        if "SUBSTRT1" in header and "SUBSTRT2" in header:
            return int(header["SUBSTRT1"]), int(header["SUBSTRT2"])
    return None


def _cut_out(path, data, mask_start, frame_shape, science_subarray):
    """Cut the science subarray out of a larger mask, placing both on detector pixels."""
    ny, nx = frame_shape
    mny, mnx = data.shape
    both = f"the PSFMASK is {_shape(data.shape)}, the science frames are {_shape(frame_shape)}"
    sub = science_subarray or {}
    if sub.get("xstart") is None or sub.get("ystart") is None:
        raise InputFileError(
            path,
            f"{both} and the science subarray position (SUBSTRT1/SUBSTRT2) is unknown, so the "
            "mask cannot be cut to the science frame; use a mask of the science shape",
        )
    for key, size in (("xsize", nx), ("ysize", ny)):
        if sub.get(key) is not None and int(sub[key]) != size:
            raise InputFileError(
                path,
                f"{both} but the science header declares {key}={sub[key]}; the science "
                "subarray metadata do not match its data, so the cut-out cannot be placed",
            )
    if mask_start is None:
        mask_start = (1, 1)
        log.info("%s declares no SUBSTRT1/2: taking it as a full-frame mask starting at 1,1", path)
    x0 = int(sub["xstart"]) - mask_start[0]
    y0 = int(sub["ystart"]) - mask_start[1]
    if x0 < 0 or y0 < 0 or x0 + nx > mnx or y0 + ny > mny:
        raise InputFileError(
            path,
            f"{both}; the science subarray (columns {sub['xstart']}..{int(sub['xstart']) + nx - 1}"
            f", rows {sub['ystart']}..{int(sub['ystart']) + ny - 1}) does not lie inside the mask "
            f"(columns {mask_start[0]}..{mask_start[0] + mnx - 1}, rows "
            f"{mask_start[1]}..{mask_start[1] + mny - 1}); use a mask that covers the subarray",
        )
    log.info(
        "cutting the %s PSFMASK to the science subarray at x=%d, y=%d (%s)",
        _shape(data.shape),
        int(sub["xstart"]),
        int(sub["ystart"]),
        _shape(frame_shape),
    )
    return data[y0 : y0 + ny, x0 : x0 + nx]


def _check_weights(path, weights):
    """Weights must be finite, non-negative and not all zero."""
    bad = ~np.isfinite(weights)
    if bad.any():
        raise InputFileError(
            path,
            f"the PSFMASK has {int(bad.sum())} NaN or infinite weights; weights must be finite "
            "(1 = use, 0 = ignore)",
        )
    negative = weights < 0
    if negative.any():
        raise InputFileError(
            path,
            f"the PSFMASK has {int(negative.sum())} negative weights (minimum "
            f"{weights.min():g}); weights must be >= 0 (1 = use, 0 = ignore)",
        )
    if not weights.any():
        raise InputFileError(
            path,
            "all PSFMASK weights over the science frame are zero, so no pixel would be used "
            "in the fit; check the mask (1 = use, 0 = ignore)",
        )
    if weights.max() > 1:
        log.warning(
            "%s: PSFMASK weights exceed 1 (max %g); they are used as given", path, weights.max()
        )


def _shape(shape):
    """'64x64' style (rows x columns)."""
    return "x".join(str(int(n)) for n in shape)
