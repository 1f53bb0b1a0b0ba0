"""Newton's method on the profiled objective: trust-region steps, convergence, formal errors.

With ``beta`` in closed form the fit minimises ``f(d) = Σ w p² − A(d)²/B(d)`` over the two
shifts (:mod:`coronalign.core.objective`). Every fit takes Newton steps on ``f``, each at
most ``MAX_STEP`` long and kept inside the fit's search window; where ``f`` is not convex,
or a long step does not lower it, the step is the minimiser of the quadratic model on a
smaller disc. A fit has converged when its next step would move the shift by at most the
tolerance (``SHIFT_TOLERANCE``, 1e-6 px by default).

Evaluations: the first at the start is whole (values, first and second derivatives); a
long step's trial is evaluated whole when it is a plain Newton step (accepted, it serves
the next iteration), else for the value only; after a short step (``SHORT_STEP``) the fit
is in the Newton basin, and the next evaluation takes the values and gradients and keeps
the second derivatives.

Newton's method converges quadratically: the next step is about ``c · |s|²`` after a step
``s``, with ``c`` measured on the last two plain Newton steps (each from second derivatives
evaluated where it started, neither shortened nor stopped by the window). When that
prediction is at most ``PREDICTED_FRACTION`` of the tolerance, the short step ``s`` is
taken and the fit ends there without another evaluation: the values and gradients of ``A``
and ``B`` at its end are their Taylor expansions (the value to second order, the gradient to
first; an error of order ``|s|³`` and ``|s|²`` times the third derivatives), the second
derivatives those of its start. From a warm start that is two evaluations.

Uncertainties
-------------
:func:`hessian_errors` gives the least-squares errors ``sqrt(diag(2 s² H⁻¹))``, ``H`` the
Hessian of ``f`` in ``(xshift, yshift, beta)`` at the minimum (:func:`full_hessian`) and
``s² = f_min / (n − 3)`` the residual variance per weighted pixel (``n`` pixels with
``w > 0``), which assumes the residual is white noise of one variance: the statistical
error when no noise arrays are given. The propagated and total errors are in
:mod:`coronalign.core.uncertainty`.

The 2 × 2 eigen-decompositions and the 3 × 3 inverse are written out (no LAPACK), so the
bits do not depend on the library.
"""

import numpy as np

from coronalign.core.objective import derivative_terms, profile_derivatives

__all__ = [
    "MAX_ITERATIONS",
    "MAX_STEP",
    "PREDICTED_FRACTION",
    "SHIFT_TOLERANCE",
    "SHORT_STEP",
    "converge",
    "full_hessian",
    "hessian_errors",
]

#: Convergence criterion: the last Newton step moved the shift by at most this (pixels).
SHIFT_TOLERANCE = 1e-6
#: Largest step taken in one iteration (pixels); longer Newton steps are shortened.
MAX_STEP = 0.5
#: Steps longer than this (pixels) must lower the objective to be taken; after a shorter
#: one the fit is in the Newton basin, and its next evaluation takes the value and the
#: gradient only, keeping the second derivatives (they change by a fraction of the step).
SHORT_STEP = 1e-2
MAX_ITERATIONS = 50
#: A plain Newton step shorter than ``SHORT_STEP`` ends the fit (taken, no further
#: evaluation) when the next step, predicted from quadratic convergence, is at most this
#: fraction of the tolerance.
PREDICTED_FRACTION = 0.1


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
    if inside.all():
        return newton, inside
    # Bisection for μ: |step(μ)| decreases from infinity (at μ = -λ_min) to 0; only for the
    # fits whose Newton step does not do (elementwise, so the others' bits are unchanged).
    outside = ~inside
    values, vectors, along = values[outside], vectors[outside], along[outside]
    norm = length(gradient[outside])
    low = np.maximum(-values[:, 1], 0.0) * (1 + 1e-12) + 1e-300
    high = low + norm / radius[outside] + 1e-300
    for _ in range(60):
        middle = 0.5 * (low + high)
        too_long = length(step(middle)) > radius[outside]
        low = np.where(too_long, middle, low)
        high = np.where(too_long, high, middle)
    newton[outside] = step(high)
    return newton, inside


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


