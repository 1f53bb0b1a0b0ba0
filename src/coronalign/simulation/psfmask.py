"""The simulated PSFMASK: geometric (0 in the core, at the borders and on NON_SCIENCE
columns, 1 elsewhere) or shaped like the released CRDS files.
"""

from __future__ import annotations

import numpy as np

from coronalign.core import reproducible as rep
from coronalign.errors import ParameterError
from coronalign.simulation.instruments import (
    check_shape,
    coronagraph_center,
    science_columns,
    setup_for,
)
from coronalign.simulation.optics import occulter_sigma

__all__ = ["CRDS_FLOOR", "CRDS_LEVEL", "MASK_STYLES", "check_mask_style", "psfmask_array"]


def _ramp(distance, width):
    """Raised-cosine ramp from 0 (distance <= 0) to 1 (distance >= width); a step if width 0."""
    if width <= 0:
        return (distance > 0).astype(np.float64)
    t = np.clip(distance / width, 0.0, 1.0)
    return 0.5 - 0.5 * rep.sincos_2pi(0.5 * t)[0]


#: Mask styles of :func:`psfmask_array`.
MASK_STYLES = ("geometric", "crds")
#: CRDS-like NIRCam PSFMASK: weight at the occulter centre and far from it.
CRDS_FLOOR = 1.0e-5
CRDS_LEVEL = 0.99


def check_mask_style(mask_style, taper):
    """Check a mask style and its taper.

    Parameters
    ----------
    mask_style : str
        One of :data:`MASK_STYLES` (any case).
    taper : float
        Taper width in pixels (``geometric`` only).

    Returns
    -------
    str
        The style, lower case.

    Raises
    ------
    ParameterError
        An unknown style, a bad taper, or a taper with the ``crds`` style.
    """
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
    cy, cx = coronagraph_center(setup, (ny, nx))
    y = np.arange(ny, dtype=np.float64)[:, None]
    x = np.arange(nx, dtype=np.float64)[None, :]
    r = np.sqrt((y - cy) ** 2 + (x - cx) ** 2)  # not np.hypot: libm
    core = _ramp(r - setup.core_radius, taper)
    x0 = science_columns(setup, (ny, nx))
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
    cy, cx = coronagraph_center(setup, shape)
    dy = np.arange(ny, dtype=np.float64)[:, None] - cy
    dx = np.arange(nx, dtype=np.float64)[None, :] - cx
    if setup.name == "NIRCAM":
        sigma = occulter_sigma(setup)
        transmission = (1.0 - rep.exp(-(dy**2 + dx**2) / (2.0 * sigma**2))) ** 2
        mask = (CRDS_FLOOR + (CRDS_LEVEL - CRDS_FLOOR) * transmission).astype(np.float32)
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
    setup = setup_for(instrument)
    ny, nx = check_shape(setup, shape)
    style = check_mask_style(mask_style, taper)
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
