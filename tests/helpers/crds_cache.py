"""Build a small, real, offline CRDS cache for the tests (generated at test time, never committed).

The cache has the layout the ``crds`` client reads with no server::

    <root>/config/jwst/server_config              Python dict literal (observatory, contexts, ...)
    <root>/config/jwst/ref_cache_subdir_mode      "instrument"
    <root>/mappings/jwst/jwst_0001.pmap           -> jwst_nircam_0001.imap, jwst_miri_0001.imap
    <root>/mappings/jwst/jwst_nircam_0001.imap    -> jwst_nircam_psfmask_0001.rmap
    <root>/mappings/jwst/jwst_miri_0001.imap      -> jwst_miri_psfmask_0001.rmap
    <root>/mappings/jwst/jwst_*_psfmask_0001.rmap Match on EXP_TYPE, FILTER, CORONMSK, SUBARRAY,
                                                  then UseAfter on DATE-OBS / TIME-OBS
    <root>/references/jwst/<instrument>/*.fits    PsfMaskModel files

Rules (the keys are the real JWST selection parameters of PSFMASK):

====================================================================  ==========================
NRC_CORON F335M MASKA335R SUB320A335R, use after 2022-01-01            jwst_nircam_psfmask_0001
NRC_CORON F335M MASKA335R SUB320A335R, use after 2023-01-01            jwst_nircam_psfmask_0002
NRC_CORON F210M MASKA210R SUB640A210R, use after 2022-01-01            jwst_nircam_psfmask_0003
MIR_4QPM F1065C 4QPM_1065 MASK1065, use after 2022-01-01               jwst_miri_psfmask_0001
MIR_TACQ (any filter, mask, subarray)                                  N/A
====================================================================  ==========================

``jwst_nircam_psfmask_0001/0002`` and ``jwst_miri_psfmask_0001`` are subarray-sized
(``frame_shape``, 64x64 by default). ``jwst_nircam_psfmask_0003`` is a "full-frame" mask
(``full_shape``, 256x256 by default, declared as ``SUBARRAY='FULL'``, ``SUBSTRT=1,1``) that
must be cut to the science subarray (``SUB640A210R`` at ``NIRCAM_SUBARRAY_START``).
Every mask holds distinct values (``mask_values``) so a test can tell which one was read and
check a cut-out pixel by pixel.
"""

from __future__ import annotations

import hashlib
import pprint
from pathlib import Path

import numpy as np

__all__ = [
    "CONTEXT",
    "FRAME_SHAPE",
    "FULL_SHAPE",
    "NIRCAM_SUBARRAY_START",
    "SIM_CONTEXT",
    "SIM_CONTEXT_FULL_FRAME",
    "SIM_CONTEXT_MISPLACED",
    "SIM_MISPLACED_SHAPE",
    "SIM_MISSING_REFERENCE",
    "SIM_NEWER_USEAFTER",
    "SIM_NOT_APPLICABLE",
    "build_crds_cache",
    "build_simulator_cache",
    "crds_parameters",
    "mask_values",
    "sha1sum_of_mapping",
]

CONTEXT = "jwst_0001.pmap"
FRAME_SHAPE = (64, 64)
FULL_SHAPE = (256, 256)
# 1-based (xstart, ystart) of the SUB640A210R science subarray inside the full-frame mask.
NIRCAM_SUBARRAY_START = (101, 41)

_PARKEY = (
    (
        "META.EXPOSURE.TYPE",
        "META.INSTRUMENT.FILTER",
        "META.INSTRUMENT.CORONAGRAPH",
        "META.SUBARRAY.NAME",
    ),
    ("META.OBSERVATION.DATE", "META.OBSERVATION.TIME"),
)
_USEAFTER_1 = "2022-01-01 00:00:00"
_USEAFTER_2 = "2023-01-01 00:00:00"


def sha1sum_of_mapping(text: str) -> str:
    """Return the CRDS checksum of a mapping text.

    It is the SHA-1 of the text with every line containing ``sha1sum`` removed, which is what
    ``crds checksum FILE`` writes into the header.
    """
    kept = "".join(line for line in text.splitlines(True) if "sha1sum" not in line)
    return hashlib.sha1(kept.encode("utf-8")).hexdigest()


