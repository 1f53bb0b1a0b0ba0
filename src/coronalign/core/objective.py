"""The registration's objective, its derivatives and its value on the integer grid.

For a reference PSF ``p``, a science image ``s`` and a PSFMASK ``m`` the fit minimises

    f(d, beta) = Σ w · (p − beta · T_d s)²

where ``T_d`` is the periodic Fourier shift of :mod:`coronalign.core.fourier` and the weight
is ``w = m²`` (``weighting="official"``: the official step multiplies the residual by the
mask) or ``w = m`` (``weighting="linear"``). For a 0/1 mask the two are the same; real
NIRCam masks are fractional. Sign convention: ``xshift = x_psf − x_sci`` along columns.

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
their first and second derivatives cost a few small matrix products per evaluation
(:class:`Objectives`); no inverse FFT is needed inside the Newton iterations
(:mod:`coronalign.core.newton`). Since ``A`` and ``B`` are real, ``H`` and ``G`` are folded
into real matrices of the same size (:mod:`coronalign.core.folded`): the products cost
half the multiply-adds of complex ones. ``G`` depends only on the science image and the weight, so
it is computed once per science integration and shared by every PSF. At integer shifts
``A²/B`` is the masked cross-correlation (:func:`cross_correlation`), which gives the
search its candidate starts (:mod:`coronalign.core.register`).

Reproducible bits
-----------------
Every operation on the way to a result has its order of rounding fixed by this code:
matrix products and complex products go through :mod:`coronalign.core.reproducible`, the
2 × 2 and 3 × 3 linear algebra is written out, and the phases come from
:func:`coronalign.core.reproducible.sincos_2pi`. The fitted values are therefore the same
bits for any BLAS kernel, BLAS thread count and CPU.
"""

import functools
from dataclasses import dataclass

import numpy as np
import scipy.fft

from coronalign.core.choices import WEIGHTINGS
from coronalign.core.folded import Columns, Rows, column_factors, fold, row_factors
from coronalign.core.fourier import phase_derivatives, shift_spectrum
from coronalign.core.reproducible import (
    ExactLeft,
    complex_multiply,
    exact_matmul,
    exact_small_matmul,
    sincos_2pi,
)
from coronalign.errors import ParameterError

