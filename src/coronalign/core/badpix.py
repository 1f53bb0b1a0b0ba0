"""Bad-pixel handling: vectorised median replacement of bad pixels.

A pixel is *bad* when its DQ value has any of the ``bad_bits`` set or when its
value is not finite (NaN, +inf or -inf). Every bad pixel is replaced by the
median of the originally good pixels in a box centred on it (the box is
clipped at the frame edges and grows when it holds no good pixel), except bad
pixels that the caller marks as "zero" (MIRI ``NON_SCIENCE``), which become
exactly 0.0.

Compared with the official ``align_refs`` step the replacement is

* order independent: medians use only the pixels that were good on input,
  never values filled earlier;
* correct at row 0 and column 0 (the box is clipped, not emptied);
* vectorised: the windows of many bad pixels are gathered at once, in chunks
  whose temporaries stay within a fixed memory budget.

Everything here is a pure function on arrays; nothing reads or writes files.
"""

import logging
from functools import cached_property

import numpy as np

__all__ = [
    "bad_pixel_mask",
    "box_half_width",
    "clean_data_planes",
    "clean_plane_stack",
    "replace_bad_pixels",
]

log = logging.getLogger(__name__)

#: Largest value a JWST DQ word (uint32) can hold.
_MAX_BITS = 2**32 - 1

#: Number of window elements gathered per chunk. Each element costs about
#: 8 (int64 index) + 8 (float64 value) + 8 (sorted copy) bytes, so one chunk
#: needs roughly 25 MB of temporaries, whatever the number of bad pixels.
_CHUNK_ELEMENTS = 1_000_000

#: Above this many window elements (pixels x box size) medians are taken with
#: the rank-bucket method, whose cost hardly depends on the box size.
_RANK_MIN_WORK = 20_000_000

#: Largest first-round window gathered before knowing whether it holds a good pixel.
_FIRST_ROUND_WINDOW = 49


def box_half_width(box_length):
    """Half width of the median box for a box length ``L``.

    Parameters
    ----------
    box_length : int
        The validated ``median_box_length`` (``>= 0``).

    Returns
    -------
    int
        ``L // 2``; the box is ``2 * (L // 2) + 1`` pixels wide, so 0 and 1
        both give a 1x1 box and an even ``L`` behaves like ``L + 1``.
    """
    box_length = int(box_length)
    if box_length < 0:
        raise ValueError(f"box_length must be >= 0, got {box_length}")
    return box_length // 2


def bad_pixel_mask(data, dq, bad_bits):
    """Mask of the pixels to replace.

    Parameters
    ----------
    data : numpy.ndarray
        Pixel values, any shape.
    dq : numpy.ndarray
        Integer DQ words with the same shape as ``data``.
    bad_bits : int
        DQ bits of bad pixels (see :func:`coronalign.steps.parameters.parse_bad_bits`);
        0 means only non-finite values are bad.

    Returns
    -------
    numpy.ndarray of bool
        True where ``dq & bad_bits`` is non-zero or ``data`` is NaN, +inf or
        -inf.
    """
    data = np.asarray(data)
    dq = np.asarray(dq)
    if data.shape != dq.shape:
        raise ValueError(f"data shape {data.shape} differs from dq shape {dq.shape}")
    bad = ~np.isfinite(data)
    if int(bad_bits):
        bad |= _dq_has_bits(dq, bad_bits)
    return bad


def _dq_has_bits(dq, bits):
    """True where ``dq`` has any bit of ``bits`` set (any integer dtype of ``dq``)."""
    if dq.dtype.kind not in "ui":
        raise TypeError(f"dq must hold integers, got dtype {dq.dtype}")
    # Same bit pattern in dq's own dtype (bits above its width cannot be set in dq).
    same = np.array(int(bits) & _MAX_BITS, dtype=np.uint64).astype(dq.dtype)
    return (dq & same) != 0


def _next_half_width(h, h_max):
    """Growth rule: double the half width (0 -> 1), never beyond ``h_max``."""
    return min(max(1, 2 * h), h_max)


def _box_bounds(ys, xs, h, ny, nx):
    """Clipped, inclusive box bounds (y0, y1, x0, x1) of half width ``h``."""
    return (
        np.maximum(ys - h, 0),
        np.minimum(ys + h, ny - 1),
        np.maximum(xs - h, 0),
        np.minimum(xs + h, nx - 1),
    )


