"""Synthetic JWST coronagraphic exposures whose alignment truth is known exactly.

The simulator makes ``_calints`` cubes for a science target and a stack of reference PSFs, a
PSFMASK, and the true registration parameters of every (science integration, PSF) pair, in
one of four instrument configurations (``instrument=``):

==============  ===========  ========  ===========  ==========  =========  ============
configuration   subarray     frame     detector     filter      mask       pixel scale
==============  ===========  ========  ===========  ==========  =========  ============
``nircam``      SUB320A335R  320x320   NRCALONG     F335M       MASKA335R  0.063"
``miri``        MASK1550     224x288   MIRIMAGE     F1550C      4QPM_1550  0.11"
``nircam-sw``   SUB640A210R  640x640   NRCA2        F210M       MASKA210R  0.031"
``miri-lyot``   MASKLYOT     304x320   MIRIMAGE     F2300C      LYOT_2300  0.11"
==============  ===========  ========  ===========  ==========  =========  ============

``nircam`` is the long-wave channel with a round occulter, ``nircam-sw`` the short-wave channel
with a round occulter, ``miri`` the four-quadrant phase mask (exposure type ``MIR_4QPM``) and
``miri-lyot`` the Lyot coronagraph (``MIR_LYOT``: an opaque 2.16" spot with a bar from it
towards +y). The MIRI frames have a NON_SCIENCE band of columns on the left. Subarray
positions (``SUBSTRT1/2``) are the real ones for SUB640A210R (392, 1186) and MASKLYOT (1, 717)
and illustrative for the first two configurations; occulter geometry, throughput, noise and
the mask centre within the frame are illustrative.

How the images are made
-----------------------
Each star is imaged through a coronagraph by Fourier optics: an entrance pupil (circular,
central obstruction, three spiders) with a random phase screen -> focal plane at 2x the
detector sampling, multiplied by the occulter (a Gaussian-profile round mask, a
four-quadrant phase mask or an opaque spot with a bar) -> Lyot plane, multiplied by an
undersized Lyot stop -> final focal plane at detector sampling. The Lyot stop is small
enough that the final intensity is band-limited below the detector Nyquist frequency, so the
image is known exactly as a continuous (periodic) function; detector pixel integration (a
sinc transfer function) and the star's sub-pixel position (a phase ramp) are then applied
*exactly* in the Fourier domain. A translated star is therefore exactly a Fourier shift of
the same image, with no power at the Nyquist frequency (so every Fourier-shift convention
agrees).

Each star gets its own wavefront error: a common static screen, a small science /
reference difference and a per-integration drift, so science and reference PSFs never
match perfectly. The science exposures also hold a faint companion.

``decorrelation`` (0 to 1, default 0) gives the reference stars a static screen of their
own: ``cos(a pi/2) S1 + sin(a pi/2) S2``, with ``S1`` the science target's screen and ``S2``
an independent screen of the same statistics made orthogonal to ``S1`` over the pupil and
scaled to its RMS. The RMS wavefront error is therefore exactly preserved and the two
screens correlate by exactly ``cos(a pi/2)``: at 1 the speckles do not match at all. (MIRI
images are dominated by the deterministic diffraction pattern, so they still subtract to
~10 %; NIRCam halos are speckle-dominated.)

The truth
---------
For a science integration ``k`` and a reference PSF ``m`` the truth is the exact minimiser
of ``sum(mask**2 * (psf_m - beta * shift(sci_k, xshift, yshift))**2)`` over the NOISELESS
float64 images, where ``shift`` is the circular Fourier shift (``+xshift`` moves the image
towards larger column index). It is found by a Newton iteration on that objective,
evaluated in closed form in the Fourier domain, converged to ~1e-10 px, started at the
geometric shift. With the default binary mask ``mask**2 == mask``; fractional masks (a taper
or ``mask_style="crds"``) are weighted by ``mask**2``, as the official objective does. The
"geometric" offsets (star position differences) are reported too; they differ from the truth
by the small bias that the wavefront drift causes. With ``decorrelation > 0`` the objective
has many local minima and the truth may lie far from the geometric shift: it is then the
local minimum downhill from the geometric shift (a damped, monotone Newton iteration), and
is reported as it is.

PSFMASK styles
--------------
``mask_style="geometric"`` (default): 1, with 0 in a disc around the coronagraph centre,
within 10 px of the frame edges and on the MIRI NON_SCIENCE columns; ``taper`` (px) smooths
the steps with a raised cosine. ``mask_style="crds"``: shaped like the released CRDS files.
NIRCam files are fractional weights, ``1e-5 + (0.99 - 1e-5) * T(r)`` here, with ``T`` the
intensity transmission of the simulated occulter (about 1e-5 at the centre rising smoothly
to 0.99; median 0.99), and the whole last row and last column exactly 0. MIRI files are 0/1:
the geometric binary mask, and for the Lyot also 0 on the occulting bar.

Pointing
--------
A star sits at the coronagraph centre + deliberate offset + pointing error + jitter. The
deliberate offsets are written to each exposure's header as ``meta.dither.x_offset`` /
``y_offset`` (FITS ``XOFFSET`` / ``YOFFSET``, arcsec along the detector columns (x) and rows
(y); star position = reference point + offset / pixel scale, the pixel scale being
``sqrt(meta.photometry.pixelarea_arcsecsq)``; ``meta.wcsinfo.crpix1/2`` is the reference
point, the coronagraph centre, and ``cdelt1/2`` the pixel size in degrees). They are 0 for
the science target, the small-grid dither of the references (``psf_dither``: 20 mas steps
for NIRCam, 10 mas for MIRI) and, only with ``record_large_offset=True``, ``large_offset``.
The pointing error (``offset_scale`` RMS, per exposure) and the 0.02 px jitter (per
integration) are not recorded, so the prior ``(x_offset_psf - x_offset_sci) / scale`` a
reader derives from the headers (``xshift_header`` in the truth) is close to, but not
exactly, ``xshift_geometric``. A ``_psfstack``'s metadata are those of its first member, so
the stack written by :func:`write_simulation` also lists every member's offsets, in stack
order, in ``meta.coronalign.psf_members`` (``filename``, ``nints``, ``x_offset``,
``y_offset``).

Noise and defects
-----------------
Photon noise (Poisson, including a background that is subtracted again, as in
background-subtracted stage 2 products) and Gaussian read noise; ERR, VAR_POISSON and
VAR_RNOISE consistent with it. Then a few hundred DQ-flagged pixels per plane holding
garbage (hot, dead, saturated, a cluster of adjacent bad pixels, defects on row 0,
column 0 and in the corners), NaN pixels with and without DO_NOT_USE, +/-inf pixels,
SATURATED-only and JUMP_DET-only pixels with valid values, and for MIRI a NON_SCIENCE band
of columns. Data are written as float32 in MJy/sr as real ``_calints`` are.

:func:`simulate_exposures` is pure (no I/O); :func:`write_simulation` and
:func:`write_association` write files that validate with ``stdatamodels``.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import logging
import math
import pathlib
import time

import numpy as np
import scipy.fft as sfft

from coronalign.errors import ParameterError

log = logging.getLogger(__name__)

__all__ = [
    "Simulation",
    "psfmask_array",
    "simulate_exposures",
    "write_association",
    "write_simulation",
]

# JWST pixel DQ bits (the values of stdatamodels' dqflags.pixel; kept here so that the
# simulation itself does not import stdatamodels).
DO_NOT_USE = 1
SATURATED = 2
JUMP_DET = 4
NON_SCIENCE = 512
DEAD = 1024
HOT = 2048

_ARCSEC = math.pi / (180.0 * 3600.0)
_TELESCOPE_DIAMETER = 6.5  # m
_MJD_EPOCH = datetime.datetime(1858, 11, 17)


# --------------------------------------------------------------------------------------
# Instrument configurations
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Setup:
    """Everything that distinguishes the two instrument configurations."""

    key: str
    name: str
    shape: tuple[int, int]
    detector: str
    filter: str
    pupil: str | None
    coronagraph: str
    subarray: str
    exp_type: str
    xstart: int
    ystart: int
    full_frame: tuple[int, int]
    aperture: str
    module: str | None
    channel: str | None
    sca_num: int
    readpatt: str
    ngroups: int
    nframes: int
    groupgap: int
    frame_time: float
    pixel_scale: float  # arcsec / px
    wavelength: float  # m
    lyot_outer: float  # Lyot stop outer diameter / telescope diameter
    lyot_inner: float  # Lyot stop central obstruction diameter / telescope diameter
    occulter: str  # "round" or "4qpm"
    occulter_hwhm: float  # px, round mask only
    occulter_offset: tuple[float, float]  # px (y, x): static star-to-mask misalignment
    static_wfe: float  # nm RMS
    group_wfe: float  # nm RMS, science-vs-reference difference
    star_wfe: float  # nm RMS, per integration
    peak_counts: float  # e- per integration in the brightest coronagraphic pixel
    background: float  # e- per integration per pixel (noise only; subtracted)
    read_noise: float  # e- per integration
    to_mjysr: float  # MJy/sr per e- per integration
    nonscience_fraction: float  # fraction of the columns (left side) that are NON_SCIENCE
    center_offset: tuple[float, float]  # coronagraph centre minus science-area centre (y, x)
    core_radius: float  # px: mask is 0 inside
    border: int  # px: mask is 0 within this distance of the (science) frame edge
    companion: tuple[float, float, float]  # separation (px), position angle (deg), peak
    # fraction of the brightest coronagraphic pixel
    # fields added after the first two configurations (defaults keep those unchanged)
    occulter_radius: float = 0.0  # px, "spot" occulter only: radius of the opaque disc
    bar_halfwidth: float = 0.0  # px, "spot" occulter only: opaque bar from the spot towards +y
    sgd_step: float = 0.020  # arcsec: step of the small-grid dither of the references


_SETUPS = {
    "nircam": _Setup(
        key="nircam",
        name="NIRCAM",
        shape=(320, 320),
        detector="NRCALONG",
        filter="F335M",
        pupil="MASKRND",
        coronagraph="MASKA335R",
        subarray="SUB320A335R",
        exp_type="NRC_CORON",
        xstart=1729,  # illustrative position on the 2048 x 2048 detector
        ystart=1,
        full_frame=(2048, 2048),
        aperture="NRCA5_MASK335R",
        module="A",
        channel="LONG",
        sca_num=485,
        readpatt="MEDIUM8",
        ngroups=10,
        nframes=8,
        groupgap=2,
        frame_time=1.06904,
        pixel_scale=0.063,
        wavelength=3.35e-6,
        lyot_outer=0.80,
        lyot_inner=0.25,
        occulter="round",
        occulter_hwhm=0.58 / 0.063,
        occulter_offset=(0.04, -0.03),
        static_wfe=75.0,
        group_wfe=1.2,
        star_wfe=0.3,
        peak_counts=4.0e4,
        background=30.0,
        read_noise=12.0,
        to_mjysr=0.01,
        nonscience_fraction=0.0,
        center_offset=(2.35, -1.85),
        core_radius=6.0,
        border=10,
        companion=(18.0, 37.0, 0.05),
    ),
    "miri": _Setup(
        key="miri",
        name="MIRI",
        shape=(224, 288),
        detector="MIRIMAGE",
        filter="F1550C",
        pupil=None,
        coronagraph="4QPM_1550",
        subarray="MASK1550",
        exp_type="MIR_4QPM",
        xstart=1,
        ystart=467,
        full_frame=(1024, 1032),
        aperture="MIRIM_MASK1550",
        module=None,
        channel=None,
        sca_num=493,
        readpatt="FASTR1",
        ngroups=60,
        nframes=1,
        groupgap=0,
        frame_time=0.23616,
        pixel_scale=0.11,
        wavelength=15.5e-6,
        lyot_outer=0.90,
        lyot_inner=0.30,
        occulter="4qpm",
        occulter_hwhm=0.0,
        occulter_offset=(0.06, 0.09),
        static_wfe=120.0,
        group_wfe=2.5,
        star_wfe=0.5,
        peak_counts=1.5e5,
        background=4.0e4,
        read_noise=30.0,
        to_mjysr=0.002,
        nonscience_fraction=32.0 / 288.0,
        center_offset=(-0.7, 0.4),
        core_radius=5.0,
        border=10,
        companion=(14.0, 123.0, 0.05),
        sgd_step=0.010,
    ),
    # Configurations added later. Keep appending: the position in this dict seeds the random
    # streams (``_simulate_core``), so reordering would change every existing simulation.
    "nircam-sw": _Setup(
        key="nircam-sw",
        name="NIRCAM",
        shape=(640, 640),
        detector="NRCA2",
        filter="F210M",
        pupil="MASKRND",
        coronagraph="MASKA210R",
        subarray="SUB640A210R",
        exp_type="NRC_CORON",
        # from published mask-centre positions of NRCA2_MASK210R in the subarray, (321.8, 331.5),
        # and on the full detector, (712.8, 1516.5): the subarray starts at (392, 1186)
        xstart=392,
        ystart=1186,
        full_frame=(2048, 2048),
        aperture="NRCA2_MASK210R",
        module="A",
        channel="SHORT",
        sca_num=482,
        readpatt="MEDIUM8",
        ngroups=10,
        nframes=8,
        groupgap=2,
        frame_time=4.18584,  # (640 + 12) * (640 + 2) * 10 us, as SUB320's 1.06904 s
        pixel_scale=0.031,
        wavelength=2.1e-6,
        lyot_outer=0.80,
        lyot_inner=0.25,
        occulter="round",
        occulter_hwhm=0.40 / 0.031,
        occulter_offset=(-0.05, 0.03),
        static_wfe=75.0,
        group_wfe=1.2,
        star_wfe=0.3,
        peak_counts=4.0e4,
        background=5.0,
        read_noise=12.0,
        to_mjysr=0.04,  # smaller pixels: ~(0.063 / 0.031)**2 times the LW conversion
        nonscience_fraction=0.0,
        center_offset=(11.0, 1.3),  # the mask centre (321.8, 331.5) above, 0-based
        core_radius=8.5,
        border=10,
        companion=(30.0, 37.0, 0.05),
        sgd_step=0.020,
    ),
    "miri-lyot": _Setup(
        key="miri-lyot",
        name="MIRI",
        shape=(304, 320),
        detector="MIRIMAGE",
        filter="F2300C",
        pupil=None,
        coronagraph="LYOT_2300",
        subarray="MASKLYOT",
        exp_type="MIR_LYOT",
        xstart=1,
        ystart=717,
        full_frame=(1024, 1032),
        aperture="MIRIM_MASKLYOT",
        module=None,
        channel=None,
        sca_num=493,
        readpatt="FASTR1",
        ngroups=40,
        nframes=1,
        groupgap=0,
        frame_time=0.324,  # 32400 frame clocks of 10 us
        pixel_scale=0.11,
        wavelength=23.0e-6,
        lyot_outer=0.84,
        lyot_inner=0.30,
        occulter="spot",
        occulter_hwhm=0.0,
        occulter_offset=(0.05, -0.08),
        static_wfe=120.0,
        group_wfe=2.5,
        star_wfe=0.5,
        peak_counts=1.5e5,
        background=1.2e5,
        read_noise=30.0,
        to_mjysr=0.002,
        nonscience_fraction=0.1,  # illustrative: 32 columns on the left
        center_offset=(-1.1, 0.7),  # illustrative
        core_radius=10.0,
        border=10,
        companion=(20.0, 123.0, 0.05),
        occulter_radius=1.08 / 0.11,  # the 2.16" spot
        bar_halfwidth=0.36 / 0.11,  # illustrative bar width 0.72"
        sgd_step=0.010,
    ),
}

_PROGRAM = "01234"
_SCI_OBS = "001"
_PSF_OBS = "002"
_ASN_ID = "a3001"


# --------------------------------------------------------------------------------------
# Public results
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Parameter checks
# --------------------------------------------------------------------------------------


def _setup_for(instrument):
    key = str(instrument).strip().lower()
    if key not in _SETUPS:
        raise ParameterError(
            "instrument", f"{instrument!r} is not simulated; use one of {sorted(_SETUPS)}"
        )
    return _SETUPS[key]


def _check_shape(setup, shape):
    if shape is None:
        return setup.shape
    try:
        ny, nx = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ParameterError("shape", f"{shape!r} is not a pair (ny, nx) of integers") from None
    if min(ny, nx) < 48:
        raise ParameterError("shape", f"{shape!r} is too small; each side must be >= 48 pixels")
    return ny, nx


def _check_count(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ParameterError(name, f"{value!r} must be an integer >= {minimum}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class _Options:
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


#: Names of the options of :func:`write_association` (and keyword options of the simulation).
_OPTION_NAMES = tuple(f.name for f in dataclasses.fields(_Options))


def _check_options(**options):
    """Validated :class:`_Options` (``ParameterError`` names the first bad option)."""
    unknown = set(options) - set(_OPTION_NAMES)
    if unknown:
        raise ParameterError(sorted(unknown)[0], f"unknown option; use {sorted(_OPTION_NAMES)}")
    opts = _Options(**options)
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
    if dither not in _DITHER_PATTERNS:
        raise ParameterError("psf_dither", f"{opts.psf_dither!r} is not one of {DITHER_PATTERNS}")
    try:
        taper = float(opts.taper)
    except (TypeError, ValueError):
        taper = math.nan
    style = _check_mask_style(opts.mask_style, taper)
    try:
        decorrelation = float(opts.decorrelation)
    except (TypeError, ValueError):
        decorrelation = math.nan
    if not 0.0 <= decorrelation <= 1.0:  # also rejects NaN
        raise ParameterError(
            "decorrelation", f"{opts.decorrelation!r} must be a number between 0 and 1"
        )
    return _Options(
        offset_scale=offset_scale,
        large_offset=large_offset,
        record_large_offset=bool(opts.record_large_offset),
        psf_dither=dither,
        noise=bool(opts.noise),
        garbage=bool(opts.garbage),
        taper=taper,
        mask_style=style,
        decorrelation=decorrelation,
    )


# --------------------------------------------------------------------------------------
# Geometry: frame, coronagraph centre, PSFMASK
# --------------------------------------------------------------------------------------


def _science_columns(setup, shape):
    """First column of the science area (columns before it are NON_SCIENCE)."""
    return round(setup.nonscience_fraction * shape[1])


def _coronagraph_center(setup, shape):
    """(y, x) of the coronagraph centre in 0-based pixel coordinates."""
    ny, nx = shape
    x0 = _science_columns(setup, shape)
    cy = 0.5 * (ny - 1) + setup.center_offset[0]
    cx = 0.5 * (x0 + nx - 1) + setup.center_offset[1]
    return cy, cx


def _ramp(distance, width):
    """Raised-cosine ramp from 0 (distance <= 0) to 1 (distance >= width); a step if width 0."""
    if width <= 0:
        return (distance > 0).astype(np.float64)
    t = np.clip(distance / width, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * t)


#: Mask styles of :func:`psfmask_array`.
MASK_STYLES = ("geometric", "crds")
#: CRDS-like NIRCam PSFMASK: weight at the occulter centre and far from it.
_CRDS_FLOOR = 1.0e-5
_CRDS_LEVEL = 0.99


def _check_mask_style(mask_style, taper):
    style = str(mask_style).strip().lower()
    if style not in MASK_STYLES:
        raise ParameterError("mask_style", f"{mask_style!r} is not one of {list(MASK_STYLES)}")
    if not np.isfinite(taper) or taper < 0:
        raise ParameterError("taper", f"{taper!r} must be a finite number of pixels >= 0")
    if style == "crds" and taper != 0:
        raise ParameterError("taper", "applies to mask_style='geometric' only")
    return style


def _geometric_mask(setup, shape, taper):
    """0 in the core, the border and the NON_SCIENCE columns, 1 elsewhere (raised-cosine taper)."""
    ny, nx = shape
    cy, cx = _coronagraph_center(setup, (ny, nx))
    y = np.arange(ny, dtype=np.float64)[:, None]
    x = np.arange(nx, dtype=np.float64)[None, :]
    r = np.hypot(y - cy, x - cx)
    core = _ramp(r - setup.core_radius, taper)
    x0 = _science_columns(setup, (ny, nx))
    # distance (in px) inside the allowed area, measured from the border line
    dy = np.minimum(y, ny - 1 - y) - (setup.border - 1)
    dx = np.minimum(x - x0, nx - 1 - x) - (setup.border - 1)
    edge = _ramp(dy, taper) * _ramp(dx, taper)
    return (core * edge).astype(np.float32)


def _crds_like_mask(setup, shape):
    """A mask shaped like the released CRDS PSFMASK files of the instrument.

    NIRCam (fractional): ``1e-5 + (0.99 - 1e-5) * T(r)`` with ``T`` the intensity
    transmission of the simulated round occulter around the coronagraph centre (0 at the
    centre, 0.5 at ``occulter_hwhm``, -> 1 far away), so about 1e-5 at the centre and 0.99
    elsewhere; the whole last row and the whole last column are exactly 0.
    MIRI (0/1 like the real files): the binary geometric mask, and for the Lyot also 0 on the
    occulting bar.
    """
    ny, nx = shape
    cy, cx = _coronagraph_center(setup, shape)
    dy = np.arange(ny, dtype=np.float64)[:, None] - cy
    dx = np.arange(nx, dtype=np.float64)[None, :] - cx
    if setup.name == "NIRCAM":
        sigma = _occulter_sigma(setup)
        transmission = (1.0 - np.exp(-(dy**2 + dx**2) / (2.0 * sigma**2))) ** 2
        mask = (_CRDS_FLOOR + (_CRDS_LEVEL - _CRDS_FLOOR) * transmission).astype(np.float32)
        mask[-1, :] = 0.0
        mask[:, -1] = 0.0
        return mask
    mask = _geometric_mask(setup, shape, 0.0)
    if setup.occulter == "spot" and setup.bar_halfwidth > 0:
        bar = (np.abs(dx) <= setup.bar_halfwidth) & (dy >= 0)
        mask[np.broadcast_to(bar, shape)] = 0.0
    return mask


def psfmask_array(
    instrument="nircam", shape=None, *, taper=0.0, full_frame=False, mask_style="geometric"
):
    """The PSFMASK used by the simulation.

    Parameters
    ----------
    instrument : {"nircam", "miri", "nircam-sw", "miri-lyot"}
        Instrument configuration (see the module docstring).
    shape : tuple of int, optional
        ``(ny, nx)`` of the simulated frame; default the instrument's subarray shape.
    taper : float, optional
        ``mask_style="geometric"`` only: width in pixels of a raised-cosine transition
        between 0 and 1 at the occulted core and at the frame border. The default 0 gives a
        binary mask.
    full_frame : bool, optional
        If True, return the full detector frame (2048 x 2048 for NIRCam, 1024 rows x 1032
        columns for MIRI) with the subarray mask placed at the subarray's 1-based
        ``xstart``/``ystart`` and zeros elsewhere, as a full-frame reference file would be cut
        out by ``SUBSTRT1/2`` and ``SUBSIZE1/2``.
    mask_style : {"geometric", "crds"}, optional
        ``"geometric"`` (default): 0 within ``core_radius`` of the coronagraph centre, within
        ``border`` (10) pixels of the frame edges and on the MIRI NON_SCIENCE columns (and
        ``border`` pixels beyond them), 1 elsewhere (``taper`` smooths the steps).
        ``"crds"``: shaped like the released CRDS files. NIRCam: fractional weights, about
        1e-5 at the occulter centre rising smoothly (the occulter's intensity transmission)
        to 0.99, and the whole last row and last column exactly 0. MIRI: 0/1, as the real
        files; the geometric binary mask, plus 0 on the occulting bar for ``miri-lyot``.

    Returns
    -------
    numpy.ndarray
        float32 weights, 1 = use, 0 = ignore.
    """
    setup = _setup_for(instrument)
    ny, nx = _check_shape(setup, shape)
    style = _check_mask_style(mask_style, taper)
    if style == "crds":
        mask = _crds_like_mask(setup, (ny, nx))
    else:
        mask = _geometric_mask(setup, (ny, nx), taper)
    if not full_frame:
        return mask
    fy, fx = setup.full_frame
    y0, x0f = setup.ystart - 1, setup.xstart - 1
    if y0 + ny > fy or x0f + nx > fx:
        raise ParameterError(
            "shape", f"{(ny, nx)} does not fit on the {fy} x {fx} detector at the subarray position"
        )
    full = np.zeros((fy, fx), dtype=np.float32)
    full[y0 : y0 + ny, x0f : x0f + nx] = mask
    return full


# --------------------------------------------------------------------------------------
# Pointing: deliberate offsets (written to the headers) and pointing errors (not written)
# --------------------------------------------------------------------------------------

#: Small-grid dither patterns of the reference exposures, in steps of ``sgd_step`` along
#: (x, y); reference exposure ``j`` is observed at point ``j % len(pattern)``.
_DITHER_PATTERNS = {
    "none": ((0, 0),),
    "5-point-box": ((0, 0), (1, 1), (1, -1), (-1, -1), (-1, 1)),
    "5-point-diamond": ((0, 0), (1, 0), (0, 1), (-1, 0), (0, -1)),
    "9-point-grid": ((0, 0), (1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)),
}
#: Names accepted by ``psf_dither``.
DITHER_PATTERNS = tuple(_DITHER_PATTERNS)

_POINTING_CONVENTION = (
    "x_offset, y_offset (arcsec) are the deliberate offsets written to the headers "
    "(meta.dither.x_offset / y_offset, FITS XOFFSET / YOFFSET) along the detector columns (x) "
    "and rows (y): star position = reference point + offset / pixel_scale, with pixel_scale = "
    "sqrt(meta.photometry.pixelarea_arcsecsq). The pointing error (target acquisition error, "
    "offset_scale; jitter, 0.02 px) and an unrecorded large_offset are not in the headers. "
    "xshift_header = (x_offset_psf - x_offset_sci) / pixel_scale is the prior a reader derives "
    "from the headers; compare it with xshift_geometric"
)


def _dither_offsets(setup, pattern, count):
    """``(count, 2)`` deliberate (x, y) offsets in arcsec of ``count`` reference exposures."""
    points = np.asarray(_DITHER_PATTERNS[pattern], dtype=np.float64)
    return points[np.arange(count) % len(points)] * setup.sgd_step


def _dither_meta(setup, pattern, index):
    """``meta.dither`` entries naming the small-grid position of reference exposure ``index``."""
    if pattern == "none":
        return {}
    n = len(_DITHER_PATTERNS[pattern])
    return {
        "small_grid_pattern": pattern.upper(),
        "position_number": int(index % n) + 1,
        "total_points": n,
    }


# --------------------------------------------------------------------------------------
# Optics
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Optics:
    """Precomputed planes for one instrument and frame shape (float64/complex128)."""

    shape: tuple[int, int]
    box_y: np.ndarray  # indices of the pupil box rows in the unshifted (2ny, 2nx) grid
    box_x: np.ndarray
    pupil_box: np.ndarray  # entrance pupil amplitude on the box
    occulter: np.ndarray  # (2ny, 2nx) complex focal-plane mask, unshifted layout
    crop_y: np.ndarray  # rows / columns of the 2x pupil grid kept for the final plane
    crop_x: np.ndarray
    lyot: np.ndarray  # (ny, nx) Lyot stop on the final pupil grid, unshifted layout
    lyot_box: np.ndarray  # Lyot stop on the pupil box (for the off-axis PSF)
    mtf: np.ndarray  # (ny, nx//2+1) pixel transfer function, with the band edge zeroed
    fy: np.ndarray  # (ny, 1) cycles / px
    fx: np.ndarray  # (1, nx//2+1)
    box_u: tuple[np.ndarray, np.ndarray]  # (uy, ux) pupil coordinates (m) of the box


def _signed(n):
    """Signed integer frequency indices in FFT order: 0, 1, ..., -2, -1 (exact ints)."""
    i = np.arange(n)
    return np.where(i < (n + 1) // 2, i, i - n)


def _spiders(uy, ux, width, angles_deg):
    out = np.zeros(np.broadcast(uy, ux).shape, dtype=bool)
    for angle in np.deg2rad(angles_deg):
        along = ux * np.cos(angle) + uy * np.sin(angle)
        across = -ux * np.sin(angle) + uy * np.cos(angle)
        out |= (along > 0) & (np.abs(across) < 0.5 * width)
    return out


def _occulter_sigma(setup):
    """Gaussian width (px) of the round occulter's amplitude profile ``1 - exp(-r**2/2s**2)``.

    Its intensity transmission ``(1 - exp(-r**2 / 2 s**2))**2`` is 0.5 at ``occulter_hwhm``.
    """
    return setup.occulter_hwhm / math.sqrt(-2.0 * math.log(1.0 - math.sqrt(0.5)))


def _spot_and_bar(setup, dy, dx):
    """True where the opaque spot (and its bar, towards +y) of a "spot" occulter is."""
    opaque = dy**2 + dx**2 <= setup.occulter_radius**2
    if setup.bar_halfwidth > 0:
        opaque = opaque | ((np.abs(dx) <= setup.bar_halfwidth) & (dy >= 0))
    return opaque


def _make_optics(setup, shape):
    ny, nx = shape
    p = setup.pixel_scale * _ARCSEC
    lam = setup.wavelength
    D = _TELESCOPE_DIAMETER
    du_y = lam / (ny * p)  # pupil sampling (m) of both the 2x and the final grids
    du_x = lam / (nx * p)
    Ny, Nx = 2 * ny, 2 * nx
    # pupil box: smallest centred block that holds the telescope pupil
    hy = math.ceil(0.5 * D / du_y) + 2
    hx = math.ceil(0.5 * D / du_x) + 2
    iy = np.arange(-hy, hy + 1)
    ix = np.arange(-hx, hx + 1)
    uy = (iy * du_y)[:, None]
    ux = (ix * du_x)[None, :]
    r = np.hypot(uy, ux)
    spider_angles = (90.0, 210.0, 330.0)
    pupil = (r <= 0.5 * D) & (r >= 0.5 * 0.11 * D) & ~_spiders(uy, ux, 0.02 * D, spider_angles)
    lyot_box = (
        (r <= 0.5 * setup.lyot_outer * D)
        & (r >= 0.5 * setup.lyot_inner * D)
        & ~_spiders(uy, ux, 0.06 * D, spider_angles)
    )
    # focal plane at 2x sampling: coordinates in detector pixels, origin at index 0
    yy = (_signed(Ny) / 2.0)[:, None] - setup.occulter_offset[0]
    xx = (_signed(Nx) / 2.0)[None, :] - setup.occulter_offset[1]
    if setup.occulter == "round":
        sigma = _occulter_sigma(setup)
        occ = (1.0 - np.exp(-(yy**2 + xx**2) / (2.0 * sigma**2))).astype(np.complex128)
    elif setup.occulter == "spot":
        occ = (~_spot_and_bar(setup, yy, xx)).astype(np.complex128)
    else:  # four-quadrant phase mask: pi phase in two opposite quadrants
        occ = (np.sign(yy + 0.25) * np.sign(xx + 0.25)).astype(np.complex128)
    crop_y = np.r_[0 : (ny + 1) // 2, Ny - ny // 2 : Ny]
    crop_x = np.r_[0 : (nx + 1) // 2, Nx - nx // 2 : Nx]
    # Lyot stop on the final (ny, nx) pupil grid, unshifted layout
    ky = _signed(ny)[:, None] * du_y
    kx = _signed(nx)[None, :] * du_x
    rk = np.hypot(ky, kx)
    lyot = (
        (rk <= 0.5 * setup.lyot_outer * D)
        & (rk >= 0.5 * setup.lyot_inner * D)
        & ~_spiders(ky, kx, 0.06 * D, spider_angles)
    )
    # band limit of the intensity (autocorrelation of the Lyot stop), in cycles / px
    band_y = setup.lyot_outer * D / du_y / ny
    band_x = setup.lyot_outer * D / du_x / nx
    if max(band_y, band_x) >= 0.5 - 1.0 / min(ny, nx):
        raise AssertionError("Lyot stop too large: the image would not be band-limited")
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.rfftfreq(nx)[None, :]
    mtf = np.sinc(fy) * np.sinc(fx)
    # zero everything beyond the band (it is zero analytically; this makes it exact)
    margin_y = band_y + 1.5 / ny
    margin_x = band_x + 1.5 / nx
    mtf = np.where((np.abs(fy) < margin_y) & (fx < margin_x), mtf, 0.0)
    return _Optics(
        shape=(ny, nx),
        box_y=iy % Ny,
        box_x=ix % Nx,
        pupil_box=pupil.astype(np.float64),
        occulter=occ,
        crop_y=crop_y,
        crop_x=crop_x,
        lyot=lyot.astype(np.float64),
        lyot_box=lyot_box.astype(np.float64),
        mtf=mtf,
        fy=fy,
        fx=fx,
        box_u=(uy, ux),
    )


def _phase_screens(rng, optics, count, rms_nm, wavelength, slope):
    """``count`` random wavefront screens (radians) on the pupil box.

    Power-law spectrum ``f**-slope``; piston, tip and tilt are removed over the pupil
    (tip/tilt would move the star, which the simulation sets explicitly) and the RMS over
    the pupil is scaled to ``rms_nm``.
    """
    uy, ux = optics.box_u
    by, bx = uy.shape[0], ux.shape[1]
    shape = (count, by, bx)
    if count == 0 or rms_nm == 0:
        return np.zeros(shape)
    fy = np.fft.fftfreq(by)[:, None]
    fx = np.fft.fftfreq(bx)[None, :]
    f2 = fy**2 + fx**2
    f2[0, 0] = np.inf
    filt = f2 ** (-slope / 4.0)
    noise = rng.standard_normal(shape)
    screens = sfft.ifft2(sfft.fft2(noise, axes=(1, 2)) * filt, axes=(1, 2)).real
    inside = optics.pupil_box > 0
    basis = np.stack([np.ones(inside.sum()), uy.repeat(bx, 1)[inside], ux.repeat(by, 0)[inside]])
    values = screens[:, inside]
    coef, *_ = np.linalg.lstsq(basis.T, values.T, rcond=None)
    values = values - (basis.T @ coef).T
    values *= (rms_nm / np.sqrt(np.mean(values**2, axis=1)))[:, None]
    screens[:] = 0.0
    screens[:, inside] = values
    return screens * (2.0 * math.pi * 1e-9 / wavelength)


def _mixing_weights(decorrelation):
    """``(cos(a pi/2), sin(a pi/2))``, exactly (1, 0) at a = 0 and (0, 1) at a = 1."""
    if decorrelation >= 1.0:
        return 0.0, 1.0
    angle = 0.5 * math.pi * decorrelation
    return math.cos(angle), math.sin(angle)


def _reference_static_screen(rng, optics, setup, static, decorrelation):
    """The references' static phase screen: ``static`` partly replaced by an independent one.

    A second screen of the same statistics is drawn, made orthogonal to ``static`` over the
    pupil and scaled to the same RMS; the result ``cos(a pi/2) static + sin(a pi/2) other``
    then has exactly the RMS of ``static`` and a correlation of exactly ``cos(a pi/2)`` with
    it over the pupil (a = ``decorrelation``).
    """
    other = _phase_screens(rng, optics, 1, setup.static_wfe, setup.wavelength, slope=2.5)[0]
    inside = optics.pupil_box > 0
    a, b = static[inside], other[inside]
    b = b - (a @ b) / (a @ a) * a
    b *= math.sqrt((a @ a) / (b @ b))
    c, s = _mixing_weights(decorrelation)
    out = np.zeros_like(static)
    out[inside] = c * a + s * b
    return out


def _coronagraphic_spectra(optics, phases, chunk=4):
    """Spectra (rfft2 layout, pixel MTF applied) of the coronagraphic images, star at 0."""
    ny, nx = optics.shape
    n = phases.shape[0]
    out = np.empty((n, ny, nx // 2 + 1), dtype=np.complex128)
    field = np.zeros((min(chunk, n), 2 * ny, 2 * nx), dtype=np.complex128)
    sel = np.ix_(optics.box_y, optics.box_x)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        c = stop - start
        field[:] = 0.0
        for j in range(c):  # one assignment per star, not per pixel
            field[j][sel] = optics.pupil_box * np.exp(1j * phases[start + j])
        e1 = sfft.fft2(field[:c], axes=(1, 2))
        e1 *= optics.occulter
        lyot_plane = sfft.ifft2(e1, axes=(1, 2), overwrite_x=True)
        final = lyot_plane[:, optics.crop_y][:, :, optics.crop_x] * optics.lyot
        e2 = sfft.fft2(final, axes=(1, 2), overwrite_x=True)
        intensity = e2.real**2 + e2.imag**2
        out[start:stop] = sfft.rfft2(intensity, axes=(1, 2)) * optics.mtf
    return out


def _offaxis_spectrum(optics, phase):
    """Spectrum of the non-coronagraphic PSF (no occulter, same Lyot stop)."""
    ny, nx = optics.shape
    pupil = np.zeros((2 * ny, 2 * nx), dtype=np.complex128)
    pupil[np.ix_(optics.box_y, optics.box_x)] = (
        optics.pupil_box * optics.lyot_box * np.exp(1j * phase)
    )
    final = pupil[optics.crop_y][:, optics.crop_x]
    e2 = sfft.fft2(final)
    return sfft.rfft2(e2.real**2 + e2.imag**2) * optics.mtf


def _shift_ramp(optics, y, x):
    """Fourier factors translating an image by (y, x) pixels; y, x are 1-D arrays."""
    ey = np.exp(-2j * np.pi * optics.fy[None] * np.asarray(y, dtype=np.float64)[:, None, None])
    ex = np.exp(-2j * np.pi * optics.fx[None] * np.asarray(x, dtype=np.float64)[:, None, None])
    return ey * ex


# --------------------------------------------------------------------------------------
# Exact least-squares truth
# --------------------------------------------------------------------------------------


def _band_slices(spectra, tol=1e-13):
    """Signed ky rows and kx columns where any spectrum is non-negligible."""
    amp = np.abs(spectra).max(axis=0)
    big = amp > tol * amp.max()
    ny = spectra.shape[1]
    ky = _signed(ny)
    rows = np.flatnonzero(big.any(axis=1))
    cols = np.flatnonzero(big.any(axis=0))
    kymax = int(np.abs(ky[rows]).max())
    kxmax = int(cols.max())
    return kymax, kxmax


def _gradient_hessian(c, q, beta):
    """Gradient ``(M, 3)`` and Hessian ``(M, 3, 3)`` of the objective in (dx, dy, beta).

    ``c`` and ``q`` are the values and derivatives ``(f, f_x, f_y, f_xx, f_yy, f_xy)`` of
    ``C(d)`` and ``Q(d)`` (see :func:`_truth_fit`).
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
        positive = np.linalg.eigvalsh(H)[:, 0] > 0
        safe_H = np.where(positive[:, None, None], H, eye)
        newton = -np.linalg.solve(safe_H, grad[:, :, None])[:, :, 0]
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
            bad = np.linalg.eigvalsh(A)[:, 0] <= 0
            if not bad.any():
                break
            mu[bad] *= 4.0
        step = -np.linalg.solve(A, grad[:, :, None])[:, :, 0]
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


def _truth_fit(sci_images, psf_images, weight, start, *, damped=False):
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
    ky = _signed(ny)[rows]
    kx = np.arange(kxmax + 1, dtype=np.float64)
    cw = np.where((kx == 0) | (2 * kx == nx), 1.0, 2.0)
    A = np.conj(sfft.rfft2(weight * psf_images, axes=(1, 2)))[:, rows][:, :, : kxmax + 1]
    A *= cw / N
    Fb = F[:, rows][:, :, : kxmax + 1]
    # Q: Fourier series of sci**2 (band up to 2 kmax) from a 2x upsampled grid
    Ny, Nx = 2 * ny, 2 * nx
    qmax_y, qmax_x = 2 * kymax, 2 * kxmax
    qrows = np.r_[0 : qmax_y + 1, Ny - qmax_y : Ny] if qmax_y > 0 else np.array([0])
    Ky = _signed(Ny)[qrows]
    Kx = np.arange(qmax_x + 1, dtype=np.float64)
    cw2 = np.where((Kx == 0) | (Kx == nx), 1.0, 2.0)
    W = sfft.fft2(weight)
    Wq = np.conj(W[np.ix_(Ky % ny, Kx.astype(int) % nx)])
    ay = -2j * np.pi * ky / ny
    ax = -2j * np.pi * kx / nx
    aY = -2j * np.pi * Ky / ny
    aX = -2j * np.pi * Kx / nx
    result = np.empty((K, M, 3))
    for k in range(K):
        up = np.zeros((Ny, nx + 1), dtype=np.complex128)
        up[np.ix_(ky % Ny, np.arange(kxmax + 1))] = Fb[k]
        sci_up = sfft.irfft2(up, s=(Ny, Nx)) * 4.0
        G = sfft.rfft2(sci_up**2)[qrows][:, : qmax_x + 1] / (4.0 * N)
        MQ = G * Wq * cw2
        MC = A * Fb[k]  # (M, ry, rx)

        def terms(dx, dy, MC=MC, MQ=MQ):
            ex = np.exp(ax[None, :] * dx[:, None])  # (M, rx)
            ey = np.exp(ay[None, :] * dy[:, None])  # (M, ry)
            EX = np.stack([ex, ex * ax, ex * ax**2], axis=2)  # (M, rx, 3)
            V = MC @ EX  # (M, ry, 3)
            c00 = np.einsum("my,my->m", ey, V[:, :, 0]).real
            c10 = np.einsum("my,my->m", ey, V[:, :, 1]).real  # d/ddx
            c20 = np.einsum("my,my->m", ey, V[:, :, 2]).real
            c01 = np.einsum("my,my->m", ey * ay, V[:, :, 0]).real  # d/ddy
            c02 = np.einsum("my,my->m", ey * ay**2, V[:, :, 0]).real
            c11 = np.einsum("my,my->m", ey * ay, V[:, :, 1]).real
            eX = np.exp(aX[None, :] * dx[:, None])  # (M, qx)
            eY = np.exp(aY[None, :] * dy[:, None])  # (M, qy)
            EXQ = np.concatenate([eX, eX * aX, eX * aX**2], axis=0).T  # (qx, 3M)
            U = (MQ @ EXQ).T.reshape(3, M, -1)  # (3, M, qy)
            q00 = np.einsum("my,my->m", eY, U[0]).real
            q10 = np.einsum("my,my->m", eY, U[1]).real
            q20 = np.einsum("my,my->m", eY, U[2]).real
            q01 = np.einsum("my,my->m", eY * aY, U[0]).real
            q02 = np.einsum("my,my->m", eY * aY**2, U[0]).real
            q11 = np.einsum("my,my->m", eY * aY, U[1]).real
            return (c00, c10, c01, c20, c02, c11), (q00, q10, q01, q20, q02, q11)

        dx, dy, beta = (start[k, :, i].astype(np.float64).copy() for i in range(3))
        if damped:
            result[k] = _damped_newton(terms, dx, dy)
            continue
        c, q = terms(dx, dy)
        beta = c[0] / q[0]
        for iteration in range(50):
            grad, H = _gradient_hessian(c, q, beta)
            step = -np.linalg.solve(H, grad[:, :, None])[:, :, 0]
            # keep steps sane if a start were far from the optimum
            big = np.abs(step[:, :2]).max(axis=1) > 0.25
            step[big] *= (0.25 / np.abs(step[big, :2]).max(axis=1))[:, None]
            dx, dy, beta = dx + step[:, 0], dy + step[:, 1], beta + step[:, 2]
            c, q = terms(dx, dy)
            size = max(np.abs(step[:, :2]).max(), np.abs(step[:, 2] / beta).max())
            if size < 1e-11 or (iteration >= 8 and size < 1e-8):  # quadratic, or rounding
                break
        # a minimum, not a saddle: the Hessian must be positive definite
        if size > 1e-8 or np.any(np.linalg.eigvalsh(H) <= 0):
            raise RuntimeError("truth fit did not converge to a minimum (simulator bug)")
        result[k, :, 0], result[k, :, 1], result[k, :, 2] = dx, dy, beta
    return result


# --------------------------------------------------------------------------------------
# Detector: noise and defects
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Defects:
    """Static detector defects (same pixels in every exposure)."""

    index: np.ndarray  # flat indices
    flags: np.ndarray  # uint32
    kind: np.ndarray  # 0 hot (huge), 1 dead (~0 / negative)


def _static_defects(rng, setup, shape):
    ny, nx = shape
    cy, cx = _coronagraph_center(setup, shape)
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
    first_col = _science_columns(setup, shape)
    y0 = int(np.clip(round(cy + r * np.sin(angle)), 2, ny - 3))
    x0 = int(np.clip(round(cx + r * np.cos(angle)), first_col + 2, nx - 3))
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
    return _Defects(
        index=index[first],
        flags=np.concatenate(flags)[first].astype(np.uint32),
        kind=np.concatenate(kind)[first],
    )


def _detect(rng, rng_garbage, setup, images, defects, noise, garbage):
    """Turn noiseless images (e-) into (data, err, dq, var_poisson, var_rnoise) in MJy/sr."""
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
    x0 = _science_columns(setup, (ny, nx))
    if x0 > 0:  # MIRI: columns outside the coronagraphic field
        dq[:, :, :x0] |= NON_SCIENCE | DO_NOT_USE
        data[:, :, :x0] = np.nan
        err[:, :, :x0] = np.nan
    if garbage:
        _add_garbage(rng_garbage, data, err, dq, defects, x0)
    return (
        data.astype(np.float32),
        err.astype(np.float32),
        dq,
        var_poisson.astype(np.float32),
        var_rnoise.astype(np.float32),
    )


#: Number of pixels per plane in each random category of :func:`_add_garbage`.
_GARBAGE_COUNTS = {
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
        scale[:, None] * 10.0 ** rng.uniform(1.0, 3.0, size=(n, di.size)),
        -scale[:, None] * 10.0 ** rng.uniform(-3.0, -0.5, size=(n, di.size)),
    )
    in_science = di % nx >= x0  # NON_SCIENCE pixels keep their NaN
    flat_data[:, di[in_science]] = values[:, in_science]
    flat_err[:, di[in_science]] = 0.0
    flat_dq[:, di] |= defects.flags
    forbidden = np.zeros(ny * nx, dtype=bool)
    forbidden[di] = True
    forbidden.reshape(ny, nx)[:, :x0] = True
    allowed = np.flatnonzero(~forbidden)
    counts = _GARBAGE_COUNTS
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
        plane[g] = s * 10.0 ** rng.uniform(1.0, 4.0, g.size)
        flat_err[i, g] = 0.0
        flat_dq[i, g] |= DO_NOT_USE
        g = groups["negative"]
        plane[g] = -s * 10.0 ** rng.uniform(-1.0, 2.0, g.size)
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


# --------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------


def _mjd(date, clock):
    stamp = datetime.datetime.fromisoformat(f"{date}T{clock}")
    return (stamp - _MJD_EPOCH).total_seconds() / 86400.0


def _exposure_root(setup, observation, exposure_number):
    return f"jw{_PROGRAM}{observation}001_03106_{exposure_number:05d}_{setup.detector.lower()}"


def _product_name(setup):
    parts = [setup.filter, setup.coronagraph, setup.subarray]
    opt = "-".join(p.lower().replace("_", "") for p in parts)
    return f"jw{_PROGRAM}-{_ASN_ID}_t001_{setup.name.lower()}_{opt}"


def _exposure_meta(
    setup, shape, nints, *, psf, exposure_number, start, offsets=(0.0, 0.0), dither=None
):
    """Datamodel attributes of one ``_calints`` exposure (nested dict).

    ``offsets`` are the (x, y) arcsec written as ``meta.dither.x_offset`` / ``y_offset``;
    ``dither`` holds further ``meta.dither`` entries (small-grid pattern and position).
    """
    ny, nx = shape
    observation = _PSF_OBS if psf else _SCI_OBS
    root = _exposure_root(setup, observation, exposure_number)
    group_time = setup.frame_time * (setup.nframes + setup.groupgap)
    tint = group_time * (setup.ngroups - 1)
    texp = tint * nints
    end = start + datetime.timedelta(seconds=texp + nints * setup.frame_time)
    mid = start + (end - start) / 2
    date, clock = start.strftime("%Y-%m-%d"), start.strftime("%H:%M:%S.%f")[:-3]
    pixel_sr = (setup.pixel_scale * _ARCSEC) ** 2
    instrument = {
        "name": setup.name,
        "detector": setup.detector,
        "filter": setup.filter,
        "coronagraph": setup.coronagraph,
    }
    if setup.pupil:
        instrument["pupil"] = setup.pupil
    if setup.module:
        instrument["module"] = setup.module
    if setup.channel:
        instrument["channel"] = setup.channel
    target = "SIM-REF-1" if psf else "SIM-SCI-1"
    return {
        "filename": f"{root}_calints.fits",
        "telescope": "JWST",
        "origin": "coronalign.simulate",
        "bunit_data": "MJy/sr",
        "bunit_err": "MJy/sr",
        "instrument": instrument,
        "exposure": {
            "type": setup.exp_type,
            "nints": int(nints),
            "ngroups": setup.ngroups,
            "nframes": setup.nframes,
            "groupgap": setup.groupgap,
            "readpatt": setup.readpatt,
            "frame_time": setup.frame_time,
            "group_time": group_time,
            "integration_time": tint,
            "exposure_time": texp,
            "effective_exposure_time": texp,
            "integration_start": 1,
            "integration_end": int(nints),
            "start_time": _mjd(date, clock),
            "mid_time": _mjd(mid.strftime("%Y-%m-%d"), mid.strftime("%H:%M:%S.%f")),
            "end_time": _mjd(end.strftime("%Y-%m-%d"), end.strftime("%H:%M:%S.%f")),
            "psf_reference": bool(psf),
            "sca_num": setup.sca_num,
            "nresets_at_start": 1,
            "nresets_between_ints": 1,
        },
        "subarray": {
            "name": setup.subarray,
            "xstart": setup.xstart,
            "ystart": setup.ystart,
            "xsize": nx,
            "ysize": ny,
        },
        "observation": {
            "date": date,
            "time": clock,
            "date_beg": f"{date}T{clock}",
            "date_end": end.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
            "program_number": _PROGRAM,
            "observation_number": observation,
            "visit_number": "001",
            "visit_group": "03",
            "sequence_id": "1",
            "activity_id": "06",
            "exposure_number": f"{exposure_number:05d}",
            "visit_id": f"{_PROGRAM}{observation}001",
            "obs_id": f"V{_PROGRAM}{observation}001P0000000003106",
        },
        "program": {
            "pi_name": "Simulated, Coronalign",
            "title": "coronalign synthetic coronagraphy",
            "category": "GO",
        },
        "target": {
            "proposer_name": target,
            "catalog_name": target,
            "type": "FIXED",
            "ra": 150.1 if not psf else 151.3,
            "dec": -30.2 if not psf else -31.0,
        },
        "aperture": {"name": setup.aperture},
        "dither": {
            "x_offset": float(offsets[0]),
            "y_offset": float(offsets[1]),
            **(dither or {}),
        },
        "wcsinfo": _wcsinfo(setup, shape),
        "photometry": {
            "conversion_megajanskys": 1.0,
            "pixelarea_steradians": pixel_sr,
            "pixelarea_arcsecsq": setup.pixel_scale**2,
        },
        "cal_step": {
            "dq_init": "COMPLETE",
            "saturation": "COMPLETE",
            "ramp_fit": "COMPLETE",
            "flat_field": "COMPLETE",
            "photom": "COMPLETE",
        },
    }


def _wcsinfo(setup, shape):
    """``meta.wcsinfo``: pixel size (deg) and the reference point (the coronagraph centre).

    ``crpix1/2`` are 1-based FITS pixel coordinates; the star of an exposure sits at about
    ``crpix + offset / pixel_scale`` (see the ``pointing`` entry of the truth).
    """
    cy, cx = _coronagraph_center(setup, shape)
    return {
        "cdelt1": setup.pixel_scale / 3600.0,
        "cdelt2": setup.pixel_scale / 3600.0,
        "crpix1": cx + 1.0,
        "crpix2": cy + 1.0,
    }


def _psf_member(meta):
    """One ``meta.coronalign.psf_members`` entry for a PSF exposure's metadata."""
    return {
        "filename": meta["filename"],
        "nints": int(meta["exposure"]["nints"]),
        "x_offset": float(meta["dither"]["x_offset"]),
        "y_offset": float(meta["dither"]["y_offset"]),
    }


def _stack_meta(setup, psf_metas):
    """``_psfstack`` metadata: those of the first member, as stack_refs makes them, plus
    ``coronalign.psf_members``, the per-member pointing in stack order (the first member's
    ``meta.dither`` holds for its planes only)."""
    meta = json.loads(json.dumps(psf_metas[0]))
    npsfs = sum(int(m["exposure"]["nints"]) for m in psf_metas)
    meta["filename"] = f"{_product_name(setup)}_psfstack.fits"
    meta["exposure"]["nints"] = int(npsfs)
    meta["exposure"]["integration_end"] = int(npsfs)
    meta["asn"] = {"pool_name": f"jw{_PROGRAM}_20230510t000000_pool", "table_name": "sim"}
    meta["coronalign"] = {"psf_members": [_psf_member(m) for m in psf_metas]}
    return meta


def _psfmask_meta(setup, shape, opts):
    ny, nx = shape
    instrument = {
        "name": setup.name,
        "detector": setup.detector,
        "filter": setup.filter,
        "coronagraph": setup.coronagraph,
    }
    return {
        "filename": (
            f"jwst_{setup.name.lower()}_{setup.filter.lower()}_{setup.subarray.lower()}"
            "_psfmask.fits"
        ),
        "telescope": "JWST",
        "reftype": "PSFMASK",
        "pedigree": "GROUND",
        "useafter": "2022-01-01T00:00:00",
        "author": "coronalign.simulate",
        "origin": "coronalign.simulate",
        "description": _psfmask_description(setup, opts),
        "instrument": instrument,
        "exposure": {"type": setup.exp_type},
        "subarray": {
            "name": setup.subarray,
            "xstart": setup.xstart,
            "ystart": setup.ystart,
            "xsize": nx,
            "ysize": ny,
        },
    }


def _psfmask_description(setup, opts):
    if opts.mask_style == "geometric":
        return (
            f"Synthetic PSFMASK: 1 = use, 0 = ignore; core radius {setup.core_radius:g} px, "
            f"border {setup.border} px, taper {opts.taper:g} px"
        )
    if setup.name == "NIRCAM":
        return (
            "Synthetic CRDS-like PSFMASK: fractional weights, 1 = use, 0 = ignore; "
            f"{_CRDS_FLOOR:g} at the occulter centre rising with the occulter's intensity "
            f"transmission to {_CRDS_LEVEL:g}; last row and last column 0"
        )
    return (
        f"Synthetic CRDS-like PSFMASK: 1 = use, 0 = ignore; core radius {setup.core_radius:g} "
        f"px, border {setup.border} px" + (", occulting bar 0" if setup.bar_halfwidth else "")
    )


# --------------------------------------------------------------------------------------
# The simulation core
# --------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Core:
    setup: _Setup
    shape: tuple[int, int]
    mask: np.ndarray
    sci: list  # per science exposure: tuple from _detect
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
    options: _Options
    wavefront_correlation: float  # science vs reference static screens, over the pupil


#: Random streams spawned from the seed, in this order (the first five are the original ones;
#: the others are drawn from only when the option that needs them is active).
_STREAMS = ("optics", "stars", "noise", "garbage", "defects", "reference_wavefront")


def _simulate_core(setup, shape, sci_groups, psf_groups, seed, opts):
    t0 = time.perf_counter()
    ss = np.random.SeedSequence([int(seed), list(_SETUPS).index(setup.key)])
    rng = dict(zip(_STREAMS, (np.random.default_rng(s) for s in ss.spawn(8)), strict=False))
    rng_optics, rng_stars, rng_noise, rng_garbage, rng_defects = (
        rng[name] for name in _STREAMS[:5]
    )
    optics = _make_optics(setup, shape)
    n_sci, n_psf = sum(sci_groups), sum(psf_groups)
    n_star = n_sci + n_psf

    # wavefronts: static + (science | reference) difference + per-integration drift
    lam = setup.wavelength
    static = _phase_screens(rng_optics, optics, 1, setup.static_wfe, lam, slope=2.5)[0]
    groups = _phase_screens(rng_optics, optics, 2, setup.group_wfe, lam, slope=3.0)
    drift = _phase_screens(rng_stars, optics, n_star, setup.star_wfe, lam, slope=3.0)
    which = np.r_[np.zeros(n_sci, int), np.ones(n_psf, int)]
    phases = static[None] + groups[which] + drift
    correlation = 1.0
    if opts.decorrelation > 0:  # the references get their own static screen
        ref_static = _reference_static_screen(
            rng["reference_wavefront"], optics, setup, static, opts.decorrelation
        )
        phases[n_sci:] = ref_static[None] + groups[1][None] + drift[n_sci:]
        correlation = _mixing_weights(opts.decorrelation)[0]

    # positions (pointing error + deliberate offsets + jitter), fluxes
    cy, cx = _coronagraph_center(setup, shape)
    jitter = 0.02
    offset_scale, large_offset = opts.offset_scale, opts.large_offset
    dither = _dither_offsets(setup, opts.psf_dither, len(psf_groups))  # (x, y) arcsec
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
        ratio = math.exp(rng_stars.uniform(math.log(0.5), math.log(3.0)))
        flux.append(ratio * (1.0 + 0.005 * rng_stars.standard_normal(nints)))
    all_pos = np.concatenate(pos)
    all_flux = np.concatenate(flux)

    spectra = _coronagraphic_spectra(optics, phases)
    t1 = time.perf_counter()
    # one common normalisation: the brightest pixel of the first star = peak_counts
    reference = sfft.irfft2(spectra[0], s=shape)
    norm = setup.peak_counts / reference.max()
    spectra *= (all_flux * norm)[:, None, None]
    spectra *= _shift_ramp(optics, all_pos[:, 0], all_pos[:, 1])
    # companion in the science exposures (rotates by a few degrees between exposures)
    sep, pa, frac = setup.companion
    comp = _offaxis_spectrum(optics, static)
    comp *= frac * setup.peak_counts / sfft.irfft2(comp, s=shape).max()
    start = 0
    for e, nints in enumerate(sci_groups):
        angle = math.radians(pa + 8.0 * e)
        cyy = all_pos[start : start + nints, 0] + sep * math.cos(angle)
        cxx = all_pos[start : start + nints, 1] - sep * math.sin(angle)
        fl = all_flux[start : start + nints, None, None]
        spectra[start : start + nints] += comp[None] * fl * _shift_ramp(optics, cyy, cxx)
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
    truth = _truth_fit(sci_images, psf_images, weight, start_guess, damped=opts.decorrelation > 0)
    t3 = time.perf_counter()

    defects = _static_defects(rng_defects, setup, shape)
    detected = []
    bounds = np.cumsum([0, *sci_groups, *psf_groups])
    for a, b in itertools.pairwise(bounds):
        detected.append(
            _detect(rng_noise, rng_garbage, setup, images[a:b], defects, opts.noise, opts.garbage)
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
    return _Core(
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
        psf_offsets=_header_offsets(setup, opts, dither),
        options=opts,
        wavefront_correlation=correlation,
    )


def _header_offsets(setup, opts, dither):
    """(x, y) arcsec offsets of the reference exposures as their headers record them."""
    offsets = dither.copy()
    if opts.large_offset is not None and opts.record_large_offset:
        offsets += np.asarray(opts.large_offset, dtype=np.float64) * setup.pixel_scale
    return offsets


def _truth_dict(core, i):
    """Nested-list truth for science exposure ``i`` against the whole PSF stack."""
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
    cy, cx = _coronagraph_center(core.setup, core.shape)
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
            "convention": _POINTING_CONVENTION,
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


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


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
    setup = _setup_for(instrument)
    shape = _check_shape(setup, shape)
    nints = _check_count("nints", nints)
    npsfs = _check_count("npsfs", npsfs)
    opts = _check_options(
        offset_scale=offset_scale,
        large_offset=large_offset,
        record_large_offset=record_large_offset,
        psf_dither=psf_dither,
        noise=noise,
        garbage=garbage,
        taper=taper,
        mask_style=mask_style,
        decorrelation=decorrelation,
    )
    core = _simulate_core(setup, shape, [nints], [1] * npsfs, seed, opts)
    sci = core.sci[0]
    psf = [np.concatenate(parts) for parts in zip(*core.psf, strict=True)]
    truth = _truth_dict(core, 0)
    truth.update(
        {
            "instrument": setup.key,
            "seed": int(seed),
            "shape": list(shape),
            "nints": nints,
            "npsfs": npsfs,
            "mask_center": list(_coronagraph_center(setup, shape)[::-1]),
        }
    )
    start = datetime.datetime(2023, 5, 10, 12, 34, 56, 789000)
    sci_meta = _exposure_meta(
        setup, shape, nints, psf=False, exposure_number=1, start=start,
        offsets=core.sci_offsets[0],
    )  # fmt: skip
    psf_metas = [
        _exposure_meta(
            setup,
            shape,
            1,
            psf=True,
            exposure_number=j + 1,
            start=start + datetime.timedelta(hours=1, minutes=5 * j),
            offsets=core.psf_offsets[j],
            dither=_dither_meta(setup, opts.psf_dither, j),
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
        psf_meta=_stack_meta(setup, psf_metas),
        psfmask_meta=_psfmask_meta(setup, shape, opts),
        sci_noiseless=core.sci_noiseless[0],
        psf_noiseless=np.concatenate(core.psf_noiseless),
        sci_var_poisson=sci[3],
        sci_var_rnoise=sci[4],
        psf_var_poisson=psf[3],
        psf_var_rnoise=psf[4],
        seed=int(seed),
    )


# --------------------------------------------------------------------------------------
# Writing files
# --------------------------------------------------------------------------------------


def _apply_meta(node, values):
    """Set nested datamodel attributes; a dict the schema does not know (``meta.coronalign``)
    is stored whole."""
    for key, value in values.items():
        if isinstance(value, dict):
            try:
                child = getattr(node, key)
            except AttributeError:
                setattr(node, key, value)
            else:
                _apply_meta(child, value)
        else:
            setattr(node, key, value)


def _write_cube(path, data, err, dq, meta, var_poisson=None, var_rnoise=None):
    from stdatamodels.jwst import datamodels

    arrays = {"data": data, "err": err, "dq": dq}
    if var_poisson is not None:
        arrays["var_poisson"] = var_poisson
        arrays["var_rnoise"] = var_rnoise
    with datamodels.CubeModel(**arrays) as model:
        _apply_meta(model.meta, meta)
        model.meta.filename = path.name
        model.save(path)
    return path


def _write_psfmask(path, mask, meta):
    from stdatamodels.jwst import datamodels

    with datamodels.PsfMaskModel(data=mask.astype(np.float32)) as model:
        _apply_meta(model.meta, meta)
        model.meta.filename = path.name
        model.add_history_entry("Synthetic PSFMASK written by coronalign.simulate")
        model.save(path)
    return path


def _write_json(path, payload):
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def write_simulation(sim, outdir, *, root=None):
    """Write a :class:`Simulation` as JWST files.

    Parameters
    ----------
    sim : Simulation
        From :func:`simulate_exposures`.
    outdir : str or os.PathLike
        Output folder (created if needed).
    root : str, optional
        If given, the files are ``<root>_calints.fits``, ``<root>_psfstack.fits`` and
        ``<root>_psfmask.fits``; by default JWST-like names, e.g.
        ``jw01234001001_03106_00001_nrcalong_calints.fits``,
        ``jw01234-a3001_t001_nircam_f335m-maska335r-sub320a335r_psfstack.fits`` and
        ``jwst_nircam_f335m_sub320a335r_psfmask.fits``.

    Returns
    -------
    dict
        ``{"science", "psfstack", "psfmask", "truth"}`` -> :class:`pathlib.Path`. The
        science and PSF stack are ``CubeModel`` files, the mask a ``PsfMaskModel`` file and
        ``truth.json`` holds :attr:`Simulation.truth` plus the file names.
    """
    out = pathlib.Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    if root is None:
        names = {
            "science": sim.sci_meta["filename"],
            "psfstack": sim.psf_meta["filename"],
            "psfmask": sim.psfmask_meta["filename"],
        }
    else:
        names = {k: f"{root}_{k if k != 'science' else 'calints'}.fits" for k in
                 ("science", "psfstack", "psfmask")}  # fmt: skip
    paths = {k: out / v for k, v in names.items()}
    _write_cube(
        paths["science"], sim.sci, sim.sci_err, sim.sci_dq, sim.sci_meta,
        sim.sci_var_poisson, sim.sci_var_rnoise,
    )  # fmt: skip
    _write_cube(paths["psfstack"], sim.psf, sim.psf_err, sim.psf_dq, sim.psf_meta)
    _write_psfmask(paths["psfmask"], sim.mask, sim.psfmask_meta)
    truth = dict(sim.truth)
    truth.update(names)
    paths["truth"] = _write_json(out / "truth.json", truth)
    log.info("wrote simulation (%s) to %s", sim.instrument, out)
    return paths


def write_association(
    outdir, instrument="nircam", n_science=3, n_psf=2, nints=2, psf_nints=2, seed=0, **options
):
    """Write a small coron3 association: science and PSF ``_calints``, PSFMASK and truth.

    Parameters
    ----------
    outdir : str or os.PathLike
        Output folder (created if needed); the association's member names are relative to it.
    instrument : {"nircam", "miri", "nircam-sw", "miri-lyot"}
        Instrument configuration (see :func:`simulate_exposures`).
    n_science, n_psf : int
        Number of science and of PSF reference exposures.
    nints, psf_nints : int
        Integrations per science / per PSF exposure.
    seed : int
        Random seed.
    **options
        ``offset_scale``, ``large_offset``, ``record_large_offset``, ``psf_dither``,
        ``shape``, ``noise``, ``garbage``, ``taper``, ``mask_style``, ``decorrelation`` as in
        :func:`simulate_exposures` (``psf_dither`` offsets PSF exposure ``j``, all its
        integrations, by pattern point ``j % npoints``).

    Returns
    -------
    dict
        ``{"asn": Path, "science": [Path, ...], "psf": [Path, ...], "psfmask": Path,
        "truth": Path}``. ``truth.json`` holds, for each science exposure, the truth
        against the PSF stack that stacking all PSF integrations in member order gives
        (``"xshift"`` etc. are ``[nints][n_psf * psf_nints]``), and ``"psf_pointing"``: the
        record ``meta.coronalign.psf_members`` of such a stack should hold (file name,
        integrations and header offsets of each PSF exposure, in member order).
    """
    setup = _setup_for(instrument)
    options = dict(options)
    shape = options.pop("shape", None)
    unknown = set(options) - set(_OPTION_NAMES)
    if unknown:
        allowed = sorted({"shape", *_OPTION_NAMES})
        raise ParameterError(sorted(unknown)[0], f"unknown option; use {allowed}")
    n_science = _check_count("n_science", n_science)
    n_psf = _check_count("n_psf", n_psf)
    nints = _check_count("nints", nints)
    psf_nints = _check_count("psf_nints", psf_nints)
    shape = _check_shape(setup, shape)
    opts = _check_options(**options)
    core = _simulate_core(setup, shape, [nints] * n_science, [psf_nints] * n_psf, seed, opts)
    out = pathlib.Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    t = datetime.datetime(2023, 5, 10, 12, 34, 56, 789000)
    step = datetime.timedelta(minutes=20)
    sci_paths, psf_paths, members, truths = [], [], [], {}
    for i in range(n_science):
        meta = _exposure_meta(
            setup, shape, nints, psf=False, exposure_number=i + 1, start=t,
            offsets=core.sci_offsets[i],
        )  # fmt: skip
        t += step
        d = core.sci[i]
        path = _write_cube(out / meta["filename"], d[0], d[1], d[2], meta, d[3], d[4])
        sci_paths.append(path)
        members.append({"expname": path.name, "exptype": "science", "exposerr": None})
        truths[path.name] = _truth_dict(core, i)
    psf_order, psf_pointing = [], []
    for j in range(n_psf):
        meta = _exposure_meta(
            setup, shape, psf_nints, psf=True, exposure_number=j + 1, start=t,
            offsets=core.psf_offsets[j], dither=_dither_meta(setup, opts.psf_dither, j),
        )  # fmt: skip
        t += step
        d = core.psf[j]
        path = _write_cube(out / meta["filename"], d[0], d[1], d[2], meta, d[3], d[4])
        psf_paths.append(path)
        members.append({"expname": path.name, "exptype": "psf", "exposerr": None})
        psf_order += [[path.name, k] for k in range(psf_nints)]
        psf_pointing.append(_psf_member(meta))
    mask_meta = _psfmask_meta(setup, shape, opts)
    mask_path = _write_psfmask(out / mask_meta["filename"], core.mask, mask_meta)
    product = _product_name(setup)
    asn = {
        "asn_type": "coron3",
        "asn_rule": "candidate_Asn_Lv3Coron",
        "version_id": None,
        "code_version": "coronalign.simulate",
        "degraded_status": "No known degraded exposures in association.",
        "program": _PROGRAM,
        "constraints": "synthetic association written by coronalign.simulate",
        "asn_id": _ASN_ID,
        "target": "t001",
        "asn_pool": f"jw{_PROGRAM}_20230510t000000_pool",
        "products": [{"name": product, "members": members}],
    }
    asn_path = _write_json(out / f"jw{_PROGRAM}-{_ASN_ID}_coron3_00001_asn.json", asn)
    truth = {
        "instrument": setup.key,
        "seed": int(seed),
        "shape": list(shape),
        "asn": asn_path.name,
        "product": product,
        "psfmask": mask_path.name,
        "psf_members": [p.name for p in psf_paths],
        "psf_stack_order": psf_order,
        "psf_pointing": psf_pointing,
        "science": truths,
    }
    truth_path = _write_json(out / "truth.json", truth)
    log.info("wrote %s association (%d science, %d psf) to %s", setup.key, n_science, n_psf, out)
    return {
        "asn": asn_path,
        "science": sci_paths,
        "psf": psf_paths,
        "psfmask": mask_path,
        "truth": truth_path,
    }
