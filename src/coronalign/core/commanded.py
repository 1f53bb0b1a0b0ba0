"""How far each fit lies from the commanded dither offset, in milliarcseconds.

The prior of a fit (the centre of its search window, ``xprior``/``yprior`` in the shift table)
is the shift the exposures' commanded offsets predict (``XOFFSET``/``YOFFSET``, see
:mod:`coronalign.io.pointing`) when they are recorded. The fitted shift differs from it by
the pointing errors (target acquisition, small-grid dither execution) and the jitter:

    distance = hypot(xshift − xprior, yshift − yprior) × pixel scale,

in milliarcseconds. NIRCam and MIRI target acquisition place a star to about 5 mas (1σ per
axis, :data:`DEFAULT_TOLERANCE_MAS`); a fit much farther from its commanded offset points at
a wrong reference, wrong metadata or a fit in another minimum. spaceKLIP only warns below
1e-5 or above 100 mas.
"""

import numpy as np

__all__ = ["DEFAULT_TOLERANCE_MAS", "commanded_offset_distances", "commanded_offset_summary"]

#: Default tolerance (mas): the NIRCam/MIRI target-acquisition accuracy.
DEFAULT_TOLERANCE_MAS = 5.0


def commanded_offset_distances(xshift, yshift, xcommanded, ycommanded, pixel_scale):
    """Distance of each fitted shift from its commanded offset, in milliarcseconds.

    Parameters
    ----------
    xshift, yshift : array_like
        The fitted shifts (pixels).
    xcommanded, ycommanded : array_like
        The shifts the commanded offsets predict (pixels), broadcastable to ``xshift``.
    pixel_scale : float
        Arcseconds per pixel.

    Returns
    -------
    ndarray of float64
        ``hypot(xshift − xcommanded, yshift − ycommanded) × pixel_scale × 1000`` (NaN where
        the fit is NaN).
    """
    dx = np.asarray(xshift, dtype=np.float64) - np.asarray(xcommanded, dtype=np.float64)
    dy = np.asarray(yshift, dtype=np.float64) - np.asarray(ycommanded, dtype=np.float64)
    return np.hypot(dx, dy) * (1000.0 * float(pixel_scale))


def commanded_offset_summary(distances, tolerance=DEFAULT_TOLERANCE_MAS):
    """Summary of the distances and which exceed the tolerance.

    Parameters
    ----------
    distances : array_like
        From :func:`commanded_offset_distances` (NaN: no fit, ignored).
    tolerance : float, optional
        Milliarcseconds (> 0).

    Returns
    -------
    dict
        ``tolerance_mas``, ``median_mas``, ``max_mas`` (None without finite distances),
        ``over`` (indices, in the order given, of the distances above the tolerance) and
        ``distances_mas`` (the distances, NaN as None).
    """
    distances = np.asarray(distances, dtype=np.float64).ravel()
    finite = np.isfinite(distances)
    over = np.flatnonzero(finite & (distances > tolerance))
    return {
        "tolerance_mas": float(tolerance),
        "median_mas": float(np.median(distances[finite])) if finite.any() else None,
        "max_mas": float(np.max(distances[finite])) if finite.any() else None,
        "over": [int(i) for i in over],
        "distances_mas": [float(d) if np.isfinite(d) else None for d in distances],
    }
