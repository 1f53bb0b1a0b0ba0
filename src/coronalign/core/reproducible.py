"""Arithmetic whose results do not depend on the CPU, the BLAS library or threads.

The same numpy and scipy can round differently on two machines, or on one machine
under two settings, in three places:

* **BLAS** (``@``, ``np.matmul``, ``np.linalg``): the order of the sums inside a matrix
  product depends on the kernel OpenBLAS picks for the CPU (``OPENBLAS_CORETYPE``) and on
  its thread count.
* **numpy's run-time SIMD dispatch**: a complex product ``a * b`` uses fused
  multiply-adds on CPUs that have them (x86-64-v3 and later) and separate roundings on
  others; so do ``np.sin``, ``np.cos`` and ``np.exp``.
* **libm**: glibc picks FMA or non-FMA variants of ``exp``/``sin``/``cos`` at run time,
  and ``np.exp`` of a complex array calls them.

A fit amplifies a difference in the last bit into a different sequence of iterates, so
the products would differ. This module gives the numerical core what it needs with
results fixed by the code alone:

* :func:`sincos_2pi`: cosine and sine from the basic operations ``+ - * /`` and
  :func:`numpy.rint`, which IEEE 754 rounds the same way everywhere;
* :func:`complex_multiply`: complex products from real products and sums, each a
  separate numpy operation (so no operation can be fused);
* :class:`ExactLeft` and :func:`exact_matmul`: matrix products through BLAS in which every
  product and every partial sum BLAS forms is exact, so the order BLAS chooses cannot
  change a bit (operands split into slices of a few significant bits with a common
  exponent per row or column, as in Ozaki et al. 2012, "Error-free transformations of
  matrix multiplication"); the slices' products are then added in a fixed order.

numpy, scipy and the C library offer no such mode (OpenBLAS has no "conditional
numerical reproducibility" switch; MKL's ``MKL_CBWR`` is MKL-only), hence this module.
Elementwise real ``+ - * /``, ``sqrt``, sums along an axis (``np.sum``, pairwise in a fixed
order) and pocketfft (``scipy.fft``, no run-time dispatch) are reproducible as they are.
"""

import math

import numpy as np

__all__ = [
    "ExactLeft",
    "complex_multiply",
    "exact_matmul",
    "exact_small_matmul",
    "expi_2pi",
    "sincos_2pi",
]

# Taylor coefficients of sin(x)/x and cos(x) in x**2, highest order first; on |x| <= pi/4
# the first omitted terms are below 1e-19.
_SIN = tuple((-1) ** n / math.factorial(2 * n + 1) for n in range(8, -1, -1))
_COS = tuple((-1) ** n / math.factorial(2 * n) for n in range(9, -1, -1))
_TWO_PI = 2.0 * math.pi


def _horner(coefficients, x2):
    value = np.full_like(x2, coefficients[0])
    for coefficient in coefficients[1:]:
        value *= x2
        value += coefficient
    return value


def sincos_2pi(turns):
    """``cos(2π t)`` and ``sin(2π t)`` computed the same way on every CPU.

    Parameters
    ----------
    turns : array_like
        Angles in turns (cycles); any real values.

    Returns
    -------
    cos, sin : ndarray of float64
        Accurate to about one unit in the last place.
    """
    t = np.asarray(turns, dtype=np.float64)
    r = t - np.rint(t)  # exact: [-1/2, 1/2]
    quadrant = np.rint(4.0 * r)  # -2 … 2
    x = (r - 0.25 * quadrant) * _TWO_PI  # |x| <= pi/4; the subtraction is exact
    x2 = x * x
    s = _horner(_SIN, x2) * x
    c = _horner(_COS, x2)
    q = np.mod(quadrant, 4.0)
    cos = np.where(q == 0, c, np.where(q == 1, -s, np.where(q == 2, -c, s)))
    sin = np.where(q == 0, s, np.where(q == 1, c, np.where(q == 2, -s, -c)))
    return cos, sin


