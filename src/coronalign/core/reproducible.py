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
  :func:`numpy.rint`, which IEEE 754 rounds the same way everywhere; :func:`exp`,
  :func:`log`, :func:`power` and :func:`sinc` likewise (with the exact :func:`numpy.ldexp`
  and :func:`numpy.frexp`);
* :func:`complex_multiply`: complex products from real products and sums, each a
  separate numpy operation (so no operation can be fused);
* :func:`solve_3x3` and :func:`positive_definite_3x3`: small symmetric systems by
  cofactors, where LAPACK would call BLAS;
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
    "exp",
    "expi_2pi",
    "log",
    "positive_definite_3x3",
    "power",
    "sinc",
    "sincos_2pi",
    "solve_3x3",
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


#: ln 2 split so that ``k * _LN2_HI`` is exact for |k| < 2**11 (Cody and Waite).
_LN2_HI = 0.693145751953125
_LN2_LO = 1.4286068203094173e-06
_INV_LN2 = 1.4426950408889634  # 1 / ln 2 (a literal: math.log is libm)
#: Taylor coefficients of exp(r) on |r| <= ln(2)/2, highest order first (the first omitted
#: term is below 1e-18).
_EXP = tuple(1.0 / math.factorial(n) for n in range(14, -1, -1))
#: 2 atanh(s) = log((1 + s) / (1 - s)) = 2 (s + s**3/3 + ...), in s**2, highest order first;
#: |s| <= 0.172 for a mantissa in [sqrt(1/2), sqrt(2)), the first omitted term below 1e-19.
_LOG = tuple(2.0 / (2 * n + 1) for n in range(12, -1, -1))