def converge(objectives, psf, d, priors, max_shift, tolerance):
    """Newton iterations for the fits ``psf`` (PSF indices) from shifts ``d``.

    Every iterate of fit ``j`` stays within ``max_shift[j]`` of ``priors[j]``. A fit whose
    next step would be at most ``tolerance`` has converged and stays where it was
    evaluated, so its ``A`` and ``B`` contractions are those of its final shift (the values
    and first derivatives; after a step shorter than ``SHORT_STEP`` the second derivatives
    are those of the previous iterate, which differ by a fraction of that step). A fit
    whose next step is predicted (quadratic convergence, see the module) to be at most
    ``PREDICTED_FRACTION * tolerance`` takes its last step and has converged too; its
    contractions are then their Taylor expansion to that step's end.

    Parameters
    ----------
    objectives : coronalign.core.objective.Objectives
        ``A`` and ``B`` of the science image against every PSF.
    psf : ndarray of int, shape (k,)
        The PSF of each fit (a PSF may have several fits, from several starts).
    d : array_like, shape (k, 2)
        Starting shifts.
    priors : ndarray, shape (k, 2)
        Centre of each fit's window.
    max_shift : float or array_like, shape (k,)
        Radius of each fit's window (pixels).
    tolerance : float
        Convergence threshold on the step (pixels).

    Returns
    -------
    d : ndarray (k, 2)
        Final shifts.
    iterations : ndarray of int
    converged : ndarray of bool
    a_matrix, b_matrix : ndarray (k, 3, 3)
        Contractions at the final shifts (see ``Objectives.matrices``).
    """
    count = len(psf)
    max_shift = np.broadcast_to(np.asarray(max_shift, dtype=np.float64), (count,))
    d = _into_window(np.array(d, dtype=np.float64), priors, max_shift)
    iterations = np.zeros(count, dtype=int)
    converged = np.zeros(count, dtype=bool)
    final_a = np.empty((count, 3, 3))
    final_b = np.empty((count, 3, 3))
    # known: the contractions at d were evaluated by an accepted trial; short: the last step
    # was short, so the next evaluation takes the gradient and keeps the Hessian.
    known = np.zeros(count, dtype=bool)
    short = np.zeros(count, dtype=bool)
    # fresh: the second derivatives at d were evaluated there; previous: the length of the
    # plain Newton step (from fresh derivatives, not shortened) that led to d, else NaN.
    fresh = np.zeros(count, dtype=bool)
    previous = np.full(count, np.nan)
    active = np.arange(count)
    for _ in range(MAX_ITERATIONS):
        _evaluate(objectives, psf, d, active[~known[active]], short, final_a, final_b)
        fresh[active] = known[active] | ~short[active]
        known[active] = False
        a_terms, b_terms = derivative_terms(final_a[active]), derivative_terms(final_b[active])
        grad_r, hess_r = profile_derivatives(a_terms, b_terms)
        ratio = a_terms[0] * a_terms[0] / b_terms[0]
        here = d[active]
        radius = np.full(len(active), MAX_STEP)
        steps, newton = _trust_region_steps(grad_r, hess_r, radius)
        target = _into_window(here + steps, priors[active], max_shift[active])
        # Long steps must improve the objective (else the trust radius is halved); short
        # ones are in the Newton basin. A Newton step's trial is evaluated whole: accepted,
        # it is the next iteration's evaluation.
        long = np.max(np.abs(target - here), axis=1) > SHORT_STEP
        while long.any():
            trial = np.flatnonzero(long)
            a_try, b_try = _trial(objectives, psf, active[trial], target[trial], newton[trial])
            better = (b_try[:, 0, 0] > 0) & (
                a_try[:, 0, 0] * a_try[:, 0, 0] >= ratio[trial] * b_try[:, 0, 0]
            )
            whole = better & newton[trial]
            final_a[active[trial[whole]]] = a_try[whole]
            final_b[active[trial[whole]]] = b_try[whole]
            known[active[trial[whole]]] = True
            worse = trial[~better]
            if worse.size:
                moved = target[worse] - here[worse]
                radius[worse] = 0.5 * np.sqrt(moved[:, 0] * moved[:, 0] + moved[:, 1] * moved[:, 1])
                steps, newton[worse] = _trust_region_steps(
                    grad_r[worse], hess_r[worse], radius[worse]
                )
                window = max_shift[active[worse]]
                target[worse] = _into_window(here[worse] + steps, priors[active[worse]], window)
            long[trial[better]] = False
            long &= np.max(np.abs(target - here), axis=1) > SHORT_STEP
        moved = np.max(np.abs(target - here), axis=1)
        iterations[active] += 1
        offset = target - priors[active]
        edge = np.sqrt(np.sum(offset * offset, axis=1)) >= max_shift[active] * (1 - 1e-9)
        plain = newton & fresh[active] & ~edge
        done = moved <= tolerance
        # Quadratic convergence: the next step would be about ``c · moved²`` with
        # c = moved / previous² measured on the last two plain Newton steps. When that is
        # far below the tolerance the step is taken and the contractions at its end are
        # their Taylor expansion (no further evaluation).
        last = previous[active]
        with np.errstate(invalid="ignore", divide="ignore"):
            predicted = moved * moved * (moved / (last * last))
        early = ~done & plain & (moved <= SHORT_STEP)
        early &= predicted <= PREDICTED_FRACTION * tolerance
        if early.any():
            fits = active[early]
            step = target[early] - here[early]
            final_a[fits] = _taylor(final_a[fits], step)
            final_b[fits] = _taylor(final_b[fits], step)
            done |= early
        d[active[~done | early]] = target[~done | early]
        converged[active[done]] = True
        short[active] = moved <= SHORT_STEP
        previous[active] = np.where(plain, moved, np.nan)
        active = active[~done]
        if not active.size:
            break
    if active.size:  # out of iterations: the contractions where they stopped
        final_a[active], final_b[active] = objectives.matrices(psf[active], d[active])
    return d, iterations, converged, final_a, final_b


