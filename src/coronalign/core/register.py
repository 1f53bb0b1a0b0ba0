"""Weighted sub-pixel registration of a science image onto a reference PSF.

For a reference PSF ``p``, a science image ``s`` and a PSFMASK ``m`` we find the shift
``d = (xshift, yshift)`` and flux scale ``beta`` minimising

    f(d, beta) = Σ w · (p − beta · T_d s)²

where ``T_d`` is the periodic Fourier shift of :mod:`coronalign.fourier` and the weight is
``w = m²`` (``weighting="official"``: the official step multiplies the residual by the
mask) or ``w = m`` (``weighting="linear"``). For a 0/1 mask the two are the same; real
NIRCam masks are fractional. Sign convention: ``xshift = x_psf − x_sci`` along columns.

The search is bounded: no fit ends farther than ``max_shift`` pixels from its *prior*
(the expected shift, from the pointing metadata, else zero). Inside that window the fit
starts at the prior and, for a cold start, also at the masked cross-correlation's best
integer peaks that look better than the prior's neighbourhood (each more than 1 px from
the others). Every start is converged; a start away from the prior wins only if its
objective is below ``RELATIVE_MARGIN`` times that of the prior's basin. With a poorly
matched reference, spurious far minima beat the prior's basin by only a few percent,
while a real large offset beats a trap near zero by a factor of 7 or more (measured).

How it is fast
--------------
``beta`` has a closed form, ``beta = A/B`` with ``A(d) = Σ w p T_d s`` and
``B(d) = Σ w (T_d s)²``, which leaves ``f(d) = Σ w p² − A²/B`` to minimise over the
two shifts. Both ``A`` and ``B`` are trigonometric polynomials in ``d`` whose
coefficients do not depend on ``d``:

* ``A(d) = (1/N) Σ_k H_k φ_k(d)`` with ``H = S · conj(FFT(w p))`` (Parseval);
* ``B(d) = Σ_q G_q ψ_q(d)`` where ``G`` combines the spectrum of ``s²`` computed on a
  2× finer grid (so it is exact, without aliasing) with the spectrum of ``w``.

The phase factors separate into a row part and a column part, so ``A``, ``B`` and all
their first and second derivatives cost a few small matrix products per evaluation; no
inverse FFT is needed inside the Newton iterations. ``G`` depends only on the science
image and the weight, so it is computed once per science integration and shared by
every PSF.

Reproducible bits
-----------------
Every operation on the way to a result has its order of rounding fixed by this code:
matrix products and complex products go through :mod:`coronalign.reproducible`, the
2 × 2 and 3 × 3 linear algebra is written out, and the phases come from
:func:`coronalign.reproducible.sincos_2pi`. The fitted values are therefore the same
bits for any BLAS kernel, BLAS thread count and CPU.

Uncertainties
-------------
The formal 1σ errors of ``xshift``, ``yshift`` and ``beta`` are the square roots of the
diagonal of ``2 s² H⁻¹``, where ``H`` is the Hessian of ``f`` in ``(xshift, yshift, beta)``
at the minimum and ``s² = f_min / (n − 3)`` the residual variance per weighted pixel
(``n`` pixels with ``w > 0``): the usual least-squares estimate, which assumes the
residual is noise. Where it is dominated by speckles the reference does not share, the
true error is larger than this.
"""

import functools
import logging
from dataclasses import dataclass

import numpy as np
import scipy.fft

from .errors import ParameterError
from .fourier import axis_phases, phase_derivatives, rfft_frequencies, shift_spectrum
from .reproducible import (
    ExactLeft,
    complex_multiply,
    exact_matmul,
    exact_small_matmul,
    sincos_2pi,
)

__all__ = [
    "DEFAULT_MAX_SHIFT",
    "RELATIVE_MARGIN",
    "WEIGHTINGS",
    "FitResult",
    "ReferenceTerms",
    "ScienceTerms",
    "WeightTerms",
    "cross_correlation_peaks",
    "distance",
    "fit_many",
    "fit_pair",
    "fit_shift",
    "integer_start",
    "prepare_reference",
    "prepare_science",
    "prepare_weight",
]

log = logging.getLogger(__name__)

#: Convergence criterion: the last Newton step moved the shift by at most this (pixels).
SHIFT_TOLERANCE = 1e-6
#: Largest step taken in one iteration (pixels); longer Newton steps are shortened.
MAX_STEP = 0.5
MAX_ITERATIONS = 50
#: How the PSFMASK weighs the residual: "official" (residual × mask, the official step's
#: objective, Σ (m r)²) or "linear" (Σ m r²).
WEIGHTINGS = ("official", "linear")
#: Default search radius around the prior, in pixels (see docs/registration.md): ten
#: times the largest expected science/reference offset (TA errors of a few mas, small-grid
#: dither steps of 20 mas: under 1 px even for NIRCam's 31 mas short-wave pixels), and
#: enough for a reference 8.9 px away, (7.3, 5.1), with no pointing metadata.
DEFAULT_MAX_SHIFT = 10.0
#: A start away from the prior wins only if its objective is below this fraction of the
#: objective of the prior's basin. Measured (registration facts): spurious far minima of
#: a poorly matched reference reach 0.96-0.98 of it; a real (7.3, 5.1) px offset 0.09-0.15.
RELATIVE_MARGIN = 0.4
#: Radius (pixels) of the prior's neighbourhood, where the fit looks first: after target
#: acquisition and small-grid dithers a reference lies well within it, and with speckles
#: the reference does not share, the best minimum within 2 px of the prior is as good as it
#: gets (registration facts: about 1.7 px from the geometric shift on NIRCam).
NEAR_RADIUS = 2.0
#: Starts on a ring around the prior, tried when the fit from the prior leaves its
#: neighbourhood (each a fit of its own, so only then).
RING_STARTS = 8
RING_RADIUS = 1.0
#: A warm start (the first integration's fit) is kept if the fit converges within this
#: distance of it (pixels); otherwise the fit is made again from a cold start.
WARM_START_RADIUS = 1.0
#: Cross-correlation peaks tried besides the prior, at most.
MAX_CANDIDATES = 3
#: Starts closer than this (pixels) are the same start.
DISTINCT = 1.0

