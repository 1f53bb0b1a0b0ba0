"""A Gaussian blur of the images for the fit only (``blur_fwhm``).

Undersampled short-wave data may be blurred before their alignment (spacetelescope/jwst#8491):
the fit then weighs the well-sampled low frequencies, less the aliased high ones and the
pixel-to-pixel noise. The blur is periodic, done in the Fourier domain by
:func:`scipy.ndimage.fourier_gaussian` on the real transform, so it commutes exactly with the
periodic Fourier shift of the fit: a blurred reference and a blurred science image are matched by
the same shift as the unblurred ones when they are exact copies. The products are shifted
unblurred.
"""

import math

import numpy as np
import scipy.fft
import scipy.ndimage

__all__ = ["FWHM_PER_SIGMA", "gaussian_blur"]

#: FWHM of a Gaussian in units of its standard deviation, 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def gaussian_blur(images, fwhm):
    """Blur images with a circular Gaussian, periodically.

    Parameters
    ----------
    images : array_like, shape (..., ny, nx)
        Real images (computed in float64).
    fwhm : float
        Full width at half maximum in pixels (> 0).

    Returns
    -------
    ndarray of float64, shape (..., ny, nx)
    """
    images = np.asarray(images, dtype=np.float64)
    ny, nx = images.shape[-2:]
    sigma = fwhm / FWHM_PER_SIGMA
    spectrum = scipy.fft.rfft2(images)
    lead = images.ndim - 2
    sigmas = (0.0,) * lead + (sigma, sigma)
    blurred = scipy.ndimage.fourier_gaussian(spectrum, sigmas, n=nx, axis=-1)
    return scipy.fft.irfft2(blurred, s=(ny, nx))
