"""The simulated instrument configurations and the geometry of their frames.

Each :class:`Setup` holds everything that distinguishes a configuration (detector,
filter, coronagraph, subarray, optics, exposure and noise levels); :data:`SETUPS` lists
them in the order that seeds their random streams (append, never reorder).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from coronalign.errors import ParameterError

__all__ = [
    "ARCSEC",
    "ASN_ID",
    "PROGRAM",
    "PSF_OBS",
    "SCI_OBS",
    "SETUPS",
    "TELESCOPE_DIAMETER",
    "Setup",
    "check_count",
    "check_shape",
    "coronagraph_center",
    "science_columns",
    "setup_for",
]


ARCSEC = math.pi / (180.0 * 3600.0)
TELESCOPE_DIAMETER = 6.5  # m


@dataclasses.dataclass(frozen=True)
class Setup:
    """Everything that distinguishes one instrument configuration from the others."""

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


SETUPS = {
    "nircam": Setup(
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
    "miri": Setup(
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
    # streams (``simulate_observation``), so reordering would change every existing simulation.
    "nircam-sw": Setup(
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
    "miri-lyot": Setup(
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

PROGRAM = "01234"
SCI_OBS = "001"
PSF_OBS = "002"
ASN_ID = "a3001"


def setup_for(instrument):
    """The configuration of an instrument name.

    Parameters
    ----------
    instrument : str
        ``"nircam"``, ``"miri"``, ``"nircam-sw"`` or ``"miri-lyot"`` (any case).

    Returns
    -------
    Setup

    Raises
    ------
    ParameterError
        An unknown name.
    """
    key = str(instrument).strip().lower()
    if key not in SETUPS:
        raise ParameterError(
            "instrument", f"{instrument!r} is not simulated; use one of {sorted(SETUPS)}"
        )
    return SETUPS[key]


def check_shape(setup, shape):
    """The frame shape to simulate: the configuration's, or a valid one given.

    Parameters
    ----------
    setup : Setup
        The configuration.
    shape : tuple of int or None
        ``(ny, nx)``, each at least 48; None for the configuration's subarray.

    Returns
    -------
    tuple of int

    Raises
    ------
    ParameterError
        Not a pair of integers, or a side below 48.
    """
    if shape is None:
        return setup.shape
    try:
        ny, nx = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ParameterError("shape", f"{shape!r} is not a pair (ny, nx) of integers") from None
    if min(ny, nx) < 48:
        raise ParameterError("shape", f"{shape!r} is too small; each side must be >= 48 pixels")
    return ny, nx


def check_count(name, value, minimum=1):
    """A count parameter as an int, at least ``minimum``.

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    value : int
        The value (booleans are refused).
    minimum : int, optional
        The smallest value allowed.

    Returns
    -------
    int

    Raises
    ------
    ParameterError
        Not an integer, or below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ParameterError(name, f"{value!r} must be an integer >= {minimum}")
    return int(value)


def science_columns(setup, shape):
    """First column of the science area (columns before it are NON_SCIENCE).

    Parameters
    ----------
    setup : Setup
        The configuration.
    shape : tuple of int
        ``(ny, nx)``.

    Returns
    -------
    int
    """
    return round(setup.nonscience_fraction * shape[1])


def coronagraph_center(setup, shape):
    """Where the coronagraph's centre lies in the frame.

    Parameters
    ----------
    setup : Setup
        The configuration.
    shape : tuple of int
        ``(ny, nx)``.

    Returns
    -------
    tuple of float
        ``(y, x)`` in 0-based pixel coordinates.
    """
    ny, nx = shape
    x0 = science_columns(setup, shape)
    cy = 0.5 * (ny - 1) + setup.center_offset[0]
    cx = 0.5 * (x0 + nx - 1) + setup.center_offset[1]
    return cy, cx
