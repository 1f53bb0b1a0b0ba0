"""Periodic sub-pixel shifts in the Fourier domain, and their derivatives.

The shift operator is the one the official step uses (``scipy.ndimage.fourier_shift``
on the complex FFT, real part kept): every frequency component ``k`` is multiplied by
``exp(-2πi k·d)``. At the Nyquist frequency of an even-sized axis, keeping the real part
amounts to multiplying by ``cos(π d)`` instead. We work with real FFTs and write that
factor explicitly, which gives the same result (to rounding) at half the cost.

Conventions: images are ``(..., ny, nx)``; a shift ``(dx, dy)`` moves the content by
``+dx`` columns and ``+dy`` rows, ``shifted(x) = image(x - d)``; the shift is circular
(content leaving one edge re-enters at the other).
"""

import functools

import numpy as np
import scipy.fft

from coronalign.core.reproducible import complex_multiply, sincos_2pi

__all__ = [
    "axis_phase",
    "axis_phases",
    "fourier_shift",
    "fourier_shift_pair",
    "pair_spectrum",
    "phase_derivatives",
    "rfft_frequencies",
    "shift_pair_spectrum",
    "shift_single",
    "shift_spectrum",
    "single_phases",
    "single_spectra",
]


def rfft_frequencies(ny, nx):
    """Frequencies (cycles per pixel) of a ``rfft2`` spectrum of an ``(ny, nx)`` image.

    Parameters
    ----------
    ny, nx : int
        Image shape.

    Returns
    -------
    fy : ndarray, shape (ny,)
        Row frequencies in FFT order (``numpy.fft.fftfreq``).
    fx : ndarray, shape (nx // 2 + 1,)
        Column frequencies (``numpy.fft.rfftfreq``).
    """
    return np.fft.fftfreq(ny), np.fft.rfftfreq(nx)


def axis_phase(freqs, n, shift, order=0):
    """Per-axis factor of the shift operator (or its derivatives) at each frequency.

    Parameters
    ----------
    freqs : ndarray
        Frequencies in cycles per pixel of one axis of length ``n``.
    n : int
        Length of that axis in pixels.
    shift : float or ndarray
        Shift(s) along the axis in pixels.
    order : int, optional
        0 for the factor itself, 1 and 2 for its first and second derivative with
        respect to ``shift``.

    Returns
    -------
    ndarray of complex128, shape ``shift.shape + freqs.shape``
        ``exp(-2πi f shift)`` (differentiated ``order`` times), with the Nyquist
        frequency of an even axis replaced by ``cos(π shift)`` (differentiated likewise).
    """
    return axis_phases(freqs, n, shift, order + 1)[..., order, :]


def phase_derivatives(freqs, shift, orders):
    """``exp(-2πi f s)`` and its derivatives in ``s``, computed the same way on every CPU.

    Parameters
    ----------
    freqs : ndarray
        Frequencies ``f`` in cycles per pixel.
    shift : float or ndarray
        Shift(s) ``s`` in pixels.
    orders : int
        Number of orders: the factor, its first derivative, … (each a multiplication by
        ``-2πi f``).

    Returns
    -------
    ndarray of complex128, shape ``shift.shape + (orders,) + freqs.shape``
    """
    shift = np.asarray(shift, dtype=np.float64)
    freqs = np.asarray(freqs, dtype=np.float64)
    cos, sin = sincos_2pi(np.multiply.outer(shift, -freqs))
    omega = 2.0 * np.pi * freqs  # the derivative multiplies by -i * omega
    phases = np.empty((*shift.shape, orders, freqs.size), dtype=np.complex128)
    real, imag = cos, sin
    for order in range(orders):
        phases[..., order, :].real = real
        phases[..., order, :].imag = imag
        real, imag = imag * omega, -(real * omega)
    return phases