def _mapping_text(header: dict, selector: str) -> str:
    """Format a mapping the way CRDS writes them, with a correct ``sha1sum``."""
    header = dict(header, sha1sum="0" * 40)
    lines = ["header = {"]
    lines += [f"    {key!r} : {header[key]!r}," for key in sorted(header)]
    lines += ["}", "", f"selector = {selector}", ""]
    text = "\n".join(lines)
    return text.replace("0" * 40, sha1sum_of_mapping(text), 1)


def _rmap_header(name: str, instrument: str) -> dict:
    """Header of a PSFMASK rmap: Match on the real JWST selection keys, then UseAfter."""
    serial = int(name.rsplit("_", 1)[1].split(".")[0])
    return {
        "classes": ("Match", "UseAfter"),
        "derived_from": f"jwst_{instrument.lower()}_psfmask_{serial - 1:04d}.rmap",
        "file_ext": ".fits",
        "filekind": "PSFMASK",
        "filetype": "PSFMASK",
        "instrument": instrument,
        "mapping": "REFERENCE",
        "name": name,
        "observatory": "JWST",
        "parkey": _PARKEY,
        "suffix": "psfmask",
        "text_descr": "PSF Mask",
    }


def _imap(instrument: str, serial: int, rmap: str) -> tuple[str, str]:
    """Name and text of an instrument mapping whose PSFMASK entry is ``rmap``."""
    name = f"jwst_{instrument.lower()}_{serial:04d}.imap"
    header = {
        "derived_from": f"jwst_{instrument.lower()}_{serial - 1:04d}.imap",
        "instrument": instrument,
        "mapping": "INSTRUMENT",
        "name": name,
        "observatory": "JWST",
        "parkey": ("REFTYPE",),
    }
    return name, _mapping_text(header, "{\n    'PSFMASK' : " + repr(rmap) + ",\n}")


def _pmap(name: str, imaps: dict[str, str]) -> str:
    """Text of a pipeline mapping (a context) naming one imap per instrument."""
    serial = int(name.split("_")[1].split(".")[0])
    header = {
        "derived_from": f"jwst_{serial - 1:04d}.pmap",
        "mapping": "PIPELINE",
        "name": name,
        "observatory": "JWST",
        "parkey": ("META.INSTRUMENT.NAME",),
    }
    rows = "".join(f"    {key!r} : {imaps[key]!r},\n" for key in sorted(imaps))
    return _mapping_text(header, "{\n" + rows + "}")


def _write_server_config(cfgdir: Path, context: str, mappings, bad_files=()) -> None:
    """The ``server_config`` a ``crds sync`` leaves behind (a Python dict literal)."""
    info = {
        "observatory": "jwst",
        "operational_context": context,
        "edit_context": context,
        "build_context": context,
        "versions_context": context,
        "bad_files_list": list(bad_files),
        "bad_files": " ".join(bad_files),
        "force_remote_mode": False,
        "mappings": sorted(mappings),
        "crds_version": {"str": "14.0.0"},
        "checked_context": context,
        "last_synced": "2026-01-01 00:00:00",
        "reference_url": {},
        "mapping_url": {},
    }
    (cfgdir / "server_config").write_text(pprint.pformat(info) + "\n")


def mask_values(name: str, shape: tuple[int, int]) -> np.ndarray:
    """The float32 weights written into reference ``name`` (distinct per file, all in (0, 1]).

    Each pixel encodes its own position (``(y * nx + x + 1) / (ny * nx)``) plus a per-file
    offset, so any cut-out can be checked exactly.
    """
    ny, nx = shape
    serial = int(name.rsplit("_", 1)[1].split(".")[0])
    offset = {"nircam": 0.0, "miri": 0.5}[name.split("_")[1]]
    ramp = (np.arange(ny * nx, dtype=np.float64).reshape(ny, nx) + 1.0) / (ny * nx)
    values = 0.25 * ramp + 0.1 * serial + offset
    return np.minimum(values, 1.0).astype(np.float32)


