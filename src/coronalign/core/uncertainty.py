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

from coronalign.core.fourier import rfft_frequencies, shift_single, single_phases
from coronalign.core.reproducible import complex_multiply

__all__ = [
    "BLOCK_LENGTHS",
    "block_size",
    "correlation_length",
    "fit_covariances",
    "inverse_3x3",
    "sandwich",
]


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
    """``Σ v x_k x_l`` over pixels for stacks of three images ``x`` (shape (n, 3, ny, nx))."""
    out = np.empty((len(vectors), 3, 3))
    for k in range(3):
        for m in range(k, 3):
            product = vectors[:, k] * vectors[:, m]
            product *= variance
            out[:, k, m] = out[:, m, k] = product.sum(axis=(1, 2), dtype=np.float64)
    return out


def _block_sums(images, block):
    """Sums of ``images`` (n, 3, ny, nx) over disjoint ``block`` × ``block`` squares."""
    n, parts, ny, nx = images.shape
    by, bx = -(-ny // block), -(-nx // block)
    padded = np.zeros((n, parts, by * block, bx * block), dtype=np.float64)
    padded[:, :, :ny, :nx] = images
    return padded.reshape(n, parts, by, block, bx, block).sum(axis=(3, 5))


def correlation_length(residual, weight):
    """Correlation length (pixels) of a weighted residual, from its neighbour correlation.

    For a field whose correlation falls as ``exp(−l² / 2ℓ²)``, the correlation of
    neighbouring pixels is ``ρ₁ = exp(−1 / 2ℓ²)``; ``ρ₁`` is measured from the mean
    square of the residual and of its differences along rows and columns,
    ``ρ₁ = 1 − ⟨(Δr)²⟩ / 2⟨r²⟩``. White pixel noise gives ``ρ₁ ≈ 0`` (ℓ → 0); speckles
    of the size of a resolution element give ``ℓ`` about λ/D / 2.

    Parameters
    ----------
    residual : ndarray, shape (n, ny, nx)
    weight : ndarray, shape (ny, nx)

    Returns
    -------
    ndarray, shape (n,)
    """
    inside = weight > 0
    both_x = inside[:, 1:] & inside[:, :-1]
    both_y = inside[1:, :] & inside[:-1, :]
    square = np.sum(np.where(inside, residual * residual, 0.0), axis=(1, 2))
    step_x = np.diff(residual, axis=2)
    step_y = np.diff(residual, axis=1)
    steps = np.sum(np.where(both_x, step_x * step_x, 0.0), axis=(1, 2)) + np.sum(
        np.where(both_y, step_y * step_y, 0.0), axis=(1, 2)
    )
    pairs = max(int(both_x.sum() + both_y.sum()), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = 1.0 - (steps / pairs) / (2.0 * square / max(int(inside.sum()), 1))
        length = np.sqrt(-0.5 / np.log(np.clip(rho, 1e-12, 1.0 - 1e-12)))
    return np.where(np.isfinite(length), length, 0.0)


#: Block side, in correlation lengths of the residual: a block must hold the correlated
#: patch of a speckle (correlation ``exp(−l²/2ℓ²)`` is 0.04 at 2.5ℓ) for the sums of
#: neighbouring blocks to be independent.
BLOCK_LENGTHS = 5.0
#: Smallest and largest block side (pixels).
BLOCK_RANGE = (4, 32)


def block_size(length):
    """Side (pixels) of the blocks of the residual term for a correlation length.

    Parameters
    ----------
    length : float
        From :func:`correlation_length`.

    Returns
    -------
    int
    """
    low, high = BLOCK_RANGE
    return int(min(max(np.ceil(BLOCK_LENGTHS * length), low), high))


def fit_covariances(
    science_spectrum,
    shape,
    weight,
    d,
    beta,
    hessian,
    reference_images,
    science_variance=None,
    reference_variances=None,
):
    """Covariances of ``(xshift, yshift, beta)``: statistical and with the residual's structure.

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
    reference_images : sequence of ndarray, shape (ny, nx)
        The PSF ``p`` of each fit.
    science_variance : ndarray, shape (ny, nx), optional
        Variance of each science pixel; non-finite values count as zero.
    reference_variances : sequence of ndarray, shape (ny, nx), optional
        Variance of each PSF pixel, one per fit. Without both variances the statistical
        covariance is NaN (the caller has the residual-variance estimate instead).

    Returns
    -------
    statistical : ndarray, shape (k, 3, 3)
        ``H⁻¹ C H⁻¹`` from the pixel noise of both images.
    residual : ndarray, shape (k, 3, 3)
        ``H⁻¹ C_r H⁻¹`` with ``C_r`` from the residual itself, summed over blocks
        (:func:`block_size`): pixel noise, speckles the reference does not share and
        replaced pixels alike.
    blocks : ndarray of int, shape (k,)
        The block side of each fit.

    Both are NaN where the Hessian is not positive definite.
    """
    ny, nx = shape
    count = len(beta)
    fy, fx = rfft_frequencies(ny, nx)
    # d/d(dx) of the phase exp(-2πi fx dx) is -2πi fx times it (likewise along rows).
    derivative_x = complex_multiply(science_spectrum, -2j * np.pi * fx[None, :])
    derivative_y = complex_multiply(science_spectrum, -2j * np.pi * fy[:, None])
    parts = [science_spectrum, derivative_x, derivative_y]
    noise = science_variance is not None and reference_variances is not None
    if noise:
        v_s = np.where(np.isfinite(science_variance), science_variance, 0.0)
        parts.append(scipy.fft.rfft2(v_s))
    # Single precision: the errors need no more than a few digits, and float32 transforms
    # take a fifth of the time (the products are separate real operations, the same bits on
    # every CPU; see coronalign.core.fourier.shift_single).
    spectra = tuple(
        np.stack([getattr(part, name) for part in parts]).astype(np.float32)
        for name in ("real", "imag")
    )
    phases = single_phases(shape, d[:, 0], d[:, 1])
    moved = np.empty((len(parts), ny, nx), dtype=np.float32)
    u = np.empty((count, 3, ny, nx), dtype=np.float32)
    residual = np.empty((count, ny, nx), dtype=np.float32)
    science = np.empty((count, ny, nx), dtype=np.float32)  # T_d s
    total = np.empty((count, ny, nx), dtype=np.float32) if noise else None
    moved_variances = np.empty((count, ny, nx), dtype=np.float32) if noise else None
    w = weight.astype(np.float32)
    for i in range(count):
        shift_single(spectra, tuple(phase[i] for phase in phases), moved)
        b = np.float32(beta[i])
        u[i, 0] = moved[1] * b
        u[i, 1] = moved[2] * b
        u[i, 2] = moved[0]
        science[i] = moved[0]
        residual[i] = reference_images[i] - b * moved[0]
        if noise:
            v_p = reference_variances[i]
            moved_variances[i] = moved[3]
            total[i] = np.where(np.isfinite(v_p), v_p, 0.0) + (b * b) * np.maximum(moved[3], 0)
    u *= w
    # The science image's noise variance (moved with it); without variances, the residual's
    # variance per weighted pixel taken as shared equally by both images.
    if noise:
        science_part = np.maximum(moved_variances, 0.0)
    else:
        weighted = np.sum(w * residual * residual, axis=(1, 2), dtype=np.float64)
        share = weighted / max(float(np.sum(weight)), 1e-300) / (1.0 + beta * beta)
        science_part = share.astype(np.float32)[:, None, None]
    if noise:
        statistical = sandwich(hessian, 4 * _gram(u, total))
    else:
        statistical = np.full((count, 3, 3), np.nan)
    # The science noise is in both r (as -β T_d n_s) and u_β (T_d s), so the fit's β is
    # pulled low by λ = β Σ w T_d v_s / Σ w (T_d s)² (noise in the regressor): the residual
    # holds +λ T_d s, the same in every realisation, and each pixel's w r u_β the mean
    # -β w T_d v_s. Neither scatters the fit; over a block both add up coherently, so both
    # are taken out (the contributions still sum to zero).
    mean = (beta.astype(np.float32)[:, None, None] * w) * science_part
    square = u[:, 2] * science
    pull = np.sum(mean, axis=(1, 2), dtype=np.float64) / np.maximum(
        np.sum(square, axis=(1, 2), dtype=np.float64), 1e-300
    )
    residual -= pull.astype(np.float32)[:, None, None] * science
    contributions = u * residual[:, None]
    contributions[:, 2] += mean
    lengths = correlation_length(residual, weight)
    blocks = np.array([block_size(length) for length in lengths], dtype=int)
    gradient = np.empty((count, 3, 3))
    for side in np.unique(blocks):
        chosen = np.flatnonzero(blocks == side)
        gradient[chosen] = 4 * _gram(_block_sums(contributions[chosen], int(side)), 1.0)
    return statistical, sandwich(hessian, gradient), blocks