def exp(x):
    """``e**x`` for real arrays, computed the same way on every CPU.

    numpy's ``exp`` has AVX-512 code paths and glibc picks an FMA variant at run time,
    which round differently; this uses ``+ - * /``, :func:`numpy.rint` and
    :func:`numpy.ldexp` only.

    Parameters
    ----------
    x : array_like of float

    Returns
    -------
    ndarray of float64
        Accurate to a few units in the last place; 0 below about -745, inf above 709.78,
        NaN for NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    clipped = np.clip(np.where(np.isnan(x), 0.0, x), -746.0, 709.78)
    k = np.rint(clipped * _INV_LN2)
    value = _horner(_EXP, (clipped - k * _LN2_HI) - k * _LN2_LO)
    # two steps: 2**k alone may be out of range where the result is not (subnormals)
    half = np.trunc(k / 2.0).astype(np.int64)
    out = np.ldexp(np.ldexp(value, half), k.astype(np.int64) - half)
    out = np.where(x > 709.78, np.inf, out)
    return np.where(np.isnan(x), np.nan, out)


def log(x):
    """Natural logarithm of real arrays, computed the same way on every CPU.

    Parameters
    ----------
    x : array_like of float

    Returns
    -------
    ndarray of float64
        Accurate to a few units in the last place; -inf at 0, inf at inf, NaN below 0.
    """
    x = np.asarray(x, dtype=np.float64)
    safe = np.where(np.isfinite(x) & (x > 0), x, 1.0)
    mantissa, exponent = np.frexp(safe)  # exact: safe = mantissa * 2**exponent
    low = mantissa < math.sqrt(0.5)
    mantissa = np.where(low, 2.0 * mantissa, mantissa)  # [sqrt(1/2), sqrt(2))
    exponent = (exponent - low).astype(np.float64)
    s = (mantissa - 1.0) / (mantissa + 1.0)
    value = _horner(_LOG, s * s) * s
    out = exponent * _LN2_HI + (exponent * _LN2_LO + value)
    out = np.where(x == 0, -np.inf, out)
    out = np.where(x == np.inf, np.inf, out)
    return np.where((x < 0) | np.isnan(x), np.nan, out)


def power(x, p):
    """``x**p`` for real ``x >= 0`` and real ``p``, computed the same way on every CPU.

    Parameters
    ----------
    x : array_like of float
        Bases, >= 0 (inf allowed).
    p : float or array_like
        Exponents.

    Returns
    -------
    ndarray of float64
        ``exp(p log x)``: relative error about ``|p log x|`` units in the last place.
    """
    x = np.asarray(x, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = exp(p * log(x))
    return np.where(p == 0, 1.0, out)


def sinc(x):
    """``sin(pi x) / (pi x)`` (1 at 0), computed the same way on every CPU.

    Parameters
    ----------
    x : array_like of float

    Returns
    -------
    ndarray of float64
    """
    x = np.asarray(x, dtype=np.float64)
    _, sin = sincos_2pi(0.5 * x)
    safe = np.where(x == 0, 1.0, x)
    return np.where(x == 0, 1.0, sin / (math.pi * safe))


def _minors_3x3(matrix):
    a = np.asarray(matrix, dtype=np.float64)
    c00 = a[..., 1, 1] * a[..., 2, 2] - a[..., 1, 2] * a[..., 2, 1]
    c01 = a[..., 1, 2] * a[..., 2, 0] - a[..., 1, 0] * a[..., 2, 2]
    c02 = a[..., 1, 0] * a[..., 2, 1] - a[..., 1, 1] * a[..., 2, 0]
    det = a[..., 0, 0] * c00 + a[..., 0, 1] * c01 + a[..., 0, 2] * c02
    return a, (c00, c01, c02), det


def positive_definite_3x3(matrix):
    """Whether symmetric 3 x 3 matrices are positive definite (Sylvester's criterion).

    Parameters
    ----------
    matrix : array_like, shape (..., 3, 3)

    Returns
    -------
    ndarray of bool, shape (...)
    """
    a, _, det = _minors_3x3(matrix)
    second = a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]
    return (a[..., 0, 0] > 0) & (second > 0) & (det > 0)


def solve_3x3(matrix, rhs):
    """Solve ``matrix @ x = rhs`` for batches of 3 x 3 systems by cofactors (no LAPACK).

    Parameters
    ----------
    matrix : array_like, shape (..., 3, 3)
        Non-singular matrices.
    rhs : array_like, shape (..., 3)
        Right-hand sides.

    Returns
    -------
    ndarray of float64, shape (..., 3)
        NaN or inf where a matrix is singular.
    """
    a, (c00, c01, c02), det = _minors_3x3(matrix)
    b = np.asarray(rhs, dtype=np.float64)
    # the rest of the adjugate (cofactors of rows 1 and 2, transposed)
    c10 = a[..., 0, 2] * a[..., 2, 1] - a[..., 0, 1] * a[..., 2, 2]
    c11 = a[..., 0, 0] * a[..., 2, 2] - a[..., 0, 2] * a[..., 2, 0]
    c12 = a[..., 0, 1] * a[..., 2, 0] - a[..., 0, 0] * a[..., 2, 1]
    c20 = a[..., 0, 1] * a[..., 1, 2] - a[..., 0, 2] * a[..., 1, 1]
    c21 = a[..., 0, 2] * a[..., 1, 0] - a[..., 0, 0] * a[..., 1, 2]
    c22 = a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        x0 = (c00 * b0 + c10 * b1 + c20 * b2) / det
        x1 = (c01 * b0 + c11 * b1 + c21 * b2) / det
        x2 = (c02 * b0 + c12 * b1 + c22 * b2) / det
    return np.stack([x0, x1, x2], axis=-1)


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
    """Bits per slice for a sum of ``length`` products.

    The integers of a left slice (at most ``2**p``) times those of a right slice (at most
    ``2**p``), summed over ``length`` terms, must stay below ``2**53``.
    """
    return (53 - math.ceil(math.log2(max(2, length)))) // 2


#: Below this binary exponent of a row's (column's) largest entry the slices are cut by
#: scaling, :func:`numpy.rint` and scaling back; within it by adding and subtracting a
#: constant of the slice's quantum (one operation less, the same bits).
_MAGIC_EXPONENTS = 900


def _slices(matrix, bits, axis, out=None, bound=None):
    """Split a real matrix into ``SLICES`` parts with a common exponent along ``axis``.

    Every entry of slice ``j`` is an integer of at most ``bits`` bits times
    ``2**(e - (j + 1) * bits)``, where ``2**e`` bounds the largest magnitude along ``axis``
    (per row for ``axis=-1``, per column for ``axis=-2``), rounded to nearest (ties to
    even). The remainder after the last slice is dropped (below ``2**(-SLICES * bits)`` of
    that magnitude). ``out`` (a sequence of arrays shaped like ``matrix``) receives the
    slices; new ones by default. The last of them may be ``matrix`` itself (split in place).
    ``bound`` (broadcastable like the largest magnitudes along ``axis``, kept dimension
    included) replaces them by known upper bounds, which saves reading the matrix.
    """
    if bound is None:
        largest = np.maximum(
            np.max(matrix, axis=axis, keepdims=True), -np.min(matrix, axis=axis, keepdims=True)
        )
    else:
        largest = np.asarray(bound, dtype=np.float64)
    _, exponent = np.frexp(np.where(largest > 0, largest, 1.0))
    if out is None:
        out = [np.empty_like(matrix) for _ in range(SLICES)]
    magic = bool(np.all(np.abs(exponent) <= _MAGIC_EXPONENTS))
    rest = matrix
    for j, part in enumerate(out, start=1):
        if j > 1:  # exact: what the previous slices left (in the last slice's place)
            kept = part if j == len(out) else (None if j == 2 else rest)
            rest = np.subtract(rest, out[j - 2], out=kept)
        if magic:
            # x + 1.5 * 2**(q + 52) rounds x to a multiple of 2**q (ties to even, as
            # rint), since |x| is far below the constant; subtracting it back is exact.
            constant = np.ldexp(1.5, exponent - bits * j + 52)
            np.add(rest, constant, out=part)
            part -= constant
        else:
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
    """A left factor (real or complex), split once for many :func:`exact_matmul` products.

    Parameters
    ----------
    matrix : array_like of float or complex, shape (..., m, k)
        The left factor (leading dimensions are a batch).
    out : ndarray of float64, shape (..., SLICES * m, k), optional
        Where to keep the slices (a real ``matrix`` only); it may hold ``matrix`` itself in
        its last ``m`` rows, which is then split in place (no other copy is made).
    """

    def __init__(self, matrix, out=None):
        matrix = np.asarray(matrix)
        self.is_complex = np.iscomplexobj(matrix)
        self.shape = matrix.shape
        blocks = _real_blocks(matrix, "left") if self.is_complex else matrix
        self.bits = _slice_bits(blocks.shape[-1])
        # Slices stacked along the rows: one BLAS call multiplies all of them.
        m = matrix.shape[-2]
        if out is None:
            out = np.empty((*blocks.shape[:-2], SLICES * m, blocks.shape[-1]))
        self.stacked = out
        self.index = None
        parts = [self.stacked[..., j * m : (j + 1) * m, :] for j in range(SLICES)]
        _slices(blocks.astype(np.float64, copy=False), self.bits, axis=-1, out=parts)

    @classmethod
    def in_place(cls, stacked, fill):
        """Split a batch of real matrices entry by entry, each in its own place.

        Parameters
        ----------
        stacked : ndarray of float64, shape (count, SLICES * m, k)
            Receives the slices of each entry.
        fill : callable
            ``fill(entry, matrix)`` writes entry ``entry``'s matrix into ``matrix`` (the
            last ``m`` rows of ``stacked[entry]``), which is then split in place while it is
            still in the processor's cache.

        Returns
        -------
        ExactLeft
        """
        m = stacked.shape[-2] // SLICES
        split = object.__new__(cls)
        split.is_complex = False
        split.shape = (stacked.shape[0], m, stacked.shape[-1])
        split.bits = _slice_bits(stacked.shape[-1])
        split.stacked = stacked
        split.index = None
        for entry in range(stacked.shape[0]):
            parts = [stacked[entry, j * m : (j + 1) * m] for j in range(SLICES)]
            fill(entry, parts[-1])
            _slices(parts[-1], split.bits, axis=-1, out=parts)
        return split

    def select(self, index):
        """The factors ``index`` of a batch (first dimension), still split (no copy).

        Parameters
        ----------
        index : array_like of int
            Batch entries to keep, in order (repeats allowed).

        Returns
        -------
        ExactLeft
        """
        index = np.asarray(index, dtype=np.intp)
        if index.size == self.shape[0] and np.array_equal(index, np.arange(self.shape[0])):
            return self
        chosen = object.__new__(ExactLeft)
        chosen.__dict__.update(self.__dict__)
        chosen.shape = (index.size, *self.shape[1:])
        chosen.index = index
        return chosen


#: Rows per BLAS call when a single large left factor is multiplied: OpenBLAS multiplies
#: small blocks with kernels that skip its packing, about 1.5 times faster here with a
#: few dozen right-hand columns (the bits do not depend on it: every product is exact).
ROW_BLOCK = 32


def _row_blocks(left, right):
    """``left @ right`` for a 2-D ``left``, in blocks of ``ROW_BLOCK`` rows."""
    rows = left.shape[0]
    whole = rows // ROW_BLOCK * ROW_BLOCK
    if whole < 2 * ROW_BLOCK:
        return np.matmul(left, right)
    out = np.empty((rows, right.shape[-1]))
    blocks = left[:whole].reshape(-1, ROW_BLOCK, left.shape[-1])
    np.matmul(blocks, right, out=out[:whole].reshape(-1, ROW_BLOCK, right.shape[-1]))
    if whole < rows:
        np.matmul(left[whole:], right, out=out[whole:])
    return out


def _batched(left, index, right):
    """``left[index] @ right`` without gathering the left factors (a product per entry)."""
    if left.ndim == 2 and right.ndim == 2:
        return _row_blocks(left, right)
    if index is None:
        return np.matmul(left, right)
    out = np.empty((index.size, left.shape[-2], right.shape[-1]))
    for entry in np.unique(index):
        chosen = np.flatnonzero(index == entry)
        out[chosen] = np.matmul(left[entry], right[chosen])
    return out


def exact_matmul(left, right, right_bound=None):
    """Matrix product ``left @ right`` with bits independent of BLAS and CPU.

    Parameters
    ----------
    left : ExactLeft or array_like of float or complex, shape (..., m, k)
        Left factor (split here if it is not an :class:`ExactLeft`).
    right : array_like, shape (..., k, n)
        Right factor (real for a real left factor); batch dimensions broadcast as in
        :func:`numpy.matmul` (for a selected :class:`ExactLeft`, one per entry).
    right_bound : array_like, shape (..., 1, n), optional
        An upper bound of the magnitudes in each column of a real ``right`` (a function
        of the arguments only, for reproducible bits); by default the largest magnitude.

    Returns
    -------
    ndarray of float64 or complex128, shape (..., m, n)
        The product, accurate to about ``2**-40`` of the largest terms of each sum.
    """
    if not isinstance(left, ExactLeft):
        left = ExactLeft(left)
    m = left.shape[-2]
    if left.is_complex:
        right = np.asarray(right, dtype=np.complex128)
        n = right.shape[-1]
        blocks = _real_blocks(right, "right")
    else:
        blocks = np.asarray(right, dtype=np.float64)
    right_slices = _slices(blocks, left.bits, axis=-2, bound=right_bound)
    # Every entry of these BLAS products is an exact sum (see _slice_bits), however BLAS
    # groups them; the slices' contributions are then added in a fixed order.
    high, low = left.stacked[..., :m, :], left.stacked[..., m : 2 * m, :]
    if left.stacked.ndim == 2:  # one large factor: ([L0; L1] @ R0, L0 @ R1) in row blocks
        first = _batched(left.stacked, left.index, right_slices[0])
        cross = first[m : 2 * m]
        total = _batched(high, left.index, right_slices[1])
        first = first[:m]
    else:  # a batch: (L0 @ [R0 R1], L1 @ R0), fewer and larger calls
        n_right = right_slices[0].shape[-1]
        both = np.concatenate(right_slices, axis=-1)
        first = _batched(high, left.index, both)
        cross = _batched(low, left.index, right_slices[0])
        total = first[..., n_right:]
        first = first[..., :n_right]
    total += cross
    total += first
    if not left.is_complex:
        return total
    out = np.empty((*total.shape[:-1], n), dtype=np.complex128)
    out.real = total[..., :n]
    out.imag = total[..., n:]
    return out


def exact_small_matmul(left, right):
    """``left @ right`` (real or complex) for small outputs, without BLAS.

    Every output is a sum of real products taken along the contraction axis by
    :func:`numpy.sum` (pairwise, in an order fixed by numpy's code), so the bits do not
    depend on the CPU. Cheaper than :func:`exact_matmul` when the result has only a few
    entries per batch (e.g. 3 × 3).

    Parameters
    ----------
    left : array_like of float or complex, shape (..., m, k)
    right : array_like of float or complex, shape (..., k, n)

    Returns
    -------
    ndarray of float64 (both factors real) or complex128, shape (..., m, n)
    """
    # Both factors contiguous along the contraction axis, so the products are too and
    # every sum runs along contiguous memory (pairwise, and fast).
    if not (np.iscomplexobj(left) or np.iscomplexobj(right)):
        left = np.ascontiguousarray(left, dtype=np.float64)[..., :, None, :]
        right = np.swapaxes(np.asarray(right, dtype=np.float64), -1, -2)
        right = np.ascontiguousarray(right)[..., None, :, :]
        return np.sum(left * right, axis=-1)
    left = np.ascontiguousarray(left, dtype=np.complex128)[..., :, None, :]
    right = np.swapaxes(np.asarray(right, dtype=np.complex128), -1, -2)
    right = np.ascontiguousarray(right)[..., None, :, :]
    lr, li, rr, ri = left.real, left.imag, right.real, right.imag
    real = lr * rr
    real -= li * ri
    imag = lr * ri
    imag += li * rr
    out = np.empty(real.shape[:-1], dtype=np.complex128)
    out.real = np.sum(real, axis=-1)
    out.imag = np.sum(imag, axis=-1)
    return out
