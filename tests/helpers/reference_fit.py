"""An independent brute-force check of the simulator's truth (scipy only, no coronalign code).

The fit is the textbook one: ``scipy.ndimage.fourier_shift`` of the float64 science image,
residual ``mask * (psf - beta * shifted)``, minimised by ``scipy.optimize.least_squares``
with tight tolerances.
"""

import numpy as np
from scipy import ndimage, optimize

__all__ = ["scipy_fit", "truth_of"]


def scipy_fit(sci, psf, mask, start=(0.0, 0.0, 1.0)):
    """Fit ``psf ~ beta * shift(sci, dx, dy)`` by brute-force least squares.

    Parameters
    ----------
    sci, psf : (ny, nx) arrays (cast to float64; non-finite values become 0)
    mask : (ny, nx) weights; the residual is multiplied by it
    start : (dx, dy, beta) starting point

    Returns
    -------
    numpy.ndarray
        ``(dx, dy, beta)``.
    """
    sci = np.nan_to_num(np.asarray(sci, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    psf = np.nan_to_num(np.asarray(psf, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    weight = np.asarray(mask, dtype=np.float64)
    spectrum = np.fft.fft2(sci)

    def residual(p):
        shifted = np.fft.ifft2(ndimage.fourier_shift(spectrum, (p[1], p[0]))).real
        return (weight * (psf - p[2] * shifted)).ravel()

    result = optimize.least_squares(
        residual, np.asarray(start, dtype=np.float64), method="lm", xtol=1e-15, ftol=1e-15,
        gtol=1e-15, x_scale=[0.1, 0.1, 0.1],
    )  # fmt: skip
    return result.x


def truth_of(truth, k, m):
    """``(xshift, yshift, beta)`` of science integration ``k`` and PSF ``m`` from a truth dict."""
    return np.array([truth["xshift"][k][m], truth["yshift"][k][m], truth["beta"][k][m]])
