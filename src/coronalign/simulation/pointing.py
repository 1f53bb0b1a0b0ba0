"""Pointing: the deliberate offsets written to the headers (small-grid dithers, a recorded
large offset) and the convention a reader uses to turn them into a prior.

The pointing errors that are not written (target acquisition, jitter) are drawn in
:mod:`coronalign.simulation.observation`.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DITHER_PATTERNS",
    "POINTING_CONVENTION",
    "dither_meta",
    "dither_offsets",
    "header_offsets",
]


#: Small-grid dither patterns of the reference exposures, in steps of ``sgd_step`` along
#: (x, y); reference exposure ``j`` is observed at point ``j % len(pattern)``.
_DITHER_PATTERNS = {
    "none": ((0, 0),),
    "5-point-box": ((0, 0), (1, 1), (1, -1), (-1, -1), (-1, 1)),
    "5-point-diamond": ((0, 0), (1, 0), (0, 1), (-1, 0), (0, -1)),
    "9-point-grid": ((0, 0), (1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)),
}
#: Names accepted by ``psf_dither``.
DITHER_PATTERNS = tuple(_DITHER_PATTERNS)

POINTING_CONVENTION = (
    "x_offset, y_offset (arcsec) are the deliberate offsets written to the headers "
    "(meta.dither.x_offset / y_offset, FITS XOFFSET / YOFFSET) along the detector columns (x) "
    "and rows (y): star position = reference point + offset / pixel_scale, with pixel_scale = "
    "sqrt(meta.photometry.pixelarea_arcsecsq). The pointing error (target acquisition error, "
    "offset_scale; jitter, 0.02 px) and an unrecorded large_offset are not in the headers. "
    "xshift_header = (x_offset_psf - x_offset_sci) / pixel_scale is the prior a reader derives "
    "from the headers; compare it with xshift_geometric"
)


def dither_offsets(setup, pattern, count):
    """The deliberate offsets of the reference exposures, from a small-grid pattern.

    Parameters
    ----------
    setup : Setup
        The configuration (its dither step).
    pattern : str
        One of :data:`DITHER_PATTERNS`.
    count : int
        Reference exposures.

    Returns
    -------
    ndarray, shape (count, 2)
        (x, y) in arcsec.
    """
    points = np.asarray(_DITHER_PATTERNS[pattern], dtype=np.float64)
    return points[np.arange(count) % len(points)] * setup.sgd_step


def dither_meta(setup, pattern, index):
    """``meta.dither`` entries naming the small-grid position of a reference exposure.

    Parameters
    ----------
    setup : Setup
        The configuration.
    pattern : str
        One of :data:`DITHER_PATTERNS`.
    index : int
        The reference exposure (0-based).

    Returns
    -------
    dict
        Empty without a pattern.
    """
    if pattern == "none":
        return {}
    n = len(_DITHER_PATTERNS[pattern])
    return {
        "small_grid_pattern": pattern.upper(),
        "position_number": int(index % n) + 1,
        "total_points": n,
    }


def header_offsets(setup, opts, dither):
    """The offsets of the reference exposures as their headers record them.

    Parameters
    ----------
    setup : Setup
        The configuration (pixel scale).
    opts : Options
        The options (``large_offset``, ``record_large_offset``).
    dither : ndarray, shape (n, 2)
        The small-grid offsets (:func:`dither_offsets`).

    Returns
    -------
    ndarray, shape (n, 2)
        (x, y) in arcsec.
    """
    offsets = dither.copy()
    if opts.large_offset is not None and opts.record_large_offset:
        offsets += np.asarray(opts.large_offset, dtype=np.float64) * setup.pixel_scale
    return offsets
