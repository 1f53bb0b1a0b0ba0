"""Errors of a fit: the sandwich covariance of the objective's minimum, statistical and total.

The fit minimises ``f(θ) = Σ w (p − β T_d s)²`` over ``θ = (dx, dy, β)``
(:mod:`coronalign.core.objective`). Write ``r = p − β T_d s`` and
``u_k = ∂(β T_d s)/∂θ_k`` (the images ``β ∂_x T_d s``, ``β ∂_y T_d s`` and ``T_d s``). At the
minimum the gradient ``g = −2 Σ w r u`` vanishes; a perturbation of it moves the minimum by
``−H⁻¹ δg``, so ``Cov(θ) = H⁻¹ C H⁻¹`` with ``C = Cov(δg)`` and ``H`` the Hessian of ``f``.

*Statistical.* Noise ``n_p`` in the PSF and ``n_s`` in the science image gives
``δg = −2 Σ w (n_p − β T_d n_s) u``; with independent pixel noise of variances ``v_p`` and
``v_s`` and ``T_d`` orthogonal, ``C ≈ 4 Σ (v_p + β² T_d v_s) (w u)(w u)ᵀ`` (for a variance
map smooth on the interpolation kernel's scale).

*Total.* ``C`` from the residual itself: the sums of the pixel contributions ``−2 w r u``
over disjoint blocks of a few correlation lengths of the residual are independent, so
``C = Σ_b G_b G_bᵀ`` (the block, or cluster-robust, sandwich). It holds the pixel noise and
what the noise does not explain: speckles the reference does not share, replaced pixels.

Both are evaluated in the science image's frame (``T_{−d} u`` is ``β D s`` and ``s`` for
every fit, ``D`` the spectral derivative), in single precision: per fit one inverse
transform, of the PSF moved onto the science image. docs/registration.md has the
derivation, the calibration and the cost. No LAPACK: the 3 × 3 inverse is written out and
the sums are numpy reductions in a fixed order, so the bits do not depend on the BLAS.
"""

import numpy as np
import scipy.fft

from coronalign.core.fourier import rfft_frequencies, shift_single, single_phases
from coronalign.core.reproducible import complex_multiply
from coronalign.core.reproducible import log as reproducible_log

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


