"""``stack_refs`` (the PSF stack) and the input check of a PSF stack against the science.

:func:`stack_refs` does what calwebb_coron3's ``stack_refs`` step does: every integration of
the PSF reference exposures, in member order, becomes one plane of a CubeModel ``_psfstack``
whose metadata are those of the first member. A variance array (``VAR_POISSON``,
``VAR_RNOISE``, ``VAR_FLAT``) is stacked too when *every* member has it, so that the aligned
product can carry it (the official step stacks SCI, ERR and DQ only); one that some members
lack is left out of the stack, with a warning that names them: a stacked array must describe
every plane, and zeros or NaN for the missing planes would claim a noise (or bad data) that no
file gave. ERR, which every member has, still describes every plane. :func:`check_psfstack` is
the workflow's input
check: it fails, with a message that shows both values and both files, when a PSF stack
cannot be used with a science exposure.

Every member is checked, not only the first one whose metadata the stack carries: members
whose instrument, filter, coronagraph or subarray differ are an error that lists every
value and the files that have it; a keyword missing from some members is one warning. Each
member's values are recorded in ``meta.coronalign.psf_members``, so that
:func:`check_psfstack` can compare every member of a stack with the science.
NIRCam's coronagraph names are compared as one mask whatever the spelling
(``MASK335R`` is the older name of ``MASKA335R``), and MIRI's generic ``4QPM`` and
``LYOT`` agree with any mask of that family (``4QPM_1550``: the filter tells them apart).
"""

import logging
import re
from pathlib import Path

import numpy as np

from coronalign.core.results import VARIANCE_NAMES, Stack
from coronalign.errors import InputFileError
from coronalign.io._asdf_startup import only_needed_extensions
from coronalign.io.models import open_model, read_stack, write_cube
from coronalign.io.paths import check_fits_name, check_input, check_outputs
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

    The stack's ``FILENAME`` is its own name and its ``DATE`` the newest ``DATE`` of its
    members, so stacking the same files always writes the same bytes.

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
        A member cannot be read or is not 3D, the output would replace a member, or the
        members do not all share one frame size, instrument, filter, coronagraph and
        subarray (the message lists every file and its value).
    """
    paths = [Path(p) for p in psf_paths]
    # asdf loads the gwcs and JWST transform extensions only if the members need them.
    with only_needed_extensions(paths):
        return _stack_checked(paths, output)


def _stack_checked(paths, output):
    """:func:`stack_refs` on a list of paths."""
    if not paths:
        raise InputFileError(output, "no PSF exposures given to stack")
    check_outputs([("PSF stack", output)], [("PSF exposure", path) for path in paths])
    check_fits_name(output, "PSF stack")
    for path in paths:
        check_input(path, "PSF exposure")
    stacks, first_model, members, dates = [], None, [], []
    for path in paths:
        stack, model = read_stack(path, "PSF exposure", variance_arrays=True)
        stacks.append(stack)
        record = members_record([path], [model])[0]
        record.update(_agreeing_values(model))
        members.append(record)
        dates.append(_meta_value(model, "date"))
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
    try:
        _check_members_agree(paths, members)
    except InputFileError:
        first_model.close()
        raise
    data = np.concatenate([np.asarray(s.data, dtype=np.float32) for s in stacks])
    err = np.concatenate([np.asarray(s.err, dtype=np.float32) for s in stacks])
    dq = np.concatenate([np.asarray(s.dq, dtype=np.uint32) for s in stacks])
    variances = _stacked_variances(paths, stacks)
    meta = {
        "cal_step.stack_psfs": "COMPLETE",
        # Each member's pointing and configuration: the stack's own metadata are the first
        # member's only.
        "coronalign": {"psf_members": members},
    }
    known = [str(date) for date in dates if date]
    write_cube(
        output,
        Stack(data=data, err=err, dq=dq, variance_arrays=variances),
        first_model,
        meta,
        date=max(known, default=None),
    )
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


def _stacked_variances(paths, stacks):
    """The variance arrays every member has, stacked (float32); None if there are none.

    An array some members lack is left out, with a warning naming those members.
    """
    stacked = {}
    for name in VARIANCE_NAMES:
        lacking = [
            path.name
            for path, stack in zip(paths, stacks, strict=True)
            if name not in (stack.variance_arrays or {})
        ]
        if len(lacking) == len(paths):
            continue
        if lacking:
            log.warning(
                "%s is left out of the PSF stack: %d of %d PSF exposures lack it (%s); the "
                "stack and the aligned product carry only the variance arrays every exposure "
                "has",
                name.upper(),
                len(lacking),
                len(paths),
                ", ".join(lacking),
            )
            continue
        stacked[name] = np.concatenate(
            [np.asarray(stack.variance_arrays[name], dtype=np.float32) for stack in stacks]
        )
    return stacked or None


#: Older NIRCam coronagraph names (without the module letter A), as stdatamodels' schema
#: still allows them, and the names the instrument now writes.
_NIRCAM_OLD_MASK = re.compile(r"MASK(210R|335R|430R|LWB|SWB)")
#: MIRI's generic coronagraph names, which agree with every mask of their family.
_GENERIC_MASKS = ("4QPM", "LYOT")


def _comparable(label, value):
    """A metadata value as it is compared: stripped, upper case, one spelling per mask."""
    text = str(value).strip().upper()
    if label == "coronagraph":
        found = _NIRCAM_OLD_MASK.fullmatch(text)
        if found:
            text = f"MASKA{found.group(1)}"
    return text


def _distinct(label, values):
    """The comparable values that differ, a generic MIRI mask merged into its family."""
    found = {_comparable(label, value) for value in values}
    if label == "coronagraph":
        for generic in _GENERIC_MASKS:
            if generic in found and any(v.startswith(generic + "_") for v in found):
                found.discard(generic)
    return found


def _agreeing_values(model):
    """The model's instrument, filter, coronagraph and subarray (None where not set)."""
    return {label: _meta_value(model, attr) for label, _key, attr in AGREEING_KEYWORDS}