def axis_phases(freqs, n, shift, orders):
    """:func:`axis_phase` for the orders ``0 … orders − 1`` at once.

    Parameters
    ----------
    freqs : ndarray
        Frequencies in cycles per pixel of one axis of length ``n``.
    n : int
        Length of that axis in pixels.
    shift : float or ndarray
        Shift(s) along the axis in pixels.
    orders : int
        Number of orders, at most 3 (the factor, its first and second derivative).

    Returns
    -------
    ndarray of complex128, shape ``shift.shape + (orders,) + freqs.shape``
        Computed with :mod:`coronalign.core.reproducible`, so the bits do not depend on the CPU.
    """
    shift = np.asarray(shift, dtype=np.float64)
    phases = phase_derivatives(freqs, shift, orders)
    if n % 2 == 0:
        nyquist = np.abs(freqs) == 0.5
        cos, sin = sincos_2pi(0.5 * shift[..., None])  # cos(π s), sin(π s)
        values = (cos, -np.pi * sin, -(np.pi * np.pi) * cos)
        for order in range(orders):
            phases[..., order, nyquist] = values[order]
    return phases


def shift_spectrum(spectrum, shape, dx, dy, workers=1):
    """Shift images given by their ``rfft2`` spectrum and return them in pixel space.

    Parameters
    ----------
    spectrum : ndarray of complex
        ``scipy.fft.rfft2`` of one or more images, shape ``(..., ny, nx // 2 + 1)``.
    shape : tuple of int
        ``(ny, nx)`` of the images.
    dx, dy : float
        Shift in pixels along columns and rows.
    workers : int, optional
        Threads for the inverse transform.

    Returns
    -------
    ndarray of float64
        The shifted images, shape ``(..., ny, nx)``.
    """
    ny, nx = shape
    fy, fx = rfft_frequencies(ny, nx)
    phase = complex_multiply(axis_phase(fy, ny, dy)[:, None], axis_phase(fx, nx, dx)[None, :])
    return scipy.fft.irfft2(complex_multiply(spectrum, phase), s=shape, workers=workers)


def fourier_shift(image, dx, dy, workers=1):
    """Shift an image (or a stack of images) by a sub-pixel amount, circularly.

    Parameters
    ----------
    image : array_like
        Image(s) of shape ``(..., ny, nx)``; computed in float64 whatever the dtype.
    dx, dy : float
        Shift in pixels: the content moves by ``+dx`` columns and ``+dy`` rows.
    workers : int, optional
        Threads for the transforms.

    Returns
    -------
    ndarray of float64
        The shifted image(s). An integer shift is an exact circular roll.
    """
    image = np.asarray(image, dtype=np.float64)
    spectrum = scipy.fft.rfft2(image, workers=workers)
    return shift_spectrum(spectrum, image.shape[-2:], dx, dy, workers=workers)


def pair_spectrum(first, second, workers=1):
    """Spectrum of two real images packed as one complex image ``first + i·second``.

    Parameters
    ----------
    first, second : array_like, shape (..., ny, nx)
        Real images (computed in float64).
    workers : int, optional
        Threads for the transform.

    Returns
    -------
    ndarray of complex128
        ``fft2(first + 1j * second)``, for :func:`shift_pair_spectrum`.
    """
    first = np.asarray(first, dtype=np.float64)
    packed = np.empty(first.shape, dtype=np.complex128)
    packed.real = first
    packed.imag = second
    return scipy.fft.fft2(packed, workers=workers, overwrite_x=True)


def shift_pair_spectrum(spectrum, dx, dy, workers=1):
    """Shift two real images packed by :func:`pair_spectrum`, with one inverse transform.

    The shift operator is Hermitian (``φ(−k) = conj φ(k)``, the ``cos`` Nyquist factor
    included), so it maps the spectrum of a real image to the spectrum of a real image:
    the real and imaginary parts of the result are exactly the two shifted images.

    Parameters
    ----------
    spectrum : ndarray of complex, shape (..., ny, nx)
        From :func:`pair_spectrum`.
    dx, dy : float or ndarray
        Shift in pixels along columns and rows; arrays give one shift per leading index
        of ``spectrum`` (a stack of packed pairs, each shifted by its own amount).
    workers : int, optional
        Threads for the inverse transform (a stack is shared among them).

    Returns
    -------
    first, second : ndarray of float64
        The two shifted images (or stacks).
    """
    ny, nx = spectrum.shape[-2:]
    # The two axis factors are applied one after the other, in place, and the transform
    # reuses that buffer: no full-size phase array, fewer fresh pages to fault in.
    product = complex_multiply(spectrum, axis_phase(np.fft.fftfreq(ny), ny, dy)[..., :, None])
    complex_multiply(product, axis_phase(np.fft.fftfreq(nx), nx, dx)[..., None, :], out=product)
    shifted = scipy.fft.ifft2(product, workers=workers, overwrite_x=True)
    return shifted.real, shifted.imag


