"""A small analytic data set (science, PSF stack, PSFMASK) written as JWST files."""

import numpy as np

from tests.helpers.images import blob_image, border_weight, shifted

__all__ = ["write_small_dataset"]


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