STATUSES = ("converged", "not_converged", "no_data", "out_of_window")


@dataclass(frozen=True)
class FitResult:
    """Outcome of one registration.

    Attributes
    ----------
    xshift, yshift : float
        Fitted shift in pixels (``x_psf − x_sci``, ``y_psf − y_sci``).
    beta : float
        Fitted flux scale (PSF flux / science flux).
    rms : float
        Weighted residual rms, ``sqrt(Σ w (p − beta T s)² / Σ w)``.
    iterations : int
        Newton iterations taken (by the start that was kept).
    converged : bool
        True if the last step changed the shift by at most ``SHIFT_TOLERANCE`` pixels.
    xshift_err, yshift_err, beta_err : float
        Formal 1σ uncertainties (NaN where the Hessian is not positive definite).
    objective : float
        ``f`` at the result, ``Σ w (p − beta T s)²``.
    status : str
        ``converged``, ``not_converged``, ``no_data`` (no weighted signal to fit) or
        ``out_of_window`` (the minimum lies on the edge of the search window: the true
        minimum is farther than ``max_shift`` from the prior).
    prior : tuple of float
        The prior ``(xshift, yshift)`` the window was centred on.
    """

    xshift: float
    yshift: float
    beta: float
    rms: float
    iterations: int
    converged: bool
    xshift_err: float = np.nan
    yshift_err: float = np.nan
    beta_err: float = np.nan
    objective: float = np.nan
    status: str = "converged"
    prior: tuple = (0.0, 0.0)


@dataclass(frozen=True)
class WeightTerms:
    """Transforms of the fit weight, shared by every fit that uses it.

    Attributes
    ----------
    weight : ndarray
        The weight ``w`` of the objective (``mask²`` or ``mask``).
    rspectrum : ndarray
        ``rfft2(w)``.
    total : float
        ``Σ w``.
    count : int
        Pixels with ``w > 0``.
    norm_factor : ndarray
        What multiplies the spectrum of ``u²`` in ``G`` (see ``_norm_coefficients``).
    """

    weight: np.ndarray
    rspectrum: np.ndarray
    total: float
    count: int
    norm_factor: np.ndarray


class ScienceTerms:
    """Everything about one science image that the fits against all PSFs share.

    Attributes
    ----------
    shape : tuple of int
        ``(ny, nx)``.
    rspectrum : ndarray
        ``rfft2(s)``.
    norm_coefficients : ExactLeft
        ``G`` times the column weights, shape ``(2 ny + 1, nx + 1)``, split for exact
        products.
    energy : float
        ``Σ w s²``; zero when the science image has no weighted signal.
    """

    def __init__(self, science, weight_terms):
        self._science = science
        self._weight_terms = weight_terms
        self.weight = weight_terms.weight
        self.shape = science.shape
        self.rspectrum = scipy.fft.rfft2(science)
        self.norm_coefficients = ExactLeft(
            _norm_coefficients(science, self.rspectrum, weight_terms)
        )
        self.energy = float(np.sum(weight_terms.weight * science * science))

    @functools.cached_property
    def norm_grid(self):
        """``B(d)`` at every integer shift (only needed for a cross-correlation start)."""
        s = self._science
        product = complex_multiply(self._weight_terms.rspectrum, np.conj(scipy.fft.rfft2(s * s)))
        return scipy.fft.irfft2(product, s=self.shape)


@dataclass(frozen=True)
class ReferenceTerms:
    """One reference PSF and the transforms the fit needs."""

    image: np.ndarray  # p, float64
    weighted_rspectrum: np.ndarray  # rfft2(w p)
    energy: float  # Σ w p²


def prepare_weight(mask, weighting="official"):
    """Precompute the transforms of the fit weight made from a PSFMASK.

    Parameters
    ----------
    mask : array_like, shape (ny, nx)
        Non-negative PSFMASK values (1 use, 0 ignore, fractions allowed).
    weighting : {"official", "linear"}, optional
        ``official``: the weight is ``mask²`` (the residual is multiplied by the mask, as in
        the official step); ``linear``: the weight is ``mask``.

    Returns
    -------
    WeightTerms
    """
    if weighting not in WEIGHTINGS:
        raise ParameterError("weighting", f"{weighting!r} is not one of {', '.join(WEIGHTINGS)}")
    m = np.asarray(mask, dtype=np.float64)
    w = m * m if weighting == "official" else m
    return WeightTerms(
        weight=w,
        rspectrum=scipy.fft.rfft2(w),
        total=float(w.sum()),
        count=int(np.count_nonzero(w > 0)),
        norm_factor=_norm_factor(w),
    )


def _column_weights(nx, ncols):
    """Weights that turn a sum over half of a Hermitian spectrum into the full sum."""
    weights = np.full(ncols, 2.0)
    weights[0] = 1.0
    if ncols == nx // 2 + 1 and nx % 2 == 0:
        weights[-1] = 1.0  # the Nyquist column appears once in the full spectrum
    return weights


