"""Reading the step's inputs and writing its products (the stdatamodels layer).

Every reader turns a problem with a file into an :class:`~coronalign.errors.InputFileError`
that names the file and says what is wrong. Every writer writes to a temporary name in the
destination folder and renames it when complete, so an interrupted run never leaves a
partial product behind.
"""

import contextlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from .align import Stack
from .errors import InputFileError

__all__ = [
    "ProductWriter",
    "atomic_output",
    "open_model",
    "read_stack",
    "write_shift_table",
]

log = logging.getLogger(__name__)


def open_model(path, role):
    """Open a JWST data model, turning every failure into a clear :class:`InputFileError`.

    Parameters
    ----------
    path : str or os.PathLike
        File to open.
    role : str
        What the file is for, used in messages (e.g. ``"science exposure"``).

    Returns
    -------
    stdatamodels.DataModel
    """
    from stdatamodels.jwst import datamodels

    path = Path(path)
    if not path.exists():
        raise InputFileError(path, f"{role} file not found")
    if path.is_dir():
        raise InputFileError(path, f"{role} is a folder, not a FITS file")
    try:
        with path.open("rb") as stream:
            magic = stream.read(30)
    except OSError as error:
        raise InputFileError(path, f"{role} cannot be read: {error.strerror}") from None
    if not magic.startswith(b"SIMPLE  ="):
        raise InputFileError(path, f"{role} is not a FITS file")
    try:
        model = datamodels.open(path)
        _ = model.data  # forces reading the data, so a truncated file fails here
    except Exception as error:  # stdatamodels/astropy raise many kinds
        raise InputFileError(
            path, f"{role} cannot be read as a JWST data model (truncated or corrupt?): {error}"
        ) from None
    return model


def read_stack(path, role):
    """Read a 3D CubeModel (``_calints`` or ``_psfstack``) as a :class:`~coronalign.align.Stack`.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    role : str
        ``"science exposure"`` or ``"PSF stack"``; used in messages.

    Returns
    -------
    stack : Stack
        Data, ERR and DQ arrays (as stored).
    model : stdatamodels.DataModel
        The open model, for its metadata.
    """
    model = open_model(path, role)
    data = np.asarray(model.data)
    if data.ndim != 3:
        kind = type(model).__name__
        raise InputFileError(
            path,
            f"{role} must be a 3D CubeModel (planes, ny, nx), but it is a {data.ndim}D {kind} "
            f"of shape {data.shape}",
        )
    if data.shape[0] < 1:
        raise InputFileError(path, f"{role} has no planes")
    err = np.asarray(model.err) if model.hasattr("err") and model.err.shape == data.shape else None
    dq = np.asarray(model.dq) if model.hasattr("dq") and model.dq.shape == data.shape else None
    if err is None:
        err = np.zeros(data.shape, dtype=np.float32)
    if dq is None:
        dq = np.zeros(data.shape, dtype=np.uint32)
    return Stack(data=data, err=err, dq=dq), model


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path beside ``path``; rename it to ``path`` only on success.

    Parameters
    ----------
    path : str or os.PathLike
        Final destination.

    Yields
    ------
    pathlib.Path
        Where to write. Removed if the block raises.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputFileError(folder, "output folder does not exist")
    if not os.access(folder, os.W_OK):
        raise InputFileError(folder, "output folder is not writable")
    # Keep the extension: writers choose the format from it.
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".partial{path.suffix}", dir=folder
    )
    os.close(handle)
    temporary = Path(temporary)
    umask = os.umask(0)
    os.umask(umask)
    temporary.chmod(0o666 & ~umask)  # mkstemp creates 0600; products are ordinary files
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


class ProductWriter:
    """Collects the aligned planes of one exposure and writes the ``_psfalign`` product.

    Use as the ``sink`` of :func:`coronalign.align.align_stacks`, then call
    :meth:`write`.

    Parameters
    ----------
    mode : {"quad", "cube"}
        ``quad``: QuadModel (nints, npsfs, ny, nx); ``cube``: CubeModel (npsfs, ny, nx),
        the PSFs aligned to the first integration.
    nrows : int
        Number of fitted integrations.
    npsfs : int
        Number of PSFs.
    shape : tuple of int
        ``(ny, nx)``.
    """

    def __init__(self, mode, nrows, npsfs, shape):
        self.mode = mode
        full = (nrows, npsfs, *shape)
        self.sci = np.zeros(full, dtype=np.float32)
        self.err = np.zeros(full, dtype=np.float32)
        self.dq = np.zeros(full, dtype=np.uint32)

    def __call__(self, row, sci, err, dq):
        """Store the planes aligned to one integration (the ``sink`` interface)."""
        self.sci[row] = sci
        self.err[row] = err
        self.dq[row] = dq

    def write(self, path, template, meta):
        """Write the product atomically.

        Parameters
        ----------
        path : str or os.PathLike
            Output file.
        template : stdatamodels.DataModel
            The PSF stack; its metadata is copied, as the official step does.
        meta : dict
            Dotted metadata keys (``"cal_step.align_psfs"``) and their values.
        """
        from stdatamodels.jwst import datamodels

        if self.mode == "quad":
            model = datamodels.QuadModel(data=self.sci, err=self.err, dq=self.dq)
        else:
            model = datamodels.CubeModel(data=self.sci[0], err=self.err[0], dq=self.dq[0])
        model.update(template)
        for key, value in meta.items():
            _set_meta(model.meta, key, value)
        model.meta.filename = Path(path).name
        with atomic_output(path) as temporary:
            model.save(temporary, overwrite=True)
        model.close()
        log.info("wrote %s %s", type(model).__name__, path)


def _set_meta(node, dotted, value):
    """Set ``node.a.b.c = value`` from ``"a.b.c"``."""
    *parents, last = dotted.split(".")
    for name in parents:
        node = getattr(node, name)
    setattr(node, last, value)


def write_shift_table(path, result, meta):
    """Write the fitted shifts as an astropy ECSV table, one row per (integration, PSF).

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.ecsv`` file.
    result : coronalign.align.AlignmentResult
        The fit results.
    meta : dict
        Table metadata (inputs, parameters, provenance).
    """
    from astropy.table import Table

    rows, npsfs = result.xshift.shape
    integration = np.repeat(np.asarray(result.integrations, dtype=np.int64), npsfs)
    table = Table(
        {
            "integration": integration,
            "psf": np.tile(np.arange(npsfs, dtype=np.int64), rows),
            "xshift": result.xshift.ravel(),
            "yshift": result.yshift.ravel(),
            "beta": result.beta.ravel(),
            "rms": result.rms.ravel(),
            "iterations": result.iterations.ravel(),
            "converged": result.converged.ravel(),
            "status": result.status.ravel(),
        },
        meta=meta,
    )
    table["xshift"].unit = table["yshift"].unit = "pix"
    table["xshift"].description = "x_psf - x_sci along columns"
    table["yshift"].description = "y_psf - y_sci along rows"
    table["beta"].description = "PSF flux / science flux"
    table["rms"].description = "weighted residual rms sqrt(sum w (psf - beta shift(sci))^2 / sum w)"
    with atomic_output(path) as temporary:
        table.write(temporary, format="ascii.ecsv", overwrite=True)
    log.info("wrote shift table %s", path)
