"""The detector: photon and read noise, static defects, and DQ-flagged garbage."""

from __future__ import annotations

import dataclasses

import numpy as np

from coronalign.core import reproducible as rep
from coronalign.dq import DEAD, DO_NOT_USE, HOT, JUMP_DET, NON_SCIENCE, SATURATED
from coronalign.simulation.instruments import coronagraph_center, science_columns

__all__ = ["GARBAGE_COUNTS", "Defects", "detect", "static_defects"]


_LN10 = 2.302585092994046  # ln 10


def _exp10(x):
    """``10**x``, the same bits on every CPU (numpy's power has AVX-512 code paths)."""
    return rep.exp(np.asarray(x) * _LN10)


@dataclasses.dataclass
class Defects:
    """Static detector defects (same pixels in every exposure)."""

    index: np.ndarray  # flat indices
    flags: np.ndarray  # uint32
    kind: np.ndarray  # 0 hot (huge), 1 dead (~0 / negative)


def static_defects(rng, setup, shape):
    """Static detector defects: hot and dead pixels, edge and corner pixels, one cluster.

    Parameters
    ----------
    rng : numpy.random.Generator
        The ``defects`` stream.
    setup : Setup
        The configuration.
    shape : tuple of int
        ``(ny, nx)``.

    Returns
    -------
    Defects
        The same pixels for every exposure of the observation.
    """
    ny, nx = shape
    cy, cx = coronagraph_center(setup, shape)
    n_hot, n_dead = 70, 40
    flat = rng.choice(ny * nx, size=n_hot + n_dead, replace=False)
    idx = [flat]
    flags = [np.r_[np.full(n_hot, HOT | DO_NOT_USE), np.full(n_dead, DEAD | DO_NOT_USE)]]
    kind = [np.r_[np.zeros(n_hot, int), np.ones(n_dead, int)]]
    # row 0, column 0 and the four corners
    edge_x = rng.choice(np.arange(1, nx - 1), size=3, replace=False)
    edge_y = rng.choice(np.arange(1, ny - 1), size=3, replace=False)
    edge = np.r_[
        edge_x,  # row 0
        edge_y * nx,  # column 0
        [0, nx - 1, (ny - 1) * nx, ny * nx - 1, 1 * nx + 1, (ny - 2) * nx + nx - 2],
    ]
    idx.append(edge)
    flags.append(np.full(edge.size, DO_NOT_USE))
    kind.append(np.arange(edge.size) % 2)
    # a cluster of adjacent bad pixels (3 x 3 block plus a tail) in the useful annulus
    angle = rng.uniform(0, 2 * np.pi)
    r = 2.0 * setup.core_radius + 6.0
    first_col = science_columns(setup, shape)
    cos, sin = (float(v) for v in rep.sincos_2pi(angle / (2 * np.pi)))
    y0 = int(np.clip(round(cy + r * sin), 2, ny - 3))
    x0 = int(np.clip(round(cx + r * cos), first_col + 2, nx - 3))
    block = [(y0 + i, x0 + j) for i in (-1, 0, 1) for j in (-1, 0, 1)] + [
        (y0, x0 + 2),
        (y0 + 2, x0),
    ]
    cluster = np.array([yy * nx + xx for yy, xx in block])
    idx.append(cluster)
    flags.append(np.full(cluster.size, HOT | DO_NOT_USE))
    kind.append(np.zeros(cluster.size, int))
    index = np.concatenate(idx)
    _, first = np.unique(index, return_index=True)
    first.sort()
    return Defects(
        index=index[first],
        flags=np.concatenate(flags)[first].astype(np.uint32),
        kind=np.concatenate(kind)[first],
    )


def detect(rng, rng_garbage, setup, images, defects, noise, garbage, *, consistent_variances=False):
    """Turn noiseless images (e-) into detected exposures in MJy/sr.

    Parameters
    ----------
    rng, rng_garbage : numpy.random.Generator
        The ``noise`` and ``garbage`` streams.
    setup : Setup
        The configuration (background, read noise, conversion, NON_SCIENCE columns).
    images : ndarray, shape (n, ny, nx)
        Noiseless images in electrons.
    defects : Defects
        The static defects.
    noise, garbage : bool
        Add photon and read noise; add DQ-flagged garbage, NaN and inf pixels.
    consistent_variances : bool, optional
        Make VAR_POISSON and VAR_RNOISE follow ERR where the defects (and MIRI's NON_SCIENCE
        columns) set it: NaN where ERR is NaN, 0 where it is 0, as the JWST pipeline writes
        them, so that ``ERR² = VAR_POISSON + VAR_RNOISE`` everywhere (to float32 rounding).
        By default they keep the noise of the pixel's signal there (the simulator's original
        arrays). No random number is drawn for it: every other array keeps its bits.

    Returns
    -------
    tuple of ndarray
        ``(data, err, dq, var_poisson, var_rnoise)``: float32 except ``dq`` (uint32).
    """
    ny, nx = images.shape[1:]
    conv = setup.to_mjysr
    bkg = setup.background
    rn = setup.read_noise
    if noise:
        electrons = rng.poisson(np.clip(images, 0.0, None) + bkg).astype(np.float64) - bkg
        electrons += rng.normal(0.0, rn, size=images.shape)
        signal = np.clip(electrons + bkg, 0.0, None)
    else:
        electrons = images.copy()
        signal = np.clip(images, 0.0, None) + bkg
    var_poisson = signal * conv**2
    var_rnoise = np.full(images.shape, rn**2 * conv**2)
    data = electrons * conv
    err = np.sqrt(var_poisson + var_rnoise)
    dq = np.zeros(images.shape, dtype=np.uint32)
    x0 = science_columns(setup, (ny, nx))
    if x0 > 0:  # MIRI: columns outside the coronagraphic field
        dq[:, :, :x0] |= NON_SCIENCE | DO_NOT_USE
        data[:, :, :x0] = np.nan
        err[:, :, :x0] = np.nan
    if garbage:
        _add_garbage(rng_garbage, data, err, dq, defects, x0)
    if consistent_variances:
        for variance in (var_poisson, var_rnoise):
            variance[np.isnan(err)] = np.nan
            variance[err == 0] = 0.0
    return (
        data.astype(np.float32),
        err.astype(np.float32),
        dq,
        var_poisson.astype(np.float32),
        var_rnoise.astype(np.float32),
    )


