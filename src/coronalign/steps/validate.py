"""Checks on a written ``_psfalign`` product and its shift table.

:func:`validate_product` runs every check, writes a JSON report (``status`` passed or
failed, one entry per check, the reasons of the failures, warnings) and raises a
:class:`~coronalign.errors.CoronalignError` with the reasons when a check fails, so that the
workflow's validation rule fails.

Checks
------
``schema``
    The product opens with stdatamodels as the expected model (QuadModel for ``quad``,
    CubeModel for ``cube`` or a skipped alignment) and validates against its schema.
``shape``
    (nints, npsfs, ny, nx) for ``quad``, (npsfs, ny, nx) for ``cube`` and for a skipped
    alignment; compared with the expected shape when one is given.
``finite``
    SCI and ERR are finite wherever the pixel is not flagged ``DO_NOT_USE`` (non-finite
    flagged pixels are counted as a warning). Not required for a skipped alignment, whose
    product is the PSF stack as it was.
``variances``
    Only when the product has variance arrays (``VAR_POISSON``, ``VAR_RNOISE``, ``VAR_FLAT``:
    the PSF stack had them): each has the SCI shape and is finite wherever the pixel is not
    flagged ``DO_NOT_USE``, and, with the default ``err_shift: propagated``, is never
    negative (shifted as signal, ``official``, a variance can ring below 0: a warning). A
    warning too when ``ERR²`` and the sum of the variances differ by more than 1 % in the
    median usable pixel (the PSF stack's own arrays did not add up, or lack a component).
``step_status``
    ``S_PSFALI`` is ``COMPLETE``; ``SKIPPED`` is accepted only when the shift table says the
    alignment was skipped, and the report then gives the reason.
``shift_table``
    One row per (fitted integration, PSF), consistent with the product.
``shift_range``
    Every fitted shift is finite and within ``max_shift`` of its prior (the search window
    the fit was given: the ``max_shift`` recorded in the table, unless another is asked for).
``window``
    No fit has status ``out_of_window`` (a minimum on the window's edge: the fit wanted to
    go farther than ``max_shift``); the message names the fits.
``convergence``
    Every fit converged. ``no_data`` fits (an integration with no usable data, e.g. all NaN:
    documented behaviour, its planes are flagged ``DO_NOT_USE``) and ``outlier`` fits (far
    from the same PSF's other fits; named) are warnings, not failures.
"""

import logging
from pathlib import Path

import numpy as np

from coronalign import dq
from coronalign.core.commanded import (
    DEFAULT_TOLERANCE_MAS,
    commanded_offset_distances,
    commanded_offset_summary,
)
from coronalign.dq import FitStatus
from coronalign.errors import CoronalignError, InputFileError, ParameterError
from coronalign.io._asdf_startup import only_needed_extensions
from coronalign.io.models import open_validated_model, read_sci_shape
from coronalign.io.paths import check_input, check_outputs
from coronalign.io.reports import write_json_report
from coronalign.io.tables import read_shift_table
from coronalign.steps.array_checks import check_variances, count_nonfinite
from coronalign.steps.parameters import MODES, parse_max_shift, parse_offset_tolerance

__all__ = ["ValidationError", "expected_shape", "validate_files", "validate_product"]

log = logging.getLogger(__name__)

#: Fits named in a message, at most.
_NAMED = 10

_DO_NOT_USE = np.uint32(dq.DO_NOT_USE)


class ValidationError(CoronalignError):
    """A product failed validation; ``str(error)`` gives the product and the reasons.

    Parameters
    ----------
    product : path-like
        The product.
    reasons : list of str
        One line per failed check.
    """

    def __init__(self, product, reasons):
        self.product = str(product)
        self.reasons = list(reasons)
        super().__init__(f"{self.product}: validation failed: " + "; ".join(self.reasons))


