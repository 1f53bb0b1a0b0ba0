"""The expected shift of every PSF from the exposures' pointing metadata (the fit's prior).

JWST records each exposure's dither offset in ``meta.dither.x_offset`` and
``meta.dither.y_offset`` (FITS ``XOFFSET``/``YOFFSET``): arcseconds in the ideal frame of
the aperture, relative to the pattern's starting position, which target acquisition puts
on the coronagraph for the science target and for the reference star alike. A star then
sits at (reference point + offset / pixel scale) on the detector, as pyKLIP and spaceKLIP
read these keywords, so the expected shift of PSF ``m`` onto the science exposure is

    xshift = (x_offset_psf − x_offset_sci) / scale,   yshift likewise,

where ``scale`` is the pixel scale in arcsec, ``sqrt(meta.photometry.pixelarea_arcsecsq)``
(else ``meta.wcsinfo.cdelt1/cdelt2``, degrees). The ideal frame's axes are taken along the
detector's columns and rows: for the coronagraphic apertures they differ by under a
degree, i.e. < 0.01 px for an offset of half a pixel — nothing for a window centre.

A ``_psfstack`` holds planes of several exposures, each with its own offset, but its
metadata are the first member's. coronalign's ``stack_refs`` therefore records each
member's offsets in ``meta.coronalign.psf_members`` (file, integrations, offsets, in stack
order). A stack without that record (e.g. made by the official ``stack_refs``) gives no
prior: zero, as does a science exposure without offsets or a missing pixel scale.
"""

import logging
import math

import numpy as np

__all__ = ["members_record", "pixel_scale", "priors_from_pointing"]

log = logging.getLogger(__name__)


def _number(value):
    """A finite float, or None."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _dither(model):
    """``(x_offset, y_offset)`` in arcsec, or None if the model does not record them."""
    dither = getattr(model.meta, "dither", None)
    x = _number(getattr(dither, "x_offset", None)) if dither is not None else None
    y = _number(getattr(dither, "y_offset", None)) if dither is not None else None
    return None if x is None or y is None else (x, y)


def pixel_scale(model):
    """Pixel scale in arcsec per pixel from a model's metadata, or None.

    Parameters
    ----------
    model : stdatamodels.DataModel
        An exposure (or a stack made from exposures).

    Returns
    -------
    float or None
    """
    area = _number(getattr(getattr(model.meta, "photometry", None), "pixelarea_arcsecsq", None))
    if area is not None and area > 0:
        return math.sqrt(area)
    wcsinfo = getattr(model.meta, "wcsinfo", None)
    cdelt = [_number(getattr(wcsinfo, name, None)) for name in ("cdelt1", "cdelt2")]
    if all(value is not None and value != 0 for value in cdelt):
        return 3600.0 * math.sqrt(abs(cdelt[0] * cdelt[1]))
    return None


def members_record(paths, models):
    """The ``meta.coronalign.psf_members`` record of a PSF stack made from ``models``.

    Parameters
    ----------
    paths : sequence of path-like
        The member files, in stack order.
    models : sequence of stdatamodels.DataModel
        Their models (3D: integrations first).

    Returns
    -------
    list of dict
        ``{"filename", "nints", "x_offset", "y_offset"}`` per member (offsets None when
        the member does not record them).
    """
    record = []
    for path, model in zip(paths, models, strict=True):
        offsets = _dither(model)
        record.append(
            {
                "filename": str(getattr(path, "name", path)),
                "nints": int(model.data.shape[0]),
                "x_offset": None if offsets is None else offsets[0],
                "y_offset": None if offsets is None else offsets[1],
            }
        )
    return record


def _plane_offsets(psf_model, npsfs):
    """Per-plane ``(x_offset, y_offset)`` of a PSF stack (npsfs, 2), or None."""
    coronalign = getattr(psf_model.meta, "coronalign", None)
    # stdatamodels wraps what is not in its schema in nodes; .instance is the plain value.
    coronalign = getattr(coronalign, "instance", coronalign)
    members = coronalign.get("psf_members") if isinstance(coronalign, dict) else None
    if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
        return None
    offsets = []
    for member in members:
        x, y = _number(member.get("x_offset")), _number(member.get("y_offset"))
        nints = member.get("nints")
        if x is None or y is None or not isinstance(nints, int) or nints < 0:
            return None
        offsets += [(x, y)] * nints
    if len(offsets) != npsfs:
        return None
    return np.array(offsets, dtype=np.float64)


def priors_from_pointing(science_model, psf_model, npsfs):
    """The prior ``(xshift, yshift)`` of every PSF, in pixels, and where it came from.

    Parameters
    ----------
    science_model : stdatamodels.DataModel
        The science exposure.
    psf_model : stdatamodels.DataModel
        The PSF stack.
    npsfs : int
        Planes in the stack.

    Returns
    -------
    priors : ndarray, shape (npsfs, 2)
        Zero where the metadata do not give the offsets.
    source : str
        ``"pointing metadata"`` or why there is no prior (for the log and provenance).
    """
    zero = np.zeros((npsfs, 2))
    science = _dither(science_model)
    if science is None:
        return zero, "none: the science exposure records no dither offsets (XOFFSET/YOFFSET)"
    planes = _plane_offsets(psf_model, npsfs)
    if planes is None:
        return zero, "none: the PSF stack records no per-member dither offsets"
    scale = pixel_scale(science_model)
    if scale is None:
        return zero, "none: the science exposure gives no pixel scale"
    priors = (planes - np.array(science)) / scale
    return priors, "pointing metadata"
