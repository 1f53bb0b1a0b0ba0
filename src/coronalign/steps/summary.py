"""The run summary: one row per exposure, from its validation report and shift table.

:func:`summarize` combines the validation reports and shift tables of all exposures into one
tab-separated table (the figures are :mod:`coronalign.steps.plots`).
"""

import csv
import logging
import math
from pathlib import Path

import numpy as np

from coronalign.dq import FitStatus
from coronalign.errors import InputFileError
from coronalign.io.atomic import atomic_output
from coronalign.io.paths import check_outputs
from coronalign.io.reports import read_json_report
from coronalign.io.tables import read_shift_table

__all__ = ["SUMMARY_COLUMNS", "exposure_summary", "summarize"]

log = logging.getLogger(__name__)

#: Columns of the summary table, in order.
SUMMARY_COLUMNS = (
    "product",
    "science",
    "validation",
    "skipped",
    "n_fits",
    "n_converged",
    "n_no_data",
    "n_out_of_window",
    "n_outlier",
    "xshift_mean",
    "xshift_std",
    "xshift_min",
    "xshift_max",
    "yshift_mean",
    "yshift_std",
    "yshift_min",
    "yshift_max",
    "xshift_err_median",
    "yshift_err_median",
    "beta_median",
    "rms_max",
    "warnings",
)


def _stats(values):
    """mean, std, min, max of the finite values (NaN for none)."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return (math.nan,) * 4
    return (
        float(finite.mean()),
        float(finite.std()),
        float(finite.min()),
        float(finite.max()),
    )


def exposure_summary(validation, table):
    """One summary row from an exposure's validation report and shift table.

    Parameters
    ----------
    validation : dict
        The report written by :func:`coronalign.steps.validate.validate_product`.
    table : astropy.table.Table
        The exposure's shift table.

    Returns
    -------
    dict
        Keyed by :data:`SUMMARY_COLUMNS`.
    """
    status = np.asarray(table["status"], dtype=str) if len(table) else np.array([], dtype=str)
    fitted = status != FitStatus.NO_DATA

    def column(name):
        return np.asarray(table[name], dtype=float)[fitted] if len(table) else np.array([])

    x = _stats(column("xshift"))
    y = _stats(column("yshift"))
    beta, rms = column("beta"), column("rms")

    def median(name):
        if name not in table.colnames:  # a table written before the errors existed
            return math.nan
        values = column(name)
        return float(np.nanmedian(values)) if np.isfinite(values).any() else math.nan

    row = {
        "product": Path(validation.get("product", "")).name,
        "science": str(table.meta.get("science", "")),
        "validation": validation.get("status", "unknown"),
        "skipped": bool(validation.get("skipped", False)),
        "n_fits": len(table),
        "n_converged": int((status == FitStatus.CONVERGED).sum()),
        "n_no_data": int((status == FitStatus.NO_DATA).sum()),
        "n_out_of_window": int((status == FitStatus.OUT_OF_WINDOW).sum()),
        "n_outlier": int((status == FitStatus.OUTLIER).sum()),
        "xshift_err_median": median("xshift_err"),
        "yshift_err_median": median("yshift_err"),
        "beta_median": float(np.nanmedian(beta)) if np.isfinite(beta).any() else math.nan,
        "rms_max": float(np.nanmax(rms)) if np.isfinite(rms).any() else math.nan,
        "warnings": len(validation.get("warnings", [])),
    }
    for axis, stats in (("xshift", x), ("yshift", y)):
        for name, value in zip(("mean", "std", "min", "max"), stats, strict=True):
            row[f"{axis}_{name}"] = value
    return row


def _format(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "nan" if not math.isfinite(value) else f"{value:.5g}"
    return str(value)


def summarize(validation_paths, shift_paths, output):
    """Write the summary table of all exposures as TSV (atomically).

    Validation reports and shift tables are paired by the product they describe (the
    shift table's ``product`` metadata), else by position.

    Parameters
    ----------
    validation_paths : sequence of path-like
        Validation reports (JSON), one per exposure.
    shift_paths : sequence of path-like
        Shift tables (ECSV), one per exposure.
    output : path-like
        The ``.tsv`` file to write.

    Returns
    -------
    list of dict
        The rows.

    Raises
    ------
    InputFileError
        A file is missing or unreadable, or the two lists cannot be paired.
    """
    validation_paths, shift_paths = list(validation_paths), list(shift_paths)
    check_outputs(
        [("summary", output)],
        [("validation report", p) for p in validation_paths]
        + [("shift table", p) for p in shift_paths],
    )
    if len(validation_paths) != len(shift_paths):
        raise InputFileError(
            output,
            f"{len(validation_paths)} validation reports but {len(shift_paths)} shift tables; "
            "give one of each per exposure",
        )
    reports = [read_json_report(p, "validation report") for p in validation_paths]
    tables = [read_shift_table(p) for p in shift_paths]
    by_product = {str(t.meta.get("product", "")): t for t in tables}
    rows = []
    for index, (path, report) in enumerate(zip(validation_paths, reports, strict=True)):
        name = Path(report.get("product", "")).name
        table = by_product.get(name, tables[index])
        if str(table.meta.get("product", name)) != name:
            raise InputFileError(
                path, f"no shift table describes product {name}; check the lists given"
            )
        rows.append(exposure_summary(report, table))
    with atomic_output(output) as temporary, temporary.open("w", newline="") as stream:
        writer = csv.writer(stream, delimiter="\t", lineterminator="\n")
        writer.writerow(SUMMARY_COLUMNS)
        for row in rows:
            writer.writerow([_format(row[c]) for c in SUMMARY_COLUMNS])
    failed = [row["product"] for row in rows if row["validation"] != "passed"]
    log.info(
        "summary of %d exposures written to %s%s",
        len(rows),
        output,
        f" ({len(failed)} not passed: {', '.join(failed)})" if failed else "",
    )
    return rows
