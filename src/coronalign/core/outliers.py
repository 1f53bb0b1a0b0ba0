"""Outlier fits: converged fits far from the same PSF's other fits over an exposure.

A converged fit is marked ``outlier`` (:class:`coronalign.dq.FitStatus`) when it lies
farther from the median position of its PSF's fits than ``OUTLIER_SIGMAS`` robust standard
deviations (1.4826 × the median distance), than ``OUTLIER_FLOOR`` pixels and, where the
fit's total error is known, than ``OUTLIER_SIGMAS`` times that error.
"""

import numpy as np

from coronalign.dq import FitStatus

__all__ = ["OUTLIER_FLOOR", "OUTLIER_SIGMAS", "mark_outliers"]

#: A fit is an outlier beyond this many robust standard deviations of its PSF's fits...
OUTLIER_SIGMAS = 5.0
#: ...and this many pixels (integrations of one exposure share the pointing to a few
#: hundredths of a pixel; a fit in another minimum lies a pixel or more away).
OUTLIER_FLOOR = 0.5


def mark_outliers(xshift, yshift, status, xshift_err=None, yshift_err=None):
    """Set status ``outlier`` on converged fits far from their PSF's other fits (in place).

    Far: beyond ``OUTLIER_SIGMAS`` robust standard deviations of the PSF's fits and
    ``OUTLIER_FLOOR`` pixels and, where the fit has a finite total error, beyond
    ``OUTLIER_SIGMAS`` times that error too (a fit that is merely uncertain, a faint
    integration, is not an outlier for being far).

    Parameters
    ----------
    xshift, yshift : numpy.ndarray
        The fitted shifts, (integrations, PSFs).
    status : numpy.ndarray
        The fits' statuses, same shape; changed in place.
    xshift_err, yshift_err : numpy.ndarray, optional
        The fits' total errors, same shape (NaN where unknown).
    """
    for m in range(xshift.shape[1]):
        rows = np.flatnonzero(status[:, m] == FitStatus.CONVERGED)
        if rows.size < 3:
            continue
        x, y = xshift[rows, m], yshift[rows, m]
        dx, dy = x - np.median(x), y - np.median(y)
        distance = np.sqrt(dx * dx + dy * dy)
        limit = max(OUTLIER_SIGMAS * 1.4826 * np.median(distance), OUTLIER_FLOOR)
        far = distance > limit
        if xshift_err is not None:
            far &= ~(
                distance <= OUTLIER_SIGMAS * _combined(xshift_err[rows, m], yshift_err[rows, m])
            )
        status[rows[far], m] = FitStatus.OUTLIER


def _combined(xshift_err, yshift_err):
    """The error of a shift's length from its two errors (NaN where either is unknown)."""
    return np.sqrt(xshift_err * xshift_err + yshift_err * yshift_err)
