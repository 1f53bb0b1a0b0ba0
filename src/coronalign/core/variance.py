"""Variances through a Fourier shift: the squared kernel, not the shifted ERR.

A Fourier shift by ``d`` is a linear operator: output pixel ``x`` is ``Σ_j k_d(j)
in(x − j)``, with ``k_d`` the (periodic, real) kernel whose transform is the shift's phase
factor. For independent input pixels the output variance is therefore

    var_out(x) = Σ_j k_d(j)² var_in(x − j),

a circular convolution of the variance map with the *squared* kernel. The kernel is separable
(``k_d(j) = k_dx(j_x) k_dy(j_y)``), so is its square, and the convolution is a product in the
Fourier domain with the transforms of the two squared 1D kernels: the same operation as the
shift itself (:func:`coronalign.core.fourier.shift_single`) with other factors. Shifting ERR as
if it were signal (what the official step does) is not this: it rings, goes negative next to
bright pixels and does not follow the noise an aligned plane actually has.

An integer shift has a one-pixel kernel: both give the rolled variance. ``Σ_j k_d(j)²`` is 1
but for the Nyquist term of an even axis (``cos² πd``), so a uniform variance stays (nearly)
uniform; a fractional shift spreads a variance peak over its neighbours with weights ``k²``
(the neighbouring output pixels become correlated, which a per-pixel variance cannot say).

The variance arrays of a JWST exposure (``VAR_POISSON``, ``VAR_RNOISE``, ``VAR_FLAT``, with
``ERR² = VAR_POISSON + VAR_RNOISE + VAR_FLAT``) go through the same operator, each on its own
(:class:`VarianceShifter`): the propagation is linear in the variance, so the propagated ERR²
stays the sum of the propagated variances. With ``err_shift="official"`` they are shifted as
signal, as ERR then is.
"""

import numpy as np
import scipy.fft

from coronalign.core.badpix import bad_pixel_mask, replace_bad_pixels
from coronalign.core.edges import pad_frames
from coronalign.core.fourier import axis_phase, shift_single, single_phases, single_spectra
from coronalign.core.results import VARIANCE_NAMES

__all__ = [
    "VARIANCE_NAMES",
    "VarianceShifter",
    "clean_variances",
    "squared_kernel_transfer",
    "variance_phases",
]


def squared_kernel_transfer(n, shift, real=False):
    """Transform of the squared 1D kernel of a Fourier shift, for each of several shifts.

    Parameters
    ----------
    n : int
        Length of the axis in pixels.
    shift : array_like of float, shape (count,)
        The shifts along the axis (pixels).
    real : bool, optional
        Give the ``rfft`` half spectrum (``n // 2 + 1`` frequencies) instead of the full one.

    Returns
    -------
    ndarray of complex128, shape (count, n) or (count, n // 2 + 1)
        ``fft(k_d²)`` for each shift ``d``; with it, a variance map is propagated as a
        spectrum is shifted.
    """
    shift = np.atleast_1d(np.asarray(shift, dtype=np.float64))
    # The kernel of the shift: the inverse transform of its phase factors (real, since the
    # factors are Hermitian, the cos(πd) Nyquist term of an even axis included).
    kernel = scipy.fft.ifft(axis_phase(np.fft.fftfreq(n), n, shift), axis=-1).real
    squared = kernel * kernel
    return scipy.fft.rfft(squared, axis=-1) if real else scipy.fft.fft(squared, axis=-1)


def variance_phases(shape, dx, dy):
    """Factors of :func:`coronalign.core.fourier.shift_single` that propagate a variance.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the images.
    dx, dy : array_like of float, shape (count,)
        The shifts (as given to :func:`coronalign.core.fourier.single_phases`).

    Returns
    -------
    tuple of ndarray of float32
        Real and imaginary parts of the row factors, shape (count, ny, 1), and of the column
        factors, shape (count, 1, nx // 2 + 1): applied to the ``rfft2`` of a variance map,
        they give its convolution with the shift's squared kernel.
    """
    ny, nx = shape
    y = squared_kernel_transfer(ny, dy)
    x = squared_kernel_transfer(nx, dx, real=True)
    return tuple(
        part.astype(np.float32)
        for part in (y.real[:, :, None], y.imag[:, :, None], x.real[:, None], x.imag[:, None])
    )