def _extended_axis(n):
    """Symmetric frequency indices of an axis, the Nyquist term split in two halves.

    Returns the integer frequencies ``k`` (from ``-n//2`` to ``n//2`` for even ``n``) and
    the factor applied to each, so that the split spectrum is a sum of pure exponentials
    that reproduces the ``cos`` Nyquist convention of :func:`coronalign.fourier.axis_phase`.
    """
    if n % 2 == 0:
        k = np.arange(-n // 2, n // 2 + 1)
        factor = np.ones(k.size)
        factor[0] = factor[-1] = 0.5
    else:
        k = np.arange(-(n - 1) // 2, (n - 1) // 2 + 1)
        factor = np.ones(k.size)
    return k, factor


def _fine_grid(ny, nx):
    """Size of the grid on which ``u²`` is sampled exactly: at least ``2n + 1``, fast."""
    return (
        scipy.fft.next_fast_len(2 * ny + 1, real=True),
        scipy.fft.next_fast_len(2 * nx + 1, real=True),
    )


def _norm_factor(weight):
    """The part of ``G`` that depends on the weight only (computed once per weight).

    ``conj(Ŵ_q)`` on the frequencies ``q_y = −n_y … n_y``, ``q_x = 0 … n_x``, times the
    half-spectrum column weights and the normalisation of the fine-grid transforms.
    """
    ny, nx = weight.shape
    my, mx = _fine_grid(ny, nx)
    qy = np.arange(-ny, ny + 1)
    qx = np.arange(0, nx + 1)
    spectrum = scipy.fft.fft2(weight)
    factor = np.conj(spectrum[np.ix_(qy % ny, qx % nx)])
    factor *= _column_weights(nx, qx.size)[None, :]
    scale = my * mx / (ny * nx)  # of the upsampled image, squared below
    return factor * (scale * scale / (my * mx))


def _norm_coefficients(science, rspectrum, weight_terms):
    """Coefficients ``G`` of ``B(d) = Σ w (T_d s)²`` as a trigonometric polynomial in ``d``.

    ``T_d s`` is the band-limited interpolant ``u`` of ``s`` evaluated at ``x − d``; ``u²``
    has twice the bandwidth (frequencies ``−n … n`` along an axis of ``n`` pixels), so it
    is sampled on a grid of at least ``2n + 1`` points (a fast FFT length) where its
    spectrum is exact. Its coefficient at frequency ``q`` times ``conj(Ŵ_q)`` is ``G_q``;
    only ``q_x ≥ 0`` is kept (the rest is the complex conjugate).
    """
    ny, nx = science.shape
    my, mx = _fine_grid(ny, nx)
    ky, fy = _extended_axis(ny)
    kx, fx = _extended_axis(nx)
    keep = kx >= 0
    kx, fx = kx[keep], fx[keep]
    fine = np.zeros((my, mx // 2 + 1), dtype=np.complex128)
    fine[np.ix_(ky % my, kx)] = rspectrum[np.ix_(ky % ny, kx)] * np.outer(fy, fx)
    upsampled = scipy.fft.irfft2(fine, s=(my, mx))
    squared = scipy.fft.rfft2(upsampled * upsampled)
    # Rows q_y = −n_y … −1 then 0 … n_y; columns q_x = 0 … n_x.
    coefficients = np.concatenate((squared[my - ny :, : nx + 1], squared[: ny + 1, : nx + 1]))
    return complex_multiply(coefficients, weight_terms.norm_factor, out=coefficients)


def prepare_science(science, weight_terms):
    """Precompute the terms of one science image shared by its fits against every PSF.

    Parameters
    ----------
    science : array_like, shape (ny, nx)
        Cleaned science image (finite values).
    weight_terms : WeightTerms
        From :func:`prepare_weight`.

    Returns
    -------
    ScienceTerms
    """
    return ScienceTerms(np.asarray(science, dtype=np.float64), weight_terms)


def prepare_reference(reference, weight_terms):
    """Precompute the terms of one reference PSF.

    Parameters
    ----------
    reference : array_like, shape (ny, nx)
        Cleaned reference PSF image (finite values).
    weight_terms : WeightTerms
        From :func:`prepare_weight`.

    Returns
    -------
    ReferenceTerms
    """
    p = np.asarray(reference, dtype=np.float64)
    wp = weight_terms.weight * p
    return ReferenceTerms(
        image=p, weighted_rspectrum=scipy.fft.rfft2(wp), energy=float(np.sum(wp * p))
    )


class _Objectives:
    """``A(d)``, ``B(d)`` and their derivatives for one science image and several PSFs.

    Every evaluation is stacked over the fits asked for (each a PSF at its own shift),
    and every product goes through :mod:`coronalign.reproducible`, so the results are
    the same bits for any grouping, thread count, BLAS library and CPU.
    """

    def __init__(self, science_terms, references):
        ny, nx = science_terms.shape
        self.ny, self.nx = ny, nx
        self.fy, self.fx = rfft_frequencies(ny, nx)
        weights = _column_weights(nx, nx // 2 + 1) / (ny * nx)
        spectra = np.stack([np.conj(ref.weighted_rspectrum) for ref in references])
        cross = complex_multiply(science_terms.rspectrum, spectra, out=spectra)
        cross *= weights  # H on the rfft grid, with the half-spectrum weights
        self.cross = ExactLeft(cross)
        self.norm = science_terms.norm_coefficients
        self.qy = np.arange(-ny, ny + 1) / ny
        self.qx = np.arange(0, nx + 1) / nx
        self.energy = np.array([ref.energy for ref in references])

    def matrices(self, index, d, orders=3):
        """Contractions of ``A`` and ``B`` for PSFs ``index`` at shifts ``d`` (k, 2).

        Returns two real (k, orders, orders) arrays whose entry ``[i, j]`` is the
        ``i``-th derivative in y of the ``j``-th derivative in x (value ``[0, 0]``).
        """
        k = len(index)
        px = axis_phases(self.fx, self.nx, d[:, 0], orders).transpose(0, 2, 1)
        py = axis_phases(self.fy, self.ny, d[:, 1], orders)
        columns = exact_matmul(self.cross.select(index), px)  # (k, ny, orders)
        a = exact_small_matmul(py, columns).real
        ex = phase_derivatives(self.qx, d[:, 0], orders)  # (k, orders, nx + 1)
        ex = ex.transpose(2, 0, 1).reshape(len(self.qx), k * orders)
        # One product for all PSFs: G is read once (it is the largest array here).
        rows = exact_matmul(self.norm, ex).reshape(len(self.qy), k, orders)
        ey = phase_derivatives(self.qy, d[:, 1], orders)  # (k, orders, 2 ny + 1)
        b = exact_small_matmul(ey, rows.transpose(1, 0, 2)).real
        return a, b


def _terms(matrix):
    """Value, gradient (x, y) and Hessian from a (k, 3, 3) contraction matrix."""
    value = matrix[:, 0, 0]
    gradient = np.stack([matrix[:, 0, 1], matrix[:, 1, 0]], axis=1)
    hxy = matrix[:, 1, 1]
    hessian = np.stack(
        [np.stack([matrix[:, 0, 2], hxy], 1), np.stack([hxy, matrix[:, 2, 0]], 1)], 1
    )
    return value, gradient, hessian


def _outer(u, v):
    """``u[:, i] * v[:, j]`` for vectors stacked along the first axis."""
    return u[:, :, None] * v[:, None, :]


def _profile_derivatives(a_terms, b_terms):
    """Gradient and Hessian of ``R = A²/B`` (the objective is ``f = Σ w p² − R``)."""
    a, ga, ha = a_terms
    b, gb, hb = b_terms
    # Powers written as products: numpy's power() is dispatched to CPU-specific code.
    a, b = a[:, None], b[:, None]
    b2 = b * b
    grad = 2 * a * ga / b - a * a * gb / b2
    a, b, b2 = a[:, :, None], b[:, :, None], b2[:, :, None]
    hess = (
        2 * (_outer(ga, ga) + a * ha) / b
        - 2 * a * (_outer(ga, gb) + _outer(gb, ga)) / b2
        - a * a * hb / b2
        + 2 * a * a * _outer(gb, gb) / (b2 * b)
    )
    return grad, hess


def _symmetric_eigen(matrix):
    """Eigenvalues and unit eigenvectors of stacked symmetric 2 × 2 matrices.

    Written out (no LAPACK), so the bits do not depend on the library. Returns
    ``values`` (k, 2) and ``vectors`` (k, 2, 2) with the eigenvectors as columns.
    """
    a, b, c = matrix[:, 0, 0], matrix[:, 0, 1], matrix[:, 1, 1]
    half = 0.5 * (a - c)
    radius = np.sqrt(half * half + b * b)
    mean = 0.5 * (a + c)
    values = np.stack([mean + radius, mean - radius], 1)
    # The eigenvector of the larger eigenvalue, from whichever formula does not cancel.
    vx = np.where(half >= 0, half + radius, b)
    vy = np.where(half >= 0, b, radius - half)
    length = np.sqrt(vx * vx + vy * vy)
    degenerate = length == 0
    vx = np.where(degenerate, 1.0, vx / np.where(degenerate, 1.0, length))
    vy = np.where(degenerate, 0.0, vy / np.where(degenerate, 1.0, length))
    vectors = np.stack([np.stack([vx, -vy], 1), np.stack([vy, vx], 1)], 1)
    return values, vectors


def _trust_region_steps(grad_r, hess_r, radius):
    """Steps that increase ``R`` (decrease ``f``), each at most ``radius`` long.

    The Newton step where ``f`` is convex and the step fits; otherwise the minimiser of
    the quadratic model on the disc of ``radius`` (the step ``-(H + μI)⁻¹ g`` whose length
    is ``radius``, ``μ`` found by bisection). Far from a minimum, or where ``f`` is not
    convex, that follows the descent path closely, so a fit ends in the basin it started
    in rather than jumping over ridges (as the official ``leastsq`` does).
    """
    values, vectors = _symmetric_eigen(-hess_r)  # Hessian of f = -R: values[:, 0] >= [:, 1]
    gradient = -grad_r
    along = vectors[:, 0, :] * gradient[:, 0:1] + vectors[:, 1, :] * gradient[:, 1:2]

    def step(shift):
        coefficients = -along / (values + shift[:, None])
        return vectors[:, :, 0] * coefficients[:, 0:1] + vectors[:, :, 1] * coefficients[:, 1:2]

    def length(vector):
        return np.sqrt(vector[:, 0] * vector[:, 0] + vector[:, 1] * vector[:, 1])

    convex = values[:, 1] > 0
    newton = step(np.where(convex, 0.0, 1.0))
    inside = convex & (length(newton) <= radius)
    # Bisection for μ: |step(μ)| decreases from infinity (at μ = -λ_min) to 0.
    norm = length(gradient)
    low = np.maximum(-values[:, 1], 0.0) * (1 + 1e-12) + 1e-300
    high = low + norm / radius + 1e-300
    for _ in range(60):
        middle = 0.5 * (low + high)
        too_long = length(step(middle)) > radius
        low = np.where(too_long, middle, low)
        high = np.where(too_long, high, middle)
    bounded = step(high)
    return np.where(inside[:, None], newton, bounded)


def _into_window(d, priors, radius):
    """Project shifts onto the discs of ``radius`` (one per shift) around their priors."""
    offset = d - priors
    distance = np.sqrt(offset[:, 0] * offset[:, 0] + offset[:, 1] * offset[:, 1])
    outside = distance > radius
    if outside.any():
        scale = radius[outside] / distance[outside]
        d = d.copy()
        d[outside] = priors[outside] + offset[outside] * scale[:, None]
    return d


def distance(first, second):
    """Euclidean distance of two shifts (IEEE operations only, unlike ``math.hypot``)."""
    dx, dy = first[0] - second[0], first[1] - second[1]
    return float(np.sqrt(dx * dx + dy * dy))


def _cross_correlation(science_terms, references):
    """Masked cross-correlation score ``A²/B`` at every integer shift (k, ny, nx).

    ``-inf`` where ``A ≤ 0`` (a negative flux scale) or ``B = 0``.
    """
    ny, nx = science_terms.shape
    spectra = np.stack([ref.weighted_rspectrum for ref in references])
    product = complex_multiply(spectra, np.conj(science_terms.rspectrum), out=spectra)
    a = scipy.fft.irfft2(product, s=(ny, nx))
    b = science_terms.norm_grid
    positive = (a > 0) & (b > 0)
    return np.where(positive, a * a / np.where(b > 0, b, 1.0), -np.inf)


def _signed_offsets(n):
    """Integer shifts ``0 … n−1`` as signed offsets in ``[-n/2, n/2)``."""
    j = np.arange(n)
    return np.where(j >= n / 2, j - n, j).astype(np.float64)


def cross_correlation_peaks(score, prior, max_shift, limit=MAX_CANDIDATES):
    """Integer shifts worth a start: local maxima of the score inside the window.

    A peak counts if it lies within ``max_shift`` of the prior, more than ``DISTINCT``
    pixels from the prior and from every better peak, and scores higher than every
    integer shift next to the prior (so a cross-correlation that agrees with the prior
    costs no extra fit).

    Parameters
    ----------
    score : ndarray, shape (ny, nx)
        Cross-correlation score at integer shifts (FFT order).
    prior : tuple of float
        ``(xshift, yshift)`` the window is centred on.
    max_shift : float
        Window radius in pixels.
    limit : int, optional
        Peaks returned at most.

    Returns
    -------
    ndarray, shape (n, 2)
        ``(xshift, yshift)`` of the peaks, best first.
    """
    ny, nx = score.shape
    oy, ox = _signed_offsets(ny), _signed_offsets(nx)
    px, py = prior
    dx, dy = ox[None, :] - px, oy[:, None] - py
    from_prior = np.sqrt(dx * dx + dy * dy)
    inside = from_prior <= max_shift
    near = (np.abs(dx) < 1) & (np.abs(dy) < 1)
    floor = np.max(score[near]) if near.any() else -np.inf
    peak = score > floor
    for sy in (-1, 0, 1):
        for sx in (-1, 0, 1):
            if sy or sx:
                peak &= score >= np.roll(score, (sy, sx), axis=(0, 1))
    peak &= inside & (from_prior > DISTINCT) & np.isfinite(score)
    rows, cols = np.nonzero(peak)
    order = np.argsort(-score[rows, cols], kind="stable")
    kept = []
    for i in order:
        here = np.array([ox[cols[i]], oy[rows[i]]])
        if all(distance(here, other) > DISTINCT for other in kept):
            kept.append(here)
            if len(kept) == limit:
                break
    return np.array(kept, dtype=np.float64).reshape(-1, 2)


def integer_start(science_terms, reference_terms):
    """Best integer shift of the masked cross-correlation over the whole frame, for one PSF.

    Returns
    -------
    tuple of float
        ``(xshift, yshift)`` in ``[-n/2, n/2)``; (0, 0) where no shift correlates positively.
    """
    score = _cross_correlation(science_terms, [reference_terms])[0]
    if not np.isfinite(score).any():
        return 0.0, 0.0
    jy, jx = np.unravel_index(np.argmax(score), score.shape)
    ny, nx = score.shape
    return float(_signed_offsets(nx)[jx]), float(_signed_offsets(ny)[jy])


def _converge(objectives, psf, d, priors, max_shift, tolerance):
    """Newton iterations for the fits ``psf`` (PSF indices) from shifts ``d``.

    Every iterate of fit ``j`` stays within ``max_shift[j]`` of ``priors[j]``. A fit whose
    next step would be at most ``tolerance`` has converged and stays where it was
    evaluated, so its ``A`` and ``B`` contractions are those of its final shift.

    Returns
    -------
    d : ndarray (k, 2)
        Final shifts.
    iterations : ndarray of int
    converged : ndarray of bool
    a_matrix, b_matrix : ndarray (k, 3, 3)
        Contractions at the final shifts (see ``_Objectives.matrices``).
    """
    count = len(psf)
    max_shift = np.broadcast_to(np.asarray(max_shift, dtype=np.float64), (count,))
    d = _into_window(np.array(d, dtype=np.float64), priors, max_shift)
    iterations = np.zeros(count, dtype=int)
    converged = np.zeros(count, dtype=bool)
    final_a = np.empty((count, 3, 3))
    final_b = np.empty((count, 3, 3))
    active = np.arange(count)
    for _ in range(MAX_ITERATIONS):
        a_matrix, b_matrix = objectives.matrices(psf[active], d[active])
        final_a[active], final_b[active] = a_matrix, b_matrix
        a_terms, b_terms = _terms(a_matrix), _terms(b_matrix)
        grad_r, hess_r = _profile_derivatives(a_terms, b_terms)
        ratio = a_terms[0] * a_terms[0] / b_terms[0]
        here = d[active]
        radius = np.full(len(active), MAX_STEP)
        target = _into_window(
            here + _trust_region_steps(grad_r, hess_r, radius), priors[active], max_shift[active]
        )
        # Long steps must improve the objective (else the trust radius is halved); short
        # ones are in the Newton basin.
        long = np.max(np.abs(target - here), axis=1) > 1e-2
        while long.any():
            trial = np.flatnonzero(long)
            a_try, b_try = objectives.matrices(psf[active[trial]], target[trial], orders=1)
            a_try, b_try = a_try[:, 0, 0], b_try[:, 0, 0]
            better = (b_try > 0) & (a_try * a_try >= ratio[trial] * b_try)
            worse = trial[~better]
            if worse.size:
                moved = target[worse] - here[worse]
                radius[worse] = 0.5 * np.sqrt(moved[:, 0] * moved[:, 0] + moved[:, 1] * moved[:, 1])
                steps = _trust_region_steps(grad_r[worse], hess_r[worse], radius[worse])
                window = max_shift[active[worse]]
                target[worse] = _into_window(here[worse] + steps, priors[active[worse]], window)
            long[trial[better]] = False
            long &= np.max(np.abs(target - here), axis=1) > 1e-2
        moved = np.max(np.abs(target - here), axis=1)
        iterations[active] += 1
        done = moved <= tolerance
        d[active[~done]] = target[~done]
        converged[active[done]] = True
        active = active[~done]
        if not active.size:
            break
    if active.size:  # out of iterations: the contractions where they stopped
        final_a[active], final_b[active] = objectives.matrices(psf[active], d[active])
    return d, iterations, converged, final_a, final_b


def _hessian_errors(a_terms, b_terms, beta, residual, count):
    """Formal 1σ errors of (xshift, yshift, beta) from the Hessian of ``f`` (see module)."""
    a, ga, ha = a_terms
    b, gb, hb = b_terms
    h = np.empty((len(a), 3, 3))
    h[:, :2, :2] = -2 * beta[:, None, None] * ha + (beta * beta)[:, None, None] * hb
    h[:, :2, 2] = h[:, 2, :2] = -2 * ga + 2 * beta[:, None] * gb
    h[:, 2, 2] = 2 * b
    # Diagonal of the inverse from cofactors (no LAPACK: reproducible bits).
    c00 = h[:, 1, 1] * h[:, 2, 2] - h[:, 1, 2] * h[:, 2, 1]
    c11 = h[:, 0, 0] * h[:, 2, 2] - h[:, 0, 2] * h[:, 2, 0]
    c22 = h[:, 0, 0] * h[:, 1, 1] - h[:, 0, 1] * h[:, 1, 0]
    c01 = h[:, 1, 0] * h[:, 2, 2] - h[:, 1, 2] * h[:, 2, 0]
    c02 = h[:, 1, 0] * h[:, 2, 1] - h[:, 1, 1] * h[:, 2, 0]
    det = h[:, 0, 0] * c00 - h[:, 0, 1] * c01 + h[:, 0, 2] * c02
    definite = (h[:, 0, 0] > 0) & (c22 > 0) & (det > 0)
    variance = 2 * residual / max(count - 3, 1)
    diagonal = np.stack([c00, c11, c22], 1) / np.where(definite, det, 1.0)[:, None]
    errors = np.sqrt(np.maximum(variance[:, None] * diagonal, 0.0))
    return np.where(definite[:, None], errors, np.nan)


def fit_many(
    science_terms,
    references,
    weight_terms,
    *,
    priors=None,
    max_shift=DEFAULT_MAX_SHIFT,
    starts=None,
    tolerance=SHIFT_TOLERANCE,
):
    """Fit ``(xshift, yshift, beta)`` of several reference PSFs to one science image.

    All fits take their Newton steps together (stacked evaluations); a fit that has
    converged stops, the others go on.

    Parameters
    ----------
    science_terms : ScienceTerms
        From :func:`prepare_science`.
    references : sequence of ReferenceTerms
        From :func:`prepare_reference`.
    weight_terms : WeightTerms
        From :func:`prepare_weight` (the same the terms were made with).
    priors : array_like, shape (len(references), 2), optional
        Expected ``(xshift, yshift)`` of each PSF (default zero): the centre of its
        search window.
    max_shift : float, optional
        Radius of the search window in pixels: no fit ends farther from its prior.
    starts : sequence, optional
        A warm start ``(xshift, yshift)`` per PSF, or None for a cold start (the prior
        and the cross-correlation peaks; see the module docstring).
    tolerance : float, optional
        Convergence threshold on the last step, in pixels.

    Returns
    -------
    list of FitResult
        The shifts are NaN (status ``no_data``) when the science image has no weighted
        signal, so no fit is possible.
    """
    count = len(references)
    if not (max_shift > 0 and np.isfinite(max_shift)):
        raise ParameterError("max_shift", f"{max_shift!r} is not a positive number of pixels")
    priors = np.zeros((count, 2)) if priors is None else np.asarray(priors, dtype=np.float64)
    if not science_terms.energy > 0:
        return [
            FitResult(np.nan, np.nan, np.nan, np.nan, 0, False, status="no_data", prior=tuple(p))
            for p in priors
        ]
    objectives = _Objectives(science_terms, references)
    fits = _Fits(objectives, priors, tolerance)
    starts = [None] * count if starts is None else list(starts)
    chosen = [None] * count
    warm = [i for i, start in enumerate(starts) if start is not None]
    if warm:
        near = min(NEAR_RADIUS, max_shift)
        jobs = fits.run(
            warm,
            [starts[i] for i in warm],
            [near if distance(starts[i], priors[i]) <= near else max_shift for i in warm],
        )
        for i, job in zip(warm, jobs, strict=True):
            if fits.interior(job) and distance(fits.d[job], starts[i]) <= WARM_START_RADIUS:
                chosen[i] = job
    cold = [i for i in range(count) if chosen[i] is None]
    if cold:
        kept = _cold_search(fits, science_terms, references, cold, max_shift)
        for i, job in zip(cold, kept, strict=True):
            chosen[i] = job
    chosen = np.array(chosen)
    d, iterations, converged = fits.d[chosen], fits.iterations[chosen], fits.converged[chosen]
    a_terms, b_terms = _terms(fits.a_matrix[chosen]), _terms(fits.b_matrix[chosen])
    beta, objective = _statistics(science_terms, references, d, a_terms[0], b_terms[0])
    errors = _hessian_errors(a_terms, b_terms, beta, objective, weight_terms.count)
    offset = d - priors
    on_edge = np.sqrt(np.sum(offset * offset, axis=1)) >= max_shift * (1 - 1e-9)
    total = weight_terms.total
    rms = np.sqrt(objective / total) if total > 0 else np.full(count, np.nan)
    return [
        FitResult(
            xshift=float(d[i, 0]),
            yshift=float(d[i, 1]),
            beta=float(beta[i]),
            rms=float(rms[i]),
            iterations=int(iterations[i]),
            converged=bool(converged[i]),
            xshift_err=float(errors[i, 0]),
            yshift_err=float(errors[i, 1]),
            beta_err=float(errors[i, 2]),
            objective=float(objective[i]),
            status=(
                "out_of_window"
                if on_edge[i]
                else ("converged" if converged[i] else "not_converged")
            ),
            prior=(float(priors[i, 0]), float(priors[i, 1])),
        )
        for i in range(count)
    ]


#: Below this fraction of ``Σ w p²`` the objective ``Σ w p² − A²/B`` loses too many
#: digits to cancellation (A and B carry about 12): it is then taken from the residual
#: image instead.
CANCELLATION = 1e-5


def _statistics(science_terms, references, d, a, b):
    """``beta`` and ``f = Σ w (p − beta T_d s)²`` of the fits at shifts ``d``.

    From ``A`` and ``B`` where that is accurate; from the residual image (one inverse
    transform) where ``f`` is a tiny fraction of ``Σ w p²`` (a near-perfect match).
    """
    energy = np.array([reference.energy for reference in references])
    beta = a / b
    objective = np.maximum(energy - a * beta, 0.0)
    for i in np.flatnonzero(objective < CANCELLATION * energy):
        beta[i], objective[i] = _residual(science_terms, references[i], d[i])
    return beta, objective


def _residual(science_terms, reference, shift):
    """``beta`` and ``f`` of one fit from its residual image (no cancellation)."""
    weight = science_terms.weight
    dx, dy = shift
    moved = shift_spectrum(science_terms.rspectrum, science_terms.shape, dx, dy)
    weighted = weight * moved
    beta = np.sum(weighted * reference.image) / np.sum(weighted * moved)
    residual = reference.image - beta * moved
    return beta, np.sum(weight * residual * residual)


class _Fits:
    """Every fit made for one science image: where it started, its window and its end."""

    def __init__(self, objectives, priors, tolerance):
        self.objectives = objectives
        self.priors = priors
        self.tolerance = tolerance
        self.owner = np.zeros(0, dtype=int)
        self.d = np.zeros((0, 2))
        self.radius = np.zeros(0)
        self.iterations = np.zeros(0, dtype=int)
        self.converged = np.zeros(0, dtype=bool)
        self.objective = np.zeros(0)
        self.a_matrix = np.zeros((0, 3, 3))
        self.b_matrix = np.zeros((0, 3, 3))

    def run(self, owners, starts, radii):
        """Converge fits of PSFs ``owners`` from ``starts`` in windows of ``radii`` around
        their priors (all at once); returns their indices."""
        owners = np.asarray(owners, dtype=int)
        radii = np.asarray(radii, dtype=np.float64)
        priors = self.priors[owners]
        d, iterations, converged, a_matrix, b_matrix = _converge(
            self.objectives, owners, starts, priors, radii, self.tolerance
        )
        a, b = a_matrix[:, 0, 0], b_matrix[:, 0, 0]
        first = len(self.owner)
        self.owner = np.concatenate([self.owner, owners])
        self.d = np.concatenate([self.d, d])
        self.radius = np.concatenate([self.radius, radii])
        self.iterations = np.concatenate([self.iterations, iterations])
        self.converged = np.concatenate([self.converged, converged])
        self.a_matrix = np.concatenate([self.a_matrix, a_matrix])
        self.b_matrix = np.concatenate([self.b_matrix, b_matrix])
        self.objective = np.concatenate(
            [self.objective, self.objectives.energy[owners] - a * a / b]
        )
        return list(range(first, len(self.owner)))

    def on_edge(self, job):
        """True if fit ``job`` ended on the edge of its window."""
        prior = self.priors[self.owner[job]]
        return distance(self.d[job], prior) >= self.radius[job] * (1 - 1e-9)

    def interior(self, job):
        """True if fit ``job`` converged to a minimum inside its window."""
        return bool(self.converged[job]) and not self.on_edge(job)


def _ring(prior):
    """Starts around a prior whose own fit left the prior's neighbourhood."""
    angles = np.arange(RING_STARTS) / RING_STARTS
    cos, sin = sincos_2pi(angles)
    return [
        (prior[0] + RING_RADIUS * c, prior[1] + RING_RADIUS * s)
        for c, s in zip(cos, sin, strict=True)
    ]


def _cold_search(fits, science_terms, references, psfs, max_shift):
    """The kept fit of each PSF ``psfs`` from a cold start (see the module docstring).

    1. A fit from the prior, kept to the prior's neighbourhood (``NEAR_RADIUS``), and fits
       from the cross-correlation peaks, in the whole window.
    2. Only if the fit from the prior ends on the neighbourhood's edge (no minimum there):
       fits from a ring of starts around the prior, and the prior's fit continued, in the
       whole window.
    3. Of the minima found (inside their windows), the nearest to the prior is kept unless
       one farther away has an objective below ``RELATIVE_MARGIN`` times it (taken in order
       of distance, each against the one kept so far).
    """
    near = min(NEAR_RADIUS, max_shift)
    scores = _cross_correlation(science_terms, [references[i] for i in psfs])
    owners, starts, radii = [], [], []
    for i, score in zip(psfs, scores, strict=True):
        prior = fits.priors[i]
        owners.append(i)  # the prior's own fit comes first
        starts.append(prior)
        radii.append(near)
        for peak in cross_correlation_peaks(score, prior, max_shift):
            owners.append(i)
            starts.append(peak)
            radii.append(max_shift)
    jobs = fits.run(owners, starts, radii)
    owners, starts = [], []
    for i in psfs:
        from_prior = next(job for job in jobs if fits.owner[job] == i)
        if near < max_shift and fits.on_edge(from_prior):
            for start in [fits.d[from_prior], *_ring(fits.priors[i])]:
                owners.append(i)
                starts.append(start)
    if owners:
        jobs += fits.run(owners, starts, [max_shift] * len(owners))
    kept = []
    for i in psfs:
        mine = [job for job in jobs if fits.owner[job] == i]
        minima = [job for job in mine if fits.interior(job)]
        if not minima:  # every fit ended on an edge: the lowest, reported as such
            kept.append(min(mine, key=lambda job: (fits.objective[job], job)))
            continue
        prior = fits.priors[i]
        minima.sort(key=lambda job: (distance(fits.d[job], prior), job))
        best = minima[0]
        for job in minima[1:]:
            if fits.objective[job] < RELATIVE_MARGIN * fits.objective[best]:
                best = job
        kept.append(best)
    return kept


def fit_pair(
    science_terms,
    reference_terms,
    weight_terms,
    *,
    prior=(0.0, 0.0),
    max_shift=DEFAULT_MAX_SHIFT,
    start=None,
    tolerance=SHIFT_TOLERANCE,
):
    """Fit ``(xshift, yshift, beta)`` for one science image and one reference PSF.

    Parameters
    ----------
    science_terms : ScienceTerms
        From :func:`prepare_science`.
    reference_terms : ReferenceTerms
        From :func:`prepare_reference`.
    weight_terms : WeightTerms
        From :func:`prepare_weight`.
    prior : tuple of float, optional
        Centre of the search window.
    max_shift : float, optional
        Radius of the search window in pixels.
    start : tuple of float, optional
        A warm start; by default a cold start (see :func:`fit_many`).
    tolerance : float, optional
        Convergence threshold on the last step, in pixels.

    Returns
    -------
    FitResult
        See :func:`fit_many`.
    """
    return fit_many(
        science_terms,
        [reference_terms],
        weight_terms,
        priors=[prior],
        max_shift=max_shift,
        starts=[start],
        tolerance=tolerance,
    )[0]


def fit_shift(reference, science, mask, *, weighting="official", prior=(0.0, 0.0), **options):
    """Register one science image onto one reference PSF (convenience wrapper).

    Parameters
    ----------
    reference : array_like, shape (ny, nx)
        Reference PSF image ``p``.
    science : array_like, shape (ny, nx)
        Science image ``s``.
    mask : array_like, shape (ny, nx)
        PSFMASK ``m`` (1 use, 0 ignore, fractions allowed).
    weighting : {"official", "linear"}, optional
        Weight ``m²`` (default, the official objective) or ``m``.
    prior : tuple of float, optional
        Centre of the search window.
    **options
        ``max_shift``, ``start``, ``tolerance`` as for :func:`fit_pair`.

    Returns
    -------
    FitResult
        Minimiser of ``Σ w (p − beta · shift(s, xshift, yshift))²``.
    """
    weight_terms = prepare_weight(mask, weighting)
    return fit_pair(
        prepare_science(science, weight_terms),
        prepare_reference(reference, weight_terms),
        weight_terms,
        prior=prior,
        **options,
    )