def fourier_shift_pair(first, second, dx, dy, workers=1):
    """Shift two real images by the same amount (see :func:`shift_pair_spectrum`).

    Parameters
    ----------
    first, second : array_like, shape (..., ny, nx)
        Real images.
    dx, dy : float
        Shift in pixels: the content moves by ``+dx`` columns and ``+dy`` rows.
    workers : int, optional
        Threads for the transforms.

    Returns
    -------
    first, second : ndarray of float64
        Both images shifted, identical to :func:`fourier_shift` on each.
    """
    return shift_pair_spectrum(pair_spectrum(first, second, workers), dx, dy, workers)


def single_spectra(images, workers=1):
    """``rfft2`` of real images rounded to single precision, as contiguous parts.

    Parameters
    ----------
    images : array_like, shape (..., ny, nx)
        Real images (transformed in float64).
    workers : int, optional
        Threads for the transform.

    Returns
    -------
    real, imag : ndarray of float32, shape (..., ny, nx // 2 + 1)
        The spectrum's parts, for :func:`shift_single`.
    """
    spectrum = scipy.fft.rfft2(np.asarray(images, dtype=np.float64), workers=workers)
    return spectrum.real.astype(np.float32), spectrum.imag.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _frequencies(n, real):
    return np.fft.rfftfreq(n) if real else np.fft.fftfreq(n)


def single_phases(shape, dx, dy):
    """Phase factors of :func:`shift_single` for several shifts, in single precision.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the images.
    dx, dy : array_like of float, shape (count,)
        The shifts.

    Returns
    -------
    tuple of ndarray of float32
        Real and imaginary parts of the row factors, shape (count, ny, 1), and of the
        column factors, shape (count, 1, nx // 2 + 1) (:func:`axis_phase`).
    """
    ny, nx = shape
    y = axis_phase(_frequencies(ny, False), ny, np.asarray(dy, dtype=np.float64))
    x = axis_phase(_frequencies(nx, True), nx, np.asarray(dx, dtype=np.float64))
    return tuple(
        part.astype(np.float32)
        for part in (y.real[:, :, None], y.imag[:, :, None], x.real[:, None], x.imag[:, None])
    )


def shift_single(parts, phases, out):
    """Shift real images given by :func:`single_spectra`, in single precision.

    For a float32 product: the spectra are rounded to single precision, the phase factors
    (computed in float64 by :func:`axis_phase`) too; they are multiplied with separate real
    operations (no fused complex product, see :mod:`coronalign.core.reproducible`) and
    transformed back by pocketfft in single precision. The result differs from
    :func:`fourier_shift` in float64 by about ``1e-7`` of each image's largest value.

    Parameters
    ----------
    parts : tuple of ndarray of float32, shape (count, ny, nx // 2 + 1)
        Real and imaginary parts of the spectra of ``count`` images.
    phases : tuple of ndarray of float32
        One shift's entry of :func:`single_phases` (the same shift for every image).
    out : sequence of ndarray of float32, shape (ny, nx)
        Receive the ``count`` shifted images.
    """
    real, imag = parts
    y_real, y_imag, x_real, x_imag = phases
    ny, nx = out[0].shape
    # (real + i imag)(y_real + i y_imag)(x_real + i x_imag), one real operation at a time.
    rows_real = real * y_real
    rows_real -= imag * y_imag
    rows_imag = real * y_imag
    rows_imag += imag * y_real
    product_real = rows_real * x_real
    product_real -= rows_imag * x_imag
    rows_real *= x_imag
    rows_imag *= x_real
    rows_imag += rows_real
    product = np.empty(real.shape, dtype=np.complex64)
    product.real = product_real
    product.imag = rows_imag
    for spectrum, image in zip(product, out, strict=True):
        np.copyto(image, scipy.fft.irfft2(spectrum, s=(ny, nx), overwrite_x=True))