def crds_parameters(case: str) -> dict[str, str]:
    """Datamodel-style CRDS selection parameters for a named test case.

    Cases: ``nircam_2022``, ``nircam_2024``, ``nircam_full`` (selects the full-frame mask),
    ``miri``, ``miri_tacq`` (N/A), ``bad_filter`` (no rule), ``too_early`` (before every
    use-after).
    """
    nircam = {
        "META.INSTRUMENT.NAME": "NIRCAM",
        "META.EXPOSURE.TYPE": "NRC_CORON",
        "META.INSTRUMENT.FILTER": "F335M",
        "META.INSTRUMENT.CORONAGRAPH": "MASKA335R",
        "META.INSTRUMENT.DETECTOR": "NRCALONG",
        "META.SUBARRAY.NAME": "SUB320A335R",
        "META.OBSERVATION.DATE": "2022-08-01",
        "META.OBSERVATION.TIME": "12:00:00.000",
        "META.TELESCOPE": "JWST",
    }
    miri = {
        "META.INSTRUMENT.NAME": "MIRI",
        "META.EXPOSURE.TYPE": "MIR_4QPM",
        "META.INSTRUMENT.FILTER": "F1065C",
        "META.INSTRUMENT.CORONAGRAPH": "4QPM_1065",
        "META.INSTRUMENT.DETECTOR": "MIRIMAGE",
        "META.SUBARRAY.NAME": "MASK1065",
        "META.OBSERVATION.DATE": "2022-08-01",
        "META.OBSERVATION.TIME": "12:00:00.000",
        "META.TELESCOPE": "JWST",
    }
    cases = {
        "nircam_2022": nircam,
        "nircam_2024": dict(nircam, **{"META.OBSERVATION.DATE": "2024-03-05"}),
        "nircam_full": dict(
            nircam,
            **{
                "META.INSTRUMENT.FILTER": "F210M",
                "META.INSTRUMENT.CORONAGRAPH": "MASKA210R",
                "META.INSTRUMENT.DETECTOR": "NRCA2",
                "META.SUBARRAY.NAME": "SUB640A210R",
            },
        ),
        "miri": miri,
        "miri_tacq": dict(
            miri,
            **{
                "META.EXPOSURE.TYPE": "MIR_TACQ",
                "META.INSTRUMENT.FILTER": "F1500W",
                "META.SUBARRAY.NAME": "SUB64",
            },
        ),
        "bad_filter": dict(nircam, **{"META.INSTRUMENT.FILTER": "F200W"}),
        "too_early": dict(nircam, **{"META.OBSERVATION.DATE": "2021-06-30"}),
    }
    return dict(cases[case])


