"""The exact least-squares truth of every (integration, PSF) pair, computed here by its own
method (never the package's fit): the objective in closed form in the Fourier domain,
minimised by Newton's method to ~1e-10 px.

Its arithmetic is :mod:`coronalign.core.reproducible`'s (phase factors, complex products,
sums of products, 3 x 3 solves), never BLAS, LAPACK or numpy's dispatched ufuncs, so the
truth has the same bits on every CPU and BLAS kernel.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

from coronalign.core import reproducible as rep
from coronalign.simulation.optics import real_scale, signed_indices

__all__ = ["truth_fit"]


def _band_slices(spectra, tol=1e-13):
    """Signed ky rows and kx columns where any spectrum is non-negligible."""
    power = (spectra.real**2 + spectra.imag**2).max(axis=0)  # |z|**2 without libm's hypot
    big = power > tol**2 * power.max()
    ny = spectra.shape[1]
    ky = signed_indices(ny)
    rows = np.flatnonzero(big.any(axis=1))
    cols = np.flatnonzero(big.any(axis=0))
    kymax = int(np.abs(ky[rows]).max())
    kxmax = int(cols.max())
    return kymax, kxmax


def _times_i(z, a):
    """``1j * a * z`` for complex ``z`` and real ``a`` (broadcast), by real products only."""
    out = np.empty(np.broadcast_shapes(z.shape, np.shape(a)), dtype=np.complex128)
    out.real = -(z.imag * a)
    out.imag = z.real * a
    return out


def _real_dot(a, b):
    """``Re(sum(a * b))`` over the last axis, with numpy's pairwise sums (no BLAS, no FMA)."""
    return np.sum(a.real * b.real, axis=-1) - np.sum(a.imag * b.imag, axis=-1)


def _gradient_hessian(c, q, beta):
    """Gradient ``(M, 3)`` and Hessian ``(M, 3, 3)`` of the objective in (dx, dy, beta).

    ``c`` and ``q`` are the values and derivatives ``(f, f_x, f_y, f_xx, f_yy, f_xy)`` of
    ``C(d)`` and ``Q(d)`` (see :func:`truth_fit`).
    """
    c00, c10, c01, c20, c02, c11 = c
    q00, q10, q01, q20, q02, q11 = q
    grad = np.stack(
        [-2 * beta * c10 + beta**2 * q10, -2 * beta * c01 + beta**2 * q01,
         -2 * c00 + 2 * beta * q00],
        axis=1,
    )  # fmt: skip
    hxx = -2 * beta * c20 + beta**2 * q20
    hyy = -2 * beta * c02 + beta**2 * q02
    hxy = -2 * beta * c11 + beta**2 * q11
    hxb = -2 * c10 + 2 * beta * q10
    hyb = -2 * c01 + 2 * beta * q01
    hbb = 2 * q00
    H = np.stack(
        [np.stack([hxx, hxy, hxb], 1), np.stack([hxy, hyy, hyb], 1),
         np.stack([hxb, hyb, hbb], 1)],
        axis=1,
    )  # fmt: skip
    return grad, H


