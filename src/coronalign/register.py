"""Weighted sub-pixel registration of a science image onto a reference PSF.

For a reference PSF ``p``, a science image ``s`` and a weight ``w`` (1 use, 0 ignore)
we find the shift ``d = (xshift, yshift)`` and flux scale ``beta`` minimising

    f(d, beta) = Σ w · (p − beta · T_d s)²

where ``T_d`` is the periodic Fourier shift of :mod:`coronalign.fourier`. This is the
official step's objective and sign convention: ``xshift = x_psf − x_sci`` along columns.

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
their first and second derivatives cost two small matrix products per evaluation; no
inverse FFT is needed inside the Newton iterations. ``G`` depends only on the science
image and the weight, so it is computed once per science integration and shared by
every PSF. The start is the best integer shift from a masked cross-correlation
(one inverse FFT per pair), so a reference several pixels away is still found.
"""

import functools
import logging
from dataclasses import dataclass

import numpy as np
import scipy.fft

from .fourier import axis_phases, rfft_frequencies

__all__ = [
    "FitResult",
    "ReferenceTerms",
    "ScienceTerms",
    "WeightTerms",
    "fit_many",
    "fit_pair",
    "fit_shift",
    "integer_start",
    "integer_starts",
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
        Newton iterations taken.
    converged : bool
        True if the last step changed the shift by at most ``SHIFT_TOLERANCE`` pixels.
    """

    xshift: float
    yshift: float
    beta: float
    rms: float
    iterations: int
    converged: bool


@dataclass(frozen=True)
class WeightTerms:
    """Transforms of the weight image, shared by every fit that uses it."""

    weight: np.ndarray
    rspectrum: np.ndarray  # rfft2 of w
    total: float  # Σ w
    norm_factor: np.ndarray  # what multiplies the spectrum of u² in G (see _norm_coefficients)


class ScienceTerms:
    """Everything about one science image that the fits against all PSFs share.

    Attributes
    ----------
    shape : tuple of int
        ``(ny, nx)``.
    rspectrum : ndarray
        ``rfft2(s)``.
    norm_coefficients : ndarray
        ``G`` times the column weights, shape ``(2 ny + 1, nx + 1)``.
    energy : float
        ``Σ w s²``; zero when the science image has no weighted signal.
    """

    def __init__(self, science, weight_terms):
        self._science = science
        self._weight_terms = weight_terms
        self.shape = science.shape
        self.rspectrum = scipy.fft.rfft2(science)
        self.norm_coefficients = _norm_coefficients(science, self.rspectrum, weight_terms)
        self.energy = float(np.sum(weight_terms.weight * science * science))

    @functools.cached_property
    def norm_grid(self):
        """``B(d)`` at every integer shift (only needed for a cross-correlation start)."""
        s = self._science
        return scipy.fft.irfft2(
            self._weight_terms.rspectrum * np.conj(scipy.fft.rfft2(s * s)), s=self.shape
        )


@dataclass(frozen=True)
class ReferenceTerms:
    """Transforms of one reference PSF needed by the fit."""

    weighted_rspectrum: np.ndarray  # rfft2(w p)
    energy: float  # Σ w p²


def prepare_weight(weight):
    """Precompute the transforms of a weight image.

    Parameters
    ----------
    weight : array_like, shape (ny, nx)
        Non-negative weights (1 use, 0 ignore, fractions allowed).

    Returns
    -------
    WeightTerms
    """
    w = np.asarray(weight, dtype=np.float64)
    return WeightTerms(
        weight=w,
        rspectrum=scipy.fft.rfft2(w),
        total=float(w.sum()),
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
    coefficients *= weight_terms.norm_factor
    return coefficients


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
    return ReferenceTerms(weighted_rspectrum=scipy.fft.rfft2(wp), energy=float(np.sum(wp * p)))


class _Objectives:
    """``A(d)``, ``B(d)`` and their derivatives for one science image and several PSFs.

    Every PSF is evaluated at its own shift, in one stacked matrix product per term. Which
    PSFs are evaluated together depends only on the data, so the results are the same on
    every run and for any number of threads.
    """

    def __init__(self, science_terms, references):
        ny, nx = science_terms.shape
        self.ny, self.nx = ny, nx
        self.fy, self.fx = rfft_frequencies(ny, nx)
        weights = _column_weights(nx, nx // 2 + 1) / (ny * nx)
        self.cross = np.stack(
            [science_terms.rspectrum * np.conj(ref.weighted_rspectrum) for ref in references]
        )
        self.cross *= weights  # H on the rfft grid, with the half-spectrum weights
        self.norm = science_terms.norm_coefficients
        self.qy = -2j * np.pi * np.arange(-ny, ny + 1) / ny
        self.qx = -2j * np.pi * np.arange(0, nx + 1) / nx
        self.energy = np.array([ref.energy for ref in references])

    def matrices(self, index, d, orders=3):
        """Contractions of ``A`` and ``B`` for PSFs ``index`` at shifts ``d`` (k, 2).

        Returns two real (k, orders, orders) arrays whose entry ``[i, j]`` is the
        ``i``-th derivative in y of the ``j``-th derivative in x (value ``[0, 0]``).
        """
        cross = self.cross if len(index) == len(self.cross) else self.cross[index]
        px = np.ascontiguousarray(axis_phases(self.fx, self.nx, d[:, 0], orders).transpose(0, 2, 1))
        py = axis_phases(self.fy, self.ny, d[:, 1], orders)
        a = np.matmul(py, np.matmul(cross, px)).real
        ex = np.exp(np.multiply.outer(self.qx, d[:, 0]))  # (nx + 1, k)
        ey = np.exp(np.multiply.outer(d[:, 1], self.qy))
        ex = np.stack([ex * (self.qx**o)[:, None] for o in range(orders)], 2)
        ey = np.stack([ey * self.qy**o for o in range(orders)], 1)
        # One product for all PSFs: G is read once (it is the largest array here).
        columns = (self.norm @ ex.reshape(len(self.qx), -1)).reshape(len(self.qy), len(d), orders)
        b = np.matmul(ey, columns.transpose(1, 0, 2)).real
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


def _profile_derivatives(a_terms, b_terms):
    """Gradient and Hessian of ``R = A²/B`` (the objective is ``f = Σ w p² − R``)."""
    a, ga, ha = a_terms
    b, gb, hb = b_terms
    a, b = a[:, None], b[:, None]
    grad = 2 * a * ga / b - a * a * gb / b**2
    a, b = a[:, :, None], b[:, :, None]
    outer = np.einsum
    hess = (
        2 * (outer("ki,kj->kij", ga, ga) + a * ha) / b
        - 2 * a * (outer("ki,kj->kij", ga, gb) + outer("ki,kj->kij", gb, ga)) / b**2
        - a * a * hb / b**2
        + 2 * a * a * outer("ki,kj->kij", gb, gb) / b**3
    )
    return grad, hess


def _newton_steps(grad_r, hess_r):
    """Steps that increase ``R``: Newton where ``R`` is concave, else a safeguarded one."""
    values, vectors = np.linalg.eigh(-hess_r)  # Hessians of f = -R
    scale = np.maximum(np.max(np.abs(values), axis=1, keepdims=True), 1e-300)
    values = np.maximum(np.abs(values), 1e-6 * scale)  # flip and floor negative curvature
    along = np.einsum("kji,kj->ki", vectors, grad_r) / values
    steps = np.einsum("kij,kj->ki", vectors, along)
    length = np.max(np.abs(steps), axis=1, keepdims=True)
    return steps * np.minimum(1.0, MAX_STEP / np.maximum(length, 1e-300))


def integer_starts(science_terms, references, workers=1):
    """Best integer shifts from the masked cross-correlation (positive ``beta`` only).

    Parameters
    ----------
    science_terms : ScienceTerms
    references : sequence of ReferenceTerms
    workers : int, optional
        Threads for the inverse transforms.

    Returns
    -------
    ndarray, shape (len(references), 2)
        ``(xshift, yshift)`` of each, in ``[-n/2, n/2)``; (0, 0) where no shift correlates
        positively.
    """
    ny, nx = science_terms.shape
    spectra = np.stack([ref.weighted_rspectrum for ref in references])
    a = scipy.fft.irfft2(spectra * np.conj(science_terms.rspectrum), s=(ny, nx), workers=workers)
    b = science_terms.norm_grid
    positive = (a > 0) & (b > 0)
    score = np.where(positive, a * a / np.where(b > 0, b, 1.0), -np.inf).reshape(len(a), -1)
    jy, jx = np.unravel_index(np.argmax(score, axis=1), (ny, nx))
    starts = np.stack([np.where(jx >= nx / 2, jx - nx, jx), np.where(jy >= ny / 2, jy - ny, jy)], 1)
    starts[~positive.reshape(len(a), -1).any(axis=1)] = 0
    return starts.astype(np.float64)


def integer_start(science_terms, reference_terms):
    """Best integer shift from the masked cross-correlation, for one PSF.

    Returns
    -------
    tuple of float
        ``(xshift, yshift)`` in ``[-n/2, n/2)``.
    """
    start = integer_starts(science_terms, [reference_terms])[0]
    return float(start[0]), float(start[1])


def fit_many(
    science_terms,
    references,
    weight_total,
    *,
    starts=None,
    tolerance=SHIFT_TOLERANCE,
    workers=1,
):
    """Fit ``(xshift, yshift, beta)`` of several reference PSFs to one science image.

    All PSFs take their Newton steps together (stacked evaluations); a PSF that has
    converged stops, the others go on.

    Parameters
    ----------
    science_terms : ScienceTerms
        From :func:`prepare_science`.
    references : sequence of ReferenceTerms
        From :func:`prepare_reference`.
    weight_total : float
        ``Σ w``, used to normalise the residual rms.
    starts : sequence, optional
        Starting ``(xshift, yshift)`` per PSF, or None for the best integer shift of the
        masked cross-correlation (the default for all).
    tolerance : float, optional
        Convergence threshold on the last step, in pixels.
    workers : int, optional
        Threads for the cross-correlation transforms.

    Returns
    -------
    list of FitResult
        The shifts are NaN (and ``converged`` False) when the science image has no
        weighted signal, so no fit is possible.
    """
    count = len(references)
    if not science_terms.energy > 0:
        return [FitResult(np.nan, np.nan, np.nan, np.nan, 0, False)] * count
    starts = [None] * count if starts is None else list(starts)
    d = np.zeros((count, 2))
    cold = [i for i, start in enumerate(starts) if start is None]
    if cold:
        d[cold] = integer_starts(science_terms, [references[i] for i in cold], workers)
    for i, start in enumerate(starts):
        if start is not None:
            d[i] = start
    objectives = _Objectives(science_terms, references)
    iterations = np.zeros(count, dtype=int)
    converged = np.zeros(count, dtype=bool)
    active = np.arange(count)
    for _ in range(MAX_ITERATIONS):
        a_matrix, b_matrix = objectives.matrices(active, d[active])
        a_terms, b_terms = _terms(a_matrix), _terms(b_matrix)
        steps = _newton_steps(*_profile_derivatives(a_terms, b_terms))
        ratio = a_terms[0] ** 2 / b_terms[0]
        # Long steps must improve the objective; short ones are in the Newton basin.
        long = np.max(np.abs(steps), axis=1) > 1e-2
        while long.any():
            trial = np.flatnonzero(long)
            a_try, b_try = objectives.matrices(
                active[trial], d[active[trial]] + steps[trial], orders=1
            )
            a_try, b_try = a_try[:, 0, 0], b_try[:, 0, 0]
            better = (b_try > 0) & (a_try * a_try >= ratio[trial] * b_try)
            steps[trial[~better]] /= 2
            long[trial[better]] = False
            long &= np.max(np.abs(steps), axis=1) > 1e-2
        d[active] += steps
        iterations[active] += 1
        done = np.max(np.abs(steps), axis=1) <= tolerance
        converged[active[done]] = True
        active = active[~done]
        if not active.size:
            break
    a_matrix, b_matrix = objectives.matrices(np.arange(count), d, orders=1)
    a, b = a_matrix[:, 0, 0], b_matrix[:, 0, 0]
    residual = np.maximum(objectives.energy - a * a / b, 0.0)
    rms = np.sqrt(residual / weight_total) if weight_total > 0 else np.full(count, np.nan)
    return [
        FitResult(
            float(d[i, 0]),
            float(d[i, 1]),
            float(a[i] / b[i]),
            float(rms[i]),
            int(iterations[i]),
            bool(converged[i]),
        )
        for i in range(count)
    ]


def fit_pair(
    science_terms, reference_terms, weight_total, *, start=None, tolerance=SHIFT_TOLERANCE
):
    """Fit ``(xshift, yshift, beta)`` for one science image and one reference PSF.

    Parameters
    ----------
    science_terms : ScienceTerms
        From :func:`prepare_science`.
    reference_terms : ReferenceTerms
        From :func:`prepare_reference`.
    weight_total : float
        ``Σ w``, used to normalise the residual rms.
    start : tuple of float, optional
        Starting ``(xshift, yshift)``; by default the best integer shift of the masked
        cross-correlation.
    tolerance : float, optional
        Convergence threshold on the last step, in pixels.

    Returns
    -------
    FitResult
        See :func:`fit_many`.
    """
    return fit_many(
        science_terms, [reference_terms], weight_total, starts=[start], tolerance=tolerance
    )[0]


def fit_shift(reference, science, weight):
    """Register one science image onto one reference PSF (convenience wrapper).

    Parameters
    ----------
    reference : array_like, shape (ny, nx)
        Reference PSF image ``p``.
    science : array_like, shape (ny, nx)
        Science image ``s``.
    weight : array_like, shape (ny, nx)
        Weight ``w`` (1 use, 0 ignore).

    Returns
    -------
    FitResult
        Minimiser of ``Σ w (p − beta · shift(s, xshift, yshift))²``.
    """
    weight_terms = prepare_weight(weight)
    return fit_pair(
        prepare_science(science, weight_terms),
        prepare_reference(reference, weight_terms),
        weight_terms.total,
    )
