"""Real forms of the objective's trigonometric sums: half the work of complex products.

The registration evaluates sums ``Re Σ_r Σ_c C[r, c] · y_r · x_c`` where ``C`` is a
complex spectrum (rows ``r``, half-plane columns ``c``) and ``y_r = e^{-iθ_r}``,
``x_c = e^{-iφ_c}`` are phase factors (or their derivatives) of a shift. Writing
``C = a + ib``, ``y = cy − i sy`` and ``x = cx − i sx``, the real part is

    Σ_r cy_r Σ_c (a cx + b sx)  +  sy_r Σ_c (b cx − a sx).

``cy`` is even and ``sy`` odd in the row frequency, so each row ``r`` pairs with ``−r``:

    Σ_{r ≥ 0} cy_r Σ_c [(a_r + a_−r) cx + (b_r + b_−r) sx]
    + Σ_{r > 0} sy_r Σ_c [(b_r − b_−r) cx − (a_r − a_−r) sx],

a real matrix with one row per row of ``C`` (the *folded* spectrum, :func:`fold`) times
a real column of cosines and sines (:func:`column_factors`), then a short sum over the
rows (:func:`row_factors`). A complex product costs four real multiply-adds per entry of
``C``; this costs two. Rows that pair with themselves (frequency 0, and the Nyquist row of
an even axis, whose factor is the real ``cos(π d)``) appear once, and their sine part
vanishes; so does the sine of column 0 and of a Nyquist column.

Two layouts of an axis occur: the rows of an FFT spectrum in FFT order (``"fft"``, length
``n``) and the symmetric frequencies ``q = −n … n`` of the objective's norm term
(``"symmetric"``, length ``2n + 1``, index ``i`` is ``q = i − n``). Columns are the
half-plane of either: ``"rfft"`` (``0 … n//2``) or ``"half"`` (``0 … n``).
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["Columns", "Rows", "column_factors", "fold", "row_factors"]


@dataclass(frozen=True)
class Rows:
    """How the rows of a spectrum pair up with their negative frequencies.

    Attributes
    ----------
    size : int
        Rows of the spectrum.
    selves : tuple of (int, int)
        ``(folded row, spectrum row)`` of the rows that pair with themselves.
    pairs : slice
        Folded rows holding the sums of the pairs.
    positive, negative : slice
        Spectrum rows ``r`` and ``−r`` of each pair, in the same order.
    count : int
        Folded rows of the even part (the first ``count``); the odd part follows.
    even_frequencies : ndarray
        Row frequency (cycles per pixel) of each even folded row; the odd rows have those
        of the even rows ``pairs``.
    """

    size: int
    selves: tuple
    pairs: slice
    positive: slice
    negative: slice
    count: int
    even_frequencies: np.ndarray

    @classmethod
    def make(cls, layout, n):
        """The pairing of an axis of ``n`` pixels laid out as ``layout``.

        Parameters
        ----------
        layout : {"fft", "symmetric"}
            FFT order (``n`` rows, frequencies ``numpy.fft.fftfreq(n)``), or ``q = −n … n``
            (``2n + 1`` rows, frequencies ``q / n``).
        n : int
            Pixels along the axis.

        Returns
        -------
        Rows
        """
        if layout == "fft":
            half = (n + 1) // 2  # rows 1 … half − 1 pair with n − 1 … n − half + 1
            freqs = np.fft.fftfreq(n)
            positive, negative = slice(1, half), slice(n - 1, n - half, -1)
            selves = [(0, 0)] + ([(half, n // 2)] if n % 2 == 0 else [])
            count = half + (n % 2 == 0)
            even = np.concatenate([freqs[:half], freqs[n // 2 : n // 2 + 1] if n % 2 == 0 else []])
            return cls(n, tuple(selves), slice(1, half), positive, negative, count, even)
        if layout == "symmetric":
            q = np.arange(-n, n + 1) / n
            return cls(
                2 * n + 1,
                ((0, n),),
                slice(1, n + 1),
                slice(n + 1, 2 * n + 1),
                slice(n - 1, None, -1),
                n + 1,
                q[n:],
            )
        raise ValueError(f"unknown layout {layout!r}")


@dataclass(frozen=True)
class Columns:
    """Which half-plane columns carry a sine part.

    Attributes
    ----------
    size : int
        Columns of the half-plane spectrum.
    sines : slice
        The columns whose phase factor is not real.
    width : int
        Columns of the folded matrix: every cosine, then the sines.
    frequencies : ndarray
        Column frequencies in cycles per pixel.
    """

    size: int
    sines: slice
    width: int
    frequencies: np.ndarray

    def bounds(self, orders):
        """Upper bounds of the magnitudes of :func:`column_factors`, one per order.

        The ``j``-th derivative of ``e^{-2πi f d}`` is at most ``(2π |f|)**j``; at a real
        Nyquist column (``cos(π d)``) the same holds.

        Parameters
        ----------
        orders : int
            Orders of the factors.

        Returns
        -------
        ndarray of float64, shape (1, orders)
        """
        omega = 2.0 * np.pi * np.max(np.abs(self.frequencies))
        bounds = np.ones((1, orders))
        for order in range(1, orders):
            bounds[0, order] = bounds[0, order - 1] * omega
        return bounds

    @classmethod
    def make(cls, layout, n):
        """The half-plane columns of an axis of ``n`` pixels laid out as ``layout``.

        Parameters
        ----------
        layout : {"rfft", "half"}
            ``numpy.fft.rfftfreq(n)`` (a real Nyquist column for even ``n``), or ``q = 0 … n``
            (frequencies ``q / n``).
        n : int
            Pixels along the axis.

        Returns
        -------
        Columns
        """
        if layout == "rfft":
            size = n // 2 + 1
            sines = slice(1, size - 1) if n % 2 == 0 else slice(1, size)
            freqs = np.fft.rfftfreq(n)
        elif layout == "half":
            size = n + 1
            sines = slice(1, size)
            freqs = np.arange(size) / n
        else:
            raise ValueError(f"unknown layout {layout!r}")
        return cls(size, sines, size + len(range(size)[sines]), freqs)


def fold(real, imag, rows, columns, out):
    """The real matrix of a complex spectrum ``real + i·imag`` (see the module).

    Parameters
    ----------
    real, imag : ndarray, shape (..., rows.size, columns.size)
        The spectrum's real and imaginary parts (any weights already applied).
    rows : Rows
        How its rows pair.
    columns : Columns
        Which columns carry a sine part.
    out : ndarray of float64, shape (..., rows.size, columns.width)
        Receives the even rows (``rows.count``), then the odd rows.

    Returns
    -------
    ndarray
        ``out``.
    """
    cos, sin = slice(0, columns.size), slice(columns.size, columns.width)
    even, odd = out[..., : rows.count, :], out[..., rows.count :, :]
    pos, neg, pairs, sines = rows.positive, rows.negative, rows.pairs, columns.sines
    for target, source in rows.selves:
        even[..., target, cos] = real[..., source, :]
        even[..., target, sin] = imag[..., source, sines]
    np.add(real[..., pos, :], real[..., neg, :], out=even[..., pairs, cos])
    np.add(imag[..., pos, sines], imag[..., neg, sines], out=even[..., pairs, sin])
    np.subtract(imag[..., pos, :], imag[..., neg, :], out=odd[..., cos])
    np.subtract(real[..., neg, sines], real[..., pos, sines], out=odd[..., sin])
    return out


def column_factors(phases, columns):
    """The real right-hand factor of a folded product from complex column phases.

    Parameters
    ----------
    phases : ndarray of complex, shape (k, orders, columns.size)
        ``x_c`` (and its derivatives) of ``k`` shifts.
    columns : Columns
        The spectrum's columns.

    Returns
    -------
    ndarray of float64, shape (k, columns.width, orders), C-contiguous
        ``cx`` of every column, then ``sx`` of the sine columns.
    """
    k, orders, _ = phases.shape
    out = np.empty((k, columns.width, orders))
    out[:, : columns.size, :] = phases.real.transpose(0, 2, 1)
    np.negative(phases.imag[:, :, columns.sines].transpose(0, 2, 1), out=out[:, columns.size :, :])
    return out


def row_factors(phases, rows):
    """The real row weights of a folded product from complex row phases.

    Parameters
    ----------
    phases : ndarray of complex, shape (k, orders, rows.count)
        ``y_r`` (and derivatives) at the frequencies of the even rows
        (``rows.even_frequencies``; the odd rows are the pairs among them).
    rows : Rows
        The spectrum's rows.

    Returns
    -------
    ndarray of float64, shape (k, orders, rows.size)
        ``cy`` of the even rows, then ``sy`` of the odd ones.
    """
    count = rows.count
    out = np.empty((*phases.shape[:-1], rows.size))
    out[..., :count] = phases.real
    np.negative(phases.imag[..., rows.pairs], out=out[..., count:])
    return out
