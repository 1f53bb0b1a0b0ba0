"""The search: where each fit starts, how far it may go, and which minimum is kept.

For every science integration and every PSF the fit minimises the objective of
:mod:`coronalign.core.objective` with Newton's method (:mod:`coronalign.core.newton`).

The search is bounded: no fit ends farther than ``max_shift`` pixels from its *prior*
(the expected shift, from the pointing metadata, else zero). Inside that window the fit
starts at the prior and, for a cold start, also at the masked cross-correlation's best
integer peaks that look better than the prior's neighbourhood (each more than 1 px from
the others). Every start is converged; a start away from the prior wins only if its
objective is below ``RELATIVE_MARGIN`` times that of the prior's basin. With a poorly
matched reference, spurious far minima beat the prior's basin by only a few percent,
while a real large offset beats a trap near zero by a factor of 7 or more (measured).
A warm start (the first integration's fit) is kept when the fit converges near it.

Every fit of one science image steps together with the others (stacked evaluations),
and a fit's result depends on its own data and start only, never on which other fits
were made beside it.
"""

import logging
from dataclasses import dataclass

import numpy as np

from coronalign.core.choices import DEFAULT_MAX_SHIFT
from coronalign.core.fourier import single_spectra
from coronalign.core.newton import SHIFT_TOLERANCE, converge, full_hessian, hessian_errors
from coronalign.core.objective import (
    Objectives,
    cross_correlation,
    derivative_terms,
    fit_statistics,
    prepare_reference,
    prepare_science,
    prepare_weight,
)
from coronalign.core.reproducible import sincos_2pi
from coronalign.core.uncertainty import fit_covariances
from coronalign.dq import FitStatus
from coronalign.errors import ParameterError

__all__ = [
    "DEFAULT_MAX_SHIFT",
    "RELATIVE_MARGIN",
    "FitResult",
    "cross_correlation_peaks",
    "distance",
    "fit_many",
    "fit_pair",
    "fit_shift",
    "integer_start",
]

log = logging.getLogger(__name__)

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
        True if the next Newton step would change the shift by at most the tolerance
        (``SHIFT_TOLERANCE`` pixels by default): evaluated, or predicted from quadratic
        convergence (see :mod:`coronalign.core.newton`).
    xshift_err, yshift_err, beta_err : float
        Total 1σ uncertainties: the pixel noise and the residual's structure (speckles
        the reference does not share, replaced pixels), see
        :mod:`coronalign.core.uncertainty`; NaN where the Hessian is not positive definite.
    xshift_err_stat, yshift_err_stat, beta_err_stat : float
        Statistical 1σ uncertainties: the pixel noise of both images alone (the ERR or
        VAR_POISSON + VAR_RNOISE arrays), else the residual-variance estimate.
    objective : float
        ``f`` at the result, ``Σ w (p − beta T s)²``.
    status : coronalign.dq.FitStatus
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
    xshift_err_stat: float = np.nan
    yshift_err_stat: float = np.nan
    beta_err_stat: float = np.nan
    objective: float = np.nan
    status: FitStatus = FitStatus.CONVERGED
    prior: tuple = (0.0, 0.0)


def distance(first, second):
    """Euclidean distance of two shifts (IEEE operations only, unlike ``math.hypot``).

    Parameters
    ----------
    first, second : sequence of float
        ``(xshift, yshift)``.

    Returns
    -------
    float
    """
    dx, dy = first[0] - second[0], first[1] - second[1]
    return float(np.sqrt(dx * dx + dy * dy))


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
    # Only the window's bounding box (and the prior's neighbours) can hold a peak: work
    # there, rows and columns in FFT order as in the whole frame (same ties, same order).
    half = max(max_shift, 1.0)
    iy = np.flatnonzero(np.abs(oy - py) <= half)
    ix = np.flatnonzero(np.abs(ox - px) <= half)
    box = score[np.ix_(iy, ix)]
    dx, dy = ox[ix][None, :] - px, oy[iy][:, None] - py
    from_prior = np.sqrt(dx * dx + dy * dy)
    inside = from_prior <= max_shift
    near = (np.abs(dx) < 1) & (np.abs(dy) < 1)
    floor = np.max(box[near]) if near.any() else -np.inf
    peak = box > floor
    for sy in (-1, 0, 1):
        for sx in (-1, 0, 1):
            if sy or sx:  # the neighbour np.roll(score, (sy, sx)) puts here
                peak &= box >= score[np.ix_((iy - sy) % ny, (ix - sx) % nx)]
    peak &= inside & (from_prior > DISTINCT) & np.isfinite(box)
    rows, cols = np.nonzero(peak)
    order = np.argsort(-box[rows, cols], kind="stable")
    kept = []
    for i in order:
        here = np.array([ox[ix[cols[i]]], oy[iy[rows[i]]]])
        if all(distance(here, other) > DISTINCT for other in kept):
            kept.append(here)
            if len(kept) == limit:
                break
    return np.array(kept, dtype=np.float64).reshape(-1, 2)


