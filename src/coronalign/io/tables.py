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
    "SHIFT_UNITS",
    "pending_shift_table",
    "read_shift_table",
    "shift_extension",
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
    "beta": "PSF flux / science flux (dimensionless)",
    "rms": "weighted residual rms sqrt(sum w (psf - beta shift(sci))^2 / sum w)",
    "xshift_err": "total 1-sigma error of xshift: pixel noise and residual speckles",
    "yshift_err": "total 1-sigma error of yshift: pixel noise and residual speckles",
    "beta_err": "total 1-sigma error of beta (dimensionless): noise and residual speckles",
    "xshift_err_stat": "statistical 1-sigma error of xshift: pixel noise alone",
    "yshift_err_stat": "statistical 1-sigma error of yshift: pixel noise alone",
    "beta_err_stat": "statistical 1-sigma error of beta (dimensionless): pixel noise alone",
    "xprior": "x of the search window centre (pointing metadata, else 0)",
    "yprior": "y of the search window centre (pointing metadata, else 0)",
    "iterations": "Newton iterations",
    "converged": "the fit converged",
    "status": ", ".join(map(str, list(FitStatus)[:-1])) + f" or {list(FitStatus)[-1]}",
}

#: Units of the shift table's columns (FITS TUNIT, ECSV unit). ``beta`` and its errors are
#: dimensionless (a flux ratio: no TUNIT, as FITS has it; their TCOMM says so), ``rms`` is
#: in the images' unit.
SHIFT_UNITS = dict.fromkeys(
    (
        "xshift",
        "yshift",
        "xshift_err",
        "yshift_err",
        "xshift_err_stat",
        "yshift_err_stat",
        "xprior",
        "yprior",
    ),
    "pix",
)

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


def shift_extension(records):
    """The shift table as the product's ``PSFSHIFTS`` binary table: data and header cards.

    Parameters
    ----------
    records : numpy.ndarray
        From :func:`shift_records`.

    Returns
    -------
    data : astropy.io.fits.FITS_rec
        The records with each column's unit (``TUNIT`` ``pix`` for the shifts, priors and
        their errors; none for beta and its errors, a dimensionless flux ratio).
    header : list of list
        ``[keyword, value, comment]`` cards: ``TCOMMn``, what column ``n`` holds.
    """
    from astropy.io import fits

    columns = fits.ColDefs(records)
    header = []
    for number, name in enumerate(records.dtype.names, start=1):
        if name in SHIFT_UNITS:
            columns[name].unit = SHIFT_UNITS[name]
        header.append([f"TCOMM{number}", SHIFT_COLUMNS[name], ""])
    return fits.BinTableHDU.from_columns(columns).data, header


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
    for name, unit in SHIFT_UNITS.items():
        table[name].unit = unit
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
