"""``stack_refs`` (the PSF stack) and the input check of a PSF stack against the science.

:func:`stack_refs` does what calwebb_coron3's ``stack_refs`` step does: every integration of
the PSF reference exposures, in member order, becomes one plane of a CubeModel ``_psfstack``
whose metadata are those of the first member. :func:`check_psfstack` is the workflow's input
check: it fails, with a message that shows both values and both files, when a PSF stack
cannot be used with a science exposure.
"""

import logging
from pathlib import Path

import numpy as np

from coronalign.core.align import Stack
from coronalign.errors import InputFileError
from coronalign.io.models import open_model, read_stack, write_cube
from coronalign.io.pointing import members_record
from coronalign.io.reports import write_json_report

__all__ = ["AGREEING_KEYWORDS", "check_psfstack", "stack_refs"]

log = logging.getLogger(__name__)

#: Metadata that must agree between a PSF stack and a science exposure:
#: (label for messages, FITS keyword, datamodel attribute path).
AGREEING_KEYWORDS = (
    ("instrument", "INSTRUME", "instrument.name"),
    ("filter", "FILTER", "instrument.filter"),
    ("coronagraph", "CORONMSK", "instrument.coronagraph"),
    ("subarray", "SUBARRAY", "subarray.name"),
)


def _frame(shape):
    return f"{shape[-2]}x{shape[-1]}"


def stack_refs(psf_paths, output):
    """Stack all integrations of the PSF exposures into a ``_psfstack`` CubeModel.

    Parameters
    ----------
    psf_paths : sequence of path-like
        PSF reference ``_calints`` files (CubeModels), in association member order.
    output : path-like
        The ``_psfstack`` file to write (atomically).

    Returns
    -------
    tuple of int
        Shape of the stack, ``(nplanes, ny, nx)``.

    Raises
    ------
    InputFileError
        A member cannot be read or is not 3D, or the members do not all share one frame
        size (the message lists every file and its shape).
    """
    paths = [Path(p) for p in psf_paths]
    if not paths:
        raise InputFileError(output, "no PSF exposures given to stack")
    stacks, first_model, members = [], None, []
    for path in paths:
        stack, model = read_stack(path, "PSF exposure")
        stacks.append(stack)
        members += members_record([path], [model])
        if first_model is None:
            first_model = model
        else:
            model.close()
    frames = {stack.data.shape[-2:] for stack in stacks}
    if len(frames) > 1:
        listing = "; ".join(
            f"{path.name}: {stack.data.shape[0]} x {_frame(stack.data.shape)}"
            for path, stack in zip(paths, stacks, strict=True)
        )
        first_model.close()
        raise InputFileError(
            paths[0],
            "all PSF exposures must have the same frame size (ny x nx) to be stacked, but "
            f"they differ: {listing}; stack only exposures of one subarray",
        )
    data = np.concatenate([np.asarray(s.data, dtype=np.float32) for s in stacks])
    err = np.concatenate([np.asarray(s.err, dtype=np.float32) for s in stacks])
    dq = np.concatenate([np.asarray(s.dq, dtype=np.uint32) for s in stacks])
    meta = {
        "cal_step.stack_psfs": "COMPLETE",
        # Each member's pointing: the stack's own metadata are the first member's only.
        "coronalign": {"psf_members": members},
    }
    write_cube(output, Stack(data=data, err=err, dq=dq), first_model, meta)
    first_model.close()
    log.info(
        "stacked %d PSF exposures (%s planes) into %s, %d x %s",
        len(paths),
        "+".join(str(s.data.shape[0]) for s in stacks),
        output,
        data.shape[0],
        _frame(data.shape),
    )
    return data.shape


def _meta_value(model, dotted):
    node = model.meta
    for name in dotted.split("."):
        node = getattr(node, name, None)
        if node is None:
            return None
    return node


def check_psfstack(psfstack, science_paths, report=None):
    """Check that a PSF stack can be aligned to every science exposure.

    Checks: the stack is a 3D CubeModel with at least one plane and some finite pixel; its
    frame (ny, nx) is that of every science exposure; instrument, filter, coronagraph and
    subarray agree with each science exposure. A keyword missing from one of the two files
    is reported as a warning, not a failure.

    Parameters
    ----------
    psfstack : path-like
        The ``_psfstack`` file.
    science_paths : sequence of path-like
        The science ``_calints`` files.
    report : path-like, optional
        Where to write a JSON report of the checks (only when all pass).

    Returns
    -------
    dict
        The report.

    Raises
    ------
    InputFileError
        A check fails; the message names the files and shows the disagreeing values.
    """
    psfstack = Path(psfstack)
    stack, model = read_stack(psfstack, "PSF stack")
    kind = type(model).__name__
    if kind != "CubeModel":
        model.close()
        raise InputFileError(
            psfstack, f"the PSF stack must be a CubeModel (npsfs, ny, nx), but it is a {kind}"
        )
    finite = np.isfinite(stack.data)
    if not finite.any():
        model.close()
        raise InputFileError(psfstack, "the PSF stack has no finite pixel (all NaN)")
    empty_planes = np.flatnonzero(~finite.any(axis=(1, 2))).tolist()
    stack_meta = {label: _meta_value(model, attr) for label, _key, attr in AGREEING_KEYWORDS}
    model.close()
    warnings = []
    if empty_planes:
        warnings.append(f"PSF planes {empty_planes} are all NaN; they cannot be aligned")
    science_reports = []
    for science in map(Path, science_paths):
        sci_model = open_model(science, "science exposure")
        shape = tuple(sci_model.data.shape)
        sci_meta = {label: _meta_value(sci_model, attr) for label, _key, attr in AGREEING_KEYWORDS}
        sci_model.close()
        if shape[-2:] != stack.data.shape[-2:]:
            raise InputFileError(
                psfstack,
                f"the PSF stack frames are {_frame(stack.data.shape)} (ny x nx) but those of "
                f"science exposure {science} are {_frame(shape)}; the PSF stack must come "
                "from exposures of the science subarray",
            )
        for label, keyword, _attr in AGREEING_KEYWORDS:
            ours, theirs = stack_meta[label], sci_meta[label]
            if ours is None or theirs is None:
                missing = psfstack.name if ours is None else science.name
                warnings.append(f"{keyword} ({label}) is not set in {missing}: not compared")
            elif str(ours).strip().upper() != str(theirs).strip().upper():
                raise InputFileError(
                    psfstack,
                    f"{label} ({keyword}) of the PSF stack is {ours!r} but that of science "
                    f"exposure {science} is {theirs!r}; use PSF exposures taken with the same "
                    "instrument, filter, coronagraph and subarray as the science",
                )
        science_reports.append({"path": str(science), "shape": list(shape), **sci_meta})
    for warning in dict.fromkeys(warnings):
        log.warning("%s", warning)
    result = {
        "status": "passed",
        "psfstack": str(psfstack),
        "model": kind,
        "shape": list(stack.data.shape),
        "metadata": stack_meta,
        "all_nan_planes": empty_planes,
        "science": science_reports,
        "warnings": list(dict.fromkeys(warnings)),
    }
    log.info(
        "PSF stack %s (%d x %s) fits %d science exposures",
        psfstack.name,
        stack.data.shape[0],
        _frame(stack.data.shape),
        len(science_reports),
    )
    if report is not None:
        write_json_report(report, result)
    return result
