"""Metadata of the simulated files: exposures, the PSF stack and the PSFMASK, as nested
dictionaries of datamodel attributes.
"""

from __future__ import annotations

import datetime
import json

from coronalign.simulation.instruments import (
    ARCSEC,
    ASN_ID,
    PROGRAM,
    PSF_OBS,
    SCI_OBS,
    coronagraph_center,
)
from coronalign.simulation.psfmask import CRDS_FLOOR, CRDS_LEVEL

__all__ = ["ORIGIN", "exposure_meta", "product_name", "psf_member", "psfmask_meta", "stack_meta"]


#: The files' ``ORIGIN``, ``AUTHOR`` and association ``code_version``: the command's name before
#: the simulator became a package, kept so that the files stay byte for byte what they were.
ORIGIN = "coronalign.simulate"

_MJD_EPOCH = datetime.datetime(1858, 11, 17)


def _mjd(date, clock):
    stamp = datetime.datetime.fromisoformat(f"{date}T{clock}")
    return (stamp - _MJD_EPOCH).total_seconds() / 86400.0


def _exposure_root(setup, observation, exposure_number):
    return f"jw{PROGRAM}{observation}001_03106_{exposure_number:05d}_{setup.detector.lower()}"


def product_name(setup):
    """The coron3 product name of the simulated association.

    Parameters
    ----------
    setup : Setup
        The configuration.

    Returns
    -------
    str
        E.g. ``jw01234-a3001_t001_nircam_f335m-maska335r-sub320a335r``.
    """
    parts = [setup.filter, setup.coronagraph, setup.subarray]
    opt = "-".join(p.lower().replace("_", "") for p in parts)
    return f"jw{PROGRAM}-{ASN_ID}_t001_{setup.name.lower()}_{opt}"


def exposure_meta(
    setup, shape, nints, *, psf, exposure_number, start, offsets=(0.0, 0.0), dither=None
):
    """Datamodel attributes of one ``_calints`` exposure.

    Parameters
    ----------
    setup : Setup
        The configuration.
    shape : tuple of int
        ``(ny, nx)``.
    nints : int
        Integrations.
    psf : bool
        A PSF reference exposure (observation 002) rather than the science target (001).
    exposure_number : int
        The exposure's number (1-based) within its observation.
    start : datetime.datetime
        Start of the exposure.
    offsets : tuple of float, optional
        The (x, y) arcsec written as ``meta.dither.x_offset`` / ``y_offset``.
    dither : dict, optional
        Further ``meta.dither`` entries (small-grid pattern and position).

    Returns
    -------
    dict
        Nested attributes (``{"instrument": {"name": ...}, ...}``).
    """
    ny, nx = shape
    observation = PSF_OBS if psf else SCI_OBS
    root = _exposure_root(setup, observation, exposure_number)
    group_time = setup.frame_time * (setup.nframes + setup.groupgap)
    tint = group_time * (setup.ngroups - 1)
    texp = tint * nints
    end = start + datetime.timedelta(seconds=texp + nints * setup.frame_time)
    mid = start + (end - start) / 2
    date, clock = start.strftime("%Y-%m-%d"), start.strftime("%H:%M:%S.%f")[:-3]
    pixel_sr = (setup.pixel_scale * ARCSEC) ** 2
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
        "origin": ORIGIN,
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
            "program_number": PROGRAM,
            "observation_number": observation,
            "visit_number": "001",
            "visit_group": "03",
            "sequence_id": "1",
            "activity_id": "06",
            "exposure_number": f"{exposure_number:05d}",
            "visit_id": f"{PROGRAM}{observation}001",
            "obs_id": f"V{PROGRAM}{observation}001P0000000003106",
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
    cy, cx = coronagraph_center(setup, shape)
    return {
        "cdelt1": setup.pixel_scale / 3600.0,
        "cdelt2": setup.pixel_scale / 3600.0,
        "crpix1": cx + 1.0,
        "crpix2": cy + 1.0,
    }


def psf_member(meta):
    """One ``meta.coronalign.psf_members`` entry for a PSF exposure's metadata.

    Parameters
    ----------
    meta : dict
        From :func:`exposure_meta`.

    Returns
    -------
    dict
        ``filename``, ``nints``, ``x_offset``, ``y_offset``.
    """
    return {
        "filename": meta["filename"],
        "nints": int(meta["exposure"]["nints"]),
        "x_offset": float(meta["dither"]["x_offset"]),
        "y_offset": float(meta["dither"]["y_offset"]),
    }


def stack_meta(setup, psf_metas):
    """``_psfstack`` metadata: those of the first member, as stack_refs makes them.

    Plus ``coronalign.psf_members``, the per-member pointing in stack order (the first
    member's ``meta.dither`` holds for its planes only).

    Parameters
    ----------
    setup : Setup
        The configuration.
    psf_metas : list of dict
        The members' metadata (:func:`exposure_meta`), in stack order.

    Returns
    -------
    dict
    """
    meta = json.loads(json.dumps(psf_metas[0]))
    npsfs = sum(int(m["exposure"]["nints"]) for m in psf_metas)
    meta["filename"] = f"{product_name(setup)}_psfstack.fits"
    meta["exposure"]["nints"] = int(npsfs)
    meta["exposure"]["integration_end"] = int(npsfs)
    meta["asn"] = {"pool_name": f"jw{PROGRAM}_20230510t000000_pool", "table_name": "sim"}
    meta["coronalign"] = {"psf_members": [psf_member(m) for m in psf_metas]}
    return meta


def psfmask_meta(setup, shape, opts):
    """Metadata of the simulated PSFMASK reference file.

    Parameters
    ----------
    setup : Setup
        The configuration.
    shape : tuple of int
        ``(ny, nx)``.
    opts : Options
        The simulation options (the mask style is described).

    Returns
    -------
    dict
    """
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
        "author": ORIGIN,
        "origin": ORIGIN,
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
            f"{CRDS_FLOOR:g} at the occulter centre rising with the occulter's intensity "
            f"transmission to {CRDS_LEVEL:g}; last row and last column 0"
        )
    return (
        f"Synthetic CRDS-like PSFMASK: 1 = use, 0 = ignore; core radius {setup.core_radius:g} "
        f"px, border {setup.border} px" + (", occulting bar 0" if setup.bar_halfwidth else "")
    )
