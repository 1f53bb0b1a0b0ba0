"""Propagated errors of a fit: the sandwich covariance of the objective's minimum.

The fit minimises ``f(θ) = Σ w (p − β T_d s)²`` over ``θ = (dx, dy, β)``
(:mod:`coronalign.core.objective`). Write ``r = p − β T_d s`` and
``u_k = ∂(β T_d s)/∂θ_k`` (the images ``β ∂_x T_d s``, ``β ∂_y T_d s`` and ``T_d s``). At the
minimum the gradient ``g = −2 Σ w r u`` vanishes; noise ``n_p`` in the PSF and ``n_s`` in the
science image move it, to first order, by ``δg = −2 Σ w (n_p − β T_d n_s) u``. With
independent pixel noise of variances ``v_p`` and ``v_s``, and ``T_d`` orthogonal
(``T_dᵀ = T_{−d}``), its covariance is

    C = 4 [ Σ v_p (w u)(w u)ᵀ + β² Σ v_s (T_{−d} w u)(T_{−d} w u)ᵀ ],

the science noise carried through the shift and β. The periodic Fourier shift is
orthogonal, so shifted white noise stays white; for a variance map that varies slowly
on the scale of the interpolation kernel, ``T_{−d}`` moved onto the variance gives

    C ≈ 4 Σ (v_p + β² T_d v_s) (w u)(w u)ᵀ,

which is what is computed. The covariance of ``θ`` is then ``H⁻¹ C H⁻¹`` with ``H`` the
Hessian of ``f`` at the minimum (for a white residual of one variance ``σ²`` and ``w = 1``
it reduces to the usual ``2σ² H⁻¹``).

Cost: per fit, one inverse transform of four images (``T_d s``, its two derivatives and
``T_d v_s``) and six weighted sums. No LAPACK: the 3 × 3 inverse is written out and the
products are sums whose order numpy fixes, so the bits do not depend on the BLAS.
"""

import numpy as np
import scipy.fft

from coronalign.core.fourier import rfft_frequencies, shift_spectrum
from coronalign.core.reproducible import complex_multiply

__all__ = ["inverse_3x3", "propagated_covariance", "sandwich"]


def inverse_3x3(h):
    """Inverses of a stack of 3 × 3 matrices from their cofactors (no LAPACK).

    Parameters
    ----------
    h : ndarray, shape (k, 3, 3)

    Returns
    -------
    inverse : ndarray, shape (k, 3, 3)
        NaN where the matrix is not positive definite.
    definite : ndarray of bool, shape (k,)
    """
    c = np.empty_like(h)
    for i in range(3):
        for j in range(3):
            r = [x for x in range(3) if x != i]
            q = [x for x in range(3) if x != j]
            minor = h[:, r[0], q[0]] * h[:, r[1], q[1]] - h[:, r[0], q[1]] * h[:, r[1], q[0]]
            c[:, j, i] = minor if (i + j) % 2 == 0 else -minor  # adjugate: transposed
    det = h[:, 0, 0] * c[:, 0, 0] + h[:, 0, 1] * c[:, 1, 0] + h[:, 0, 2] * c[:, 2, 0]
    lead = h[:, 0, 0] * h[:, 1, 1] - h[:, 0, 1] * h[:, 1, 0]
    definite = (h[:, 0, 0] > 0) & (lead > 0) & (det > 0)
    inverse = c / np.where(definite, det, 1.0)[:, None, None]
    return np.where(definite[:, None, None], inverse, np.nan), definite


def _product(a, b):
    """``a @ b`` for stacks of 3 × 3 matrices, summed in a fixed order."""
    return (a[:, :, :, None] * b[:, None, :, :]).sum(axis=2)


def sandwich(hessian, gradient_covariance):
    """``H⁻¹ C H⁻¹`` for stacks of 3 × 3 matrices.

    Parameters
    ----------
    hessian, gradient_covariance : ndarray, shape (k, 3, 3)

    Returns
    -------
    ndarray, shape (k, 3, 3)
        NaN where the Hessian is not positive definite.
    """
    inverse, _ = inverse_3x3(hessian)
    return _product(_product(inverse, gradient_covariance), inverse)


def _gram(vectors, variance):
    """``Σ v x_k x_l`` over pixels for the three images ``x`` (shape (3, ny, nx))."""
    out = np.empty((3, 3))
    for k in range(3):
        for m in range(k, 3):
            out[k, m] = out[m, k] = np.sum(variance * vectors[k] * vectors[m])
    return out


def propagated_covariance(
    science_spectrum, shape, weight, d, beta, hessian, science_variance, reference_variances
):
    """Covariance of ``(xshift, yshift, beta)`` from the pixel noise of both images.

    Parameters
    ----------
    science_spectrum : ndarray
        ``rfft2`` of the science image ``s`` the fits used.
    shape : tuple of int
        ``(ny, nx)``.
    weight : ndarray, shape (ny, nx)
        The fit weight ``w``.
    d : ndarray, shape (k, 2)
        The fitted shifts.
    beta : ndarray, shape (k,)
        The fitted flux scales.
    hessian : ndarray, shape (k, 3, 3)
        Hessian of ``f`` at each fit (:func:`coronalign.core.newton.full_hessian`).
    science_variance : ndarray, shape (ny, nx)
        Variance of each science pixel (ERR²); non-finite values count as zero weight.
    reference_variances : sequence of ndarray, shape (ny, nx)
        Variance of each PSF pixel, one per fit.

    Returns
    -------
    ndarray, shape (k, 3, 3)
        NaN where the Hessian is not positive definite.
    """
    ny, nx = shape
    fy, fx = rfft_frequencies(ny, nx)
    # d/d(dx) of the phase exp(-2πi fx dx) is -2πi fx times it (likewise along rows).
    derivative_x = complex_multiply(science_spectrum, -2j * np.pi * fx[None, :])
    derivative_y = complex_multiply(science_spectrum, -2j * np.pi * fy[:, None])
    v_s = np.where(np.isfinite(science_variance), science_variance, 0.0)
    spectra = np.stack((science_spectrum, derivative_x, derivative_y, scipy.fft.rfft2(v_s)))
    count = len(beta)
    gradient_covariance = np.empty((count, 3, 3))
    for i in range(count):
        dx, dy = float(d[i, 0]), float(d[i, 1])
        moved = shift_spectrum(spectra, shape, dx, dy)
        moved_variance = moved[3]
        u = np.stack((beta[i] * moved[1], beta[i] * moved[2], moved[0]))
        wu = weight * u
        v_p = reference_variances[i]
        v_p = np.where(np.isfinite(v_p), v_p, 0.0)
        total = v_p + beta[i] * beta[i] * np.maximum(moved_variance, 0.0)
        gradient_covariance[i] = 4 * _gram(wu, total)
    return sandwich(hessian, gradient_covariance)