def _summed_area(mask):
    """Summed-area table ``T`` of a 2D mask: ``T[i, j]`` counts ``mask[:i, :j]``."""
    ny, nx = mask.shape
    table = np.zeros((ny + 1, nx + 1), dtype=np.int32)
    np.cumsum(mask, axis=0, dtype=np.int32, out=table[1:, 1:])
    np.cumsum(table[1:, 1:], axis=1, out=table[1:, 1:])
    return table


def _box_counts(table, y0, y1, x0, x1):
    """Number of mask pixels in the inclusive boxes, from a summed-area table."""
    return table[y1 + 1, x1 + 1] - table[y0, x1 + 1] - table[y1 + 1, x0] + table[y0, x0]


def _medians_from_sorted(sorted_rows, counts):
    """Median of the first ``counts[i]`` (finite, NaN-last) values of each sorted row."""
    rows = np.arange(sorted_rows.shape[0])
    low = sorted_rows[rows, (counts - 1) // 2]
    high = sorted_rows[rows, counts // 2]
    even = counts % 2 == 0
    result = low.copy()
    result[even] = 0.5 * (low[even] + high[even])
    return result


class _GoodPixels:
    """The good pixels of one plane, with lookup structures built on demand."""

    def __init__(self, plane, good):
        self.plane = plane
        self.good = good
        self.ny, self.nx = good.shape
        self.n = int(np.count_nonzero(good))

    @cached_property
    def table(self):
        """Summed-area table of the good mask."""
        return _summed_area(self.good)

    @cached_property
    def padded(self):
        """Good values, NaN elsewhere, plus a NaN last row and column (out-of-frame target)."""
        padded = np.full((self.ny + 1, self.nx + 1), np.nan)
        np.copyto(padded[: self.ny, : self.nx], self.plane, where=self.good)
        return padded

    @cached_property
    def coords(self):
        """Row-major coordinates and values ``(gy, gx, gv)`` of the good pixels."""
        gy, gx = np.nonzero(self.good)
        return gy, gx, self.plane[gy, gx]

    @cached_property
    def ranks(self):
        """Good pixels by increasing value: ``(values, ry, rx, rank image)``.

        The rank image holds each good pixel's rank (0 = smallest) and ``n``
        at bad pixels, so ``rank < t`` selects the ``t`` smallest good values.
        """
        gy, gx, gv = self.coords
        order = np.argsort(gv, kind="stable")
        rank_image = np.full((self.ny, self.nx), self.n, dtype=np.int64)
        rank_image[gy[order], gx[order]] = np.arange(self.n)
        return gv[order], gy[order], gx[order], rank_image


def _medians_by_window(goods, ys, xs, h, counts=None):
    """Box medians by gathering the full ``(2h+1)**2`` window of each pixel.

    Returns ``(medians, counts)``; when ``counts`` is not given it is taken
    from the windows, and pixels with no good pixel in their box get NaN.
    """
    ny, nx = goods.ny, goods.nx
    offsets = np.arange(-h, h + 1)
    side = offsets.size
    flat_padded = goods.padded.ravel()
    medians = np.full(ys.size, np.nan)
    all_counts = np.empty(ys.size, dtype=np.int64) if counts is None else counts
    step = max(1, _CHUNK_ELEMENTS // (side * side))
    for start in range(0, ys.size, step):
        stop = min(start + step, ys.size)
        iy = ys[start:stop, None] + offsets
        ix = xs[start:stop, None] + offsets
        iy = np.where((iy >= 0) & (iy < ny), iy, ny)
        ix = np.where((ix >= 0) & (ix < nx), ix, nx)
        index = (iy * (nx + 1))[:, :, None] + ix[:, None, :]
        windows = flat_padded[index.reshape(stop - start, side * side)]
        if counts is None:
            all_counts[start:stop] = side * side - np.count_nonzero(np.isnan(windows), axis=1)
        chunk_counts = all_counts[start:stop]
        found = chunk_counts > 0
        windows = windows[found] if not found.all() else windows
        windows.sort(axis=1)
        medians[start:stop][found] = _medians_from_sorted(windows, chunk_counts[found])
    return medians, all_counts


def _medians_by_list(goods, ys, xs, h, counts):
    """Box medians by testing every good pixel in the rows the boxes span.

    Cheaper than gathering windows when the boxes are larger than the number
    of good pixels. ``ys`` must be sorted (row-major order).
    """
    gy, gx, gv = goods.coords
    out = np.empty(ys.size)
    step = max(1, _CHUNK_ELEMENTS // goods.n)
    for start in range(0, ys.size, step):
        stop = min(start + step, ys.size)
        y0, y1, x0, x1 = _box_bounds(ys[start:stop], xs[start:stop], h, goods.ny, goods.nx)
        lo = np.searchsorted(gy, y0.min(), side="left")
        hi = np.searchsorted(gy, y1.max(), side="right")
        sy, sx, sv = gy[lo:hi], gx[lo:hi], gv[lo:hi]
        inside = (sy >= y0[:, None]) & (sy <= y1[:, None])
        inside &= sx >= x0[:, None]
        inside &= sx <= x1[:, None]
        values = np.where(inside, sv, np.nan)
        values.sort(axis=1)
        out[start:stop] = _medians_from_sorted(values, counts[start:stop])
    return out


def _group_by(keys):
    """Yield ``(key, indices)`` for each distinct value of an integer array."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    ends = np.r_[starts[1:], sorted_keys.size]
    for start, end in zip(starts, ends, strict=True):
        yield int(sorted_keys[start]), order[start:end]


def _order_statistics_by_rank(goods, y0, y1, x0, x1, k):
    """The ``k``-th smallest (0-based) good value in each clipped box.

    For large boxes: the good values are split by rank into ``B`` buckets; a
    parallel bisection over the bucket boundaries, counting with one
    summed-area table of ``rank < t`` per boundary, finds the bucket holding
    the answer, then only that bucket's pixels are tested against the box.
    """
    values, ry, rx, rank_image = goods.ranks
    n_total = goods.ny * goods.nx
    n_buckets = int(np.clip(np.sqrt(k.size * goods.n / n_total), 4, 1024))
    n_buckets = min(n_buckets, goods.n)
    bounds = (np.arange(n_buckets + 1) * goods.n) // n_buckets

    # Invariant: count(rank < bounds[lo]) <= k < count(rank < bounds[hi]).
    lo = np.zeros(k.size, dtype=np.int64)
    hi = np.full(k.size, n_buckets, dtype=np.int64)
    below_lo = np.zeros(k.size, dtype=np.int64)
    while True:
        active = np.flatnonzero(hi - lo > 1)
        if active.size == 0:
            break
        for mid, members in _group_by((lo[active] + hi[active]) // 2):
            sel = active[members]
            table = _summed_area(rank_image < bounds[mid])
            below = _box_counts(table, y0[sel], y1[sel], x0[sel], x1[sel])
            up = below <= k[sel]
            lo[sel[up]] = mid
            below_lo[sel[up]] = below[up]
            hi[sel[~up]] = mid

    out = np.empty(k.size)
    for bucket, sel in _group_by(lo):
        r0, r1 = bounds[bucket], bounds[bucket + 1]
        py, px = ry[r0:r1], rx[r0:r1]
        step = max(1, _CHUNK_ELEMENTS // (r1 - r0))
        for start in range(0, sel.size, step):
            part = sel[start : start + step]
            inside = (py >= y0[part, None]) & (py <= y1[part, None])
            inside &= px >= x0[part, None]
            inside &= px <= x1[part, None]
            seen = np.cumsum(inside, axis=1, dtype=np.int32)
            wanted = (k[part] - below_lo[part] + 1)[:, None]
            out[part] = values[r0 + np.argmax(seen >= wanted, axis=1)]
    return out


def _medians_by_rank(goods, ys, xs, h, counts):
    """Box medians from the two middle order statistics (see above)."""
    y0, y1, x0, x1 = _box_bounds(ys, xs, h, goods.ny, goods.nx)
    even = np.flatnonzero(counts % 2 == 0)
    pick = np.r_[np.arange(ys.size), even]
    k = np.r_[(counts - 1) // 2, counts[even] // 2]
    stats = _order_statistics_by_rank(goods, y0[pick], y1[pick], x0[pick], x1[pick], k)
    medians = stats[: ys.size].copy()
    medians[even] = 0.5 * (medians[even] + stats[ys.size :])
    return medians


def _medians(goods, ys, xs, h, counts):
    """Box medians of half width ``h``, by the method expected to be cheapest."""
    window = (2 * h + 1) ** 2
    in_rows = goods.n * min(1.0, (2 * h + 1) / goods.ny)  # good pixels a box's rows hold
    if ys.size * min(window, in_rows) > _RANK_MIN_WORK:
        return _medians_by_rank(goods, ys, xs, h, counts)
    if window <= in_rows:
        return _medians_by_window(goods, ys, xs, h, counts)[0]
    return _medians_by_list(goods, ys, xs, h, counts)


def _fill_plane(plane, bad, zero, h0):
    """Replace the bad pixels of one float64 (ny, nx) plane in place.

    Returns the number of growth rounds beyond the first that were needed.
    """
    ny, nx = plane.shape
    good = ~bad & np.isfinite(plane)
    if zero is not None:
        plane[bad & zero] = 0.0
        targets = bad & ~zero
    else:
        targets = bad
    goods = _GoodPixels(plane, good)
    if goods.n == 0:
        # No good pixel anywhere: no box can ever hold one, fill with 0.0 at once.
        plane[targets] = 0.0
        return 0
    ys, xs = np.nonzero(targets)
    if ys.size == 0:
        return 0

    h_max = max(ny, nx) - 1  # a box of this half width covers the frame from any pixel
    h = min(h0, h_max)
    rounds = 0
    if (2 * h + 1) ** 2 <= _FIRST_ROUND_WINDOW:
        # Common case (small box, mostly isolated bad pixels): the windows give the
        # counts too, so the summed-area table is only built if some box must grow.
        medians, counts = _medians_by_window(goods, ys, xs, h)
        ready = counts > 0
        plane[ys[ready], xs[ready]] = medians[ready]
        ys, xs = ys[~ready], xs[~ready]
        if ys.size == 0:
            return rounds
        h = _next_half_width(h, h_max)
        rounds += 1
    while True:
        counts = _box_counts(goods.table, *_box_bounds(ys, xs, h, ny, nx))
        ready = counts > 0
        if ready.any():
            plane[ys[ready], xs[ready]] = _medians(goods, ys[ready], xs[ready], h, counts[ready])
            ys, xs = ys[~ready], xs[~ready]
        if ys.size == 0:
            return rounds
        if h >= h_max:  # pragma: no cover - impossible while the plane has a good pixel
            plane[ys, xs] = 0.0
            return rounds
        h = _next_half_width(h, h_max)
        rounds += 1


def replace_bad_pixels(data, bad, box_length, *, zero=None):
    """Replace bad pixels by the median of the good pixels in a box around them.

    Parameters
    ----------
    data : numpy.ndarray
        Pixel values of shape ``(..., ny, nx)``, any float dtype. Never
        modified.
    bad : numpy.ndarray of bool
        Pixels to replace, same shape as ``data`` (usually from
        :func:`bad_pixel_mask`, which includes every non-finite value).
    box_length : int
        The ``median_box_length`` ``L``; the box is ``2 * (L // 2) + 1``
        pixels wide, centred on the bad pixel and clipped at the frame edges.
    zero : numpy.ndarray of bool, optional
        Same shape as ``data``; bad pixels where it is True become exactly
        0.0 instead of a median (MIRI ``NON_SCIENCE``, as the official step).
        Ignored where ``bad`` is False.

    Returns
    -------
    cleaned : numpy.ndarray of float64
        Copy of ``data`` as float64 with the bad pixels replaced; good pixels
        are bit-identical to ``data.astype(float64)``.
    filled : numpy.ndarray of bool
        Pixels whose value was replaced (all the bad pixels).

    Notes
    -----
    Medians use only the *originally* good pixels (not bad and finite), never
    values filled for other bad pixels, so the result does not depend on any
    processing order. Non-finite values that ``bad`` does not mark are left as
    they are but never enter a median.

    Each (ny, nx) plane is handled on its own. When the box of half width
    ``h = L // 2`` holds no good pixel, it grows: ``h`` becomes
    ``max(1, 2 * h)``, capped at ``max(ny, nx) - 1``, where the clipped box
    covers the whole frame. Growth therefore always ends with a good pixel
    unless the plane has none at all; in that case (detected up front) every
    bad pixel of the plane is set to 0.0.

    The windows of all bad pixels resolved at the same half width are gathered
    with fancy indexing and their medians taken along the window axis, in
    chunks of at most about a million window elements (about 25 MB of
    temporaries, plus a few arrays the size of one plane). For boxes larger
    than the number of good pixels, the good pixels in the rows the boxes span
    are tested instead of the windows. When either would handle more than
    ``_RANK_MIN_WORK`` elements (big holes needing big boxes), the two middle
    order statistics are found by bisection over value-rank buckets counted
    with summed-area tables, whose cost hardly depends on the box size. All
    three give exactly ``numpy.median`` of the same pixels.
    """
    data = np.asarray(data)
    bad = np.asarray(bad, dtype=bool)
    if data.ndim < 2:
        raise ValueError(f"data must have at least 2 dimensions (..., ny, nx), got {data.shape}")
    if bad.shape != data.shape:
        raise ValueError(f"bad mask shape {bad.shape} differs from data shape {data.shape}")
    if zero is not None:
        zero = np.asarray(zero, dtype=bool)
        if zero.shape != data.shape:
            raise ValueError(f"zero mask shape {zero.shape} differs from data shape {data.shape}")
    h0 = box_half_width(box_length)

    cleaned = np.array(data, dtype=np.float64, copy=True)
    filled = bad.copy()
    if data.size == 0:
        return cleaned, filled
    ny, nx = data.shape[-2:]
    planes = cleaned.reshape(-1, ny, nx)
    bad_planes = bad.reshape(-1, ny, nx)
    zero_planes = None if zero is None else zero.reshape(-1, ny, nx)
    n_grown = 0
    for i in range(planes.shape[0]):
        if not bad_planes[i].any():
            continue
        z = None if zero_planes is None else zero_planes[i]
        if _fill_plane(planes[i], bad_planes[i], z, h0):
            n_grown += 1
    log.debug(
        "replaced %d bad pixels in %d planes (box %d, %d planes needed larger boxes)",
        int(np.count_nonzero(filled)),
        planes.shape[0],
        2 * h0 + 1,
        n_grown,
    )
    return cleaned, filled


def clean_plane_stack(data, err, dq, bad_bits, box_length, *, zero_flags=0):
    """Clean the DATA and ERR planes of a stack before alignment.

    Parameters
    ----------
    data, err : numpy.ndarray
        Float arrays of shape ``(..., ny, nx)``. Never modified.
    dq : numpy.ndarray
        Integer DQ words, same shape.
    bad_bits : int
        Bit mask (see :func:`coronalign.steps.parameters.parse_bad_bits`).
    box_length : int
        The ``median_box_length`` (see :func:`replace_bad_pixels`).
    zero_flags : int, optional
        Bad data pixels whose DQ has any of these bits become 0.0 instead of a
        median (pass :data:`coronalign.dq.NON_SCIENCE` for MIRI, 0 otherwise).

    Returns
    -------
    data_clean : numpy.ndarray of float64
        DATA with the pixels of :func:`bad_pixel_mask` replaced.
    err_clean : numpy.ndarray of float64
        ERR with every non-finite value replaced by the box median of the
        finite ERR values around it (same box and growth rule, 0.0 when the
        plane has no finite ERR), or by 0.0 where DATA was set to 0.0 (a
        ``zero_flags`` pixel: MIRI's NON_SCIENCE regions are large, and boxes
        grown across them would cost much and mean nothing). Finite ERR values
        are kept, also where DATA was replaced, so that a NaN ERR never poisons
        a Fourier-shifted plane.
    replaced : numpy.ndarray of bool
        True where the DATA value was replaced.
    """
    data = np.asarray(data)
    err = np.asarray(err)
    dq = np.asarray(dq)
    if err.shape != data.shape:
        raise ValueError(f"err shape {err.shape} differs from data shape {data.shape}")
    data_clean, replaced, bad, zero = _clean_data(data, dq, bad_bits, box_length, zero_flags)
    err_zero = None if zero is None else zero & bad  # where DATA became 0.0
    err_clean, _ = replace_bad_pixels(err, ~np.isfinite(err), box_length, zero=err_zero)
    return data_clean, err_clean, replaced


def _clean_data(data, dq, bad_bits, box_length, zero_flags):
    """DATA cleaned as :func:`clean_plane_stack` does, with its bad and zero masks."""
    bad = bad_pixel_mask(data, dq, bad_bits)
    zero = _dq_has_bits(dq, zero_flags) if int(zero_flags) else None
    data_clean, replaced = replace_bad_pixels(data, bad, box_length, zero=zero)
    return data_clean, replaced, bad, zero


def clean_data_planes(data, dq, bad_bits, box_length, *, zero_flags=0):
    """The DATA of :func:`clean_plane_stack` alone (for a fit, which needs no ERR).

    Parameters
    ----------
    data : numpy.ndarray
        Float array of shape ``(..., ny, nx)``. Never modified.
    dq : numpy.ndarray
        Integer DQ words, same shape.
    bad_bits : int
        Bit mask (see :func:`coronalign.steps.parameters.parse_bad_bits`).
    box_length : int
        The ``median_box_length`` (see :func:`replace_bad_pixels`).
    zero_flags : int, optional
        As for :func:`clean_plane_stack`.

    Returns
    -------
    data_clean : numpy.ndarray of float64
        Identical to the first result of :func:`clean_plane_stack`.
    replaced : numpy.ndarray of bool
        True where the DATA value was replaced.
    """
    data = np.asarray(data)
    dq = np.asarray(dq)
    data_clean, replaced, _, _ = _clean_data(data, dq, bad_bits, box_length, zero_flags)
    return data_clean, replaced