def expi_2pi(turns):
    """``exp(2πi t)`` as a complex array, computed the same way on every CPU.

    Parameters
    ----------
    turns : array_like
        Angles in turns.

    Returns
    -------
    ndarray of complex128
    """
    cos, sin = sincos_2pi(turns)
    out = np.empty(cos.shape, dtype=np.complex128)
    out.real = cos
    out.imag = sin
    return out


def complex_multiply(a, b, out=None):
    """``a * b`` for complex arrays (broadcast), with no fused operation.

    Parameters
    ----------
    a, b : array_like of complex
        Factors; they broadcast against each other.
    out : ndarray of complex, optional
        Where to write the product (may be ``a`` itself).

    Returns
    -------
    ndarray of complex
    """
    a = np.asarray(a)
    b = np.asarray(b)
    ar, ai, br, bi = a.real, a.imag, b.real, b.imag
    real = np.multiply(ar, br)
    other = np.multiply(ai, bi)
    real -= other
    imag = np.multiply(ar, bi)
    np.multiply(ai, br, out=other)
    imag += other
    if out is None:
        out = np.empty(real.shape, dtype=np.result_type(a, b, np.complex64))
    out.real = real
    out.imag = imag
    return out


# ---------------------------------------------------------------------------------------
# Exact matrix products

#: Slices per operand: two slices of ~20 bits keep ~40 significant bits relative to the
#: largest entry of each row (column), ample for the objective's sums (float64 rounding in
#: a sum of a few hundred terms already costs several bits).
SLICES = 2


def _slice_bits(length):
    """Bits per slice for a sum of ``length`` products of a real and an imaginary part.

    The integers of a left slice (at most ``2**p``) times those of a right slice (at most
    ``2**p``), summed over ``length`` terms, must stay below ``2**53``.
    """
    return (53 - math.ceil(math.log2(max(2, length)))) // 2


def _slices(matrix, bits, axis, out=None):
    """Split a real matrix into ``SLICES`` parts with a common exponent along ``axis``.

    Every entry of slice ``j`` is an integer of at most ``bits`` bits times
    ``2**(e - (j + 1) * bits)``, where ``2**e`` bounds the largest magnitude along ``axis``
    (per row for ``axis=-1``, per column for ``axis=-2``). The remainder after the last
    slice is dropped (below ``2**(-SLICES * bits)`` of that magnitude). ``out`` (a
    sequence of arrays shaped like ``matrix``) receives the slices; new ones by default.
    """
    largest = np.maximum(
        np.max(matrix, axis=axis, keepdims=True), -np.min(matrix, axis=axis, keepdims=True)
    )
    _, exponent = np.frexp(np.where(largest > 0, largest, 1.0))
    if out is None:
        out = [np.empty_like(matrix) for _ in range(SLICES)]
    rest = matrix
    for j, part in enumerate(out, start=1):
        if j > 1:  # exact: what the previous slices left
            rest = np.subtract(rest, out[j - 2], out=None if j == 2 else rest)
        np.multiply(rest, np.ldexp(1.0, bits * j - exponent), out=part)
        np.rint(part, out=part)
        part *= np.ldexp(1.0, exponent - bits * j)  # exact: powers of two, rint
    return out


def _real_blocks(matrix, side):
    """The real matrix that multiplies like a complex one.

    ``left``: ``[Re, Im]`` side by side (rows × 2 columns); ``right``: ``[[Re, Im],
    [-Im, Re]]`` (2 rows × 2 columns), so that ``left @ right = [Re(AB), Im(AB)]``.
    """
    re, im = matrix.real, matrix.imag
    if side == "left":
        return np.concatenate((re, im), axis=-1)
    top = np.concatenate((re, im), axis=-1)
    bottom = np.concatenate((-im, re), axis=-1)
    return np.concatenate((top, bottom), axis=-2)


