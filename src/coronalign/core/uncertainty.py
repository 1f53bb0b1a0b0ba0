"""Propagated errors of a fit: the sandwich covariance of the objective's minimum.

The fit minimises ``f(θ) = Σ w (p − β T_d s)²`` over ``θ = (dx, dy, β)``
(:mod:`coronalign.core.objective`). Write ``r = p − β T_d s`` and
``u_k = ∂(β T_d s)/∂θ_k`` (the images ``β ∂_x T_d s``, ``β ∂_y T_d s`` and ``T_d s``). At the
minimum the gradient ``g = −2 Σ w r u`` vanishes; noise ``n_p`` in the PSF and ``n_s`` in the
science image move it, to first order, by ``δg = −2 Σ w (n_p − β T_d n_s) u``. With
independent pixel noise of variances ``v_p`` and ``v_s``, and ``T_d`` orthogonal
(``T_dᵀ = T_{−d}``), its covariance is

    C = 4 [ Σ v_p (w u)(w u)ᵀ + β² Σ v_s (T_{−d} w u)(T_{−d} w u)ᵀ ],

the science noise carried through the shift and β exactly (the shifted noise is correlated
between pixels; pulling ``w u`` back by ``T_{−d}`` accounts for that). The covariance of
``θ`` is then ``H⁻¹ C H⁻¹`` with ``H`` the Hessian of ``f`` at the minimum.

Cost: per fit, five inverse transforms (``T_d s`` at ``d`` and at ``d ± h`` along each
axis for the derivatives) and three forward/inverse pairs for the pull-back; a few
weighted sums. No LAPACK: the 3 × 3 inverse is written out and the products are sums
whose order numpy fixes, so the bits do not depend on the BLAS.
"""

import numpy as np
import scipy.fft

from coronalign.core.fourier import shift_spectrum

__all__ = ["DERIVATIVE_STEP", "inverse_3x3", "propagated_covariance", "sandwich"]

#: Step (pixels) of the central differences that give ``∂ T_d s / ∂d``; their error,
#: of order ``DERIVATIVE_STEP²`` relative, is far below any error bar.
DERIVATIVE_STEP = 1e-3


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
    step = DERIVATIVE_STEP
    v_s = np.where(np.isfinite(science_variance), science_variance, 0.0)
    count = len(beta)
    gradient_covariance = np.empty((count, 3, 3))
    for i in range(count):
        dx, dy = float(d[i, 0]), float(d[i, 1])
        shifts = [(dx, dy), (dx + step, dy), (dx - step, dy), (dx, dy + step), (dx, dy - step)]
        moved = np.stack([shift_spectrum(science_spectrum, shape, *s) for s in shifts])
        u = np.stack(
            (
                beta[i] * (moved[1] - moved[2]) / (2 * step),
                beta[i] * (moved[3] - moved[4]) / (2 * step),
                moved[0],
            )
        )
        wu = weight * u
        pulled = shift_spectrum(scipy.fft.rfft2(wu), shape, -dx, -dy)
        v_p = reference_variances[i]
        v_p = np.where(np.isfinite(v_p), v_p, 0.0)
        gradient_covariance[i] = 4 * (_gram(wu, v_p) + beta[i] * beta[i] * _gram(pulled, v_s))
    return sandwich(hessian, gradient_covariance)
