"""Script of the `coron3_plot` rule: an association's `_i2d` image in an asinh stretch, for the
report (beside the per-exposure figures).

Read with astropy alone (no jwst, no coronalign), so it runs with Snakemake's Python or the
jwst environment's: ``python coron3_i2d_plot.py I2D PNG``. Pixels no integration covers (WHT
0, or not finite) are left blank; the stretch spans the 0.5-99.5 percentiles of the others.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from astropy.io import fits
from astropy.visualization import AsinhStretch, ImageNormalize, PercentileInterval


def covered_image(i2d):
    """The SCI plane of an `_i2d` file with uncovered pixels as NaN, and its header cards."""
    with fits.open(i2d) as hdus:
        image = np.array(hdus["SCI"].data, dtype=float)
        if "WHT" in hdus:
            image[~(np.asarray(hdus["WHT"].data) > 0)] = np.nan
        primary = hdus[0].header
        cards = {key: primary.get(key) for key in ("TARGPROP", "FILTER", "CAL_VER")}
    image[~np.isfinite(image)] = np.nan
    return image, cards


def plot_i2d(i2d, output):
    """Write the figure of ``i2d`` (an `_i2d` FITS file) to ``output`` (PNG)."""
    image, cards = covered_image(i2d)
    covered = image[np.isfinite(image)]
    if covered.size == 0:
        raise SystemExit(f"{i2d}: no pixel of the _i2d image is covered")
    norm = ImageNormalize(covered, interval=PercentileInterval(99.0), stretch=AsinhStretch())
    figure, axes = plt.subplots(figsize=(6, 5.2), layout="constrained")
    shown = axes.imshow(image, origin="lower", norm=norm, cmap="inferno", interpolation="nearest")
    figure.colorbar(shown, ax=axes, label="SCI (asinh stretch)")
    described = ", ".join(f"{k} {v}" for k, v in cards.items() if v not in (None, ""))
    axes.set_title(f"{Path(i2d).name}\n{described}", fontsize=8)
    axes.set_xlabel("x (pixels)")
    axes.set_ylabel("y (pixels)")
    figure.savefig(output, dpi=110)
    plt.close(figure)


if "snakemake" in globals():  # the rule's script: directive
    plot_i2d(snakemake.input.i2d, snakemake.output.figure)
elif __name__ == "__main__":
    plot_i2d(*sys.argv[1:3])
