"""The report figure of one exposure (PNG): fitted shifts, and the PSF against the science.

:func:`plot_exposure` draws the fitted shifts per integration and PSF with their formal
errors, and science integration 0 next to the PSF 0 aligned to it and their residual (the
PSF divided by its fitted flux ratio beta). The images are shown as astronomers read them:
an asinh stretch (astropy.visualization) for the science and PSF, a symmetric asinh one for
the residual, and the region the PSFMASK ignores (occulter, edges) outlined. matplotlib is
imported only there.
"""

import logging
import math
from pathlib import Path

import numpy as np

from coronalign.dq import DO_NOT_USE, FitStatus
from coronalign.io.atomic import atomic_output
from coronalign.io.paths import check_input, check_outputs
from coronalign.io.preview import read_plane
from coronalign.io.tables import read_shift_table

__all__ = ["aligned_bad_pixels", "plot_exposure"]

log = logging.getLogger(__name__)


def _usable(data, dq, more_bad=None):
    """A float64 image with non-finite, DO_NOT_USE and ``more_bad`` pixels set to NaN
    (shown in grey)."""
    image = np.array(data, dtype=np.float64)
    bad = ~np.isfinite(image)
    if dq is not None and np.shape(dq) == image.shape:
        bad |= (np.asarray(dq) & DO_NOT_USE) != 0
    if more_bad is not None:
        bad |= more_bad
    image[bad] = np.nan
    return image


def aligned_bad_pixels(psf_plane, shift):
    """Where the aligned PSF has no trustworthy value: the PSF's bad pixels, moved with it.

    The product's DQ flags only what the alignment itself could not fill; a pixel the PSF
    stack flags ``DO_NOT_USE`` (or holds NaN/inf) was replaced by a local median before the
    shift, so the aligned PSF shows an estimate there, not a measurement. The aligned PSF is
    the PSF shifted (circularly, in Fourier space) by minus the fitted shift; the bad pixels
    are moved by that shift rounded to whole pixels.

    Parameters
    ----------
    psf_plane : coronalign.io.preview.Plane
        The PSF-stack plane the aligned PSF was made from.
    shift : tuple of float
        The fitted ``(xshift, yshift)`` (the PSF is moved by minus it); (0, 0) unaligned.

    Returns
    -------
    numpy.ndarray of bool
        True at the aligned PSF's bad pixels.
    """
    bad = ~np.isfinite(psf_plane.data)
    if psf_plane.dq is not None:
        bad |= (psf_plane.dq & DO_NOT_USE) != 0
    xshift, yshift = (0.0 if not math.isfinite(v) else v for v in shift)
    return np.roll(bad, (-round(yshift), -round(xshift)), axis=(0, 1))


def _limits(*images):
    """Shared display range: 1st-99.5th percentile of the finite pixels."""
    values = np.concatenate([i[np.isfinite(i)] for i in images] or [np.zeros(1)])
    if not values.size:
        return 0.0, 1.0
    low, high = np.percentile(values, [1.0, 99.5])
    return float(low), float(high if high > low else low + 1.0)


#: The colour of pixels without a usable value (NaN in the images shown).
BAD_PIXEL_GREY = "0.6"

#: Where the outline of the PSFMASK's ignored region is drawn (weights below it are ~ignored).
MASK_OUTLINE_LEVEL = 0.5


def _mask_for_display(psfmask, selection, shape, subarray):
    """The PSFMASK on the science frame, or None (no mask given, or a skipped alignment)."""
    if selection is not None:
        from coronalign.references.selection import read_psfmask_selection

        psfmask = read_psfmask_selection(selection).path
    if psfmask is None:
        return None
    from coronalign.references.mask import load_psfmask

    return load_psfmask(psfmask, shape, subarray)


def plot_exposure(product, science, shifts, output, psfmask=None, selection=None, psfstack=None):
    """Draw the report figure of one exposure (PNG, atomically).

    Top row: fitted x and y shifts against integration, one line per PSF, with their formal
    errors; fits with status outlier, out_of_window or not_converged are circled in red.
    Bottom row:
    science integration 0, PSF 0 aligned to it divided by its fitted beta, and the residual
    science - PSF/beta. For a skipped alignment the top row gives the reason and the PSF
    is the unaligned one (scaled by the ratio of total fluxes). Pixels without a usable
    value (non-finite, ``DO_NOT_USE``; for the aligned PSF also the PSF stack's bad pixels,
    moved with the PSF) are drawn in grey.

    Only the planes shown are read (astropy.io.fits, memory-mapped): no data model is
    opened and the product is not read whole.

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
    psfmask : path-like, optional
        The PSFMASK the product was aligned with: its ignored region is outlined.
    selection : path-like, optional
        A PSFMASK selection (``coronalign psfmask``) naming that mask, instead of ``psfmask``.
    psfstack : path-like, optional
        The PSF stack the product was made from: its bad pixels are masked in the aligned
        PSF (without it only the product's own DQ and non-finite values are).

    Returns
    -------
    matplotlib.figure.Figure
        The figure written.
    """
    inputs = [("product", product), ("science exposure", science), ("shift table", shifts)]
    if psfstack is not None:
        inputs.append(("PSF stack", psfstack))
    check_outputs([("figure", output)], inputs)
    for role, path in inputs:
        check_input(path, role)
    table = read_shift_table(shifts)
    science_plane = read_plane(science, "science exposure")
    sci = _usable(science_plane.data, science_plane.dq)
    mask = _mask_for_display(psfmask, selection, sci.shape, science_plane.subarray)
    product = Path(product)
    aligned = read_plane(product, "product")
    first = (
        (np.asarray(table["integration"]) == table["integration"][0])
        & (np.asarray(table["psf"]) == 0)
        if len(table)
        else np.array([], dtype=bool)
    )
    shift = (0.0, 0.0)
    if first.any():
        shift = tuple(
            float(np.asarray(table[c], dtype=float)[first][0]) for c in ("xshift", "yshift")
        )
    moved_bad = None
    if psfstack is not None:
        psf_plane = read_plane(psfstack, "PSF stack")
        if psf_plane.data.shape == aligned.data.shape:
            moved_bad = aligned_bad_pixels(psf_plane, shift)
    psf = _usable(aligned.data, aligned.dq, moved_bad)
    return _draw(product.name, table, sci, psf, first, mask, output)


