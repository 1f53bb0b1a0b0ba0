"""One science exposure and its reference PSF stack, with the exact truth (no I/O)."""

from __future__ import annotations

import dataclasses
import datetime

import numpy as np

from coronalign.simulation.instruments import (
    check_count,
    check_shape,
    coronagraph_center,
    setup_for,
)
from coronalign.simulation.metadata import exposure_meta, psfmask_meta, stack_meta
from coronalign.simulation.observation import simulate_observation, truth_dict
from coronalign.simulation.options import check_options
from coronalign.simulation.pointing import dither_meta

__all__ = ["Simulation", "simulate_exposures"]


@dataclasses.dataclass
class Simulation:
    """One simulated science exposure, its reference PSF stack and the exact truth.

    Attributes
    ----------
    instrument : str
        The configuration: ``"nircam"``, ``"miri"``, ``"nircam-sw"`` or ``"miri-lyot"``.
    sci, sci_err : numpy.ndarray
        float32 ``(nints, ny, nx)`` science data and error (MJy/sr), with noise and defects.
    sci_dq : numpy.ndarray
        uint32 ``(nints, ny, nx)`` DQ of the science exposure.
    psf, psf_err : numpy.ndarray
        float32 ``(npsfs, ny, nx)`` reference PSF stack and its error.
    psf_dq : numpy.ndarray
        uint32 ``(npsfs, ny, nx)``.
    mask : numpy.ndarray
        float32 ``(ny, nx)`` PSFMASK: 1 use, 0 ignore (fractional with a taper or
        ``mask_style="crds"``).
    truth : dict
        ``"xshift"``, ``"yshift"``, ``"beta"``: nested lists ``[nints][npsfs]`` (see the
        module docstring for the exact definition); ``"xshift_geometric"``,
        ``"yshift_geometric"``: star position differences; ``"sci_x"``, ``"sci_y"``
        ``[nints]`` and ``"psf_x"``, ``"psf_y"`` ``[npsfs]``: star positions (0-based pixel
        coordinates, x = column); ``"xshift_header"``, ``"yshift_header"`` ``[nints][npsfs]``:
        the prior derived from the header offsets; ``"pointing"``: the offsets written and
        the pointing convention; ``"mask_style"``, ``"decorrelation"``,
        ``"wavefront_correlation"``, ``"truth_start"``; plus a few descriptive entries.
    sci_meta, psf_meta, psfmask_meta : dict
        Nested dictionaries of datamodel attributes (``{"instrument": {"name": ...}}``)
        for the science ``_calints``, the ``_psfstack`` (including
        ``{"coronalign": {"psf_members": [...]}}``) and the PSFMASK.
    sci_noiseless, psf_noiseless : numpy.ndarray
        float64 noiseless, defect-free images (same units) on which the truth is exact.
    sci_var_poisson, sci_var_rnoise, psf_var_poisson, psf_var_rnoise : numpy.ndarray
        float32 variance components (MJy/sr)**2.
    seed : int
        The seed the simulation was made with.
    """

    instrument: str
    sci: np.ndarray
    sci_err: np.ndarray
    sci_dq: np.ndarray
    psf: np.ndarray
    psf_err: np.ndarray
    psf_dq: np.ndarray
    mask: np.ndarray
    truth: dict
    sci_meta: dict
    psf_meta: dict
    psfmask_meta: dict
    sci_noiseless: np.ndarray
    psf_noiseless: np.ndarray
    sci_var_poisson: np.ndarray
    sci_var_rnoise: np.ndarray
    psf_var_poisson: np.ndarray
    psf_var_rnoise: np.ndarray
    seed: int