def expected_shape(science, psfstack, mode):
    """The product shape the inputs call for.

    Parameters
    ----------
    science : path-like
        The science ``_calints`` file (nints, ny, nx).
    psfstack : path-like
        The ``_psfstack`` file (npsfs, ny, nx).
    mode : {"quad", "cube"}
        Product kind.

    Returns
    -------
    tuple of int
        (nints, npsfs, ny, nx) for ``quad``, (npsfs, ny, nx) for ``cube``.
    """
    sci = read_sci_shape(science, "science exposure")
    psf = read_sci_shape(psfstack, "PSF stack")
    if len(sci) != 3 or len(psf) != 3:
        raise InputFileError(science if len(sci) != 3 else psfstack, "expected a 3D SCI array")
    if mode == "quad":
        return (sci[0], psf[0], *psf[1:])
    return psf


class _Checks:
    """Collects the outcome of each check."""

    def __init__(self):
        self.checks = []
        self.warnings = []

    def add(self, name, passed, detail):
        self.checks.append({"name": name, "passed": bool(passed), "detail": detail})
        (log.info if passed else log.error)("check %s: %s", name, detail)
        return passed

    def warn(self, message):
        self.warnings.append(message)
        log.warning("%s", message)

    @property
    def reasons(self):
        return [f"{c['name']}: {c['detail']}" for c in self.checks if not c["passed"]]


def _open_product(path, checks, model_type):
    """Open with strict schema validation; None if it cannot be opened."""
    try:
        model = open_validated_model(path)
    except Exception as error:  # asdf/jsonschema/stdatamodels raise many kinds
        checks.add("schema", False, f"does not open/validate as a JWST data model: {error}")
        return None
    kind = type(model).__name__
    if kind != model_type:
        checks.add("schema", False, f"is a {kind}, expected a {model_type}")
        model.close()
        return None
    checks.add("schema", True, f"{kind}, valid against its schema")
    return model


def validate_product(
    product,
    shifts,
    *,
    mode,
    expected_shape=None,
    report=None,
    max_shift=None,
    offset_tolerance=DEFAULT_TOLERANCE_MAS,
):
    """Validate a ``_psfalign`` product and its shift table.

    Parameters
    ----------
    product : path-like
        The product (QuadModel or CubeModel).
    shifts : path-like
        Its ECSV shift table (written by ``coronalign align --shifts``).
    mode : {"quad", "cube"}
        The product kind that was asked for.
    expected_shape : tuple of int, optional
        The shape the inputs call for (see :func:`expected_shape`); for a skipped alignment
        only its PSF-stack part (npsfs, ny, nx) is compared.
    report : path-like, optional
        Where to write the JSON report (written whether the product passes or fails).
    max_shift : float, optional
        Largest distance (pixels) of a fit from its prior; default the ``max_shift`` the
        shift table records (the alignment's own window).
    offset_tolerance : float, optional
        Warn about fits farther than this (mas) from their commanded offset.

    Returns
    -------
    dict
        The report: ``product``, ``shifts``, ``mode``, ``status`` (``"passed"``),
        ``skipped``, ``reason`` (of a skipped alignment), ``checks``, ``warnings``,
        ``reasons``, ``fits`` (counts per fit status), ``commanded_offsets``
        (:func:`coronalign.core.commanded.commanded_offset_summary`, None without
        commanded offsets).

    Raises
    ------
    ValidationError
        A check failed (the report, if asked for, is written first).
    InputFileError
        The product or the shift table is missing or unreadable.
    ParameterError
        ``mode`` is not ``quad`` or ``cube``.
    """
    if mode not in MODES:
        raise ParameterError("mode", f"{mode!r} is not one of {', '.join(MODES)}")
    product = Path(product)
    check_outputs([("validation report", report)], [("product", product), ("shift table", shifts)])
    check_input(product, "product")
    log.info("validating %s", product.name)
    table = read_shift_table(shifts)
    skipped = bool(table.meta.get("skipped", False))
    reason = str(table.meta.get("reason", "")) if skipped else None
    checks = _Checks()
    model_type = "QuadModel" if mode == "quad" and not skipped else "CubeModel"
    model = _open_product(product, checks, model_type)
    shape = None
    if model is not None:
        try:
            shape, usable = _check_model(model, checks, mode, skipped, reason, expected_shape)
            if shape is not None and not skipped:
                check_variances(model, checks, shape, usable, _recorded_err_shift(table))
        finally:
            model.close()
    if max_shift is None:
        max_shift = _recorded_max_shift(table)
    counts = _check_table(table, checks, shape, mode, skipped, max_shift)
    commanded = _commanded_offsets(table, checks, offset_tolerance)
    named = table.meta.get("product")
    if named and named != product.name:
        checks.add(
            "shift_table", False, f"the shift table belongs to {named}, not to {product.name}"
        )
    result = {
        "product": str(product),
        "shifts": str(shifts),
        "mode": mode,
        "status": "failed" if checks.reasons else "passed",
        "skipped": skipped,
        "reason": reason,
        "shape": list(shape) if shape else None,
        "fits": counts,
        "commanded_offsets": commanded,
        "checks": checks.checks,
        "warnings": checks.warnings,
        "reasons": checks.reasons,
    }
    if report is not None:
        write_json_report(report, result)
    if checks.reasons:
        raise ValidationError(product, checks.reasons)
    log.info("%s passed validation%s", product.name, " (alignment skipped)" if skipped else "")
    return result


