"""Writing simulations as JWST files: ``_calints``, ``_psfstack``, PSFMASK, truth, and a
coron3 association.
"""

from __future__ import annotations

import datetime
import json
import logging
import pathlib

import numpy as np

from coronalign.errors import ParameterError
from coronalign.simulation.instruments import ASN_ID, PROGRAM, check_count, check_shape, setup_for
from coronalign.simulation.metadata import (
    ORIGIN,
    exposure_meta,
    product_name,
    psf_member,
    psfmask_meta,
)
from coronalign.simulation.observation import simulate_observation, truth_dict
from coronalign.simulation.options import OPTION_NAMES, check_options
from coronalign.simulation.pointing import dither_meta

__all__ = ["add_gwcs_wcs", "write_association", "write_simulation"]

log = logging.getLogger(__name__)


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
        model.add_history_entry(f"Synthetic PSFMASK written by {ORIGIN}")
        model.save(path)
    return path


def _write_json(path, payload):
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def write_simulation(sim, outdir, *, root=None, psf_variances=False):
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
    psf_variances : bool, optional
        Also write the PSF stack's VAR_POISSON and VAR_RNOISE (the science exposure always has
        them); default False, the stack as before.

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
    variances = (sim.psf_var_poisson, sim.psf_var_rnoise) if psf_variances else ()
    _write_cube(paths["psfstack"], sim.psf, sim.psf_err, sim.psf_dq, sim.psf_meta, *variances)
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
        ``shape``, ``noise``, ``garbage``, ``taper``, ``mask_style``, ``decorrelation``,
        ``noise_seed``, ``read_noise``, ``consistent_variances`` as in
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
    setup = setup_for(instrument)
    options = dict(options)
    shape = options.pop("shape", None)
    unknown = set(options) - set(OPTION_NAMES)
    if unknown:
        allowed = sorted({"shape", *OPTION_NAMES})
        raise ParameterError(sorted(unknown)[0], f"unknown option; use {allowed}")
    n_science = check_count("n_science", n_science)
    n_psf = check_count("n_psf", n_psf)
    nints = check_count("nints", nints)
    psf_nints = check_count("psf_nints", psf_nints)
    shape = check_shape(setup, shape)
    opts = check_options(**options)
    core = simulate_observation(setup, shape, [nints] * n_science, [psf_nints] * n_psf, seed, opts)
    out = pathlib.Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    t = datetime.datetime(2023, 5, 10, 12, 34, 56, 789000)
    step = datetime.timedelta(minutes=20)
    sci_paths, psf_paths, members, truths = [], [], [], {}
    for i in range(n_science):
        meta = exposure_meta(
            setup, shape, nints, psf=False, exposure_number=i + 1, start=t,
            offsets=core.sci_offsets[i],
        )  # fmt: skip
        t += step
        d = core.sci[i]
        path = _write_cube(out / meta["filename"], d[0], d[1], d[2], meta, d[3], d[4])
        sci_paths.append(path)
        members.append({"expname": path.name, "exptype": "science", "exposerr": None})
        truths[path.name] = truth_dict(core, i)
    psf_order, psf_pointing = [], []
    for j in range(n_psf):
        meta = exposure_meta(
            setup, shape, psf_nints, psf=True, exposure_number=j + 1, start=t,
            offsets=core.psf_offsets[j], dither=dither_meta(setup, opts.psf_dither, j),
        )  # fmt: skip
        t += step
        d = core.psf[j]
        path = _write_cube(out / meta["filename"], d[0], d[1], d[2], meta, d[3], d[4])
        psf_paths.append(path)
        members.append({"expname": path.name, "exptype": "psf", "exposerr": None})
        psf_order += [[path.name, k] for k in range(psf_nints)]
        psf_pointing.append(psf_member(meta))
    mask_meta = psfmask_meta(setup, shape, opts)
    mask_path = _write_psfmask(out / mask_meta["filename"], core.mask, mask_meta)
    product = product_name(setup)
    asn = {
        "asn_type": "coron3",
        "asn_rule": "candidate_Asn_Lv3Coron",
        "version_id": None,
        "code_version": ORIGIN,
        "degraded_status": "No known degraded exposures in association.",
        "program": PROGRAM,
        "constraints": f"synthetic association written by {ORIGIN}",
        "asn_id": ASN_ID,
        "target": "t001",
        "asn_pool": f"jw{PROGRAM}_20230510t000000_pool",
        "products": [{"name": product, "members": members}],
    }
    asn_path = _write_json(out / f"jw{PROGRAM}-{ASN_ID}_coron3_00001_asn.json", asn)
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


