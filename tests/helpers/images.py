"""Small analytic images for the engine tests (the simulator makes realistic ones)."""

import numpy as np

from coronalign.fourier import fourier_shift


def blob_image(shape=(64, 64), seed=0):
    """A band-limited, asymmetric PSF-like image: a few Gaussians of different widths."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    y, x = np.mgrid[:ny, :nx].astype(float)
    image = np.zeros(shape)
    for _ in range(6):
        cy, cx = ny / 2 + rng.uniform(-ny / 6, ny / 6), nx / 2 + rng.uniform(-nx / 6, nx / 6)
        width = rng.uniform(1.5, 4.0)
        image += rng.uniform(0.2, 1.0) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * width**2))
    return image


def border_weight(shape, border=6):
    """Weight 1 inside, 0 in a border (so wrap-around does not matter)."""
    weight = np.zeros(shape)
    weight[border:-border, border:-border] = 1.0
    return weight


def shifted(image, dx, dy, beta=1.0):
    """``beta`` times ``image`` shifted by ``(dx, dy)``, the fit's own model."""
    return beta * fourier_shift(image, dx, dy)


def write_small_dataset(folder, nints=3, npsfs=2, shape=(64, 64), instrument="NIRCAM"):
    """Write a small analytic science/PSF-stack/mask set; return (paths, true shifts)."""
    from stdatamodels.jwst import datamodels

    base = blob_image(shape, seed=11)
    truth = [
        [(0.3 - 0.1 * k + 0.2 * m, 0.2 + 0.05 * k - 0.3 * m) for m in range(npsfs)]
        for k in range(nints)
    ]
    science = np.stack([shifted(base, -0.1 * k, 0.05 * k) for k in range(nints)])
    psfs = np.stack(
        [shifted(base, 0.3 + 0.2 * m - 0.1 * 0, 0.2 - 0.3 * m, 1.5 + m) for m in range(npsfs)]
    )
    paths = {
        "science": folder / "jw01234001001_03106_00001_nrcalong_calints.fits",
        "psfstack": folder / "jw01234-a3001_psfstack.fits",
        "psfmask": folder / "psfmask.fits",
    }
    for key, data in (("science", science), ("psfstack", psfs)):
        model = datamodels.CubeModel(
            data=data.astype(np.float32),
            err=np.full(data.shape, 0.01, np.float32),
            dq=np.zeros(data.shape, np.uint32),
        )
        model.meta.instrument.name = instrument
        model.meta.subarray.xstart = model.meta.subarray.ystart = 1
        model.save(paths[key])
    datamodels.PsfMaskModel(data=border_weight(shape).astype(np.float32)).save(paths["psfmask"])
    return paths, np.array(truth)


def align_command(science, psfstack, psfmask, output, *extra):
    """Arguments of ``coronalign align`` (for ``coronalign.cli.main``)."""
    return [
        "align",
        str(science),
        str(psfstack),
        "--psfmask",
        str(psfmask),
        "-o",
        str(output),
        *map(str, extra),
    ]