def validate_files(
    product,
    shifts,
    report,
    *,
    mode="quad",
    science=None,
    psfstack=None,
    max_shift=None,
    offset_tolerance=DEFAULT_TOLERANCE_MAS,
):
    """``coronalign validate``: the expected shape from the inputs, then :func:`validate_product`.

    Parameters
    ----------
    product, shifts, report : path-like
        As for :func:`validate_product`.
    mode : {"quad", "cube"}, optional
        The product kind that was asked for.
    science, psfstack : path-like, optional
        The inputs, both or neither: they give the expected shape.
    max_shift : float or str, optional
        Largest distance of a fit from its prior (default: the recorded one).
    offset_tolerance : float or str, optional
        Milliarcseconds (> 0): warn about fits farther from their commanded offset.

    Returns
    -------
    dict
        The report.

    Raises
    ------
    ParameterError
        Only one of ``science`` and ``psfstack`` is given, or ``max_shift`` or
        ``offset_tolerance`` is invalid.
    """
    if (science is None) != (psfstack is None):
        raise ParameterError("--science/--psfstack", "give both or neither")
    inputs = [("science exposure", science), ("PSF stack", psfstack)]
    check_outputs([("validation report", report)], [("product", product), *inputs])
    max_shift = None if max_shift is None else parse_max_shift(max_shift)
    offset_tolerance = parse_offset_tolerance(offset_tolerance)
    models = [path for path in (product, science, psfstack) if path is not None]
    with only_needed_extensions(models):
        shape = None if science is None else expected_shape(science, psfstack, mode)
        return validate_product(
            product,
            shifts,
            mode=mode,
            expected_shape=shape,
            report=report,
            max_shift=max_shift,
            offset_tolerance=offset_tolerance,
        )


def _recorded_max_shift(table):
    """The search radius the alignment used, from the table's metadata (None if absent)."""
    parameters = table.meta.get("parameters") or {}
    try:
        value = float(parameters.get("max_shift"))
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def _named(table, where):
    """``(integration k, psf m)`` pairs of the rows ``where``, for a message."""
    integration = np.asarray(table["integration"])[where]
    psf = np.asarray(table["psf"])[where]
    pairs = [f"(k={k}, m={m})" for k, m in zip(integration, psf, strict=True)]
    more = f" and {len(pairs) - _NAMED} more" if len(pairs) > _NAMED else ""
    return ", ".join(pairs[:_NAMED]) + more


def _outlier_significance(table, outliers):
    """How far the outliers lie from their PSF's median fit, in units of their total error
    (``xshift_err``, ``yshift_err``), for the warning; empty without those columns."""
    if "xshift_err" not in table.colnames or "yshift_err" not in table.colnames:
        return ""
    psf = np.asarray(table["psf"])
    x, y = (np.asarray(table[name], dtype=float) for name in ("xshift", "yshift"))
    error = np.hypot(
        *(np.asarray(table[name], dtype=float) for name in ("xshift_err", "yshift_err"))
    )
    status = np.asarray(table["status"], dtype=str)
    good = status == FitStatus.CONVERGED
    parts = []
    for i in np.flatnonzero(outliers)[:_NAMED]:
        same = good & (psf == psf[i])
        if not same.any():
            continue
        distance = float(np.hypot(x[i] - np.median(x[same]), y[i] - np.median(y[same])))
        parts.append(f"{distance:.2f} px = {distance / error[i]:.0f} sigma")
    return f" ({'; '.join(parts)} from the PSF's median fit)" if parts else ""


