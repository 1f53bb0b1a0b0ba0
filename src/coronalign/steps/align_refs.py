"""The ``align_refs`` step on files: read, check, align, write.

This is what ``coronalign align`` and the workflow's ``align`` rule run. Every input is
read and checked before any work is done, so a bad input fails fast with one clear
message, and every output is written atomically. The parameters arrive validated, as one
:class:`~coronalign.steps.parameters.StepParameters`.
"""

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from coronalign import __version__, dq
from coronalign.core.align import STATUS_DTYPE, AlignmentResult, align_stacks
from coronalign.dq import FitStatus
from coronalign.errors import InputFileError
from coronalign.io._asdf_startup import only_needed_extensions
from coronalign.io.models import fits_text, read_stack
from coronalign.io.paths import check_fits_name, check_input, check_outputs
from coronalign.io.pointing import pixel_scale, priors_from_pointing
from coronalign.io.product import ProductWriter, write_unaligned_product
from coronalign.io.provenance import file_sha256, provenance_record, recorded_text
from coronalign.io.tables import pending_shift_table, shift_records
from coronalign.references.mask import load_psfmask
from coronalign.references.selection import read_psfmask_selection
from coronalign.steps.collector import end_of_startup
from coronalign.steps.parameters import StepParameters

__all__ = [
    "align_files",
    "align_with_selection",
    "check_frames",
    "skip_alignment",
    "zero_flags_for",
]

log = logging.getLogger(__name__)


def zero_flags_for(instrument):
    """DQ bits whose bad pixels become 0 instead of a median.

    Parameters
    ----------
    instrument : str
        The science exposure's ``INSTRUME``.

    Returns
    -------
    int
        ``NON_SCIENCE`` for MIRI (as the official step), 0 otherwise.
    """
    return dq.NON_SCIENCE if str(instrument).upper() == "MIRI" else 0


def check_frames(science_path, science, psf_path, psfs):
    """Fail with a clear message unless science and PSF frames have the same shape.

    Parameters
    ----------
    science_path, psf_path : path-like
        The files, for the message.
    science, psfs : coronalign.core.align.Stack
        Their stacks.

    Raises
    ------
    InputFileError
        The frames differ (the message names both shapes).
    """
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
    psfs, psf_model = read_stack(inputs["psfstack"], "PSF stack", variance_arrays=True)
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


#: What the inputs are called in messages.
_ROLES = {
    "science": "science exposure",
    "psfstack": "PSF stack",
    "psfmask": "PSFMASK",
    "selection": "PSFMASK selection",
}


def _check_paths(inputs, output_path, shifts_path):
    """Before any work: inputs are regular files, outputs replace none of them or each other."""
    named = [(_ROLES[role], path) for role, path in inputs.items()]
    check_outputs([("product", output_path), ("shift table", shifts_path)], named)
    check_fits_name(output_path, "product")
    for role, path in named:
        check_input(path, role)


def _crds_meta(crds):
    """The product's CRDS keywords (``CRDS_CTX``, ``CRDS_VER``) when the mask came from CRDS."""
    if not (crds and crds.get("context")):
        return {}
    return {
        "ref_file.crds.context_used": crds["context"],
        "ref_file.crds.sw_version": crds.get("version") or "",
    }


