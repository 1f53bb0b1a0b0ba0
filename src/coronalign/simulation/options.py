"""The simulation's options, checked once: shared by :func:`simulate_exposures` and
:func:`write_association`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from coronalign.errors import ParameterError
from coronalign.simulation.pointing import DITHER_PATTERNS
from coronalign.simulation.psfmask import check_mask_style

__all__ = ["OPTION_NAMES", "Options", "check_options"]


@dataclasses.dataclass(frozen=True)
class Options:
    """The simulation options shared by :func:`simulate_exposures` and :func:`write_association`.

    The defaults reproduce the simulator's original outputs bit for bit.
    """

    offset_scale: float = 0.3
    large_offset: tuple[float, float] | None = None
    record_large_offset: bool = False
    psf_dither: str = "none"
    noise: bool = True
    garbage: bool = True
    taper: float = 0.0
    mask_style: str = "geometric"
    decorrelation: float = 0.0
    noise_seed: int | None = None
    read_noise: float | None = None
    consistent_variances: bool = False


#: Names of the options of :func:`write_association` (and keyword options of the simulation).
OPTION_NAMES = tuple(f.name for f in dataclasses.fields(Options))


def check_options(**options):
    """Check the simulation options and put them in their canonical form.

    Parameters
    ----------
    **options
        Any fields of :class:`Options`.

    Returns
    -------
    Options

    Raises
    ------
    ParameterError
        An unknown option or an invalid value; the first one is named.
    """
    unknown = set(options) - set(OPTION_NAMES)
    if unknown:
        raise ParameterError(sorted(unknown)[0], f"unknown option; use {sorted(OPTION_NAMES)}")
    opts = Options(**options)
    offset_scale = opts.offset_scale
    try:
        offset_scale = float(offset_scale)
    except (TypeError, ValueError):
        offset_scale = math.nan
    if not np.isfinite(offset_scale) or offset_scale < 0:
        raise ParameterError("offset_scale", f"{opts.offset_scale!r} must be a finite number >= 0")
    large_offset = opts.large_offset
    if large_offset is not None:
        try:
            large_offset = tuple(float(v) for v in large_offset)
        except (TypeError, ValueError):
            large_offset = ()
        if len(large_offset) != 2 or not np.all(np.isfinite(large_offset)):
            raise ParameterError("large_offset", "must be a pair (dx, dy) of finite pixels")
    dither = str(opts.psf_dither).strip().lower()
    if dither not in DITHER_PATTERNS:
        raise ParameterError("psf_dither", f"{opts.psf_dither!r} is not one of {DITHER_PATTERNS}")
    try:
        taper = float(opts.taper)
    except (TypeError, ValueError):
        taper = math.nan
    style = check_mask_style(opts.mask_style, taper)
    try:
        decorrelation = float(opts.decorrelation)
    except (TypeError, ValueError):
        decorrelation = math.nan
    if not 0.0 <= decorrelation <= 1.0:  # also rejects NaN
        raise ParameterError(
            "decorrelation", f"{opts.decorrelation!r} must be a number between 0 and 1"
        )
    noise_seed = opts.noise_seed
    if noise_seed is not None:
        if isinstance(noise_seed, bool) or not isinstance(noise_seed, (int, np.integer)):
            raise ParameterError("noise_seed", f"{opts.noise_seed!r} must be an integer or None")
        if noise_seed < 0:
            raise ParameterError("noise_seed", f"{opts.noise_seed!r} must be >= 0")
        noise_seed = int(noise_seed)
    read_noise = opts.read_noise
    if read_noise is not None:
        try:
            read_noise = float(read_noise)
        except (TypeError, ValueError):
            read_noise = math.nan
        if not (np.isfinite(read_noise) and read_noise >= 0):
            raise ParameterError("read_noise", f"{opts.read_noise!r} must be a number >= 0 (e-)")
    return Options(
        offset_scale=offset_scale,
        large_offset=large_offset,
        record_large_offset=bool(opts.record_large_offset),
        psf_dither=dither,
        noise=bool(opts.noise),
        garbage=bool(opts.garbage),
        taper=taper,
        mask_style=style,
        decorrelation=decorrelation,
        noise_seed=noise_seed,
        read_noise=read_noise,
        consistent_variances=bool(opts.consistent_variances),
    )