def integer_start(science_terms, reference_terms):
    """Best integer shift of the masked cross-correlation over the whole frame, for one PSF.

    Parameters
    ----------
    science_terms : coronalign.core.objective.ScienceTerms
        The science image's terms.
    reference_terms : coronalign.core.objective.ReferenceTerms
        The PSF's terms.

    Returns
    -------
    tuple of float
        ``(xshift, yshift)`` in ``[-n/2, n/2)``; (0, 0) where no shift correlates positively.
    """
    score = cross_correlation(science_terms, [reference_terms])[0]
    if not np.isfinite(score).any():
        return 0.0, 0.0
    jy, jx = np.unravel_index(np.argmax(score), score.shape)
    ny, nx = score.shape
    return float(_signed_offsets(nx)[jx]), float(_signed_offsets(ny)[jy])


def fit_many(
    science_terms,
    references,
    weight_terms,
    *,
    priors=None,
    max_shift=DEFAULT_MAX_SHIFT,
    starts=None,
    tolerance=SHIFT_TOLERANCE,
    science_variance=None,
    reference_variances=None,
    reference_spectra=None,
    shifted_references=None,
    cross_buffer=None,
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
    science_variance : ndarray, optional
        Variance of each science pixel (ERR²). With ``reference_variances``, the errors
        are propagated from the noise of both images (the sandwich covariance of
        :mod:`coronalign.core.uncertainty`) instead of the residual-variance estimate.
    reference_variances : sequence of ndarray, optional
        Variance of each PSF pixel, one per reference.
    reference_spectra : tuple of ndarray of float32, optional
        Real and imaginary parts of ``rfft2`` of each reference image, one per reference
        (:func:`coronalign.core.fourier.single_spectra`), for the errors; computed here
        if not given (the alignment has them already: it shifts the PSFs with them).
    shifted_references : callable, optional
        ``shifted_references(d)`` returns the reference images moved by minus the fitted
        shifts ``d`` (k, 2), float32 (k, ny, nx), the same bits as
        :func:`coronalign.core.fourier.shift_single` gives from ``reference_spectra``; for
        the errors, which need them. The alignment shifts its PSFs for the product there
        once (and keeps them), so the errors cost no transform of their own.
    cross_buffer : ndarray of float64, optional
        Scratch space for the objective's cross terms
        (:meth:`coronalign.core.objective.Objectives.cross_shape`), reused by a caller that
        fits one science image after another (no result depends on it).

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
            FitResult(
                np.nan, np.nan, np.nan, np.nan, 0, False, status=FitStatus.NO_DATA, prior=tuple(p)
            )
            for p in priors
        ]
    objectives = Objectives(science_terms, references, out=cross_buffer)
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
    a_terms = derivative_terms(fits.a_matrix[chosen])
    b_terms = derivative_terms(fits.b_matrix[chosen])
    beta, objective = fit_statistics(science_terms, references, d, a_terms[0], b_terms[0])
    hessian = full_hessian(a_terms, b_terms, beta)
    statistical, residual, _ = fit_covariances(
        science_terms.rspectrum,
        science_terms.shape,
        weight_terms.weight,
        d,
        beta,
        hessian,
        (
            single_spectra(np.stack([reference.image for reference in references]))
            if reference_spectra is None
            else reference_spectra
        ),
        science_variance,
        reference_variances,
        None if shifted_references is None else shifted_references(d),
    )
    if science_variance is None or reference_variances is None:
        stat = hessian_errors(a_terms, b_terms, beta, objective, weight_terms.count)
    else:
        stat = np.sqrt(np.maximum(_diagonal(statistical), 0.0))
    # The total: the residual's own scatter over blocks, never below the pixel noise's.
    errors = np.sqrt(np.maximum(_diagonal(residual), stat * stat))
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
            xshift_err_stat=float(stat[i, 0]),
            yshift_err_stat=float(stat[i, 1]),
            beta_err_stat=float(stat[i, 2]),
            objective=float(objective[i]),
            status=(
                FitStatus.OUT_OF_WINDOW
                if on_edge[i]
                else (FitStatus.CONVERGED if converged[i] else FitStatus.NOT_CONVERGED)
            ),
            prior=(float(priors[i, 0]), float(priors[i, 1])),
        )
        for i in range(count)
    ]


def _diagonal(covariance):
    """The diagonals of stacked 3 × 3 matrices, shape (k, 3)."""
    return np.stack([covariance[:, j, j] for j in range(3)], axis=1)


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
        d, iterations, converged, a_matrix, b_matrix = converge(
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
    scores = cross_correlation(science_terms, [references[i] for i in psfs])
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