def simulate_exposures(
    instrument="nircam",
    nints=4,
    npsfs=3,
    seed=0,
    *,
    offset_scale=0.3,
    large_offset=None,
    shape=None,
    noise=True,
    garbage=True,
    taper=0.0,
    mask_style="geometric",
    decorrelation=0.0,
    psf_dither="none",
    record_large_offset=False,
    noise_seed=None,
    read_noise=None,
    consistent_variances=False,
):
    """Simulate one science ``_calints`` exposure and a reference PSF stack with truth.

    Pure: no file is read or written. With every option at its default the result is
    bit-identical to that of the simulator before ``mask_style``, ``decorrelation``,
    ``psf_dither`` and ``record_large_offset`` existed.

    Parameters
    ----------
    instrument : {"nircam", "miri", "nircam-sw", "miri-lyot"}
        Instrument configuration: NIRCam LW round mask (NRCALONG, F335M, MASKA335R,
        SUB320A335R, 320 x 320), MIRI four-quadrant phase mask (MIRIMAGE, F1550C, 4QPM_1550,
        MASK1550, 224 x 288), NIRCam SW round mask (NRCA2, F210M, MASKA210R, SUB640A210R,
        640 x 640) or MIRI Lyot spot (MIRIMAGE, F2300C, LYOT_2300, MASKLYOT, 304 x 320). The
        MIRI frames have a NON_SCIENCE band of columns on the left.
    nints : int
        Number of science integrations.
    npsfs : int
        Number of reference PSF images in the stack, each a separate one-integration PSF
        exposure with its own pointing and flux ratio (``beta`` between about 0.5 and 3).
    seed : int
        Random seed; the same seed gives bit-identical arrays.
    offset_scale : float, optional
        RMS (px, per axis) of the pointing error of the science exposure and of each PSF
        exposure (target acquisition error: not recorded in the headers); each integration
        adds a 0.02 px jitter.
    large_offset : tuple of float, optional
        ``(dx, dy)`` in px added to every reference position (e.g. ``(7.3, 5.1)``). By
        default it is NOT recorded in the headers (a pointing mistake nobody wrote down).
    shape : tuple of int, optional
        ``(ny, nx)`` frame shape (>= 48 each); default the instrument's subarray shape.
        The pixel scale and optics stay the same, only the field of view changes.
    noise : bool, optional
        Add photon and read noise (default True). If False the data are the noiseless
        images (float32) and ERR is the expected noise.
    garbage : bool, optional
        Add DQ-flagged garbage, NaN and inf pixels (default True). The MIRI NON_SCIENCE
        columns are always present.
    taper : float, optional
        Taper width (px) of the geometric PSFMASK; default 0 (binary mask). See
        :func:`psfmask_array`.
    mask_style : {"geometric", "crds"}, optional
        PSFMASK style (see :func:`psfmask_array`): ``"geometric"`` (default) or ``"crds"``,
        shaped like the released CRDS files (NIRCam: fractional, ~1e-5 at the occulter centre
        rising to 0.99, last row and column 0; MIRI: 0/1).
    decorrelation : float, optional
        0 (default) to 1: how far the reference stars' static wavefront differs from the
        science target's. 0: they share the static phase screen and the speckles nearly
        match; 1: independent screens, the speckles do not match at all. In between the
        references get ``cos(a pi/2) S1 + sin(a pi/2) S2``, with ``S1`` the science screen and
        ``S2`` an independent screen of the same statistics (made orthogonal to ``S1`` over
        the pupil and scaled to its RMS), so the RMS wavefront error is exactly preserved and
        the two screens correlate by ``cos(a pi/2)``. The references share one screen among
        themselves; the small science/reference difference and per-integration drifts are
        added as before. With ``decorrelation > 0`` the truth is the local minimum downhill
        from the geometric shift (a damped Newton iteration), reported as it is: it can lie
        far from ``xshift_geometric``.
    psf_dither : {"none", "5-point-box", "5-point-diamond", "9-point-grid"}, optional
        Small-grid dither of the reference exposures: reference ``j`` is offset by point
        ``j % npoints`` of the pattern, in steps of 20 mas (NIRCam) or 10 mas (MIRI). The
        offsets are deliberate and recorded in the headers (``meta.dither``). Default
        ``"none"``.
    record_large_offset : bool, optional
        If True, write ``large_offset`` into the references' header offsets (``XOFFSET``,
        ``YOFFSET``); default False.
    noise_seed : int, optional
        Seed of the pixel noise alone (photon and read noise). By default the noise comes
        from ``seed`` like everything else; with ``noise_seed`` the scene (stars, wavefronts,
        speckles, pointing, defects, garbage and the truth) stays that of ``seed`` and only
        the noise is another realisation, so that several noise seeds give realisations of
        one scene (the calibration of the fit errors).
    read_noise : float, optional
        Read noise in e- per integration (default: the configuration's, 12 e- for NIRCam and
        30 e- for MIRI); a large value makes read-noise-dominated data. ERR and VAR_RNOISE
        follow it.
    consistent_variances : bool, optional
        VAR_POISSON and VAR_RNOISE follow ERR at the defects (NaN where ERR is NaN, 0 where it
        is 0), so that ``ERR² = VAR_POISSON + VAR_RNOISE`` in every pixel, as in pipeline
        products; default False (they keep the noise of the pixel's signal there, the
        original arrays). Nothing else changes.

    Returns
    -------
    Simulation
        Arrays, mask, metadata and the exact truth (see :class:`Simulation`). Every
        exposure's header holds ``meta.dither.x_offset`` / ``y_offset`` (arcsec: the
        deliberate offsets; 0 for the science target), and the PSF stack's
        ``meta.coronalign.psf_members`` lists the offsets of every member exposure; the truth
        holds ``xshift_header`` / ``yshift_header`` (the prior a reader derives from them) and
        ``pointing`` (what was written).
    """
    setup = setup_for(instrument)
    shape = check_shape(setup, shape)
    nints = check_count("nints", nints)
    npsfs = check_count("npsfs", npsfs)
    opts = check_options(
        offset_scale=offset_scale,
        large_offset=large_offset,
        record_large_offset=record_large_offset,
        psf_dither=psf_dither,
        noise=noise,
        garbage=garbage,
        taper=taper,
        mask_style=mask_style,
        decorrelation=decorrelation,
        noise_seed=noise_seed,
        read_noise=read_noise,
        consistent_variances=consistent_variances,
    )
    core = simulate_observation(setup, shape, [nints], [1] * npsfs, seed, opts)
    sci = core.sci[0]
    psf = [np.concatenate(parts) for parts in zip(*core.psf, strict=True)]
    truth = truth_dict(core, 0)
    truth.update(
        {
            "instrument": setup.key,
            "seed": int(seed),
            "shape": list(shape),
            "nints": nints,
            "npsfs": npsfs,
            "mask_center": list(coronagraph_center(setup, shape)[::-1]),
        }
    )
    if opts.noise_seed is not None:  # absent by default: the default truth keeps its bits
        truth["noise_seed"] = opts.noise_seed
    start = datetime.datetime(2023, 5, 10, 12, 34, 56, 789000)
    sci_meta = exposure_meta(
        setup, shape, nints, psf=False, exposure_number=1, start=start,
        offsets=core.sci_offsets[0],
    )  # fmt: skip
    psf_metas = [
        exposure_meta(
            setup,
            shape,
            1,
            psf=True,
            exposure_number=j + 1,
            start=start + datetime.timedelta(hours=1, minutes=5 * j),
            offsets=core.psf_offsets[j],
            dither=dither_meta(setup, opts.psf_dither, j),
        )
        for j in range(npsfs)
    ]
    return Simulation(
        instrument=setup.key,
        sci=sci[0],
        sci_err=sci[1],
        sci_dq=sci[2],
        psf=psf[0],
        psf_err=psf[1],
        psf_dq=psf[2],
        mask=core.mask,
        truth=truth,
        sci_meta=sci_meta,
        psf_meta=stack_meta(setup, psf_metas),
        psfmask_meta=psfmask_meta(setup, shape, opts),
        sci_noiseless=core.sci_noiseless[0],
        psf_noiseless=np.concatenate(core.psf_noiseless),
        sci_var_poisson=sci[3],
        sci_var_rnoise=sci[4],
        psf_var_poisson=psf[3],
        psf_var_rnoise=psf[4],
        seed=int(seed),
    )