__all__ = [
    "CANCELLATION",
    "WEIGHTINGS",
    "Objectives",
    "ReferenceTerms",
    "ScienceTerms",
    "WeightTerms",
    "cross_correlation",
    "derivative_terms",
    "fit_statistics",
    "prepare_reference",
    "prepare_science",
    "prepare_weight",
    "profile_derivatives",
]


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
        What multiplies the spectrum of ``u²`` in ``G`` (see ``_folded_norm``).
    norm_parts : tuple of ndarray
        Its real and imaginary parts, contiguous.
    """

    weight: np.ndarray
    rspectrum: np.ndarray
    total: float
    count: int
    norm_factor: np.ndarray
    norm_parts: tuple = ()


class ScienceTerms:
    """Everything about one science image that the fits against all PSFs share.

    Attributes
    ----------
    shape : tuple of int
        ``(ny, nx)``.
    rspectrum : ndarray
        ``rfft2(s)``.
    norm_coefficients : ExactLeft
        ``G`` times the column weights, folded into a real matrix of shape
        ``(2 ny + 1, 2 nx + 1)`` (:mod:`coronalign.core.folded`), split for exact products.
    energy : float
        ``Σ w s²``; zero when the science image has no weighted signal.
    """

    def __init__(self, science, weight_terms):
        self._science = science
        self._weight_terms = weight_terms
        self.weight = weight_terms.weight
        self.shape = science.shape
        self.rspectrum = scipy.fft.rfft2(science)
        self.spectrum_parts = (
            np.ascontiguousarray(self.rspectrum.real),
            np.ascontiguousarray(self.rspectrum.imag),
        )
        ny, nx = science.shape
        # The folded matrix goes where the split keeps its second slice: split in place.
        stacked = np.empty((2 * (2 * ny + 1), 2 * nx + 1))
        folded = _folded_norm(science, self.rspectrum, weight_terms, stacked[2 * ny + 1 :])
        self.norm_coefficients = ExactLeft(folded, out=stacked)
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
    #: conj(rfft2(w p)) times the half-spectrum column weights / (ny nx): real, imaginary.
    cross_parts: tuple = ()


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
    norm_factor = _norm_factor(w)
    return WeightTerms(
        weight=w,
        rspectrum=scipy.fft.rfft2(w),
        total=float(w.sum()),
        count=int(np.count_nonzero(w > 0)),
        norm_factor=norm_factor,
        norm_parts=(np.ascontiguousarray(norm_factor.real), np.ascontiguousarray(norm_factor.imag)),
    )


def _column_weights(nx, ncols):
    """Weights that turn a sum over half of a Hermitian spectrum into the full sum."""
    weights = np.full(ncols, 2.0)
    weights[0] = 1.0
    if ncols == nx // 2 + 1 and nx % 2 == 0:
        weights[-1] = 1.0  # the Nyquist column appears once in the full spectrum
    return weights


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


def _upsampled(rspectrum, shape):
    """The band-limited interpolant ``u`` of an image on the fine grid, from its ``rfft2``.

    The spectrum is laid on the fine grid with the Nyquist terms of an even axis split in
    halves between ``+n/2`` and ``−n/2`` (a sum of pure exponentials that reproduces the
    ``cos`` Nyquist convention of :func:`coronalign.core.fourier.axis_phase`); only its
    non-zero columns are transformed along the rows, then the rows back to real values.
    """
    ny, nx = shape
    my, mx = _fine_grid(ny, nx)
    half = ny // 2
    fine = np.zeros((my, nx // 2 + 1), dtype=np.complex128)
    fine[: half + 1] = rspectrum[: half + 1]  # frequencies 0 … ny // 2
    fine[my - half :] = rspectrum[ny - half :]  # −(ny // 2) … −1
    if ny % 2 == 0:  # the Nyquist row, split between +ny/2 and −ny/2
        fine[half] *= 0.5
        fine[my - half] *= 0.5
    if nx % 2 == 0:
        fine[:, -1] *= 0.5
    return scipy.fft.irfft(scipy.fft.ifft(fine, axis=0, overwrite_x=True), n=mx, axis=1)


def _folded_norm(science, rspectrum, weight_terms, out):
    """Coefficients ``G`` of ``B(d) = Σ w (T_d s)²``, folded (:func:`coronalign.core.folded.fold`).

    ``T_d s`` is the band-limited interpolant ``u`` of ``s`` evaluated at ``x − d``; ``u²``
    has twice the bandwidth (frequencies ``−n … n`` along an axis of ``n`` pixels), so it
    is sampled on a grid of at least ``2n + 1`` points (a fast FFT length) where its
    spectrum is exact. Its coefficient at frequency ``q`` times ``conj(Ŵ_q)`` is ``G_q``;
    only ``q_x ≥ 0`` is kept (the rest is the complex conjugate). Rows ``q_y = −n_y … n_y``,
    columns ``q_x = 0 … n_x``, folded into ``out`` (shape ``(2 n_y + 1, 2 n_x + 1)``).
    """
    ny, nx = science.shape
    my, _ = _fine_grid(ny, nx)
    upsampled = _upsampled(rspectrum, science.shape)
    squared = scipy.fft.rfft2(upsampled * upsampled)
    # Rows q_y = −n_y … −1 then 0 … n_y; columns q_x = 0 … n_x.
    coefficients = np.concatenate((squared[my - ny :, : nx + 1], squared[: ny + 1, : nx + 1]))
    c_real, c_imag = coefficients.real, coefficients.imag
    f_real, f_imag = weight_terms.norm_parts
    real, imag = c_real * f_real, c_real * f_imag
    real -= c_imag * f_imag
    imag += c_imag * f_real
    rows, columns = Rows.make("symmetric", ny), Columns.make("half", nx)
    return fold(real, imag, rows, columns, out)


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
    spectrum = scipy.fft.rfft2(wp)
    ny, nx = p.shape
    weights = _column_weights(nx, nx // 2 + 1) / (ny * nx)
    return ReferenceTerms(
        image=p,
        weighted_rspectrum=spectrum,
        energy=float(np.sum(wp * p)),
        cross_parts=(spectrum.real * weights, spectrum.imag * -weights),
    )


class Objectives:
    """``A(d)``, ``B(d)`` and their derivatives for one science image and several PSFs.

    Every evaluation is stacked over the fits asked for (each a PSF at its own shift),
    and every product goes through :mod:`coronalign.core.reproducible`, so the results are
    the same bits for any grouping, thread count, BLAS library and CPU. The complex sums
    are evaluated in their real, folded form (:mod:`coronalign.core.folded`).

    Parameters
    ----------
    science_terms : ScienceTerms
        From :func:`prepare_science`.
    references : sequence of ReferenceTerms
        From :func:`prepare_reference`, one per PSF (indexed by position).
    out : ndarray of float64, optional
        Where to keep the split cross terms, shape :meth:`cross_shape`; its contents are
        overwritten. A caller that fits one science image after another passes the same
        array each time: at 640 × 640 it is about 60 MB, which would otherwise come as
        fresh pages from the kernel for every science image (glibc returns blocks that
        large to the kernel when they are freed).
    """

    @staticmethod
    def cross_shape(shape, count):
        """Shape of the ``out`` array for ``count`` PSFs on a frame of ``shape``."""
        ny, nx = shape
        return (count, 2 * ny, Columns.make("rfft", nx).width)

    def __init__(self, science_terms, references, out=None):
        ny, nx = science_terms.shape
        self.ny, self.nx = ny, nx
        self.rows_a, self.columns_a = Rows.make("fft", ny), Columns.make("rfft", nx)
        self.rows_b, self.columns_b = Rows.make("symmetric", ny), Columns.make("half", nx)
        # H = S conj(FFT(w p)) with the half-spectrum weights, folded into a real matrix and
        # split for exact products, one PSF at a time (its arrays stay in the cache).
        real, imag, other = (np.empty((ny, nx // 2 + 1)) for _ in range(3))
        s_real, s_imag = science_terms.spectrum_parts

        def fill(m, matrix):
            p_real, p_imag = references[m].cross_parts
            np.multiply(s_real, p_real, out=real)
            np.multiply(s_imag, p_imag, out=other)
            np.subtract(real, other, out=real)
            np.multiply(s_real, p_imag, out=imag)
            np.multiply(s_imag, p_real, out=other)
            np.add(imag, other, out=imag)
            fold(real, imag, self.rows_a, self.columns_a, out=matrix)

        shape = self.cross_shape((ny, nx), len(references))
        if out is None:
            stacked = np.empty(shape)
        elif out.shape != shape or out.dtype != np.float64:
            raise ValueError(f"out has shape {out.shape} and type {out.dtype}, not {shape} float64")
        else:
            stacked = out
        self.cross = ExactLeft.in_place(stacked, fill)
        self.norm = science_terms.norm_coefficients
        self.energy = np.array([ref.energy for ref in references])
        # The phase factors of both sums along each axis, from one evaluation per axis.
        self.x_frequencies = np.concatenate(
            (self.columns_a.frequencies, self.columns_b.frequencies)
        )
        self.y_frequencies = np.concatenate(
            (self.rows_a.even_frequencies, self.rows_b.even_frequencies)
        )
        self._x_nyquist = np.flatnonzero(np.abs(self.columns_a.frequencies) == 0.5)
        self._y_nyquist = np.flatnonzero(np.abs(self.rows_a.even_frequencies) == 0.5)

    def _phases(self, d, orders):
        """Phase factors (and derivatives) of both sums along x and y, from one evaluation.

        Returns ``(px, ex, py, ey)``: along x for ``A`` and ``B``, then along y. The first
        factors of each axis are those of an FFT axis, whose Nyquist factor is the real
        ``cos(π d)`` (:func:`coronalign.core.fourier.axis_phases`).
        """
        if self.x_frequencies.size != self.y_frequencies.size:
            px, ex = self._axis_phases(self.x_frequencies, self.columns_a.size, d[:, 0], orders)
            py, ey = self._axis_phases(self.y_frequencies, self.rows_a.count, d[:, 1], orders)
            return px, ex, py, ey
        # Both axes stacked (2, k): the same operations, element by element.
        frequencies = np.stack((self.x_frequencies, self.y_frequencies))[:, None, :]
        cos, sin = sincos_2pi(np.ascontiguousarray(d.T)[:, :, None] * -frequencies)
        omega = 2.0 * np.pi * frequencies  # the derivative multiplies by -i * omega
        phases = np.empty((2, len(d), orders, frequencies.shape[-1]), dtype=np.complex128)
        real, imag = cos, sin
        for order in range(orders):
            phases[:, :, order, :].real = real
            phases[:, :, order, :].imag = imag
            real, imag = imag * omega, -(real * omega)
        x, y = phases[0], phases[1]
        x.imag[..., self._x_nyquist] = 0.0
        y.imag[..., self._y_nyquist] = 0.0
        x_count, y_count = self.columns_a.size, self.rows_a.count
        return x[..., :x_count], x[..., x_count:], y[..., :y_count], y[..., y_count:]

    @staticmethod
    def _axis_phases(frequencies, count, shift, orders):
        """Phase factors (and derivatives) along one axis (see :meth:`_phases`)."""
        phases = phase_derivatives(frequencies, shift, orders)
        nyquist = np.flatnonzero(np.abs(frequencies[:count]) == 0.5)
        phases.imag[..., nyquist] = 0.0
        return phases[..., :count], phases[..., count:]

    def matrices(self, index, d, orders=3):
        """Contractions of ``A`` and ``B`` for PSFs ``index`` at shifts ``d`` (k, 2).

        Returns two real (k, orders, orders) arrays whose entry ``[i, j]`` is the
        ``i``-th derivative in y of the ``j``-th derivative in x (value ``[0, 0]``).
        """
        k = len(index)
        px, ex, py, ey = self._phases(d, orders)
        rows, columns = self.rows_a, self.columns_a
        px = column_factors(px, columns)
        bound = columns.bounds(orders)
        a = exact_small_matmul(
            row_factors(py, rows), exact_matmul(self.cross.select(index), px, bound)
        )
        rows, columns = self.rows_b, self.columns_b
        ex = column_factors(ex, columns).transpose(1, 0, 2).reshape(columns.width, k * orders)
        # One product for all PSFs: G is read once (it is the largest array here).
        bound = np.tile(columns.bounds(orders), k)
        products = exact_matmul(self.norm, ex, bound)
        products = products.reshape(rows.size, k, orders).transpose(1, 0, 2)
        b = exact_small_matmul(row_factors(ey, rows), products)
        return a, b


def derivative_terms(matrix):
    """Value, gradient and Hessian of ``A`` or ``B`` from their contraction matrices.

    Parameters
    ----------
    matrix : ndarray, shape (k, 3, 3)
        From :meth:`Objectives.matrices` (``[i, j]``: ``i``-th y and ``j``-th x derivative).

    Returns
    -------
    value : ndarray, shape (k,)
    gradient : ndarray, shape (k, 2)
        Derivatives along x, then y.
    hessian : ndarray, shape (k, 2, 2)
    """
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


def profile_derivatives(a_terms, b_terms):
    """Gradient and Hessian of ``R = A²/B`` (the objective is ``f = Σ w p² − R``).

    Parameters
    ----------
    a_terms, b_terms : tuple of ndarray
        Value, gradient and Hessian of ``A`` and of ``B`` (:func:`derivative_terms`).

    Returns
    -------
    gradient : ndarray, shape (k, 2)
    hessian : ndarray, shape (k, 2, 2)
    """
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


#: Below this fraction of ``Σ w p²`` the objective ``Σ w p² − A²/B`` loses too many
#: digits to cancellation (A and B carry about 12): it is then taken from the residual
#: image instead.
CANCELLATION = 1e-5


def fit_statistics(science_terms, references, d, a, b):
    """``beta`` and ``f = Σ w (p − beta T_d s)²`` of the fits at shifts ``d``.

    From ``A`` and ``B`` where that is accurate; from the residual image (one inverse
    transform) where ``f`` is a tiny fraction of ``Σ w p²`` (a near-perfect match).

    Parameters
    ----------
    science_terms : ScienceTerms
        The science image's terms.
    references : sequence of ReferenceTerms
        The PSF of each fit.
    d : ndarray, shape (k, 2)
        The fits' shifts.
    a, b : ndarray, shape (k,)
        ``A`` and ``B`` at those shifts.

    Returns
    -------
    beta, objective : ndarray, shape (k,)
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


def cross_correlation(science_terms, references):
    """Masked cross-correlation score ``A²/B`` at every integer shift.

    Parameters
    ----------
    science_terms : ScienceTerms
        The science image's terms.
    references : sequence of ReferenceTerms
        The PSFs.

    Returns
    -------
    ndarray, shape (len(references), ny, nx)
        The score at each integer shift (FFT order); ``-inf`` where ``A ≤ 0`` (a negative
        flux scale) or ``B = 0``.
    """
    ny, nx = science_terms.shape
    spectra = np.stack([ref.weighted_rspectrum for ref in references])
    product = complex_multiply(spectra, np.conj(science_terms.rspectrum), out=spectra)
    a = scipy.fft.irfft2(product, s=(ny, nx))
    b = science_terms.norm_grid
    positive = (a > 0) & (b > 0)
    return np.where(positive, a * a / np.where(b > 0, b, 1.0), -np.inf)