def _draw(name, table, sci, psf, first, mask, output):
    """The figure of :func:`plot_exposure` from the planes it read."""
    from astropy.visualization import AsinhStretch, ImageNormalize, PercentileInterval
    from matplotlib import colormaps
    from matplotlib.colors import AsinhNorm
    from matplotlib.figure import Figure
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator

    skipped = bool(table.meta.get("skipped", False))
    beta = float(np.asarray(table["beta"], dtype=float)[first][0]) if first.any() else math.nan
    if not math.isfinite(beta) or beta == 0:
        both = np.isfinite(sci) & np.isfinite(psf)
        total = float(sci[both].sum())
        beta = float(psf[both].sum()) / total if total else 1.0
    scaled = psf / beta
    residual = sci - scaled

    # A fixed layout: matplotlib's constrained layout measures every text and tick label
    # twice and cost more than the rest of the figure.
    figure = Figure(figsize=(11, 7))
    grid = figure.add_gridspec(
        2, 6, left=0.08, right=0.97, bottom=0.06, top=0.91, wspace=0.9, hspace=0.28
    )
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
                markersize=4,
                label=f"PSF {m}",
            )
        flagged = np.isin(
            status, [FitStatus.OUTLIER, FitStatus.OUT_OF_WINDOW, FitStatus.NOT_CONVERGED]
        )
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
        # whole integrations only (the integer locator gives fractions for one or two)
        shown = np.unique(integration)
        if len(shown) <= 12:
            ax.set_xticks(shown)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(integration.min() - 0.5, integration.max() + 0.5)
        ax.set_xlabel("science integration")
        ax.set_ylabel(f"{axis} (pix)")
        difference = "x_psf - x_sci" if axis == "xshift" else "y_psf - y_sci"
        ax.set_title(f"{difference}; bars: total 1-sigma error ({axis}_err)", fontsize=10)
        ax.grid(alpha=0.3)
        if column == 0 and len(np.unique(psf_index)) <= 12:  # the same PSFs in both: once
            ax.legend(fontsize=8)
    low, high = _limits(sci, scaled)
    spread = float(np.nanpercentile(np.abs(residual), 99.5)) if np.isfinite(residual).any() else 1
    spread = spread or 1.0
    # asinh: linear near zero, logarithmic for the bright core and the faint halo alike.
    stretch = ImageNormalize(vmin=low, vmax=high, stretch=AsinhStretch(0.02), clip=False)
    if not np.isfinite(low + high):
        stretch = ImageNormalize(sci, interval=PercentileInterval(99.5), stretch=AsinhStretch())
    magma = colormaps["magma"].with_extremes(bad=BAD_PIXEL_GREY)
    panels = (
        (
            f"science, integration 0 ({sci.shape[1]} x {sci.shape[0]} px)",
            sci,
            {"norm": stretch, "cmap": magma},
        ),
        (
            f"PSF 0 {'(unaligned) ' if skipped else 'aligned '}/ beta ({beta:.4g})",
            scaled,
            {"norm": stretch, "cmap": magma},
        ),
        (
            "residual: science - PSF / beta",
            residual,
            {
                "norm": AsinhNorm(linear_width=0.05 * spread, vmin=-spread, vmax=spread),
                "cmap": colormaps["RdBu_r"].with_extremes(bad=BAD_PIXEL_GREY),
            },
        ),
    )
    for index, (title, image, style) in enumerate(panels):
        ax = figure.add_subplot(grid[1, 2 * index : 2 * index + 2])
        shown = ax.imshow(image, origin="lower", interpolation="nearest", **style)
        if mask is not None and (mask < MASK_OUTLINE_LEVEL).any():
            ax.contour(mask, levels=[MASK_OUTLINE_LEVEL], colors="cyan", linewidths=0.7, alpha=0.9)
        ax.set_title(title, fontsize=10)
        # No pixel ticks on the images (every tick is four artists, and the ticks were the
        # figure's largest cost); the frame is the whole subarray, its size in the title row.
        ax.set_xticks([])
        ax.set_yticks([])
        # plain tick labels: the asinh scale's default ones are mathtext (10^k), whose parser
        # costs more on a job's first figure than drawing the whole figure
        bar = figure.colorbar(shown, ax=ax, shrink=0.8, format=FormatStrFormatter("%.3g"))
        bar.locator = MaxNLocator(5)
    legend = "grey: no usable value (non-finite or DO_NOT_USE; for the PSF, its own bad pixels)"
    if mask is not None:
        legend = "cyan: where the PSFMASK weight drops below 0.5 (ignored);  " + legend
    figure.text(0.01, 0.01, legend, fontsize=8)
    with atomic_output(output) as temporary:
        figure.savefig(temporary, dpi=90)
    log.info("wrote figure %s", output)
    return figure


def _wrap(text, width=60):
    words, lines, line = str(text).split(), [], ""
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines
