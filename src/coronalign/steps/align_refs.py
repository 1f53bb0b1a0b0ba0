"""The ``align_refs`` step on files: read, check, align, write.

This is the layer the command line and the workflow scripts call. It checks every input
before any work is done, so a bad input fails fast with one clear message, and it writes
every output atomically.
"""

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from . import __version__
from .align import align_stacks
from .badpix import parse_bad_bits, parse_box_length
from .errors import InputFileError, ParameterError
from .pointing import priors_from_pointing
from .products import ProductWriter, read_stack, shift_records, write_shift_table
from .provenance import file_sha256, provenance_record
from .references import load_psfmask
from .register import DEFAULT_MAX_SHIFT, WEIGHTINGS

__all__ = [
    "MODES",
    "SELECTION_STATUSES",
    "align_files",
    "align_with_selection",
    "check_frames",
    "parse_max_shift",
    "read_psfmask_selection",
    "skip_alignment",
    "write_psfmask_selection",
    "zero_flags_for",
]

log = logging.getLogger(__name__)

MODES = ("quad", "cube")
NON_SCIENCE = 512


def parse_max_shift(value):
    """The search radius in pixels: a finite number > 0, or a :class:`ParameterError`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not (math.isfinite(number) and number > 0):
        raise ParameterError("max_shift", f"{value!r} is not a number of pixels > 0")
    return number


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


def _read_inputs(inputs):
    """Read and check the three inputs: science and PSF stacks (with models), weight."""
    science, science_model = read_stack(inputs["science"], "science exposure")
    psfs, psf_model = read_stack(inputs["psfstack"], "PSF stack")
    check_frames(inputs["science"], science, inputs["psfstack"], psfs)
    weight = load_psfmask(inputs["psfmask"], science.data.shape[-2:], _subarray(science_model))
    if not np.isfinite(science.data).any():
        raise InputFileError(
            inputs["science"], "the science exposure has no finite pixel: nothing to align to"
        )
    if not np.isfinite(psfs.data).any():
        raise InputFileError(
            inputs["psfstack"], "the PSF stack has no finite pixel: nothing to align"
        )
    return science, science_model, psfs, psf_model, weight


def align_files(
    science_path,
    psfstack_path,
    psfmask_path,
    output_path,
    *,
    mode="quad",
    median_box_length=3,
    bad_bits="DO_NOT_USE",
    weighting="official",
    max_shift=DEFAULT_MAX_SHIFT,
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
    weighting : {"official", "linear"}, optional
        Fit weight ``mask²`` (the official objective: residual × mask) or ``mask``.
    max_shift : float, optional
        Radius in pixels of the search window around each fit's prior (the expected
        shift from the pointing metadata, else zero).
    shifts_path : path-like, optional
        Also write the fitted parameters as an ECSV table here.
    threads : int, optional
        Threads (see :func:`coronalign.align.align_stacks`); results do not depend on it.
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
    if weighting not in WEIGHTINGS:
        raise ParameterError("weighting", f"{weighting!r} is not one of {', '.join(WEIGHTINGS)}")
    max_shift = parse_max_shift(max_shift)
    started = time.perf_counter()
    inputs = {"science": science_path, "psfstack": psfstack_path, "psfmask": psfmask_path}
    # The inputs' digests (for the provenance record) are computed while they are read.
    hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="input-digests")
    try:
        digests = {role: hasher.submit(file_sha256, path) for role, path in inputs.items()}
        science, science_model, psfs, psf_model, weight = _read_inputs(inputs)
        digests = {role: future.result() for role, future in digests.items()}
    finally:
        hasher.shutdown(wait=False, cancel_futures=True)
    instrument = science_model.meta.instrument.name
    priors, prior_source = priors_from_pointing(science_model, psf_model, psfs.nplanes)
    parameters = {
        "mode": mode,
        "median_box_length": box,
        "bad_bits": bad_bits if isinstance(bad_bits, str) else str(bad_bits),
        "bad_bits_value": bits,
        "weighting": weighting,
        "max_shift": max_shift,
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
    log.info("prior shifts: %s", prior_source)
    record = provenance_record(inputs, parameters, crds, digests)
    record["prior"] = prior_source
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
            weighting=weighting,
            max_shift=max_shift,
            priors=priors,
            integrations=integrations,
            threads=threads,
        )
        if (result.status == "no_data").all():
            raise InputFileError(
                science_path,
                "no integration has usable data under the PSFMASK (all NaN or flagged bad): "
                "nothing to align to",
            )
        writer.commit(shift_records(result))
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


# ----------------------------------------------------------------------------------------------
# PSFMASK selections (the workflow's retrieval rule writes one per science exposure)

SELECTION_STATUSES = ("selected", "override", "not_applicable")


def write_psfmask_selection(selection, path, science=None):
    """Write a :class:`~coronalign.references.PsfmaskSelection` as a JSON file (atomically).

    Parameters
    ----------
    selection : coronalign.references.PsfmaskSelection
        The outcome of :func:`coronalign.references.select_psfmask`.
    path : path-like
        The JSON file to write.
    science : path-like, optional
        The science exposure the selection was made for (recorded for the reader).
    """
    from .reports import write_json_report

    write_json_report(
        path,
        {
            "status": selection.status,
            "path": None if selection.path is None else str(selection.path),
            "reference": selection.reference,
            "context": selection.context,
            "crds_version": selection.crds_version,
            "reason": selection.reason,
            "science": None if science is None else str(science),
        },
    )


def read_psfmask_selection(path):
    """Read a selection written by :func:`write_psfmask_selection`.

    Parameters
    ----------
    path : path-like
        The JSON file.

    Returns
    -------
    coronalign.references.PsfmaskSelection

    Raises
    ------
    InputFileError
        The file is missing, not JSON, or lacks a valid status or (for a selected mask) a path.
    """
    from .references import PsfmaskSelection
    from .reports import read_json_report

    content = read_json_report(path, "PSFMASK selection")
    status = content.get("status")
    if status not in SELECTION_STATUSES:
        raise InputFileError(
            path,
            f"PSFMASK selection status {status!r} is not one of {', '.join(SELECTION_STATUSES)}; "
            "write the file with `coronalign psfmask`",
        )
    if status != "not_applicable" and not content.get("path"):
        raise InputFileError(path, f"PSFMASK selection with status {status!r} names no file")
    return PsfmaskSelection(
        status=status,
        path=Path(content["path"]) if content.get("path") else None,
        reference=str(content.get("reference") or content.get("path") or "N/A"),
        context=content.get("context"),
        crds_version=content.get("crds_version"),
        reason=str(content.get("reason") or ""),
    )


def skip_alignment(
    science_path,
    psfstack_path,
    output_path,
    reason,
    *,
    shifts_path=None,
    crds=None,
    parameters=None,
):
    """Skip the alignment as the official step does when no PSFMASK applies.

    The product is the PSF stack itself (a CubeModel, data unchanged) with
    ``S_PSFALI = SKIPPED`` and ``R_PSFMAS = N/A``; the shift table, if asked for, has no rows
    and gives the reason in its metadata (``skipped``, ``reason``).

    Parameters
    ----------
    science_path : path-like
        The science exposure (checked to exist and to be readable; recorded).
    psfstack_path : path-like
        The ``_psfstack`` CubeModel.
    output_path : path-like
        The product to write (atomically).
    reason : str
        Why the alignment is skipped (logged and recorded).
    shifts_path : path-like, optional
        Also write an empty shift table here.
    crds : dict, optional
        ``{"context": ..., "version": ...}`` of the CRDS lookup that said N/A.
    parameters : dict, optional
        Step parameters to record (they were not used).

    Returns
    -------
    tuple of int
        Shape of the product.
    """
    from .align import AlignmentResult
    from .products import atomic_output

    science, science_model = read_stack(science_path, "science exposure")
    psfs, psf_model = read_stack(psfstack_path, "PSF stack")
    check_frames(science_path, science, psfstack_path, psfs)
    science_model.close()
    log.warning("alignment of %s skipped: %s", Path(science_path).name, reason)
    parameters = dict(parameters or {})
    record = provenance_record(
        {"science": science_path, "psfstack": psfstack_path}, parameters, crds
    )
    product = psf_model.copy()
    psf_model.close()
    product.meta.cal_step.align_psfs = "SKIPPED"
    product.meta.ref_file.psfmask.name = "N/A"
    if crds and crds.get("context"):
        product.meta.ref_file.crds.context_used = crds["context"]
        product.meta.ref_file.crds.sw_version = crds.get("version") or ""
    product.meta.coronalign = {"version": __version__, "skipped": reason, **record}
    product.meta.filename = Path(output_path).name
    with atomic_output(output_path) as temporary:
        product.save(temporary, overwrite=True)
    product.close()
    log.info("wrote the unaligned PSF stack as %s", output_path)
    if shifts_path is not None:
        npsfs = psfs.nplanes
        empty = AlignmentResult(
            integrations=[],
            xshift=np.zeros((0, npsfs)),
            yshift=np.zeros((0, npsfs)),
            beta=np.zeros((0, npsfs)),
            rms=np.zeros((0, npsfs)),
            iterations=np.zeros((0, npsfs), dtype=np.int64),
            status=np.zeros((0, npsfs), dtype="<U13"),
        )
        table_meta = {
            "science": Path(science_path).name,
            "psfstack": Path(psfstack_path).name,
            "psfmask": "N/A",
            "product": Path(output_path).name,
            "skipped": True,
            "reason": reason,
            "parameters": parameters,
            "software": record["software"],
        }
        write_shift_table(shifts_path, empty, table_meta)
    return psfs.data.shape


def align_with_selection(science_path, psfstack_path, selection_path, output_path, **kwargs):
    """Align with the PSFMASK named by a selection file, or skip when it says N/A.

    Parameters
    ----------
    science_path, psfstack_path, output_path : path-like
        As for :func:`align_files`.
    selection_path : path-like
        A JSON selection written by ``coronalign psfmask``
        (:func:`write_psfmask_selection`).
    **kwargs
        Passed on to :func:`align_files` (``mode``, ``median_box_length``, ``bad_bits``,
        ``shifts_path``, ``threads``).

    Returns
    -------
    coronalign.align.AlignmentResult or None
        None when the alignment was skipped.
    """
    selection = read_psfmask_selection(selection_path)
    crds = None
    if selection.context:
        crds = {"context": selection.context, "version": selection.crds_version}
    if selection.status == "not_applicable":
        parameters = {
            key: kwargs[key]
            for key in ("mode", "median_box_length", "bad_bits", "weighting", "max_shift")
            if key in kwargs
        }
        skip_alignment(
            science_path,
            psfstack_path,
            output_path,
            selection.reason or "no PSFMASK applies (N/A)",
            shifts_path=kwargs.get("shifts_path"),
            crds=crds,
            parameters=parameters,
        )
        return None
    log.info("PSFMASK: %s", selection.reason or selection.reference)
    return align_files(
        science_path,
        psfstack_path,
        selection.path,
        output_path,
        psfmask_reference=selection.reference,
        crds=crds,
        **kwargs,
    )