def _taylor(matrix, step):
    """Contractions (k, 3, 3) moved by ``step`` (k, 2): the value to second order, the
    gradient to first order; the second derivatives are kept."""
    sx, sy = step[:, 0], step[:, 1]
    out = matrix.copy()
    m = matrix
    quadratic = m[:, 0, 2] * (sx * sx) + 2.0 * m[:, 1, 1] * (sx * sy) + m[:, 2, 0] * (sy * sy)
    out[:, 0, 0] = m[:, 0, 0] + (m[:, 0, 1] * sx + m[:, 1, 0] * sy) + 0.5 * quadratic
    out[:, 0, 1] = m[:, 0, 1] + (m[:, 0, 2] * sx + m[:, 1, 1] * sy)
    out[:, 1, 0] = m[:, 1, 0] + (m[:, 1, 1] * sx + m[:, 2, 0] * sy)
    return out


def _evaluate(objectives, psf, d, fits, short, final_a, final_b):
    """Contractions at ``d`` of ``fits`` into ``final_a``, ``final_b``: whole, or (after a
    short step) value and gradient only, the second derivatives kept from before."""
    for chosen, orders in ((fits[~short[fits]], 3), (fits[short[fits]], 2)):
        if chosen.size:
            a_matrix, b_matrix = objectives.matrices(psf[chosen], d[chosen], orders=orders)
            final_a[chosen, :orders, :orders] = a_matrix
            final_b[chosen, :orders, :orders] = b_matrix


def _trial(objectives, psf, fits, target, whole):
    """Contractions of ``fits`` at their trial shifts: whole for Newton steps, else values."""
    a_try = np.zeros((len(fits), 3, 3))
    b_try = np.zeros((len(fits), 3, 3))
    for chosen, orders in ((whole, 3), (~whole, 1)):
        if chosen.any():
            a_matrix, b_matrix = objectives.matrices(psf[fits[chosen]], target[chosen], orders)
            a_try[chosen, :orders, :orders] = a_matrix
            b_try[chosen, :orders, :orders] = b_matrix
    return a_try, b_try


def full_hessian(a_terms, b_terms, beta):
    """Hessian of ``f`` in ``(xshift, yshift, beta)`` at the fits.

    Parameters
    ----------
    a_terms, b_terms : tuple of ndarray
        Value, gradient and Hessian of ``A`` and ``B``
        (:func:`coronalign.core.objective.derivative_terms`).
    beta : ndarray, shape (k,)
        The fitted flux scales.

    Returns
    -------
    ndarray, shape (k, 3, 3)
    """
    a, ga, ha = a_terms
    b, gb, hb = b_terms
    h = np.empty((len(a), 3, 3))
    h[:, :2, :2] = -2 * beta[:, None, None] * ha + (beta * beta)[:, None, None] * hb
    h[:, :2, 2] = h[:, 2, :2] = -2 * ga + 2 * beta[:, None] * gb
    h[:, 2, 2] = 2 * b
    return h


def hessian_errors(a_terms, b_terms, beta, residual, count):
    """Formal 1σ errors of (xshift, yshift, beta) from the Hessian of ``f`` (see module).

    Parameters
    ----------
    a_terms, b_terms : tuple of ndarray
        Value, gradient and Hessian of ``A`` and ``B`` at the minima
        (:func:`coronalign.core.objective.derivative_terms`).
    beta : ndarray, shape (k,)
        The fitted flux scales.
    residual : ndarray, shape (k,)
        ``f`` at the minima.
    count : int
        Pixels with a non-zero weight.

    Returns
    -------
    ndarray, shape (k, 3)
        The errors of xshift, yshift and beta; NaN where the Hessian is not positive
        definite.
    """
    h = full_hessian(a_terms, b_terms, beta)
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
