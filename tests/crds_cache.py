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
    "build_crds_cache",
    "crds_parameters",
    "mask_values",
    "sha1sum_of_mapping",
]

CONTEXT = "jwst_0001.pmap"
FRAME_SHAPE = (64, 64)
FULL_SHAPE = (256, 256)
# 1-based (xstart, ystart) of the SUB640A210R science subarray inside the full-frame mask.
NIRCAM_SUBARRAY_START = (101, 41)

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


def _write_mask(path: Path, name: str, shape, *, instrument, subarray, start, exptype):
    """Write one PsfMaskModel reference file."""
    from stdatamodels.jwst import datamodels

    model = datamodels.PsfMaskModel(data=mask_values(name, shape))
    model.meta.instrument.name = instrument
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

    parkey = (
        (
            "META.EXPOSURE.TYPE",
            "META.INSTRUMENT.FILTER",
            "META.INSTRUMENT.CORONAGRAPH",
            "META.SUBARRAY.NAME",
        ),
        ("META.OBSERVATION.DATE", "META.OBSERVATION.TIME"),
    )

    def rmap_header(instrument):
        name = f"jwst_{instrument.lower()}_psfmask_0001.rmap"
        return name, {
            "classes": ("Match", "UseAfter"),
            "derived_from": f"jwst_{instrument.lower()}_psfmask_0000.rmap",
            "file_ext": ".fits",
            "filekind": "PSFMASK",
            "filetype": "PSFMASK",
            "instrument": instrument,
            "mapping": "REFERENCE",
            "name": name,
            "observatory": "JWST",
            "parkey": parkey,
            "suffix": "psfmask",
            "text_descr": "PSF Mask",
        }

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

    def imap(instrument, rmap):
        name = f"jwst_{instrument.lower()}_0001.imap"
        header = {
            "derived_from": f"jwst_{instrument.lower()}_0000.imap",
            "instrument": instrument,
            "mapping": "INSTRUMENT",
            "name": name,
            "observatory": "JWST",
            "parkey": ("REFTYPE",),
        }
        return name, _mapping_text(header, "{\n    'PSFMASK' : " + repr(rmap) + ",\n}")

    nircam_imap, nircam_imap_text = imap("NIRCAM", nircam_rmap)
    miri_imap, miri_imap_text = imap("MIRI", miri_rmap)
    pmap_header = {
        "derived_from": "jwst_0000.pmap",
        "mapping": "PIPELINE",
        "name": CONTEXT,
        "observatory": "JWST",
        "parkey": ("META.INSTRUMENT.NAME",),
    }
    pmap_selector = f"{{\n    'MIRI' : {miri_imap!r},\n    'NIRCAM' : {nircam_imap!r},\n}}"
    mappings = {
        CONTEXT: _mapping_text(pmap_header, pmap_selector),
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
        info = {
            "observatory": "jwst",
            "operational_context": CONTEXT,
            "edit_context": CONTEXT,
            "build_context": CONTEXT,
            "versions_context": CONTEXT,
            "bad_files_list": list(bad_files),
            "bad_files": " ".join(bad_files),
            "force_remote_mode": False,
            "mappings": sorted(mappings),
            "crds_version": {"str": "14.0.0"},
            "checked_context": CONTEXT,
            "last_synced": "2026-01-01 00:00:00",
            "reference_url": {},
            "mapping_url": {},
        }
        (cfgdir / "server_config").write_text(pprint.pformat(info) + "\n")
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
            name,
            shape,
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