def _check_model(model, checks, mode, skipped, reason, expected):
    """Shape, finiteness and step status of an open product; returns its shape and where
    its pixels are usable (not ``DO_NOT_USE``), or (None, None) for a product of the wrong
    dimension."""
    data = np.asarray(model.data)
    shape = data.shape
    ndim = 3 if (mode == "cube" or skipped) else 4
    if data.ndim != ndim:
        checks.add("shape", False, f"SCI is {data.ndim}D {shape}, expected {ndim}D")
        return None, None
    if expected is not None:
        want = tuple(int(n) for n in expected)
        if skipped:
            want = want[-3:]
        if shape != want:
            checks.add("shape", False, f"SCI shape {shape} differs from the expected {want}")
        else:
            checks.add("shape", True, f"{shape} as expected")
    else:
        checks.add("shape", True, f"{shape}")

    status = model.meta.cal_step.align_psfs
    if skipped:
        checks.add(
            "step_status",
            status == "SKIPPED",
            f"S_PSFALI = {status}; alignment skipped: {reason}"
            if status == "SKIPPED"
            else f"S_PSFALI = {status} but the shift table says the alignment was skipped",
        )
        checks.warn(f"alignment skipped: {reason}")
    else:
        checks.add(
            "step_status",
            status == "COMPLETE",
            f"S_PSFALI = {status}" + ("" if status == "COMPLETE" else ", expected COMPLETE"),
        )

    dq = np.asarray(model.dq) if model.hasattr("dq") else np.zeros(shape, np.uint32)
    if dq.shape != shape:
        dq = np.zeros(shape, np.uint32)
    usable = (dq & _DO_NOT_USE) == 0
    for name in ("data", "err"):
        values = np.asarray(getattr(model, name))
        if values.shape != shape:
            checks.add("finite", False, f"{name.upper()} has shape {values.shape}, not {shape}")
            continue
        unflagged, flagged = count_nonfinite(values, usable)
        label = "SCI" if name == "data" else "ERR"
        if flagged:
            checks.warn(f"{label} has {flagged} non-finite pixels flagged DO_NOT_USE")
        if skipped:
            if unflagged:
                checks.warn(f"{label} of the unaligned PSF stack has {unflagged} non-finite pixels")
            continue
        checks.add(
            "finite",
            unflagged == 0,
            f"{label}: all usable pixels finite"
            if unflagged == 0
            else f"{label} has {unflagged} NaN/inf pixels not flagged DO_NOT_USE",
        )
    return shape, usable


def _recorded_err_shift(table):
    """The ``err_shift`` the shift table records (``official`` before the option existed)."""
    parameters = table.meta.get("parameters") or {}
    return str(parameters.get("err_shift", "official"))