def _write_mask(path: Path, data, *, instrument, subarray, start, exptype, optics=None):
    """Write one PsfMaskModel reference file holding ``data`` (declared at ``start``, 1-based)."""
    from stdatamodels.jwst import datamodels

    shape = data.shape
    model = datamodels.PsfMaskModel(data=data)
    model.meta.instrument.name = instrument
    for key, value in (optics or {}).items():
        setattr(model.meta.instrument, key, value)
    model.meta.exposure.type = exptype
    model.meta.reftype = "PSFMASK"
    model.meta.author = "coronalign tests"
    model.meta.description = "Synthetic PSFMASK for offline CRDS tests"
    model.meta.pedigree = "DUMMY"
    model.meta.useafter = "2022-01-01T00:00:00"
    model.meta.subarray.name = subarray
    model.meta.subarray.xstart = start[0]
    model.meta.subarray.ystart = start[1]
    model.meta.subarray.xsize = shape[1]
    model.meta.subarray.ysize = shape[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    model.close()


def build_crds_cache(
    root,
    *,
    frame_shape=FRAME_SHAPE,
    full_shape=FULL_SHAPE,
    server_config: bool = True,
    missing_references=(),
    bad_checksum=(),
    bad_files=(),
) -> dict:
    """Write a real offline CRDS cache under ``root`` and describe it.

    Parameters
    ----------
    root : path-like
        Directory to create (the future ``CRDS_PATH``).
    frame_shape : tuple of int
        Shape of the subarray-sized masks (the science frame of the tests).
    full_shape : tuple of int
        Shape of the "full-frame" NIRCam mask ``jwst_nircam_psfmask_0003.fits``.
    server_config : bool
        Write ``config/jwst/server_config``; False reproduces a half-made cache.
    missing_references : iterable of str
        Reference basenames the rules name but the cache does not hold.
    bad_checksum : iterable of str
        Mapping basenames written with a wrong ``sha1sum``.
    bad_files : iterable of str
        Basenames listed in ``bad_files_list`` (scientifically invalid).

    Returns
    -------
    dict
        ``crds_path`` (Path), ``context`` (str), ``mappings`` and ``references``
        (basename -> Path, references only those written), ``frame_shape``, ``full_shape``.
    """
    root = Path(root)
    mapdir = root / "mappings" / "jwst"
    cfgdir = root / "config" / "jwst"
    mapdir.mkdir(parents=True, exist_ok=True)
    cfgdir.mkdir(parents=True, exist_ok=True)

    def rmap_header(instrument):
        name = f"jwst_{instrument.lower()}_psfmask_0001.rmap"
        return name, _rmap_header(name, instrument)

    nircam_rmap, nircam_header = rmap_header("NIRCAM")
    nircam_selector = (
        "Match({\n"
        "    ('NRC_CORON', 'F210M', 'MASKA210R', 'SUB640A210R') : UseAfter({\n"
        f"        '{_USEAFTER_1}' : 'jwst_nircam_psfmask_0003.fits',\n"
        "    }),\n"
        "    ('NRC_CORON', 'F335M', 'MASKA335R', 'SUB320A335R') : UseAfter({\n"
        f"        '{_USEAFTER_1}' : 'jwst_nircam_psfmask_0001.fits',\n"
        f"        '{_USEAFTER_2}' : 'jwst_nircam_psfmask_0002.fits',\n"
        "    }),\n"
        "})"
    )
    miri_rmap, miri_header = rmap_header("MIRI")
    miri_selector = (
        "Match({\n"
        "    ('MIR_4QPM', 'F1065C', '4QPM_1065', 'MASK1065') : UseAfter({\n"
        f"        '{_USEAFTER_1}' : 'jwst_miri_psfmask_0001.fits',\n"
        "    }),\n"
        "    ('MIR_TACQ', 'N/A', 'N/A', 'N/A') : 'N/A',\n"
        "})"
    )

    nircam_imap, nircam_imap_text = _imap("NIRCAM", 1, nircam_rmap)
    miri_imap, miri_imap_text = _imap("MIRI", 1, miri_rmap)
    mappings = {
        CONTEXT: _pmap(CONTEXT, {"MIRI": miri_imap, "NIRCAM": nircam_imap}),
        nircam_imap: nircam_imap_text,
        miri_imap: miri_imap_text,
        nircam_rmap: _mapping_text(nircam_header, nircam_selector),
        miri_rmap: _mapping_text(miri_header, miri_selector),
    }
    mapping_paths = {}
    for name, text in mappings.items():
        if name in bad_checksum:
            good = sha1sum_of_mapping(text)
            text = text.replace(good, "0123456789" * 4, 1)
        path = mapdir / name
        path.write_text(text)
        mapping_paths[name] = path

    if server_config:
        _write_server_config(cfgdir, CONTEXT, mappings, bad_files)
    (cfgdir / "ref_cache_subdir_mode").write_text("instrument\n")

    references = {}
    full_start = (1, 1)
    specs = [
        ("nircam", "jwst_nircam_psfmask_0001.fits", frame_shape, "SUB320A335R", (1, 1)),
        ("nircam", "jwst_nircam_psfmask_0002.fits", frame_shape, "SUB320A335R", (1, 1)),
        ("nircam", "jwst_nircam_psfmask_0003.fits", full_shape, "FULL", full_start),
        ("miri", "jwst_miri_psfmask_0001.fits", frame_shape, "MASK1065", (1, 1)),
    ]
    for instrument, name, shape, subarray, start in specs:
        if name in missing_references:
            continue
        path = root / "references" / "jwst" / instrument / name
        _write_mask(
            path,
            mask_values(name, shape),
            instrument=instrument.upper(),
            subarray=subarray,
            start=start,
            exptype="NRC_CORON" if instrument == "nircam" else "MIR_4QPM",
        )
        references[name] = path

    return {
        "crds_path": root,
        "context": CONTEXT,
        "mappings": mapping_paths,
        "references": references,
        "frame_shape": tuple(frame_shape),
        "full_shape": tuple(full_shape),
    }


# ----------------------------------------------------------------------------------------------
# A cache for the simulator's data (coronalign.simulation), used by the end-to-end tests

#: The cache's operational context: subarray-sized masks equal to the simulator's own.
SIM_CONTEXT = "jwst_0001.pmap"
#: Same rules, but the NIRCam rule selects a full-frame (2048 x 2048) mask.
SIM_CONTEXT_FULL_FRAME = "jwst_0002.pmap"
#: Same rules, but the NIRCam rule selects a 1024 x 1024 mask that does not cover the subarray.
SIM_CONTEXT_MISPLACED = "jwst_0003.pmap"
#: NIRCam observations from this date on select a reference the cache does not hold.
SIM_NEWER_USEAFTER = "2024-01-01 00:00:00"
#: The reference named by the rules but left out of the cache (as after a partial sync).
SIM_MISSING_REFERENCE = "jwst_nircam_psfmask_0004.fits"
#: Exposure types for which the rules say N/A (no PSFMASK applies).
SIM_NOT_APPLICABLE = {"NIRCAM": "NRC_TACQ", "MIRI": "MIR_TACQ"}
#: Size of the misplaced NIRCam mask.
SIM_MISPLACED_SHAPE = (1024, 1024)


def _sim_nircam_rmap(reference: str, newer: str | None = None) -> str:
    """Selector of a NIRCam PSFMASK rmap for the simulator's NIRCam setup."""
    newer_row = f"        '{SIM_NEWER_USEAFTER}' : {newer!r},\n" if newer else ""
    return (
        "Match({\n"
        "    ('NRC_CORON', 'F335M', 'MASKA335R', 'SUB320A335R') : UseAfter({\n"
        f"        '{_USEAFTER_1}' : {reference!r},\n"
        f"{newer_row}"
        "    }),\n"
        f"    ({SIM_NOT_APPLICABLE['NIRCAM']!r}, 'N/A', 'N/A', 'N/A') : 'N/A',\n"
        "})"
    )


def build_simulator_cache(root, shape=(64, 64), *, server_config: bool = True) -> dict:
    """Write an offline CRDS cache whose rules select for the simulator's real parameter values.

    The rules match ``coronalign.simulation`` data: NIRCam ``NRC_CORON`` / ``F335M`` /
    ``MASKA335R`` / ``SUB320A335R`` (subarray at x=1729, y=1 of the 2048 x 2048 detector) and
    MIRI ``MIR_4QPM`` / ``F1550C`` / ``4QPM_1550`` / ``MASK1550``; the exposure types
    ``NRC_TACQ`` and ``MIR_TACQ`` (:data:`SIM_NOT_APPLICABLE`) are N/A.

    ===================  ===========================================================  ==========
    context              NIRCam F335M (use after 2022-01-01; 2024-01-01)              MIRI F1550C
    ===================  ===========================================================  ==========
    jwst_0001.pmap       jwst_nircam_psfmask_0001 (subarray); _0004 (not in cache)    _miri_0001
    jwst_0002.pmap       jwst_nircam_psfmask_0002 (full frame, 2048 x 2048)           _miri_0001
    jwst_0003.pmap       jwst_nircam_psfmask_0003 (1024 x 1024 at 1,1: misplaced)     _miri_0001
    ===================  ===========================================================  ==========

    The subarray-sized masks hold exactly ``simulation.psfmask_array(instrument, shape)``, the
    mask the simulator writes next to its data, and the full-frame one holds
    ``psfmask_array("nircam", shape, full_frame=True)``: a correct cut-out gives the same
    weights, hence the same fitted shifts, as the simulator's own mask.

    Parameters
    ----------
    root : path-like
        Directory to create (the future ``CRDS_PATH``).
    shape : tuple of int
        ``(ny, nx)`` of the simulated frames (``simulation.write_association(shape=...)``).
    server_config : bool
        Write ``config/jwst/server_config``; False reproduces a half-made cache.

    Returns
    -------
    dict
        ``crds_path`` (Path), ``context`` (the operational context), ``contexts`` (list),
        ``mappings`` and ``references`` (basename -> Path), ``missing`` (the reference the
        rules name but the cache lacks), ``shape``.
    """
    from coronalign import simulation

    root = Path(root)
    mapdir = root / "mappings" / "jwst"
    cfgdir = root / "config" / "jwst"
    mapdir.mkdir(parents=True, exist_ok=True)
    cfgdir.mkdir(parents=True, exist_ok=True)

    miri_rmap = "jwst_miri_psfmask_0001.rmap"
    miri_selector = (
        "Match({\n"
        "    ('MIR_4QPM', 'F1550C', '4QPM_1550', 'MASK1550') : UseAfter({\n"
        f"        '{_USEAFTER_1}' : 'jwst_miri_psfmask_0001.fits',\n"
        "    }),\n"
        f"    ({SIM_NOT_APPLICABLE['MIRI']!r}, 'N/A', 'N/A', 'N/A') : 'N/A',\n"
        "})"
    )
    miri_imap, miri_imap_text = _imap("MIRI", 1, miri_rmap)
    mappings = {
        miri_rmap: _mapping_text(_rmap_header(miri_rmap, "MIRI"), miri_selector),
        miri_imap: miri_imap_text,
    }
    nircam_rules = {
        SIM_CONTEXT: ("jwst_nircam_psfmask_0001.fits", SIM_MISSING_REFERENCE),
        SIM_CONTEXT_FULL_FRAME: ("jwst_nircam_psfmask_0002.fits", None),
        SIM_CONTEXT_MISPLACED: ("jwst_nircam_psfmask_0003.fits", None),
    }
    for serial, (context, (reference, newer)) in enumerate(nircam_rules.items(), start=1):
        rmap = f"jwst_nircam_psfmask_{serial:04d}.rmap"
        selector = _sim_nircam_rmap(reference, newer)
        mappings[rmap] = _mapping_text(_rmap_header(rmap, "NIRCAM"), selector)
        imap, mappings[imap] = _imap("NIRCAM", serial, rmap)
        mappings[context] = _pmap(context, {"MIRI": miri_imap, "NIRCAM": imap})
    mapping_paths = {}
    for name, text in mappings.items():
        mapping_paths[name] = mapdir / name
        mapping_paths[name].write_text(text)
    if server_config:
        _write_server_config(cfgdir, SIM_CONTEXT, mappings)
    (cfgdir / "ref_cache_subdir_mode").write_text("instrument\n")

    shape = tuple(int(n) for n in shape)
    nircam_optics = {"filter": "F335M", "coronagraph": "MASKA335R", "detector": "NRCALONG"}
    miri_optics = {"filter": "F1550C", "coronagraph": "4QPM_1550", "detector": "MIRIMAGE"}
    specs = {
        "jwst_nircam_psfmask_0001.fits": (
            simulation.psfmask_array("nircam", shape),
            "SUB320A335R",
            (1729, 1),
            nircam_optics,
        ),
        "jwst_nircam_psfmask_0002.fits": (
            simulation.psfmask_array("nircam", shape, full_frame=True),
            "FULL",
            (1, 1),
            nircam_optics,
        ),
        "jwst_nircam_psfmask_0003.fits": (
            np.ones(SIM_MISPLACED_SHAPE, dtype=np.float32),
            "FULL",
            (1, 1),
            nircam_optics,
        ),
        "jwst_miri_psfmask_0001.fits": (
            simulation.psfmask_array("miri", shape),
            "MASK1550",
            (1, 467),
            miri_optics,
        ),
    }
    references = {}
    for name, (data, subarray, start, optics) in specs.items():
        instrument = name.split("_")[1]
        path = root / "references" / "jwst" / instrument / name
        _write_mask(
            path,
            data,
            instrument=instrument.upper(),
            subarray=subarray,
            start=start,
            exptype="NRC_CORON" if instrument == "nircam" else "MIR_4QPM",
            optics=optics,
        )
        references[name] = path
    return {
        "crds_path": root,
        "context": SIM_CONTEXT,
        "contexts": list(nircam_rules),
        "mappings": mapping_paths,
        "references": references,
        "missing": SIM_MISSING_REFERENCE,
        "shape": shape,
    }
