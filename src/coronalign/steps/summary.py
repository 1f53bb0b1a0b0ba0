"""The run summary (one row per exposure) and the per-exposure report figure.

:func:`summarize` combines the validation reports and shift tables of all exposures into one
tab-separated table. :func:`plot_exposure` draws, for one exposure, the fitted shifts per
integration and PSF, and science integration 0 next to the PSF 0 aligned to it and their
residual (the PSF divided by its fitted flux ratio beta). matplotlib is imported only there.
"""

import csv
import logging
import math
from pathlib import Path

import numpy as np

from .errors import InputFileError
from .products import atomic_output, read_shift_table
from .reports import read_json_report

__all__ = ["SUMMARY_COLUMNS", "exposure_summary", "plot_exposure", "summarize"]

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
        The report written by :func:`coronalign.validate.validate_product`.
    table : astropy.table.Table
        The exposure's shift table.

    Returns
    -------
    dict
        Keyed by :data:`SUMMARY_COLUMNS`.
    """
    status = np.asarray(table["status"], dtype=str) if len(table) else np.array([], dtype=str)
    fitted = status != "no_data"

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
        "n_converged": int((status == "converged").sum()),
        "n_no_data": int((status == "no_data").sum()),
        "n_out_of_window": int((status == "out_of_window").sum()),
        "n_outlier": int((status == "outlier").sum()),
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


def _usable(data, dq):
    """A float64 image with non-finite and DO_NOT_USE pixels set to NaN (for display)."""
    image = np.array(data, dtype=np.float64)
    bad = ~np.isfinite(image)
    if dq is not None and np.shape(dq) == image.shape:
        bad |= (np.asarray(dq) & 1) != 0
    image[bad] = np.nan
    return image


def _limits(*images):
    """Shared display range: 1st-99.5th percentile of the finite pixels."""
    values = np.concatenate([i[np.isfinite(i)] for i in images] or [np.zeros(1)])
    if not values.size:
        return 0.0, 1.0
    low, high = np.percentile(values, [1.0, 99.5])
    return float(low), float(high if high > low else low + 1.0)


def plot_exposure(product, science, shifts, output):
    """Draw the report figure of one exposure (PNG, atomically).

    Top row: fitted x and y shifts against integration, one line per PSF, with their formal
    errors; fits with status outlier, out_of_window or not_converged are circled in red.
    Bottom row:
    science integration 0, PSF 0 aligned to it divided by its fitted beta, and the residual
    science - PSF/beta. For a skipped alignment the top row gives the reason and the PSF
    is the unaligned one (scaled by the ratio of total fluxes).

    Parameters
    ----------
    product : path-like
        The ``_psfalign`` product (QuadModel, or CubeModel for ``cube`` mode or a skip).
    science : path-like
        The science ``_calints`` file.
    shifts : path-like
        The product's shift table.
    output : path-like
        The ``.png`` to write.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
    from stdatamodels.jwst import datamodels

    from .products import open_model

    table = read_shift_table(shifts)
    sci_model = open_model(science, "science exposure")
    sci = _usable(sci_model.data[0], sci_model.dq[0] if sci_model.hasattr("dq") else None)
    sci_model.close()
    product = Path(product)
    if not product.is_file():
        raise InputFileError(product, "product not found")
    with datamodels.open(product) as model:
        index = (0, 0) if model.data.ndim == 4 else (0,)
        psf = _usable(model.data[index], model.dq[index] if model.hasattr("dq") else None)
    skipped = bool(table.meta.get("skipped", False))
    first = (
        (np.asarray(table["integration"]) == table["integration"][0])
        & (np.asarray(table["psf"]) == 0)
        if len(table)
        else np.array([], dtype=bool)
    )
    beta = float(np.asarray(table["beta"], dtype=float)[first][0]) if first.any() else math.nan
    if not math.isfinite(beta) or beta == 0:
        both = np.isfinite(sci) & np.isfinite(psf)
        total = float(sci[both].sum())
        beta = float(psf[both].sum()) / total if total else 1.0
    scaled = psf / beta
    residual = sci - scaled

    figure = Figure(figsize=(11, 7), layout="constrained")
    grid = figure.add_gridspec(2, 6)
    name = product.name
    figure.suptitle(name + ("  (alignment skipped)" if skipped else ""), fontsize=11)
    if skipped or not len(table):
        ax = figure.add_subplot(grid[0, :])
        reason = str(table.meta.get("reason", "no fits"))
        text = "alignment skipped: " + reason if skipped else reason
        ax.text(0.5, 0.5, "\n".join(_wrap(text, 100)), ha="center", va="center", fontsize=10)
        ax.set_axis_off()
    for column, axis in enumerate(("xshift", "yshift")):
        if skipped or not len(table):
            break
        ax = figure.add_subplot(grid[0, 3 * column : 3 * column + 3])
        integration = np.asarray(table["integration"])
        psf_index = np.asarray(table["psf"])
        values = np.asarray(table[axis], dtype=float)
        errors = (
            np.asarray(table[f"{axis}_err"], dtype=float)
            if f"{axis}_err" in table.colnames
            else None
        )
        status = np.asarray(table["status"], dtype=str)
        for m in np.unique(psf_index):
            pick = psf_index == m
            ax.errorbar(
                integration[pick],
                values[pick],
                yerr=None if errors is None else errors[pick],
                marker="o",
                capsize=2,
                label=f"PSF {m}",
            )
        flagged = np.isin(status, ["outlier", "out_of_window", "not_converged"])
        if flagged.any():
            ax.scatter(
                integration[flagged],
                values[flagged],
                s=120,
                facecolors="none",
                edgecolors="red",
                label="outlier / out of window",
                zorder=5,
            )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("science integration")
        ax.set_ylabel(f"{axis} (pix)")
        ax.set_title("x_psf - x_sci" if axis == "xshift" else "y_psf - y_sci", fontsize=10)
        ax.grid(alpha=0.3)
        if len(np.unique(psf_index)) <= 12:
            ax.legend(fontsize=8)
    low, high = _limits(sci, scaled)
    spread = float(np.nanpercentile(np.abs(residual), 99.5)) if np.isfinite(residual).any() else 1
    panels = (
        ("science, integration 0", sci, {"vmin": low, "vmax": high, "cmap": "magma"}),
        (
            f"PSF 0 {'(unaligned) ' if skipped else 'aligned '}/ beta ({beta:.4g})",
            scaled,
            {"vmin": low, "vmax": high, "cmap": "magma"},
        ),
        (
            "residual: science - PSF / beta",
            residual,
            {"vmin": -spread or -1, "vmax": spread or 1, "cmap": "RdBu_r"},
        ),
    )
    for index, (title, image, style) in enumerate(panels):
        ax = figure.add_subplot(grid[1, 2 * index : 2 * index + 2])
        shown = ax.imshow(image, origin="lower", interpolation="nearest", **style)
        ax.set_title(title, fontsize=10)
        figure.colorbar(shown, ax=ax, shrink=0.8)
    with atomic_output(output) as temporary:
        figure.savefig(temporary, dpi=90)
    log.info("wrote figure %s", output)


def _wrap(text, width=60):
    words, lines, line = str(text).split(), [], ""
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines
