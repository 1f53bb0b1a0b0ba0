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

from .fourier import axis_phase, rfft_frequencies

__all__ = [
    "FitResult",
    "ReferenceTerms",
    "ScienceTerms",
    "WeightTerms",
    "fit_pair",
    "fit_shift",
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
    spectrum: np.ndarray  # full fft2 of w
    rspectrum: np.ndarray  # rfft2 of w
    total: float  # Σ w


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
        spectrum=scipy.fft.fft2(w),
        rspectrum=scipy.fft.rfft2(w),
        total=float(w.sum()),
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


def _norm_coefficients(science, rspectrum, weight_terms):
    """Coefficients ``G`` of ``B(d) = Σ w (T_d s)²`` as a trigonometric polynomial in ``d``.

    ``T_d s`` is the band-limited interpolant ``u`` of ``s`` evaluated at ``x − d``; ``u²``
    has twice the bandwidth (frequencies ``−n … n`` along an axis of ``n`` pixels), so it
    is sampled on a grid of at least ``2n + 1`` points (a fast FFT length) where its
    spectrum is exact. Its coefficient at frequency ``q`` times ``conj(Ŵ_q)`` is ``G_q``;
    only ``q_x ≥ 0`` is kept (the rest is the complex conjugate).
    """
    ny, nx = science.shape
    my = scipy.fft.next_fast_len(2 * ny + 1, real=True)
    mx = scipy.fft.next_fast_len(2 * nx + 1, real=True)
    ky, fy = _extended_axis(ny)
    kx, fx = _extended_axis(nx)
    keep = kx >= 0
    kx, fx = kx[keep], fx[keep]
    fine = np.zeros((my, mx // 2 + 1), dtype=np.complex128)
    fine[np.ix_(ky % my, kx)] = rspectrum[np.ix_(ky % ny, kx)] * np.outer(fy, fx)
    upsampled = scipy.fft.irfft2(fine, s=(my, mx)) * (my * mx / (ny * nx))
    squared_spectrum = scipy.fft.rfft2(upsampled * upsampled) / (my * mx)
    qy = np.arange(-ny, ny + 1)
    qx = np.arange(0, nx + 1)
    coefficients = squared_spectrum[np.ix_(qy % my, qx)]
    coefficients *= np.conj(weight_terms.spectrum[np.ix_(qy % ny, qx % nx)])
    coefficients *= _column_weights(nx, qx.size)[None, :]
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


class _Objective:
    """``A(d)``, ``B(d)`` and their derivatives for one (science, reference) pair."""

    def __init__(self, science_terms, reference_terms):
        ny, nx = science_terms.shape
        self.ny, self.nx = ny, nx
        self.fy, self.fx = rfft_frequencies(ny, nx)
        cross = science_terms.rspectrum * np.conj(reference_terms.weighted_rspectrum)
        self.cross = cross  # H on the rfft grid
        self.cross_weighted = cross * (_column_weights(nx, cross.shape[1]) / (ny * nx))[None, :]
        self.norm = science_terms.norm_coefficients
        self.qy = -2j * np.pi * np.arange(-ny, ny + 1) / ny
        self.qx = -2j * np.pi * np.arange(0, nx + 1) / nx
        self.energy = reference_terms.energy

    def values(self, dx, dy):
        """``A`` and ``B`` at one shift."""
        a = np.real(
            axis_phase(self.fy, self.ny, dy)
            @ (self.cross_weighted @ axis_phase(self.fx, self.nx, dx))
        )
        b = np.real(np.exp(self.qy * dy) @ (self.norm @ np.exp(self.qx * dx)))
        return a, b

    def derivatives(self, dx, dy):
        """``A``, ``B`` with gradients and Hessians with respect to ``(dx, dy)``."""
        px = np.stack([axis_phase(self.fx, self.nx, dx, order) for order in range(3)], axis=1)
        py = [axis_phase(self.fy, self.ny, dy, order) for order in range(3)]
        a_cols = self.cross_weighted @ px
        ex = np.exp(self.qx * dx)
        ey = np.exp(self.qy * dy)
        b_cols = self.norm @ np.stack([ex, ex * self.qx, ex * self.qx**2], axis=1)
        eyd = [ey, ey * self.qy, ey * self.qy**2]
        return _terms(a_cols, py), _terms(b_cols, eyd)


def _terms(columns, row_phases):
    """Value, gradient (x, y) and Hessian of a separable sum from its contractions."""
    value = np.real(row_phases[0] @ columns[:, 0])
    gx = np.real(row_phases[0] @ columns[:, 1])
    gy = np.real(row_phases[1] @ columns[:, 0])
    hxx = np.real(row_phases[0] @ columns[:, 2])
    hxy = np.real(row_phases[1] @ columns[:, 1])
    hyy = np.real(row_phases[2] @ columns[:, 0])
    return value, np.array([gx, gy]), np.array([[hxx, hxy], [hxy, hyy]])


def _profile_derivatives(a_terms, b_terms):
    """Gradient and Hessian of ``R = A²/B`` (the objective is ``f = Σ w p² − R``)."""
    a, ga, ha = a_terms
    b, gb, hb = b_terms
    grad = 2 * a * ga / b - a * a * gb / b**2
    hess = (
        2 * (np.outer(ga, ga) + a * ha) / b
        - 2 * a * (np.outer(ga, gb) + np.outer(gb, ga)) / b**2
        - a * a * hb / b**2
        + 2 * a * a * np.outer(gb, gb) / b**3
    )
    return grad, hess


def _newton_step(grad_r, hess_r):
    """Step that increases ``R``: Newton where ``R`` is concave, else a safeguarded one."""
    values, vectors = np.linalg.eigh(-hess_r)  # Hessian of f = -R
    scale = max(np.max(np.abs(values)), 1e-300)
    values = np.maximum(np.abs(values), 1e-6 * scale)  # flip and floor negative curvature
    step = vectors @ ((vectors.T @ grad_r) / values)
    length = np.max(np.abs(step))
    if length > MAX_STEP:
        step *= MAX_STEP / length
    return step


def integer_start(science_terms, reference_terms):
    """Best integer shift from the masked cross-correlation (positive ``beta`` only).

    Parameters
    ----------
    science_terms : ScienceTerms
    reference_terms : ReferenceTerms

    Returns
    -------
    tuple of float
        ``(xshift, yshift)`` in ``[-n/2, n/2)``.
    """
    ny, nx = science_terms.shape
    a = scipy.fft.irfft2(
        reference_terms.weighted_rspectrum * np.conj(science_terms.rspectrum), s=(ny, nx)
    )
    b = science_terms.norm_grid
    positive = (a > 0) & (b > 0)
    if not positive.any():
        return 0.0, 0.0
    score = np.where(positive, a * a / np.where(positive, b, 1.0), -np.inf)
    jy, jx = np.unravel_index(np.argmax(score), score.shape)
    return float(jx - nx if jx >= nx / 2 else jx), float(jy - ny if jy >= ny / 2 else jy)


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
        The shifts are NaN (and ``converged`` False) when the science image has no
        weighted signal, so no fit is possible.
    """
    if not science_terms.energy > 0:
        return FitResult(np.nan, np.nan, np.nan, np.nan, 0, False)
    objective = _Objective(science_terms, reference_terms)
    d = np.array(start if start is not None else integer_start(science_terms, reference_terms))
    converged = False
    iterations = 0
    for iterations in range(1, MAX_ITERATIONS + 1):  # noqa: B007 - kept for the result
        a_terms, b_terms = objective.derivatives(*d)
        grad_r, hess_r = _profile_derivatives(a_terms, b_terms)
        step = _newton_step(grad_r, hess_r)
        ratio = a_terms[0] ** 2 / b_terms[0]
        # Long steps must improve the objective; short ones are in the Newton basin.
        while np.max(np.abs(step)) > 1e-2:
            a_try, b_try = objective.values(*(d + step))
            if b_try > 0 and a_try * a_try / b_try >= ratio:
                break
            step = step / 2
        d = d + step
        if np.max(np.abs(step)) <= tolerance:
            converged = True
            break
    a, b = objective.values(*d)
    beta = a / b
    residual = max(objective.energy - a * a / b, 0.0)
    rms = np.sqrt(residual / weight_total) if weight_total > 0 else np.nan
    return FitResult(float(d[0]), float(d[1]), float(beta), float(rms), iterations, converged)


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
