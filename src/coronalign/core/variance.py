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
"""

import numpy as np
import scipy.fft

from coronalign.core.fourier import axis_phase

__all__ = ["squared_kernel_transfer", "variance_phases"]


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
