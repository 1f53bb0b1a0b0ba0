"""One simulated observation: wavefronts, star positions and fluxes, images, the exact truth
and the detected exposures of a set of science and PSF exposures, from one seed.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time

import numpy as np
import scipy.fft as sfft

from coronalign.core import reproducible as rep
from coronalign.simulation.detector import detect, static_defects
from coronalign.simulation.instruments import SETUPS, Setup, coronagraph_center
from coronalign.simulation.optics import (
    coronagraphic_spectra,
    make_optics,
    mixing_weights,
    offaxis_spectrum,
    phase_screens,
    real_scale,
    reference_static_screen,
    shift_ramp,
)
from coronalign.simulation.options import Options
from coronalign.simulation.pointing import POINTING_CONVENTION, dither_offsets, header_offsets
from coronalign.simulation.psfmask import psfmask_array
from coronalign.simulation.truth import truth_fit

__all__ = ["STREAMS", "Observation", "simulate_observation", "truth_dict"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Observation:
    """Everything one seed makes: exposures, noiseless images, positions, fluxes and truth."""

    setup: Setup
    shape: tuple[int, int]
    mask: np.ndarray
    sci: list  # per science exposure: tuple from detect
    psf: list  # per PSF exposure
    sci_noiseless: list
    psf_noiseless: list
    sci_pos: list  # per science exposure: (nints, 2) (y, x)
    psf_pos: list
    sci_flux: list
    psf_flux: list
    truth: list  # per science exposure: (nints, total_psf, 3)
    sci_offsets: np.ndarray  # (n science exposures, 2): header (x, y) offsets, arcsec
    psf_offsets: np.ndarray  # (n PSF exposures, 2)
    options: Options
    wavefront_correlation: float  # science vs reference static screens, over the pupil


#: Random streams spawned from the seed, in this order (the first five are the original ones;
#: the others are drawn from only when the option that needs them is active).
STREAMS = ("optics", "stars", "noise", "garbage", "defects", "reference_wavefront")


def simulate_observation(setup, shape, sci_groups, psf_groups, seed, opts):
    """Simulate science and PSF exposures together, with the exact truth of every pair.

    Parameters
    ----------
    setup : Setup
        The configuration.
    shape : tuple of int
        ``(ny, nx)``.
    sci_groups, psf_groups : list of int
        Integrations of each science and of each PSF exposure.
    seed : int
        The seed of every random stream (:data:`STREAMS`).
    opts : Options
        Validated options.

    Returns
    -------
    Observation
    """
    t0 = time.perf_counter()
    ss = np.random.SeedSequence([int(seed), list(SETUPS).index(setup.key)])
    rng = dict(zip(STREAMS, (np.random.default_rng(s) for s in ss.spawn(8)), strict=False))
    rng_optics, rng_stars, rng_noise, rng_garbage, rng_defects = (rng[name] for name in STREAMS[:5])
    if opts.noise_seed is not None:
        # Another realisation of the pixel noise of the same scene: the stars, wavefronts,
        # defects and garbage come from ``seed`` as before, only the noise stream changes.
        rng_noise = np.random.default_rng(
            np.random.SeedSequence([int(seed), list(SETUPS).index(setup.key), opts.noise_seed])
        )
    optics = make_optics(setup, shape)
    n_sci, n_psf = sum(sci_groups), sum(psf_groups)
    n_star = n_sci + n_psf

    # wavefronts: static + (science | reference) difference + per-integration drift
    lam = setup.wavelength
    static = phase_screens(rng_optics, optics, 1, setup.static_wfe, lam, slope=2.5)[0]
    groups = phase_screens(rng_optics, optics, 2, setup.group_wfe, lam, slope=3.0)
    drift = phase_screens(rng_stars, optics, n_star, setup.star_wfe, lam, slope=3.0)
    which = np.r_[np.zeros(n_sci, int), np.ones(n_psf, int)]
    phases = static[None] + groups[which] + drift
    correlation = 1.0
    if opts.decorrelation > 0:  # the references get their own static screen
        ref_static = reference_static_screen(
            rng["reference_wavefront"], optics, setup, static, opts.decorrelation
        )
        phases[n_sci:] = ref_static[None] + groups[1][None] + drift[n_sci:]
        correlation = mixing_weights(opts.decorrelation)[0]

    # positions (pointing error + deliberate offsets + jitter), fluxes
    cy, cx = coronagraph_center(setup, shape)
    jitter = 0.02
    offset_scale, large_offset = opts.offset_scale, opts.large_offset
    dither = dither_offsets(setup, opts.psf_dither, len(psf_groups))  # (x, y) arcsec
    pos, flux = [], []
    for nints in sci_groups:
        off = rng_stars.normal(0.0, offset_scale, size=2)
        pos.append(np.array([cy, cx]) + off + rng_stars.normal(0.0, jitter, size=(nints, 2)))
        flux.append(1.0 + 0.003 * rng_stars.standard_normal(nints))
    big = np.zeros(2) if large_offset is None else np.array(large_offset[::-1], dtype=float)
    for j, nints in enumerate(psf_groups):
        off = rng_stars.normal(0.0, offset_scale, size=2) + big
        if opts.psf_dither != "none":
            off = off + dither[j, ::-1] / setup.pixel_scale
        pos.append(np.array([cy, cx]) + off + rng_stars.normal(0.0, jitter, size=(nints, 2)))
        ratio = float(rep.exp(rng_stars.uniform(float(rep.log(0.5)), float(rep.log(3.0)))))
        flux.append(ratio * (1.0 + 0.005 * rng_stars.standard_normal(nints)))
    all_pos = np.concatenate(pos)
    all_flux = np.concatenate(flux)

    spectra = coronagraphic_spectra(optics, phases)
    t1 = time.perf_counter()
    # one common normalisation: the brightest pixel of the first star = peak_counts
    reference = sfft.irfft2(spectra[0], s=shape)
    norm = setup.peak_counts / reference.max()
    real_scale(spectra, (all_flux * norm)[:, None, None])
    rep.complex_multiply(spectra, shift_ramp(optics, all_pos[:, 0], all_pos[:, 1]), out=spectra)
    # companion in the science exposures (rotates by a few degrees between exposures)
    sep, pa, frac = setup.companion
    comp = offaxis_spectrum(optics, static)
    real_scale(comp, frac * setup.peak_counts / sfft.irfft2(comp, s=shape).max())
    start = 0
    for e, nints in enumerate(sci_groups):
        cos, sin = (float(v) for v in rep.sincos_2pi((pa + 8.0 * e) / 360.0))
        cyy = all_pos[start : start + nints, 0] + sep * cos
        cxx = all_pos[start : start + nints, 1] - sep * sin
        fl = all_flux[start : start + nints, None, None]
        ramp = shift_ramp(optics, cyy, cxx)
        spectra[start : start + nints] += rep.complex_multiply(real_scale(ramp, fl), comp[None])
        start += nints
    images = sfft.irfft2(spectra, s=shape, axes=(1, 2))
    del spectra
    t2 = time.perf_counter()

    mask = psfmask_array(setup.key, shape, taper=opts.taper, mask_style=opts.mask_style)
    weight = mask.astype(np.float64) ** 2
    sci_images = images[:n_sci]
    psf_images = images[n_sci:]
    conv = setup.to_mjysr
    start_guess = np.empty((n_sci, n_psf, 3))
    start_guess[:, :, 0] = all_pos[None, n_sci:, 1] - all_pos[:n_sci, None, 1]
    start_guess[:, :, 1] = all_pos[None, n_sci:, 0] - all_pos[:n_sci, None, 0]
    start_guess[:, :, 2] = all_flux[None, n_sci:] / all_flux[:n_sci, None]
    # with unmatched speckles the objective has many minima: the truth is then the one
    # downhill from the geometric shift (see _damped_newton), reported as it is
    truth = truth_fit(sci_images, psf_images, weight, start_guess, damped=opts.decorrelation > 0)
    t3 = time.perf_counter()

    defects = static_defects(rng_defects, setup, shape)
    detector = setup  # with another read noise (e- per integration) if the option says so
    if opts.read_noise is not None:
        detector = dataclasses.replace(setup, read_noise=opts.read_noise)
    detected = []
    bounds = np.cumsum([0, *sci_groups, *psf_groups])
    for a, b in itertools.pairwise(bounds):
        arguments = (rng_noise, rng_garbage, detector, images[a:b], defects, opts.noise)
        detected.append(
            detect(*arguments, opts.garbage, consistent_variances=opts.consistent_variances)
        )
    t4 = time.perf_counter()
    log.debug(
        "simulated %d science + %d PSF images %s: optics %.2fs, images %.2fs, truth %.2fs, "
        "detector %.2fs",
        n_sci,
        n_psf,
        shape,
        t1 - t0,
        t2 - t1,
        t3 - t2,
        t4 - t3,
    )
    ns = len(sci_groups)
    sci_bounds = bounds[: ns + 1]
    return Observation(
        setup=setup,
        shape=shape,
        mask=mask,
        sci=detected[:ns],
        psf=detected[ns:],
        sci_noiseless=[images[a:b] * conv for a, b in itertools.pairwise(sci_bounds)],
        psf_noiseless=[images[a:b] * conv for a, b in itertools.pairwise(bounds[ns:])],
        sci_pos=pos[:ns],
        psf_pos=pos[ns:],
        sci_flux=flux[:ns],
        psf_flux=flux[ns:],
        truth=[truth[a:b] for a, b in itertools.pairwise(sci_bounds)],
        sci_offsets=np.zeros((ns, 2)),
        psf_offsets=header_offsets(setup, opts, dither),
        options=opts,
        wavefront_correlation=correlation,
    )


def truth_dict(core, i):
    """The truth of science exposure ``i`` against the whole PSF stack, as nested lists.

    Parameters
    ----------
    core : Observation
        The simulated observation.
    i : int
        The science exposure.

    Returns
    -------
    dict
        See :class:`coronalign.simulation.Simulation` (``truth``).
    """
    truth, sci_pos, sci_flux = core.truth[i], core.sci_pos[i], core.sci_flux[i]
    psf_pos = np.concatenate(core.psf_pos)
    psf_flux = np.concatenate(core.psf_flux)
    opts, scale = core.options, core.setup.pixel_scale
    binary = bool(np.all((core.mask == 0) | (core.mask == 1)))
    # header offsets of every PSF plane (an exposure's offsets hold for all its integrations)
    planes = np.repeat(core.psf_offsets, [p.shape[0] for p in core.psf_pos], axis=0)
    sci_offset = core.sci_offsets[i]
    prior = (planes - sci_offset[None, :]) / scale  # (npsfs, 2) px
    nints = sci_pos.shape[0]
    cy, cx = coronagraph_center(core.setup, core.shape)
    return {
        "xshift": truth[:, :, 0].tolist(),
        "yshift": truth[:, :, 1].tolist(),
        "beta": truth[:, :, 2].tolist(),
        "xshift_geometric": (psf_pos[None, :, 1] - sci_pos[:, None, 1]).tolist(),
        "yshift_geometric": (psf_pos[None, :, 0] - sci_pos[:, None, 0]).tolist(),
        "sci_x": sci_pos[:, 1].tolist(),
        "sci_y": sci_pos[:, 0].tolist(),
        "psf_x": psf_pos[:, 1].tolist(),
        "psf_y": psf_pos[:, 0].tolist(),
        "sci_flux": np.asarray(sci_flux).tolist(),
        "psf_flux": np.asarray(psf_flux).tolist(),
        "definition": (
            "(xshift, yshift, beta) minimise sum((mask*(psf[m] - beta*shift(sci[k], xshift, "
            "yshift)))**2) on the noiseless float64 images; shift is the circular Fourier "
            "shift, +xshift moves the image towards larger column index (x = column, y = row); "
            "xshift = x_psf - x_sci, beta = PSF flux / science flux"
        ),
        "weighting": (
            "mask (binary, mask**2 == mask)" if binary and opts.taper == 0 else "mask**2"
        ),
        "mask_style": opts.mask_style,
        "decorrelation": opts.decorrelation,
        "wavefront_correlation": core.wavefront_correlation,
        "truth_start": (
            "geometric shift; plain Newton iteration to the minimum"
            if opts.decorrelation == 0
            else "geometric shift; damped Newton (monotone descent) to the local minimum "
            "downhill from it, which may lie far from the geometric shift"
        ),
        "xshift_header": np.tile(prior[:, 0], (nints, 1)).tolist(),
        "yshift_header": np.tile(prior[:, 1], (nints, 1)).tolist(),
        "pointing": {
            "convention": POINTING_CONVENTION,
            "pixel_scale": scale,
            "reference_point": [cx, cy],
            "sci_x_offset": float(sci_offset[0]),
            "sci_y_offset": float(sci_offset[1]),
            "psf_x_offset": planes[:, 0].tolist(),
            "psf_y_offset": planes[:, 1].tolist(),
            "psf_dither": opts.psf_dither,
            "offset_scale": opts.offset_scale,
            "large_offset": None if opts.large_offset is None else list(opts.large_offset),
            "large_offset_recorded": opts.large_offset is not None and opts.record_large_offset,
        },
    }