def clean_variances(arrays, data, dq, bad_bits, box_length, *, zero_flags=0):
    """Variance arrays cleaned as ERR is (:func:`coronalign.core.badpix.clean_plane_stack`).

    Every non-finite value is replaced by the box median of the finite values around it, or by
    0.0 where DATA becomes 0.0 (a bad pixel with a ``zero_flags`` bit); finite values are kept,
    so that a NaN never poisons a shifted plane and ``ERR² ≈ Σ var`` still holds where it did.

    Parameters
    ----------
    arrays : dict
        Name (``"var_poisson"``...) to an array of shape (nplanes, ny, nx).
    data, dq : numpy.ndarray
        The stack's DATA and DQ, same shape.
    bad_bits, box_length, zero_flags : int
        As for :func:`coronalign.core.badpix.clean_plane_stack`.

    Returns
    -------
    dict
        Name to the cleaned array (float64), in the order of ``arrays``.
    """
    dq = np.asarray(dq)
    zero = None
    if int(zero_flags):
        zero = bad_pixel_mask(np.asarray(data), dq, bad_bits)
        zero &= (dq & np.array(int(zero_flags), dtype=np.uint64).astype(dq.dtype)) != 0
    cleaned = {}
    for name, array in arrays.items():
        array = np.asarray(array)
        cleaned[name], _ = replace_bad_pixels(array, ~np.isfinite(array), box_length, zero=zero)
    return cleaned


class VarianceShifter:
    """The variance arrays of a PSF stack, moved with the PSFs they describe.

    The arrays' spectra are computed once (in single precision, as SCI's and ERR's); each call
    of :meth:`planes` gives the arrays of every PSF for one set of fitted shifts: convolved
    with the squared kernel of the shift (``propagate``) or shifted as signal.

    Parameters
    ----------
    arrays : dict
        Name to a cleaned variance array (no NaN), shape (npsfs, ny, nx)
        (:func:`clean_variances`).
    pad : tuple or None
        Padding widths (:func:`coronalign.core.edges.pad_widths`) of ``edges="pad"``, else None.
    propagate : bool
        True for ``err_shift="propagated"``, False for ``"official"``.
    workers : int, optional
        Threads of the transforms.
    """

    def __init__(self, arrays, pad, propagate, workers=1):
        self.names = tuple(arrays)
        stack = np.stack([np.asarray(arrays[name]) for name in self.names], axis=1)
        self.shape = stack.shape[-2:]
        self.unshifted = stack.astype(np.float32)
        self.pad = pad
        if pad is not None:
            stack = pad_frames(stack, pad)
        self.frame = stack.shape[-2:]
        self.propagate = propagate
        self.spectra = single_spectra(stack, workers)

    def planes(self, shifts, err):
        """The variance blocks of one set of fits.

        Parameters
        ----------
        shifts : ndarray, shape (npsfs, 2)
            The fitted ``(xshift, yshift)`` of each PSF (the PSF is moved by minus them); a
            PSF with a non-finite shift (no usable data) keeps its unshifted arrays.
        err : ndarray, shape (npsfs, ny, nx)
            The aligned ERR block: the variances are NaN where it is (the pixels of
            ``edges="pad"`` that have no source in the frame).

        Returns
        -------
        dict
            Name to a float32 block of shape (npsfs, ny, nx).
        """
        shifts = np.asarray(shifts, dtype=np.float64)
        npsfs = shifts.shape[0]
        ny, nx = self.shape
        top, left = (0, 0) if self.pad is None else (self.pad[0][0], self.pad[1][0])
        finite = np.isfinite(shifts[:, 0])
        factors = variance_phases if self.propagate else single_phases
        phases = factors(self.frame, -shifts[finite, 0], -shifts[finite, 1])
        blocks = {name: np.empty((npsfs, ny, nx), dtype=np.float32) for name in self.names}
        frames = np.empty((len(self.names), *self.frame), dtype=np.float32)
        done = 0
        for m in range(npsfs):
            if not finite[m]:
                for i, name in enumerate(self.names):
                    blocks[name][m] = self.unshifted[m, i]
                continue
            one = tuple(phase[done] for phase in phases)
            shift_single((self.spectra[0][m], self.spectra[1][m]), one, frames)
            done += 1
            for i, name in enumerate(self.names):
                cut = frames[i, top : top + ny, left : left + nx]
                if self.propagate:  # rounding can leave a variance a hair below 0 where it is 0
                    np.maximum(cut, 0, out=blocks[name][m])
                else:
                    blocks[name][m] = cut
        outside = np.isnan(err)
        for block in blocks.values():
            block[outside] = np.nan
        return blocks
