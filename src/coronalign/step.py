"""The ``align_refs`` step on files: read, check, align, write.

This is the layer the command line and the workflow scripts call. It checks every input
before any work is done, so a bad input fails fast with one clear message, and it writes
every output atomically.
"""

import logging
import time
from pathlib import Path

import numpy as np

from . import __version__
from .align import align_stacks
from .badpix import parse_bad_bits, parse_box_length
from .errors import InputFileError, ParameterError
from .products import ProductWriter, read_stack, write_shift_table
from .provenance import provenance_record
from .references import load_psfmask

__all__ = ["MODES", "align_files", "check_frames", "zero_flags_for"]

log = logging.getLogger(__name__)

MODES = ("quad", "cube")
NON_SCIENCE = 512


def zero_flags_for(instrument):
    """DQ bits whose bad pixels become 0 instead of a median (MIRI: NON_SCIENCE)."""
    return NON_SCIENCE if str(instrument).upper() == "MIRI" else 0


def check_frames(science_path, science, psf_path, psfs):
    """Fail with a clear message unless science and PSF frames have the same shape."""
    if science.data.shape[-2:] != psfs.data.shape[-2:]:
        raise InputFileError(
            psf_path,
            f"PSF frames are {psfs.data.shape[-2]}x{psfs.data.shape[-1]} (ny x nx) but the science "
            f"frames of {Path(science_path).name} are {science.data.shape[-2]}x"
            f"{science.data.shape[-1]}; the PSF stack must be built from exposures of the same "
            "subarray",
        )


def _subarray(model):
    """Position of the model's subarray on the detector (1-based), as a dict."""
    sub = model.meta.subarray
    return {name: getattr(sub, name, None) for name in ("xstart", "ystart", "xsize", "ysize")}


def align_files(
    science_path,
    psfstack_path,
    psfmask_path,
    output_path,
    *,
    mode="quad",
    median_box_length=3,
    bad_bits="DO_NOT_USE",
    shifts_path=None,
    threads=1,
    psfmask_reference=None,
    crds=None,
):
    """Align a PSF stack to a science exposure and write the ``_psfalign`` product.

    Parameters
    ----------
    science_path : path-like
        Science ``_calints`` CubeModel (nints, ny, nx).
    psfstack_path : path-like
        ``_psfstack`` CubeModel (npsfs, ny, nx).
    psfmask_path : path-like
        PSFMASK (weights: 1 use, 0 ignore); a larger mask is cut to the science subarray.
    output_path : path-like
        The product to write.
    mode : {"quad", "cube"}, optional
        ``quad``: QuadModel (nints, npsfs, ny, nx), every integration fitted (jwst ≤ 1.15);
        ``cube``: CubeModel (npsfs, ny, nx) aligned to integration 0 (jwst ≥ 1.16).
    median_box_length : int, optional
        Box length of the median used to replace bad pixels.
    bad_bits : str or int, optional
        DQ flags marking bad pixels (see :func:`coronalign.badpix.parse_bad_bits`).
    shifts_path : path-like, optional
        Also write the fitted parameters as an ECSV table here.
    threads : int, optional
        Worker threads.
    psfmask_reference : str, optional
        What to record as ``R_PSFMAS`` (default: the mask file's path).
    crds : dict, optional
        ``{"context": ..., "version": ...}`` when the mask came from CRDS.

    Returns
    -------
    coronalign.align.AlignmentResult
    """
    if mode not in MODES:
        raise ParameterError("mode", f"{mode!r} is not one of {', '.join(MODES)}")
    box = parse_box_length(median_box_length)
    bits = parse_bad_bits(bad_bits)
    if not isinstance(threads, int) or threads < 1:
        raise ParameterError("threads", f"{threads!r} is not a whole number >= 1")
    started = time.perf_counter()
    science, science_model = read_stack(science_path, "science exposure")
    psfs, psf_model = read_stack(psfstack_path, "PSF stack")
    check_frames(science_path, science, psfstack_path, psfs)
    weight = load_psfmask(psfmask_path, science.data.shape[-2:], _subarray(science_model))
    if not np.isfinite(science.data).any():
        raise InputFileError(
            science_path, "the science exposure has no finite pixel: nothing to align to"
        )
    if not np.isfinite(psfs.data).any():
        raise InputFileError(psfstack_path, "the PSF stack has no finite pixel: nothing to align")
    instrument = science_model.meta.instrument.name
    parameters = {
        "mode": mode,
        "median_box_length": box,
        "bad_bits": bad_bits if isinstance(bad_bits, str) else str(bad_bits),
        "bad_bits_value": bits,
        "threads": threads,
    }
    log.info(
        "science %s (%d integrations), PSF stack %s (%d PSFs), mask %s, %s",
        Path(science_path).name,
        science.nplanes,
        Path(psfstack_path).name,
        psfs.nplanes,
        Path(psfmask_path).name,
        ", ".join(f"{key}={value}" for key, value in parameters.items()),
    )
    record = provenance_record(
        {"science": science_path, "psfstack": psfstack_path, "psfmask": psfmask_path},
        parameters,
        crds,
    )
    meta = {
        "cal_step.align_psfs": "COMPLETE",
        "ref_file.psfmask.name": psfmask_reference or str(psfmask_path),
        "coronalign": {"version": __version__, **record},
    }
    if crds and crds.get("context"):
        meta["ref_file.crds.context_used"] = crds["context"]
        meta["ref_file.crds.sw_version"] = crds.get("version") or ""
    integrations = [0] if mode == "cube" else None
    nrows = 1 if mode == "cube" else science.nplanes
    shape = science.data.shape[-2:]
    with ProductWriter(output_path, mode, nrows, psfs.nplanes, shape, psf_model, meta) as writer:
        result = align_stacks(
            science,
            psfs,
            weight,
            writer,
            bad_bits=bits,
            median_box_length=box,
            zero_flags=zero_flags_for(instrument),
            integrations=integrations,
            threads=threads,
        )
        if (result.status == "no_data").all():
            raise InputFileError(
                science_path,
                "no integration has usable data under the PSFMASK (all NaN or flagged bad): "
                "nothing to align to",
            )
        writer.commit()
    if shifts_path is not None:
        table_meta = {
            "science": Path(science_path).name,
            "psfstack": Path(psfstack_path).name,
            "psfmask": psfmask_reference or str(psfmask_path),
            "product": Path(output_path).name,
            "parameters": parameters,
            "software": record["software"],
        }
        write_shift_table(shifts_path, result, table_meta)
    log.info(
        "done: %d fits (%d converged) in %.2f s",
        result.status.size,
        int(result.converged.sum()),
        time.perf_counter() - started,
    )
    science_model.close()
    psf_model.close()
    return result
