"""Pay the data models' first-use costs once, in a process that then forks the jobs.

The first CubeModel or QuadModel a process opens or writes makes asdf load and resolve
that model's schemas, astropy build its FITS header and table machinery, and
stdatamodels walk the schema for the first time; about 0.15 s of CPU an alignment job at
320 × 320, paid again by every job. :func:`warm_data_models` writes and reads back tiny
files of every kind the rules' jobs open or write (a cube with variance arrays, as
``stack_refs`` writes, and a product of each layout, as ``align`` writes), so that the
warm-start server's children (:mod:`coronalign.cli.warm`) find those caches filled.

Only caches are filled: a file written afterwards is the same, byte for byte (the test
suite compares a product forked from the server with one written by a fresh process).
stdatamodels and asdf have no call that loads a model's schemas without a model, and no
"preload" of their own, hence the round trip.
"""

import tempfile
from pathlib import Path

import numpy as np

from coronalign.core.results import VARIANCE_NAMES, Stack
from coronalign.io.models import open_model, read_stack, write_cube
from coronalign.io.product import ProductWriter, placeholder_records

__all__ = ["warm_data_models"]

#: The tiny frames' shape (planes, ny, nx).
_SHAPE = (2, 4, 4)


def warm_data_models(folder=None):
    """Write and read back a tiny cube and a tiny product of each layout; nothing is kept.

    Parameters
    ----------
    folder : str or os.PathLike, optional
        Where the files are written (in a temporary folder inside it, removed at the end);
        by default the system's temporary folder.

    Returns
    -------
    list of str
        The model types read back, in order.
    """
    planes, ny, nx = _SHAPE
    values = np.ones(_SHAPE, dtype=np.float32)
    stack = Stack(  # an array of its own for each extension, as stdatamodels requires
        data=values.copy(),
        err=values.copy(),
        dq=np.zeros(_SHAPE, dtype=np.uint32),
        variance_arrays={name: values.copy() for name in VARIANCE_NAMES},
    )
    read = []
    with tempfile.TemporaryDirectory(prefix="coronalign-warm-up-", dir=folder) as scratch:
        from stdatamodels.jwst import datamodels

        cube = Path(scratch) / "warm_psfstack.fits"
        with datamodels.CubeModel(_SHAPE) as template:
            write_cube(cube, stack, template, {"filename": cube.name})
        _, model = read_stack(cube, "warm-up cube", variance_arrays=True)
        with model:
            read.append(type(model).__name__)
            for mode in ("quad", "cube"):  # one row each
                product = Path(scratch) / f"warm_{mode}_psfalign.fits"
                variances = VARIANCE_NAMES if mode == "cube" else ()
                with ProductWriter(
                    product, mode, 1, planes, (ny, nx), model, {}, variances=variances
                ) as writer:
                    arrays = dict.fromkeys(variances, values)
                    writer(0, values, values, stack.dq, arrays)
                    writer.commit(placeholder_records(planes))
                with open_model(product, "warm-up product") as back:
                    back.data  # noqa: B018 (reading the arrays is part of the warm-up)
                    read.append(type(back).__name__)
    return read