#: Number of pixels per plane in each random category of :func:`_add_garbage`.
GARBAGE_COUNTS = {
    "saturated_bad": 6,  # DO_NOT_USE | SATURATED, garbage, among the brightest pixels
    "huge": 60,  # DO_NOT_USE, huge positive
    "negative": 40,  # DO_NOT_USE, large negative
    "nan_flagged": 12,  # DO_NOT_USE, NaN data and ERR
    "nan_unflagged": 4,  # no flag, NaN data and ERR
    "inf_unflagged": 2,  # no flag, +inf and -inf
    "inf_flagged": 2,  # DO_NOT_USE, +inf and -inf
    "saturated_ok": 8,  # SATURATED only, valid value (partially saturated ramp)
    "jump_ok": 30,  # JUMP_DET only, valid value
}


def _add_garbage(rng, data, err, dq, defects, x0):
    """Write defects into (n, ny, nx) data/err/dq in place; one loop step per plane."""
    n, ny, nx = data.shape
    flat_data = data.reshape(n, -1)
    flat_err = err.reshape(n, -1)
    flat_dq = dq.reshape(n, -1)
    scale = np.nanmax(np.abs(flat_data[:, :]), axis=1)
    # static defects: same pixels in all planes (values vary a little)
    di = defects.index
    hot = defects.kind == 0
    values = np.where(
        hot[None, :],
        scale[:, None] * _exp10(rng.uniform(1.0, 3.0, size=(n, di.size))),
        -scale[:, None] * _exp10(rng.uniform(-3.0, -0.5, size=(n, di.size))),
    )
    in_science = di % nx >= x0  # NON_SCIENCE pixels keep their NaN
    flat_data[:, di[in_science]] = values[:, in_science]
    flat_err[:, di[in_science]] = 0.0
    flat_dq[:, di] |= defects.flags
    forbidden = np.zeros(ny * nx, dtype=bool)
    forbidden[di] = True
    forbidden.reshape(ny, nx)[:, :x0] = True
    allowed = np.flatnonzero(~forbidden)
    counts = GARBAGE_COUNTS
    for i in range(n):
        plane = flat_data[i]
        # saturation hits the brightest pixels
        bright_pool = allowed[np.argsort(plane[allowed])[-max(200, allowed.size // 200) :]]
        sat = rng.choice(bright_pool, size=counts["saturated_bad"], replace=False)
        pool = np.setdiff1d(allowed, sat, assume_unique=True)
        others = [k for k in counts if k != "saturated_bad"]
        picks = rng.choice(pool, size=sum(counts[k] for k in others), replace=False)
        cuts = np.cumsum([counts[k] for k in others])[:-1]
        groups = dict(zip(others, np.split(picks, cuts), strict=True))
        groups["saturated_bad"] = sat
        s = scale[i]
        g = groups["saturated_bad"]
        plane[g] = np.where(rng.random(g.size) < 0.5, 0.0, -s * rng.uniform(0.1, 1.0, g.size))
        flat_err[i, g] = 0.0
        flat_dq[i, g] |= DO_NOT_USE | SATURATED
        g = groups["huge"]
        plane[g] = s * _exp10(rng.uniform(1.0, 4.0, g.size))
        flat_err[i, g] = 0.0
        flat_dq[i, g] |= DO_NOT_USE
        g = groups["negative"]
        plane[g] = -s * _exp10(rng.uniform(-1.0, 2.0, g.size))
        flat_err[i, g] = 0.0
        flat_dq[i, g] |= DO_NOT_USE
        g = groups["nan_flagged"]
        plane[g] = np.nan
        flat_err[i, g] = np.nan
        flat_dq[i, g] |= DO_NOT_USE
        g = groups["nan_unflagged"]
        plane[g] = np.nan
        flat_err[i, g] = np.nan
        g = groups["inf_unflagged"]
        plane[g] = np.array([np.inf, -np.inf])[np.arange(g.size) % 2]
        g = groups["inf_flagged"]
        plane[g] = np.array([np.inf, -np.inf])[np.arange(g.size) % 2]
        flat_dq[i, g] |= DO_NOT_USE
        flat_dq[i, groups["saturated_ok"]] |= SATURATED
        flat_dq[i, groups["jump_ok"]] |= JUMP_DET
