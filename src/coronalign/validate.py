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
``step_status``
    ``S_PSFALI`` is ``COMPLETE``; ``SKIPPED`` is accepted only when the shift table says the
    alignment was skipped, and the report then gives the reason.
``shift_table``
    One row per (fitted integration, PSF), consistent with the product.
``shift_range``
    Every fitted |shift| is below ``max_shift_fraction`` of the smaller frame side.
``convergence``
    Every fit converged. ``no_data`` fits (an integration with no usable data, e.g. all NaN:
    documented behaviour, its planes are flagged ``DO_NOT_USE``) are warnings, not failures.
"""

import logging
import warnings
from pathlib import Path

import numpy as np

from .errors import CoronalignError, InputFileError, ParameterError
from .products import read_shift_table
from .reports import write_json_report

__all__ = ["MAX_SHIFT_FRACTION", "ValidationError", "expected_shape", "validate_product"]

log = logging.getLogger(__name__)

#: Default largest plausible shift, as a fraction of the smaller frame side.
MAX_SHIFT_FRACTION = 0.25

_DO_NOT_USE = np.uint32(1)


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


def _sci_shape(path, role):
    """Shape of a file's SCI array from its header, without reading the data."""
    from astropy.io import fits

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, f"{role} file not found")
    try:
        header = fits.getheader(path, "SCI")
    except (OSError, KeyError, IndexError, ValueError) as error:
        raise InputFileError(path, f"{role} has no readable SCI extension ({error})") from None
    naxis = int(header.get("NAXIS", 0))
    return tuple(int(header[f"NAXIS{axis}"]) for axis in range(naxis, 0, -1))


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
    sci = _sci_shape(science, "science exposure")
    psf = _sci_shape(psfstack, "PSF stack")
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
    from stdatamodels.jwst import datamodels

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # strict validation raises instead
            model = datamodels.open(path, strict_validation=True)
            model.validate()
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
    max_shift_fraction=MAX_SHIFT_FRACTION,
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
    max_shift_fraction : float, optional
        Largest plausible |shift| as a fraction of the smaller frame side.

    Returns
    -------
    dict
        The report: ``product``, ``shifts``, ``mode``, ``status`` (``"passed"``),
        ``skipped``, ``reason`` (of a skipped alignment), ``checks``, ``warnings``,
        ``reasons``, ``fits`` (counts per fit status).

    Raises
    ------
    ValidationError
        A check failed (the report, if asked for, is written first).
    InputFileError
        The product or the shift table is missing or unreadable.
    ParameterError
        ``mode`` is not ``quad`` or ``cube``.
    """
    if mode not in ("quad", "cube"):
        raise ParameterError("mode", f"{mode!r} is not one of quad, cube")
    product = Path(product)
    if not product.is_file():
        raise InputFileError(product, "product not found")
    table = read_shift_table(shifts)
    skipped = bool(table.meta.get("skipped", False))
    reason = str(table.meta.get("reason", "")) if skipped else None
    checks = _Checks()
    model_type = "QuadModel" if mode == "quad" and not skipped else "CubeModel"
    model = _open_product(product, checks, model_type)
    shape, frame = None, None
    if model is not None:
        try:
            shape, frame = _check_model(model, checks, mode, skipped, reason, expected_shape)
        finally:
            model.close()
    counts = _check_table(table, checks, shape, frame, mode, skipped, max_shift_fraction)
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


def _check_model(model, checks, mode, skipped, reason, expected):
    """Shape, finiteness and step status of an open product; returns (shape, frame)."""
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
    frame = shape[-2:]

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
        bad = ~np.isfinite(values)
        unflagged = int((bad & usable).sum())
        flagged = int((bad & ~usable).sum())
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
    return shape, frame


def _check_table(table, checks, shape, frame, mode, skipped, max_fraction):
    """Row count, shift range and convergence from the shift table; returns status counts."""
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
    fitted = status != "no_data"
    if frame is not None:
        limit = max_fraction * min(frame)
        dx = np.asarray(table["xshift"], dtype=float)[fitted]
        dy = np.asarray(table["yshift"], dtype=float)[fitted]
        largest = np.abs(np.concatenate([dx, dy]))
        bad = ~np.isfinite(largest) | (largest >= limit)
        checks.add(
            "shift_range",
            not bad.any(),
            f"largest |shift| {np.nanmax(largest) if largest.size else 0:.3f} px < {limit:g} px"
            if not bad.any()
            else f"{int(bad.sum())} shifts are non-finite or >= {limit:g} px "
            f"({max_fraction:g} of the frame); largest {np.nanmax(largest):.3f} px",
        )
    not_converged = int((status == "not_converged").sum())
    other = sorted(set(status.tolist()) - {"converged", "not_converged", "no_data"})
    no_data = int((status == "no_data").sum())
    if no_data:
        rows = sorted({int(i) for i in np.asarray(table["integration"])[~fitted]})
        checks.warn(
            f"{no_data} fits have no usable data (integrations {rows}); their planes are the "
            "unshifted PSFs flagged DO_NOT_USE"
        )
    if fitted.sum() == 0 and len(table):
        checks.add("convergence", False, "no fit has usable data")
    else:
        checks.add(
            "convergence",
            not_converged == 0 and not other,
            f"{int((status == 'converged').sum())} of {len(table)} fits converged"
            + (f", {not_converged} did not" if not_converged else "")
            + (f", unknown status {other}" if other else ""),
        )
    return counts