def _damped_newton(terms, dx, dy, max_iterations=500):
    """Nearest local minimum downhill from (dx, dy): Levenberg-Marquardt-damped Newton.

    For references whose speckles do not match the science target's the objective has many
    local minima, and a plain Newton iteration can jump between basins or stop on a saddle.
    Here every accepted step lowers the objective (steps are limited to 0.25 px and damped
    until the damped Hessian is positive definite), so the result is the local minimum whose
    basin holds the start. Once the Hessian is positive definite and the Newton step is below
    1e-3 px, plain Newton steps finish the job (quadratic convergence; the objective can no
    longer resolve the decrease at the end). Returns ``(M, 3)`` of (dx, dy, beta).
    """
    m = dx.size
    c, q = terms(dx, dy)
    beta = c[0] / q[0]

    def energy(c, q, beta):  # objective minus the constant sum(w psf**2)
        return beta * (beta * q[0] - 2.0 * c[0])

    e = energy(c, q, beta)
    mu = np.full(m, 1e-3)
    eye = np.eye(3)
    done = np.zeros(m, dtype=bool)
    for _ in range(max_iterations):
        grad, H = _gradient_hessian(c, q, beta)
        positive = rep.positive_definite_3x3(H)
        safe_H = np.where(positive[:, None, None], H, eye)
        newton = -rep.solve_3x3(safe_H, grad)
        size = np.maximum(np.abs(newton[:, :2]).max(axis=1), np.abs(newton[:, 2] / beta))
        size[~positive] = np.inf
        done = size < 1e-10
        if done.all():
            break
        near = size < 1e-3
        # damped steps elsewhere: H + mu * diag(|H_ii|), mu raised until positive definite
        diag = np.abs(np.diagonal(H, axis1=1, axis2=2)) + 1e-300
        for _ in range(200):
            A = H + (mu[:, None] * diag)[:, :, None] * eye
            bad = ~rep.positive_definite_3x3(A)
            if not bad.any():
                break
            mu[bad] *= 4.0
        step = -rep.solve_3x3(A, grad)
        step[near] = newton[near]
        big = np.abs(step[:, :2]).max(axis=1) > 0.25
        step[big] *= (0.25 / np.abs(step[big, :2]).max(axis=1))[:, None]
        step[done] = 0.0
        tdx, tdy, tbeta = dx + step[:, 0], dy + step[:, 1], beta + step[:, 2]
        tc, tq = terms(tdx, tdy)
        te = energy(tc, tq, tbeta)
        accept = ~done & (near | (te <= e))
        dx, dy, beta = (np.where(accept, t, v) for t, v in ((tdx, dx), (tdy, dy), (tbeta, beta)))
        c = tuple(np.where(accept, t, v) for t, v in zip(tc, c, strict=True))
        q = tuple(np.where(accept, t, v) for t, v in zip(tq, q, strict=True))
        e = np.where(accept, te, e)
        mu = np.where(accept, np.maximum(mu / 3.0, 1e-12), mu * 4.0)
    if not done.all():
        raise RuntimeError("truth fit did not converge to a minimum (simulator bug)")
    return np.stack([dx + newton[:, 0], dy + newton[:, 1], beta + newton[:, 2]], axis=1)


