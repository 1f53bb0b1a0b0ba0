"""Shifting inside a padded frame, so that nothing wraps around (``edges: pad``).

The Fourier shift is circular: what leaves one edge of the frame re-enters at the other, and
the periodic image's jump from one edge to the other rings (stripes) into the frame. With
``edges: pad`` every PSF is extended on each side by :func:`pad_widths` pixels before its
transform and the shifted frame is cut back out. The extension is a *reflection* about the edge
pixels (``numpy.pad`` ``mode="reflect"``): continuous at the edge, so the Fourier interpolant has
no jump to ring on next to the data, whereas zeros make a step wherever the edge is not zero
(MIRI's background, a bright halo reaching the edge) and put the stripes back. The reflected
pixels are not data: an output pixel whose source lies outside the frame is NaN in SCI and ERR
and flagged ``DO_NOT_USE | OTHER_BAD_PIXEL``, never filled with the reflection.
"""

import math

import numpy as np
import scipy.fft

__all__ = ["pad_frames", "pad_widths"]

#: Pixels of padding beyond the largest shift a fit can end on.
MARGIN = 2


def pad_widths(shape, priors, max_shift):
    """Padding of each side: beyond any shift a fit can end on, to a fast transform size.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the frames.
    priors : array_like, shape (npsfs, 2)
        The fits' priors ``(xshift, yshift)`` (pixels).
    max_shift : float
        Radius of the fits' search window around the prior (pixels).

    Returns
    -------
    tuple
        ``((top, bottom), (left, right))`` in pixels, as :func:`numpy.pad` takes them; each at
        most the axis length minus 1 (the reflection's limit).
    """
    priors = np.asarray(priors, dtype=np.float64).reshape(-1, 2)
    reach = np.max(np.abs(priors), axis=0) if priors.size else np.zeros(2)
    widths = []
    for n, prior in zip(shape, reach[::-1], strict=True):  # (y, x) from (x, y) priors
        pad = min(math.ceil(prior + max_shift) + MARGIN, n - 1)
        total = scipy.fft.next_fast_len(n + 2 * pad, real=True)
        widths.append((pad, min(total - n - pad, n - 1)))
    return tuple(widths)


def pad_frames(images, widths):
    """Reflect-pad the last two axes of a stack of images.

    Parameters
    ----------
    images : ndarray, shape (..., ny, nx)
        The frames.
    widths : tuple
        From :func:`pad_widths`.

    Returns
    -------
    ndarray, shape (..., ny + top + bottom, nx + left + right)
    """
    lead = [(0, 0)] * (np.ndim(images) - 2)
    return np.pad(images, [*lead, *widths], mode="reflect")