def _block_sums(images, block):
    """Sums of ``images`` (parts, ny, nx) over disjoint ``block`` × ``block`` squares
    (float64; the last, partial blocks of a row or column sum what there is)."""
    parts, ny, nx = images.shape
    by, bx = -(-ny // block), -(-nx // block)
    columns = np.zeros((parts, ny, bx), dtype=np.float64)
    for k in range(block):  # strided adds: one pass over the images in all
        part = images[:, :, k::block]
        columns[:, :, : part.shape[2]] += part
    out = np.zeros((parts, by, bx), dtype=np.float64)
    for k in range(block):
        part = columns[:, k::block, :]
        out[:, : part.shape[1], :] += part
    return out


def correlation_length(residual, inside):
    """Correlation length (pixels) of a residual, from the correlation of neighbours.

    For a field whose correlation falls as ``exp(−l² / 2ℓ²)``, neighbouring pixels
    correlate by ``ρ₁ = exp(−1 / 2ℓ²)``; ``ρ₁`` is measured from the mean square of the
    residual and of the products of neighbours along rows and columns,
    ``ρ₁ = ⟨r_i r_j⟩ / ⟨r²⟩``.
    White pixel noise gives ``ρ₁ ≈ 0`` (ℓ → 0); speckles the size of a resolution
    element give ``ℓ`` of about half of λ/D.

    Parameters
    ----------
    residual : ndarray, shape (ny, nx)
    inside : ndarray of bool, shape (ny, nx)
        The pixels to use (the weight's support).

    Returns
    -------
    float
    """
    r = residual * inside
    count = int(inside.sum())
    pairs = int(np.sum(inside[:, 1:] & inside[:, :-1]) + np.sum(inside[1:, :] & inside[:-1, :]))
    square = float(np.sum(r * r, dtype=np.float64)) / max(count, 1)
    # Σ r_i r_j over neighbouring pairs (a product is zero unless both are inside)
    lagged = float(np.sum(r[:, 1:] * r[:, :-1], dtype=np.float64))
    lagged += float(np.sum(r[1:, :] * r[:-1, :], dtype=np.float64))
    if not (square > 0 and pairs > 0):
        return 0.0
    return _length(lagged / pairs / square)


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


def _sums(image, others, scratch=None):
    """``Σ image · other`` over pixels for each of ``others`` (shape (m, ny, nx)); the
    products go to ``scratch`` (shaped like ``others``) when given."""
    return np.multiply(others, image, out=scratch).sum(axis=(1, 2), dtype=np.float64)


def fit_covariances(
    science_spectrum,
    shape,
    weight,
    d,
    beta,
    hessian,
    reference_spectra,
    science_variance=None,
    reference_variances=None,
    moved_references=None,
):
    """Covariances of ``(xshift, yshift, beta)``: statistical and with the residual's structure.

    Everything is evaluated in the science image's frame, where the derivative images do
    not depend on the fit (see the module): per fit one inverse transform, of the PSF
    moved onto the science image.

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
    reference_spectra : tuple of ndarray of float32, shape (k, ny, nx // 2 + 1)
        Real and imaginary parts of ``rfft2`` of the PSF of each fit
        (:func:`coronalign.core.fourier.single_spectra`).
    science_variance : ndarray, shape (ny, nx), optional
        Variance of each science pixel; non-finite values count as zero.
    reference_variances : sequence of ndarray, shape (ny, nx), optional
        Variance of each PSF pixel, one per fit. Without both variances the statistical
        covariance is NaN (the caller has the residual-variance estimate instead).
    moved_references : ndarray of float32, shape (k, ny, nx), optional
        The PSF of each fit moved onto the science image, ``T_{-d} p``, exactly as
        :func:`coronalign.core.fourier.shift_single` makes it from ``reference_spectra``
        (the aligned SCI planes of the product are these images): given, the inverse
        transform per fit is saved; by default it is made here.

    Returns
    -------
    statistical : ndarray, shape (k, 3, 3)
        ``H⁻¹ C H⁻¹`` from the pixel noise of both images.
    residual : ndarray, shape (k, 3, 3)
        ``H⁻¹ C_r H⁻¹``, ``C_r`` from the residual itself summed over blocks
        (:func:`block_size`): pixel noise, speckles the reference does not share and
        replaced pixels alike.
    blocks : ndarray of int, shape (k,)
        The block side of each fit.

    Both covariances are NaN where the Hessian is not positive definite.
    """
    ny, nx = shape
    count = len(beta)
    fy, fx = rfft_frequencies(ny, nx)
    # d/d(dx) of the phase exp(-2πi fx dx) is -2πi fx times it (likewise along rows).
    # s, D_x s, D_y s: the images u of the sandwich moved back by -d (T_{-d} u = β D s and
    # s), the same for every fit of this science image. Single precision (spectra rounded
    # to it, float32 transforms): the errors need a few digits, and float32 transforms and
    # products take a fraction of the time.
    parts = np.empty((3, *science_spectrum.shape), dtype=np.complex64)
    parts[0] = science_spectrum
    complex_multiply(science_spectrum, -2j * np.pi * fx[None, :], out=parts[1])
    complex_multiply(science_spectrum, -2j * np.pi * fy[:, None], out=parts[2])
    images = scipy.fft.irfft2(parts, s=shape, overwrite_x=True)
    del parts
    science = images[0]
    products = np.empty((6, ny, nx), dtype=np.float32)  # s s, s Dx, s Dy, Dx Dx, Dx Dy, Dy Dy
    pairs = [(k, m) for k in range(3) for m in range(k, 3)]
    for j, (k, m) in enumerate(pairs):
        np.multiply(images[k], images[m], out=products[j])
    # powers of β in u_k u_m, with u = (β D_x s, β D_y s, s) ordered as (x, y, β)
    order = {0: 2, 1: 0, 2: 1}  # images index -> parameter index
    noise = science_variance is not None and reference_variances is not None
    v_s = _clean_variance(science_variance) if noise else None
    if moved_references is None:
        phases = single_phases(shape, -d[:, 0], -d[:, 1])
        moved = np.empty((1, ny, nx), dtype=np.float32)
    statistical_c = np.zeros((count, 3, 3))
    gradient = np.zeros((count, 3, 3))
    blocks = np.zeros(count, dtype=int)
    frames = {}
    # |∇s|² (the same for every frame), for the boxes of the information
    gradient_energy = images[1] * images[1] + images[2] * images[2]
    total_weight = max(float(np.sum(weight)), 1e-300)
    for i in range(count):
        # The PSF moved onto the science image (T_{-d} p); the weight and the PSF's
        # variance moved by whole pixels (they need no sub-pixel accuracy here).
        if moved_references is None:
            one = (reference_spectra[0][i : i + 1], reference_spectra[1][i : i + 1])
            shift_single(one, tuple(phase[i] for phase in phases), moved)
        else:
            moved = moved_references[i : i + 1]
        b = np.float32(beta[i])
        roll = (-round(float(d[i, 1])), -round(float(d[i, 0])))
        if roll not in frames:
            frames[roll] = _Frame(
                weight, roll, images, products, v_s if noise else None, gradient_energy
            )
        frame = frames[roll]
        box = frame.box  # the weight's support: nothing outside it counts
        w, science, derivatives, buffer = (
            frame.weight,
            frame.science,
            frame.derivatives,
            frame.buffer,
        )
        scale = {0: 1.0, 1: float(b), 2: float(b)}  # images index -> factor in u
        if noise:
            v_p = reference_variances[i]
            if any(roll):
                v_p = np.roll(v_p, roll, axis=(0, 1))
            np.fmax(v_p[box], 0.0, out=buffer)  # NaN and negative values count as zero
            buffer *= frame.square
            sums = _sums(buffer, frame.products, frame.scratch) + float(b * b) * frame.science_noise
            for (k, m), value in zip(pairs, sums, strict=True):
                p, q = order[k], order[m]
                statistical_c[i, p, q] = statistical_c[i, q, p] = value * scale[k] * scale[m]
            mean = b * frame.weighted_variance
        else:
            residual_now = moved[0][box] - b * science
            share = float(np.sum(w * residual_now * residual_now, dtype=np.float64))
            share /= total_weight * (1.0 + float(beta[i]) ** 2)
            mean = (b * np.float32(share)) * w
        # The science noise is in both r (as -β n_s) and u_β (s), so the fit's β is pulled
        # low by λ = β Σ w v_s / Σ w s² (noise in the regressor): the residual holds +λ s,
        # the same in every realisation, and each pixel's w r u_β the mean -β w v_s.
        # Neither scatters the fit; over a block both add up coherently: both are taken
        # out (the contributions still sum to zero).
        pull = float(np.sum(mean, dtype=np.float64)) / frame.science_energy
        # (not in place: the moved PSF may be the product's plane)
        weighted = (b + np.float32(pull)) * science
        np.subtract(moved[0][box], weighted, out=weighted)
        weighted *= w
        blocks[i] = block_size(frame.correlation_length(weighted))
        contributions = frame.contributions
        np.multiply(weighted, science, out=contributions[2])
        contributions[2] += mean
        weighted *= b
        np.multiply(weighted, derivatives[0], out=contributions[0])
        np.multiply(weighted, derivatives[1], out=contributions[1])
        sums = _block_sums(contributions, int(blocks[i])).reshape(3, -1)
        gradient[i] = 4 * _outer_sums(sums)
    statistical = sandwich(hessian, 4 * statistical_c) if noise else np.full((count, 3, 3), np.nan)
    return statistical, sandwich(hessian, gradient), blocks


def _clean_variance(variance):
    """A variance map in single precision, non-finite and negative values as zero."""
    return np.fmax(np.asarray(variance, dtype=np.float32), np.float32(0.0))


#: Pixels whose w |∇s|² is below this fraction of the largest are left out of the error
#: sums (with INFORMATION_MARGIN pixels around the rest kept).
INFORMATION_FLOOR = 1e-4
INFORMATION_MARGIN = 16


def _widened(flags):
    """``flags`` (1-D bool) with every True run widened by ``INFORMATION_MARGIN``."""
    index = np.flatnonzero(flags)
    out = np.zeros_like(flags)
    if index.size:
        out[max(index[0] - INFORMATION_MARGIN, 0) : index[-1] + INFORMATION_MARGIN + 1] = True
    return out


class _Frame:
    """What every fit whose weight is moved by the same whole pixels shares: the weight,
    cut to the box of its support, and the images and sums that depend on it alone."""

    def __init__(self, weight, roll, images, products, science_variance, gradient_energy):
        w = weight.astype(np.float32)
        w = np.roll(w, roll, axis=(0, 1)) if any(roll) else w
        # The box of the information: where w |∇s|² is above INFORMATION_FLOOR of its
        # largest value, widened by INFORMATION_MARGIN pixels; outside, the pixels add
        # nothing measurable to either covariance (their u is below the floor).
        information = w * gradient_energy
        useful = information > INFORMATION_FLOOR * float(np.max(information, initial=0.0))
        rows, columns = _widened(useful.any(axis=1)), _widened(useful.any(axis=0))
        rows &= w.any(axis=1)
        columns &= w.any(axis=0)
        rows, columns = np.flatnonzero(rows), np.flatnonzero(columns)
        if rows.size and columns.size:
            self.box = np.s_[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]
        else:
            self.box = np.s_[0:0, 0:0]
        box = self.box
        self.weight = w[box]
        self.square = self.weight * self.weight
        self.science = images[0][box]
        self.derivatives = images[1:, box[0], box[1]]
        self.products = products[:, box[0], box[1]]
        shape = self.weight.shape
        self.buffer = np.empty(shape, dtype=np.float32)
        self.scratch = np.empty(self.products.shape, dtype=np.float32)
        self.contributions = np.empty((3, *shape), dtype=np.float32)
        energy = np.sum(self.weight * self.science * self.science, dtype=np.float64)
        self.science_energy = max(float(energy), 1e-300)
        if science_variance is not None:
            variance = science_variance[box]
            self.weighted_variance = self.weight * variance
            self.science_noise = _sums(self.square * variance, self.products, self.scratch)
        w = self.weight
        self.norm = float(np.sum(self.square, dtype=np.float64))
        self.pair_norm = float(np.sum(w[:, 1:] * w[:, :-1], dtype=np.float64))

    def correlation_length(self, weighted):
        """:func:`correlation_length` of a residual given times the weight (from the
        neighbours along rows: the speckles are round)."""
        square = float(np.sum(weighted * weighted, dtype=np.float64))
        lagged = float(np.sum(weighted[:, 1:] * weighted[:, :-1], dtype=np.float64))
        if not (square > 0 and self.pair_norm > 0):
            return 0.0
        return _length((lagged / self.pair_norm) / (square / self.norm))


def _length(rho):
    """The correlation length of a Gaussian correlation with neighbour correlation ``rho``."""
    rho = min(max(rho, 1e-12), 1.0 - 1e-12)
    # the logarithm of coronalign.core.reproducible: numpy's and libm's differ between CPUs
    return float(np.sqrt(-0.5 / float(reproducible_log(rho))))


def _outer_sums(sums):
    """``Σ_b x_k x_l`` for the block sums ``x`` (3, nblocks), in a fixed order (no BLAS)."""
    out = np.empty((3, 3))
    for k in range(3):
        for m in range(k, 3):
            out[k, m] = out[m, k] = float(np.sum(sums[k] * sums[m]))
    return out