def add_gwcs_wcs(path):
    """Give the data model in a file a gwcs WCS in ``meta.wcs``, as real JWST exposures have.

    The transform is a plain shift and scale between two 2-D frames (not a real
    distortion model); what matters is that the file's ASDF tree holds gwcs and astropy
    modeling tags, so a reader must load their asdf extensions.

    Parameters
    ----------
    path : path-like
        A FITS data model (rewritten in place).
    """
    from astropy.modeling import models
    from gwcs import coordinate_frames, wcs
    from stdatamodels.jwst import datamodels

    transform = models.Shift(10.5) & models.Scale(2.0)
    detector = coordinate_frames.Frame2D(name="detector")
    world = coordinate_frames.Frame2D(name="world")
    with datamodels.open(path) as model:
        model.meta.wcs = wcs.WCS(
            forward_transform=transform, input_frame=detector, output_frame=world
        )
        model.save(path)


#: Where :func:`add_celestial_wcs` points the simulated exposures: RA and Dec (deg).
SKY_POSITION = (80.0, -69.5)


def add_celestial_wcs(path, pixel_scale_arcsec, sky_position=SKY_POSITION):
    """Give a simulated exposure a celestial WCS, as MAST's exposures have.

    A gnomonic (TAN) projection centred on the frame, north up and east left, in a gwcs
    ``meta.wcs``, the matching FITS-style ``meta.wcsinfo`` keywords, the pointing and the
    footprint ``meta.wcsinfo.s_region`` (an IVOA STC-S polygon of the frame's corners). That
    is what the official ``resample`` needs to combine exposures into an ``_i2d``; the
    simulator's own frame is in pixels only. No distortion is modelled.

    Parameters
    ----------
    path : path-like
        A FITS data model (rewritten in place).
    pixel_scale_arcsec : float
        The pixel scale.
    sky_position : tuple of float, optional
        Right ascension and declination of the frame's centre (deg).
    """
    from astropy import coordinates
    from astropy import units as u
    from astropy.modeling import models
    from gwcs import coordinate_frames, wcs
    from stdatamodels.jwst import datamodels

    ra, dec = sky_position
    scale = pixel_scale_arcsec / 3600.0
    with datamodels.open(path) as model:
        ny, nx = model.data.shape[-2:]
        cx, cy = (nx - 1) / 2, (ny - 1) / 2
        transform = (
            (models.Shift(-cx) & models.Shift(-cy))
            | (models.Scale(-scale) & models.Scale(scale))  # east to the left
            | models.Pix2Sky_TAN()
            | models.RotateNative2Celestial(ra, dec, 180.0)
        )
        detector = coordinate_frames.Frame2D(name="detector", unit=(u.pix, u.pix))
        sky = coordinate_frames.CelestialFrame(
            reference_frame=coordinates.ICRS(), name="world", unit=(u.deg, u.deg)
        )
        model.meta.wcs = wcs.WCS([(detector, transform), (sky, None)])
        info = model.meta.wcsinfo
        info.ra_ref, info.dec_ref, info.roll_ref = ra, dec, 0.0
        info.v2_ref = info.v3_ref = info.v3yangle = 0.0
        info.vparity = -1
        info.crpix1, info.crpix2 = cx + 1, cy + 1
        info.crval1, info.crval2 = ra, dec
        info.cdelt1 = info.cdelt2 = scale
        info.pc1_1, info.pc1_2, info.pc2_1, info.pc2_2 = -1.0, 0.0, 0.0, 1.0
        info.ctype1, info.ctype2 = "RA---TAN", "DEC--TAN"
        model.meta.pointing.ra_v1, model.meta.pointing.dec_v1 = ra, dec
        model.meta.pointing.pa_v3 = 0.0
        corners_x = [-0.5, nx - 0.5, nx - 0.5, -0.5]
        corners_y = [-0.5, -0.5, ny - 0.5, ny - 0.5]
        ras, decs = transform(corners_x, corners_y)
        points = " ".join(f"{a:.9f} {d:.9f}" for a, d in zip(ras, decs, strict=True))
        info.s_region = f"POLYGON ICRS {points}"
        model.save(path)