def _check_table(table, checks, shape, mode, skipped, max_shift):
    """Row count, shift range, window and convergence from the shift table.

    Returns the number of fits per status.
    """
    needed = {"integration", "psf", "xshift", "yshift", "status"}
    missing = sorted(needed - set(table.colnames))
    if missing:
        checks.add("shift_table", False, f"columns {missing} are missing")
        return {}
    status = np.asarray(table["status"], dtype=str)
    counts = {str(k): int(v) for k, v in zip(*np.unique(status, return_counts=True), strict=True)}
    if skipped:
        checks.add(
            "shift_table",
            len(table) == 0,
            "no fits (alignment skipped)"
            if len(table) == 0
            else f"{len(table)} rows although the alignment was skipped",
        )
        return counts
    if shape is not None:
        rows = shape[0] * shape[1] if mode == "quad" else shape[0]
        npsfs = shape[1] if mode == "quad" else shape[0]
        psfs = np.asarray(table["psf"])
        consistent = len(table) == rows and (psfs.size == 0 or psfs.max() < npsfs)
        checks.add(
            "shift_table",
            consistent,
            f"{len(table)} fits for a product of shape {shape}"
            + ("" if consistent else f", expected {rows}"),
        )
    else:
        checks.add("shift_table", True, f"{len(table)} fits")
    fitted = status != FitStatus.NO_DATA
    _check_range(table, checks, fitted, max_shift)
    outside = status == FitStatus.OUT_OF_WINDOW
    checks.add(
        "window",
        not outside.any(),
        "no fit on the edge of its search window"
        if not outside.any()
        else f"{int(outside.sum())} fits ended on the edge of their search window "
        f"(the best match lies farther than max_shift from the prior; is the reference the "
        f"right star, or the pointing metadata wrong?): {_named(table, outside)}",
    )
    outliers = status == FitStatus.OUTLIER
    if outliers.any():
        checks.warn(
            f"{int(outliers.sum())} fits lie far from the other fits of the same PSF (status "
            f"outlier): {_named(table, outliers)}{_outlier_significance(table, outliers)}"
        )
    no_data = int((status == FitStatus.NO_DATA).sum())
    if no_data:
        rows = sorted({int(i) for i in np.asarray(table["integration"])[~fitted]})
        checks.warn(
            f"{no_data} fits have no usable data (integrations {rows}); their planes are the "
            "unshifted PSFs flagged DO_NOT_USE"
        )
    not_converged = status == FitStatus.NOT_CONVERGED
    known = {str(member) for member in FitStatus}
    other = sorted(set(status.tolist()) - known)
    if fitted.sum() == 0 and len(table):
        checks.add("convergence", False, "no fit has usable data")
    else:
        good = int(np.isin(status, [FitStatus.CONVERGED, FitStatus.OUTLIER]).sum())
        checks.add(
            "convergence",
            not not_converged.any() and not other,
            f"{good} of {len(table)} fits converged"
            + (
                f", {int(not_converged.sum())} did not: {_named(table, not_converged)}"
                if not_converged.any()
                else ""
            )
            + (f", unknown status {other}" if other else ""),
        )
    return counts


def _commanded_offsets(table, checks, tolerance):
    """Each fit's distance from its commanded offset (mas), when the table can say."""
    scale = table.meta.get("pixel_scale_arcsec")
    if table.meta.get("prior") != "pointing metadata" or not scale or len(table) == 0:
        return None
    distances = commanded_offset_distances(
        table["xshift"], table["yshift"], table["xprior"], table["yprior"], scale
    )
    summary = commanded_offset_summary(distances, tolerance)
    if summary["over"]:
        checks.warn(
            f"{len(summary['over'])} fits lie farther than {tolerance:g} mas from their "
            f"commanded offset (largest {summary['max_mas']:.1f} mas): "
            f"{_named(table, np.isin(np.arange(len(table)), summary['over']))}"
        )
    return summary


def _check_range(table, checks, fitted, max_shift):
    """Every fitted shift finite and, when the window is known, inside it."""
    dx = np.asarray(table["xshift"], dtype=float)
    dy = np.asarray(table["yshift"], dtype=float)
    px = np.asarray(table["xprior"], dtype=float) if "xprior" in table.colnames else 0 * dx
    py = np.asarray(table["yprior"], dtype=float) if "yprior" in table.colnames else 0 * dy
    px, py = np.nan_to_num(px), np.nan_to_num(py)
    distance = np.sqrt((dx - px) ** 2 + (dy - py) ** 2)
    bad = fitted & ~np.isfinite(distance)
    if max_shift is not None:
        bad |= fitted & (distance > max_shift * (1 + 1e-9))
    largest = float(np.nanmax(distance[fitted])) if fitted.any() else 0.0
    limit = "" if max_shift is None else f" <= max_shift {max_shift:g} px"
    checks.add(
        "shift_range",
        not bad.any(),
        f"largest distance from the prior {largest:.3f} px{limit}"
        if not bad.any()
        else f"{int(bad.sum())} shifts are non-finite or farther than {max_shift:g} px from "
        f"their prior (largest {largest:.3f} px): {_named(table, bad)}",
    )