def align_files(
    science_path,
    psfstack_path,
    psfmask_path,
    output_path,
    parameters=None,
    *,
    shifts_path=None,
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
    parameters : StepParameters, optional
        Mode, median box, bad bits, weighting, search radius and threads (default: the
        defaults of :class:`~coronalign.steps.parameters.StepParameters`).
    shifts_path : path-like, optional
        Also write the fitted parameters as an ECSV table here.
    psfmask_reference : str, optional
        What to record as ``R_PSFMAS`` (default: the mask file's path).
    crds : dict, optional
        ``{"context": ..., "version": ...}`` when the mask came from CRDS.

    Returns
    -------
    coronalign.core.align.AlignmentResult
    """
    parameters = StepParameters() if parameters is None else parameters
    started = time.perf_counter()
    inputs = {"science": science_path, "psfstack": psfstack_path, "psfmask": psfmask_path}
    _check_paths(inputs, output_path, shifts_path)
    # asdf loads the gwcs and JWST transform extensions only if the data models need them.
    with only_needed_extensions([science_path, psfstack_path]):
        return _align_checked(
            science_path,
            psfstack_path,
            psfmask_path,
            output_path,
            parameters,
            started,
            shifts_path=shifts_path,
            psfmask_reference=psfmask_reference,
            crds=crds,
        )


def _align_checked(
    science_path,
    psfstack_path,
    psfmask_path,
    output_path,
    parameters,
    started,
    *,
    shifts_path,
    psfmask_reference,
    crds,
):
    """:func:`align_files` once the paths are checked."""
    inputs = {"science": science_path, "psfstack": psfstack_path, "psfmask": psfmask_path}
    # The inputs' digests (for the provenance record) are computed while they are read;
    # if reading fails, the hashing stops too (or the process would wait for it).
    hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="input-digests")
    stop = threading.Event()
    try:
        digests = {
            role: hasher.submit(file_sha256, path, stop=stop) for role, path in inputs.items()
        }
        science, science_model, psfs, psf_model, weight = _read_inputs(inputs)
        digests = {role: future.result() for role, future in digests.items()}
    finally:
        stop.set()
        hasher.shutdown(wait=False, cancel_futures=True)
    instrument = science_model.meta.instrument.name
    priors, prior_source = priors_from_pointing(science_model, psf_model, psfs.nplanes)
    record_parameters = parameters.record()
    log.info(
        "science %s (%d integrations), PSF stack %s (%d PSFs), mask %s, %s",
        Path(science_path).name,
        science.nplanes,
        Path(psfstack_path).name,
        psfs.nplanes,
        Path(psfmask_path).name,
        ", ".join(f"{key}={value}" for key, value in record_parameters.items()),
    )
    log.info("prior shifts: %s", prior_source)
    record = provenance_record(inputs, record_parameters, crds, digests)
    record["prior"] = prior_source
    meta = {
        "cal_step.align_psfs": "COMPLETE",
        # A FITS keyword (R_PSFMAS): ASCII, other characters as %XX escapes.
        "ref_file.psfmask.name": fits_text(psfmask_reference or str(psfmask_path)),
        "coronalign": {"version": __version__, **record},
        **_crds_meta(crds),
    }
    cube = parameters.mode == "cube"
    nrows = 1 if cube else science.nplanes
    shape = science.data.shape[-2:]
    # The PSF stack's VAR_* arrays go through the shift as ERR² does, into the product.
    variances = tuple(psfs.variance_arrays or ())
    if variances:
        log.info("variance arrays carried into the product: %s", ", ".join(variances).upper())
    with ProductWriter(
        output_path, parameters.mode, nrows, psfs.nplanes, shape, psf_model, meta,
        variances=variances,
    ) as writer:  # fmt: skip
        end_of_startup()  # the collector, if the command line paused it, runs again
        result = align_stacks(
            science,
            psfs,
            weight,
            writer,
            bad_bits=parameters.bad_bits_value,
            median_box_length=parameters.median_box_length,
            zero_flags=zero_flags_for(instrument),
            weighting=parameters.weighting,
            max_shift=parameters.max_shift,
            priors=priors,
            integrations=[0] if cube else None,
            edges=parameters.edges,
            reference=parameters.reference,
            blur_fwhm=parameters.blur_fwhm,
            err_shift=parameters.err_shift,
            threads=parameters.threads,
            # The writer takes rows from forked worker processes too: it writes to its file.
            processes=parameters.threads,
        )
        if (result.status == FitStatus.NO_DATA).all():
            raise InputFileError(
                science_path,
                "no integration has usable data under the PSFMASK (all NaN or flagged bad): "
                "nothing to align to",
            )
        table_meta = {
            "science": recorded_text(Path(science_path).name),
            "psfstack": recorded_text(Path(psfstack_path).name),
            "psfmask": recorded_text(psfmask_reference or str(psfmask_path)),
            "product": recorded_text(Path(output_path).name),
            "parameters": record_parameters,
            "software": record["software"],
            # The priors are the commanded offsets when they come from the pointing metadata:
            # validation then gives each fit's distance from them in mas.
            "prior": prior_source,
            "pixel_scale_arcsec": pixel_scale(science_model),
        }
        # Both outputs or neither: the table is written first, named after the product.
        with pending_shift_table(shifts_path, result, table_meta):
            writer.commit(shift_records(result))
    log.info(
        "done: %d fits (%d converged) in %.2f s",
        result.status.size,
        int(result.converged.sum()),
        time.perf_counter() - started,
    )
    science_model.close()
    psf_model.close()
    return result


def skip_alignment(
    science_path,
    psfstack_path,
    output_path,
    reason,
    parameters=None,
    *,
    shifts_path=None,
    crds=None,
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
    parameters : StepParameters, optional
        The step parameters, recorded (they were not used).
    shifts_path : path-like, optional
        Also write an empty shift table here.
    crds : dict, optional
        ``{"context": ..., "version": ...}`` of the CRDS lookup that said N/A.

    Returns
    -------
    tuple of int
        Shape of the product.
    """
    _check_paths({"science": science_path, "psfstack": psfstack_path}, output_path, shifts_path)
    science, science_model = read_stack(science_path, "science exposure")
    psfs, psf_model = read_stack(psfstack_path, "PSF stack")
    check_frames(science_path, science, psfstack_path, psfs)
    science_model.close()
    log.warning("alignment of %s skipped: %s", Path(science_path).name, reason)
    record_parameters = {} if parameters is None else parameters.record()
    record = provenance_record(
        {"science": science_path, "psfstack": psfstack_path}, record_parameters, crds
    )
    meta = {
        "cal_step.align_psfs": "SKIPPED",
        "ref_file.psfmask.name": "N/A",
        **_crds_meta(crds),
        "coronalign": {"version": __version__, "skipped": reason, **record},
    }
    npsfs = psfs.nplanes
    empty = AlignmentResult(
        integrations=[],
        xshift=np.zeros((0, npsfs)),
        yshift=np.zeros((0, npsfs)),
        beta=np.zeros((0, npsfs)),
        rms=np.zeros((0, npsfs)),
        iterations=np.zeros((0, npsfs), dtype=np.int64),
        status=np.zeros((0, npsfs), dtype=STATUS_DTYPE),
    )
    table_meta = {
        "science": recorded_text(Path(science_path).name),
        "psfstack": recorded_text(Path(psfstack_path).name),
        "psfmask": "N/A",
        "product": recorded_text(Path(output_path).name),
        "skipped": True,
        "reason": reason,
        "parameters": record_parameters,
        "software": record["software"],
    }
    # Both outputs or neither: the table is written first, named after the product.
    with pending_shift_table(shifts_path, empty, table_meta):
        write_unaligned_product(psf_model, output_path, meta)
    psf_model.close()
    log.info("wrote the unaligned PSF stack as %s", output_path)
    return psfs.data.shape


def align_with_selection(
    science_path, psfstack_path, selection_path, output_path, parameters=None, *, shifts_path=None
):
    """Align with the PSFMASK named by a selection file, or skip when it says N/A.

    Parameters
    ----------
    science_path, psfstack_path, output_path : path-like
        As for :func:`align_files`.
    selection_path : path-like
        A JSON selection written by ``coronalign psfmask``
        (:func:`coronalign.references.selection.write_psfmask_selection`).
    parameters : StepParameters, optional
        As for :func:`align_files`.
    shifts_path : path-like, optional
        Also write the shift table here.

    Returns
    -------
    coronalign.core.align.AlignmentResult or None
        None when the alignment was skipped.
    """
    inputs = {"science": science_path, "psfstack": psfstack_path, "selection": selection_path}
    _check_paths(inputs, output_path, shifts_path)
    selection = read_psfmask_selection(selection_path)
    if selection.path is not None:
        _check_paths({**inputs, "psfmask": selection.path}, output_path, shifts_path)
    crds = None
    if selection.context:
        crds = {"context": selection.context, "version": selection.crds_version}
    if selection.status == "not_applicable":
        skip_alignment(
            science_path,
            psfstack_path,
            output_path,
            selection.reason or "no PSFMASK applies (N/A)",
            parameters,
            shifts_path=shifts_path,
            crds=crds,
        )
        return None
    log.info("PSFMASK: %s", selection.reason or selection.reference)
    return align_files(
        science_path,
        psfstack_path,
        selection.path,
        output_path,
        parameters,
        shifts_path=shifts_path,
        psfmask_reference=selection.reference,
        crds=crds,
    )