def truth_fit(sci_images, psf_images, weight, start, *, damped=False):
    """Exact minimiser of sum(weight * (psf - beta * shift(sci, dx, dy))**2) per pair.

    Parameters
    ----------
    sci_images : (K, ny, nx) float64, band-limited (no power at or near Nyquist)
    psf_images : (M, ny, nx) float64
    weight : (ny, nx) float64 (the squared mask)
    start : (K, M, 3) array of starting (dx, dy, beta)
    damped : bool
        Use :func:`_damped_newton` (the local minimum downhill from the start) instead of
        the plain Newton iteration, for references whose speckles do not match.

    Returns
    -------
    (K, M, 3) array of (dx, dy, beta).

    The objective ``E = sum(w p**2) - 2 beta C(d) + beta**2 Q(d)`` is evaluated with
    ``C(d) = sum(w p s_d)`` and ``Q(d) = sum(w s_d**2)`` in closed form: both are finite
    Fourier sums, separable in (dx, dy), so values and exact first and second
    derivatives cost two small matrix products. Newton's method then converges
    quadratically.
    """
    K, ny, nx = sci_images.shape
    M = psf_images.shape[0]
    N = ny * nx
    F = sfft.rfft2(sci_images, axes=(1, 2))
    kymax, kxmax = _band_slices(F)
    rows = np.r_[0 : kymax + 1, ny - kymax : ny] if kymax > 0 else np.array([0])
    ky = signed_indices(ny)[rows]
    kx = np.arange(kxmax + 1, dtype=np.float64)
    cw = np.where((kx == 0) | (2 * kx == nx), 1.0, 2.0)
    A = np.conj(sfft.rfft2(weight * psf_images, axes=(1, 2)))[:, rows][:, :, : kxmax + 1]
    real_scale(A, cw / N)
    Fb = F[:, rows][:, :, : kxmax + 1]
    # Q: Fourier series of sci**2 (band up to 2 kmax) from a 2x upsampled grid
    Ny, Nx = 2 * ny, 2 * nx
    qmax_y, qmax_x = 2 * kymax, 2 * kxmax
    qrows = np.r_[0 : qmax_y + 1, Ny - qmax_y : Ny] if qmax_y > 0 else np.array([0])
    Ky = signed_indices(Ny)[qrows]
    Kx = np.arange(qmax_x + 1, dtype=np.float64)
    cw2 = np.where((Kx == 0) | (Kx == nx), 1.0, 2.0)
    W = sfft.fft2(weight)
    Wq = np.conj(W[np.ix_(Ky % ny, Kx.astype(int) % nx)])
    # the phase factors exp(-2 pi i k d / n) and their derivatives i a exp(...), a = -2 pi k / n
    ty, tx, tY, tX = -ky / ny, -kx / nx, -Ky / ny, -Kx / nx  # turns per pixel of shift
    ay, ax, aY, aX = (2.0 * np.pi * t for t in (ty, tx, tY, tX))
    result = np.empty((K, M, 3))
    for k in range(K):
        up = np.zeros((Ny, nx + 1), dtype=np.complex128)
        up[np.ix_(ky % Ny, np.arange(kxmax + 1))] = Fb[k]
        sci_up = sfft.irfft2(up, s=(Ny, Nx)) * 4.0
        G = sfft.rfft2(sci_up**2)[qrows][:, : qmax_x + 1]
        G.real /= 4.0 * N
        G.imag /= 4.0 * N
        MQ = real_scale(rep.complex_multiply(G, Wq), cw2)
        MC = rep.complex_multiply(A, Fb[k][None])  # (M, ry, rx)

        def terms(dx, dy, MC=MC, MQ=MQ):
            ex = rep.expi_2pi(tx[None, :] * dx[:, None])  # (M, rx)
            ey = rep.expi_2pi(ty[None, :] * dy[:, None])  # (M, ry)
            EX = np.stack([ex, _times_i(ex, ax), real_scale(ex.copy(), -(ax**2))], axis=2)
            V = rep.exact_small_matmul(MC, EX)  # (M, ry, 3)
            ey_y = _times_i(ey, ay)
            c00 = _real_dot(ey, V[:, :, 0])
            c10 = _real_dot(ey, V[:, :, 1])  # d/ddx
            c20 = _real_dot(ey, V[:, :, 2])
            c01 = _real_dot(ey_y, V[:, :, 0])  # d/ddy
            c02 = -_real_dot(real_scale(ey.copy(), ay**2), V[:, :, 0])
            c11 = _real_dot(ey_y, V[:, :, 1])
            eX = rep.expi_2pi(tX[None, :] * dx[:, None])  # (M, qx)
            eY = rep.expi_2pi(tY[None, :] * dy[:, None])  # (M, qy)
            EXQ = np.concatenate([eX, _times_i(eX, aX), real_scale(eX.copy(), -(aX**2))]).T
            U = rep.exact_small_matmul(MQ, EXQ).T.reshape(3, M, -1)  # (3, M, qy)
            eY_y = _times_i(eY, aY)
            q00 = _real_dot(eY, U[0])
            q10 = _real_dot(eY, U[1])
            q20 = _real_dot(eY, U[2])
            q01 = _real_dot(eY_y, U[0])
            q02 = -_real_dot(real_scale(eY.copy(), aY**2), U[0])
            q11 = _real_dot(eY_y, U[1])
            return (c00, c10, c01, c20, c02, c11), (q00, q10, q01, q20, q02, q11)

        dx, dy, beta = (start[k, :, i].astype(np.float64).copy() for i in range(3))
        if damped:
            result[k] = _damped_newton(terms, dx, dy)
            continue
        c, q = terms(dx, dy)
        beta = c[0] / q[0]
        for iteration in range(50):
            grad, H = _gradient_hessian(c, q, beta)
            step = -rep.solve_3x3(H, grad)
            # keep steps sane if a start were far from the optimum
            big = np.abs(step[:, :2]).max(axis=1) > 0.25
            step[big] *= (0.25 / np.abs(step[big, :2]).max(axis=1))[:, None]
            dx, dy, beta = dx + step[:, 0], dy + step[:, 1], beta + step[:, 2]
            c, q = terms(dx, dy)
            size = max(np.abs(step[:, :2]).max(), np.abs(step[:, 2] / beta).max())
            if size < 1e-11 or (iteration >= 8 and size < 1e-8):  # quadratic, or rounding
                break
        # a minimum, not a saddle: the Hessian must be positive definite
        if size > 1e-8 or not np.all(rep.positive_definite_3x3(H)):
            raise RuntimeError("truth fit did not converge to a minimum (simulator bug)")
        result[k, :, 0], result[k, :, 1], result[k, :, 2] = dx, dy, beta
    return result