class ExactLeft:
    """A complex left factor, split once for many :func:`exact_matmul` products.

    Parameters
    ----------
    matrix : array_like of complex, shape (..., m, k)
        The left factor (leading dimensions are a batch).
    """

    def __init__(self, matrix):
        matrix = np.asarray(matrix, dtype=np.complex128)
        self.shape = matrix.shape
        self.bits = _slice_bits(2 * matrix.shape[-1])
        blocks = _real_blocks(matrix, "left")
        # Slices stacked along the rows: one BLAS call multiplies all of them.
        m = matrix.shape[-2]
        self.stacked = np.empty((*blocks.shape[:-2], SLICES * m, blocks.shape[-1]))
        parts = [self.stacked[..., j * m : (j + 1) * m, :] for j in range(SLICES)]
        _slices(blocks, self.bits, axis=-1, out=parts)

    def select(self, index):
        """The factors ``index`` of a batch (first dimension), still split.

        Parameters
        ----------
        index : array_like of int
            Batch entries to keep, in order.

        Returns
        -------
        ExactLeft
        """
        index = np.asarray(index)
        if index.size == self.shape[0] and np.array_equal(index, np.arange(self.shape[0])):
            return self
        chosen = object.__new__(ExactLeft)
        chosen.shape = (index.size, *self.shape[1:])
        chosen.bits = self.bits
        chosen.stacked = self.stacked[index]
        return chosen


def exact_matmul(left, right):
    """Complex matrix product ``left @ right`` with bits independent of BLAS and CPU.

    Parameters
    ----------
    left : ExactLeft or array_like of complex, shape (..., m, k)
        Left factor (split here if it is not an :class:`ExactLeft`).
    right : array_like of complex, shape (..., k, n)
        Right factor; batch dimensions broadcast as in :func:`numpy.matmul`.

    Returns
    -------
    ndarray of complex128, shape (..., m, n)
        The product, accurate to about ``2**-40`` of the largest terms of each sum.
    """
    if not isinstance(left, ExactLeft):
        left = ExactLeft(left)
    right = np.asarray(right, dtype=np.complex128)
    m, n = left.shape[-2], right.shape[-1]
    right_slices = _slices(_real_blocks(right, "right"), left.bits, axis=-2)
    # Every entry of these BLAS products is an exact sum (see _slice_bits); the slices'
    # contributions are then added in a fixed order, largest first.
    first = np.matmul(left.stacked, right_slices[0])  # (..., SLICES * m, 2n)
    second = np.matmul(left.stacked[..., :m, :], right_slices[1])
    total = first[..., :m, :] + (first[..., m : 2 * m, :] + second)
    out = np.empty((*total.shape[:-1], n), dtype=np.complex128)
    out.real = total[..., :n]
    out.imag = total[..., n:]
    return out


def exact_small_matmul(left, right):
    """Complex ``left @ right`` for small outputs, without BLAS.

    Every output is a sum of real products taken along the contraction axis by
    :func:`numpy.sum` (pairwise, in an order fixed by numpy's code), so the bits do not
    depend on the CPU. Cheaper than :func:`exact_matmul` when the result has only a few
    entries per batch (e.g. 3 × 3).

    Parameters
    ----------
    left : array_like of complex, shape (..., m, k)
    right : array_like of complex, shape (..., k, n)

    Returns
    -------
    ndarray of complex128, shape (..., m, n)
    """
    left = np.asarray(left, dtype=np.complex128)[..., :, None, :]
    right = np.swapaxes(np.asarray(right, dtype=np.complex128), -1, -2)[..., None, :, :]
    lr, li, rr, ri = left.real, left.imag, right.real, right.imag
    real = lr * rr
    real -= li * ri
    imag = lr * ri
    imag += li * rr
    out = np.empty(real.shape[:-1], dtype=np.complex128)
    out.real = np.sum(real, axis=-1)
    out.imag = np.sum(imag, axis=-1)
    return out
