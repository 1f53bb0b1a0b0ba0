"""The shift table: the fitted parameters, one row per (integration, PSF).

The same records make the product's ``PSFSHIFTS`` extension (:mod:`coronalign.io.product`)
and the ECSV table of ``coronalign align --shifts``.
"""

import contextlib
import logging

import numpy as np

from coronalign.core.results import RESULT_COLUMNS
from coronalign.dq import FitStatus
from coronalign.errors import InputFileError
from coronalign.io.atomic import atomic_output
from coronalign.io.paths import check_input

__all__ = [
    "SHIFT_COLUMNS",
    "SHIFT_EXTENSION",
    "pending_shift_table",
    "read_shift_table",
    "shift_records",
    "shift_table",
    "write_shift_table",
]

log = logging.getLogger(__name__)

#: Column descriptions of the shift table (also the FITS TCOMM of the in-product table).
SHIFT_COLUMNS = {
    "integration": "science integration",
    "psf": "PSF plane of the stack",
    "xshift": "x_psf - x_sci along columns",
    "yshift": "y_psf - y_sci along rows",
    "beta": "PSF flux / science flux",
    "rms": "weighted residual rms sqrt(sum w (psf - beta shift(sci))^2 / sum w)",
    "xshift_err": "formal 1-sigma error of xshift",
    "yshift_err": "formal 1-sigma error of yshift",
    "beta_err": "formal 1-sigma error of beta",
    "xprior": "x of the search window centre (pointing metadata, else 0)",
    "yprior": "y of the search window centre (pointing metadata, else 0)",
    "iterations": "Newton iterations",
    "converged": "the fit converged",
    "status": ", ".join(map(str, list(FitStatus)[:-1])) + f" or {list(FitStatus)[-1]}",
}


#: Name of the product's binary-table extension holding the shift table.
SHIFT_EXTENSION = "PSFSHIFTS"
#: Width of the status column in the product's table (room for the longest status).
_STATUS_WIDTH = 16


def shift_records(result):
    """The fitted parameters as a structured array, one record per (integration, PSF).

    Parameters
    ----------
    result : coronalign.core.align.AlignmentResult
        The fit results.

    Returns
    -------
    numpy.ndarray
        Fields as in ``SHIFT_COLUMNS`` (``status`` as ASCII bytes).
    """
    rows, npsfs = result.xshift.shape
    dtype = [("integration", "<i8"), ("psf", "<i8")]
    dtype += [(name, "<f8") for name in RESULT_COLUMNS]
    dtype += [("iterations", "<i8"), ("converged", "?"), ("status", f"S{_STATUS_WIDTH}")]
    records = np.zeros(rows * npsfs, dtype=dtype)
    records["integration"] = np.repeat(np.asarray(result.integrations, dtype=np.int64), npsfs)
    records["psf"] = np.tile(np.arange(npsfs, dtype=np.int64), rows)
    for name in RESULT_COLUMNS:
        records[name] = getattr(result, name).ravel()
    records["iterations"] = result.iterations.ravel()
    records["converged"] = result.converged.ravel()
    records["status"] = np.char.encode(result.status.ravel().astype(str), "ascii")
    return records


def shift_table(result, meta=None):
    """The fitted parameters as an astropy table, one row per (integration, PSF).

    Parameters
    ----------
    result : coronalign.core.align.AlignmentResult
        The fit results.
    meta : dict, optional
        Table metadata (inputs, parameters, provenance).

    Returns
    -------
    astropy.table.Table
    """
    from astropy.table import Table

    records = shift_records(result)
    table = Table(records, meta=meta or {})
    table["status"] = np.char.decode(records["status"], "ascii")
    for name in ("xshift", "yshift", "xshift_err", "yshift_err", "xprior", "yprior"):
        table[name].unit = "pix"
    for name, description in SHIFT_COLUMNS.items():
        table[name].description = description
    return table


def write_shift_table(path, result, meta):
    """Write the fitted shifts as an astropy ECSV table, one row per (integration, PSF).

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.ecsv`` file.
    result : coronalign.core.align.AlignmentResult
        The fit results.
    meta : dict
        Table metadata (inputs, parameters, provenance).
    """
    table = shift_table(result, meta)
    with atomic_output(path) as temporary:
        table.write(temporary, format="ascii.ecsv", overwrite=True)
    log.info("wrote shift table %s", path)


@contextlib.contextmanager
def pending_shift_table(path, result, meta):
    """Write the shift table under a temporary name; it gets its name when the block ends.

    For outputs written together (the product and its table): the table is written
    first and renamed only after the block (the product's commit) succeeds, so a table
    that cannot be written (disk full) leaves neither output, and a failed product leaves
    no table.

    Parameters
    ----------
    path : str or os.PathLike or None
        Output ``.ecsv`` file; None: nothing is written.
    result : coronalign.core.align.AlignmentResult
        The fit results.
    meta : dict
        Table metadata.

    Yields
    ------
    None
    """
    if path is None:
        yield
        return
    with atomic_output(path) as temporary:
        shift_table(result, meta).write(temporary, format="ascii.ecsv", overwrite=True)
        yield
    log.info("wrote shift table %s", path)


def read_shift_table(path):
    """Read a shift table written by :func:`write_shift_table`.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.ecsv`` file.

    Returns
    -------
    astropy.table.Table
    """
    from astropy.table import Table

    path = check_input(path, "shift table", "shift table not found")
    try:
        return Table.read(path, format="ascii.ecsv")
    except Exception as error:  # astropy raises many kinds for a bad table
        raise InputFileError(path, f"is not a readable ECSV shift table ({error})") from None