def _listing(label, names, values):
    """``'F335M' in a.fits, b.fits but 'F410M' in c.fits`` (the spellings as found)."""
    groups = {}
    for name, value in zip(names, values, strict=True):
        spellings, files = groups.setdefault(_comparable(label, value), ([], []))
        spellings.append(str(value))
        files.append(name)
    return " but ".join(
        f"{' or '.join(repr(v) for v in dict.fromkeys(spellings))} in {', '.join(files)}"
        for spellings, files in groups.values()
    )


def _disagreements(names, members):
    """What differs between the members, and the first member that differs from the first.

    Parameters
    ----------
    names : list of str
        The members' file names.
    members : list of dict
        Their values of the agreeing keywords (``_agreeing_values``).

    Returns
    -------
    problems : list of str
        One sentence per keyword whose values differ.
    first_odd : int or None
        Index of the first member that differs from the first member.
    """
    problems, missing, first_odd = [], [], None
    for label, keyword, _attr in AGREEING_KEYWORDS:
        values = [member.get(label) for member in members]
        unset = [name for name, value in zip(names, values, strict=True) if value is None]
        if unset:
            missing.append(f"{keyword} ({label}) in {', '.join(unset)}")
        known = [(n, v) for n, v in zip(names, values, strict=True) if v is not None]
        if len(_distinct(label, [v for _, v in known])) <= 1:
            continue
        problems.append(
            f"{label} ({keyword}) is "
            + _listing(label, [n for n, _ in known], [v for _, v in known])
        )
        reference = _comparable(label, known[0][1])
        odd = next(n for n, v in known if _comparable(label, v) != reference)
        index = names.index(odd)
        first_odd = index if first_odd is None else min(first_odd, index)
    if missing:
        log.warning("not set, so not compared between the PSF exposures: %s", "; ".join(missing))
    return problems, first_odd


_AGREE_ADVICE = "use PSF exposures taken with one instrument, filter, coronagraph and subarray"


def _check_members_agree(paths, members):
    """One error if the members' instrument, filter, coronagraph or subarray differ."""
    problems, first_odd = _disagreements([path.name for path in paths], members)
    if problems:
        raise InputFileError(
            paths[first_odd],
            f"the PSF exposures do not agree: {'; '.join(problems)}; {_AGREE_ADVICE}",
        )


def _member_records(model):
    """The stack's per-member values of the agreeing keywords, or None if not recorded."""
    record = getattr(model.meta, "coronalign", None)
    record = getattr(record, "instance", record)  # stdatamodels wraps unknown nodes
    members = record.get("psf_members") if isinstance(record, dict) else None
    labels = [label for label, _key, _attr in AGREEING_KEYWORDS]
    if not isinstance(members, list) or not members:
        return None
    if not all(isinstance(m, dict) and all(k in m for k in labels) for m in members):
        return None  # an older stack, or one made by the official stack_refs
    return [
        {"filename": str(m.get("filename") or f"member {i}"), **{k: m[k] for k in labels}}
        for i, m in enumerate(members)
    ]


def _meta_value(model, dotted):
    node = model.meta
    for name in dotted.split("."):
        node = getattr(node, name, None)
        if node is None:
            return None
    return node


def _compare_with_science(psfstack, science, label, keyword, source, sci_meta):
    """Fail if one member's (or the stack's) value of a keyword differs from the science's."""
    ours, theirs = source[label], sci_meta[label]
    if ours is None or theirs is None or len(_distinct(label, [ours, theirs])) == 1:
        return
    whose = "the PSF stack"
    if source["filename"] is not None:
        whose = f"PSF exposure {source['filename']} of the PSF stack"
    raise InputFileError(
        psfstack,
        f"{label} ({keyword}) of {whose} is {ours!r} but that of science exposure {science} is "
        f"{theirs!r}; use PSF exposures taken with the same instrument, filter, coronagraph and "
        "subarray as the science",
    )


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
    science_paths = list(science_paths)
    with only_needed_extensions([psfstack, *science_paths]):
        return _check_psfstack(psfstack, science_paths, report)


def _check_psfstack(psfstack, science_paths, report):
    """:func:`check_psfstack` on paths."""
    inputs = [("PSF stack", psfstack)] + [("science exposure", path) for path in science_paths]
    check_outputs([("report", report)], inputs)
    for role, path in inputs:
        check_input(path, role)
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
    stack_meta = _agreeing_values(model)
    members = _member_records(model)
    model.close()
    if members is not None:
        problems, _ = _disagreements([m["filename"] for m in members], members)
        if problems:
            raise InputFileError(
                psfstack,
                f"the PSF stack's member exposures do not agree: {'; '.join(problems)}; "
                + _AGREE_ADVICE,
            )
    # What is compared with the science: every member's values, else the stack's own.
    sources = members or [{"filename": None, **stack_meta}]
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
            for source in sources:
                _compare_with_science(psfstack, science, label, keyword, source, sci_meta)
            if any(source[label] is None for source in sources) or sci_meta[label] is None:
                missing = psfstack.name if sci_meta[label] is not None else science.name
                warnings.append(f"{keyword} ({label}) is not set in {missing}: not compared")
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
