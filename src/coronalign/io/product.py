"""Reading the step's inputs and writing its products (the stdatamodels layer).

Every reader turns a problem with a file into an :class:`~coronalign.errors.InputFileError`
that names the file and says what is wrong. Every writer writes to a temporary name in the
destination folder and renames it when complete, so an interrupted run never leaves a
partial product behind.
"""

import contextlib
import gc
import io
import logging
import os
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from astropy.io import fits

from . import _asdf_startup
from .align import RESULT_COLUMNS, Stack
from .errors import InputFileError

__all__ = [
    "AtomicOutput",
    "ProductWriter",
    "atomic_output",
    "open_model",
    "read_shift_table",
    "read_stack",
    "shift_table",
    "write_shift_table",
]

log = logging.getLogger(__name__)

_asdf_startup.install()


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
    failure = None
    # A failed open leaves its file handle to be closed when the exception is freed (or
    # by the garbage collector): close it here, quietly, since the error is reported.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            model = datamodels.open(path)
            _ = model.data  # forces reading the data, so a truncated file fails here
        except Exception as error:  # stdatamodels/astropy raise many kinds
            failure = str(error)
        if failure is not None:
            gc.collect()
    if failure is not None:
        raise InputFileError(
            path, f"{role} cannot be read as a JWST data model (truncated or corrupt?): {failure}"
        )
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


class AtomicOutput:
    """A temporary file beside ``path`` that becomes ``path`` only when committed.

    Parameters
    ----------
    path : str or os.PathLike
        Final destination. Its folder must exist and be writable.

    Attributes
    ----------
    temporary : pathlib.Path
        Where to write (a hidden name in the same folder, same extension).
    """

    def __init__(self, path):
        self.path = Path(path)
        folder = self.path.parent
        if not folder.is_dir():
            raise InputFileError(folder, "output folder does not exist")
        if not os.access(folder, os.W_OK):
            raise InputFileError(folder, "output folder is not writable")
        # A run killed before it could clean up (SIGKILL, power loss) leaves its temporary
        # file behind; a new attempt at the same output removes it.
        for stale in folder.glob(f".{self.path.stem}.*.partial{self.path.suffix}"):
            log.info("removing %s, left by an interrupted run", stale)
            stale.unlink(missing_ok=True)
        # Keep the extension: writers choose the format from it.
        try:
            handle, temporary = tempfile.mkstemp(
                prefix=f".{self.path.stem}.", suffix=f".partial{self.path.suffix}", dir=folder
            )
        except OSError as error:
            raise InputFileError(
                folder, f"cannot create a file in the output folder: {error.strerror}"
            ) from None
        os.close(handle)
        self.temporary = Path(temporary)
        umask = os.umask(0)
        os.umask(umask)
        self.temporary.chmod(0o666 & ~umask)  # mkstemp creates 0600; products are ordinary

    def commit(self):
        """Rename the temporary file to the final path."""
        os.replace(self.temporary, self.path)

    def discard(self):
        """Remove the temporary file (harmless after :meth:`commit`)."""
        self.temporary.unlink(missing_ok=True)


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
    output = AtomicOutput(path)
    try:
        yield output.temporary
        output.commit()
    finally:
        output.discard()


class ProductWriter:
    """Writes the ``_psfalign`` product one integration at a time, in bounded memory.

    The file is laid out up front: stdatamodels builds the headers and the ASDF
    metadata extension for the full shape (from placeholder arrays mapped onto a sparse
    scratch file, so nothing is allocated), the headers are written, and the SCI, DQ and
    ERR data regions are reserved. Each call writes the planes aligned to one
    integration straight to their place in the file, so the memory used does not grow
    with the product size. The file has a temporary name until :meth:`commit` renames it.

    Use as a context manager and as the ``sink`` of :func:`coronalign.align.align_stacks`::

        with ProductWriter(path, "quad", nints, npsfs, (ny, nx), psfstack_model, meta) as w:
            align_stacks(..., sink=w)
            w.commit()

    Parameters
    ----------
    path : str or os.PathLike
        Final product path.
    mode : {"quad", "cube"}
        ``quad``: QuadModel (nints, npsfs, ny, nx); ``cube``: CubeModel (npsfs, ny, nx),
        the PSFs aligned to the first integration.
    nrows : int
        Number of fitted integrations (1 for ``cube``).
    npsfs : int
        Number of PSFs.
    shape : tuple of int
        ``(ny, nx)``.
    template : stdatamodels.DataModel
        The PSF stack; its metadata is copied, as the official step does.
    meta : dict
        Dotted metadata keys (``"cal_step.align_psfs"``) and their values.
    """

    _ARRAYS = (("SCI", "data", ">f4"), ("ERR", "err", ">f4"), ("DQ", "dq", ">u4"))

    def __init__(self, path, mode, nrows, npsfs, shape, template, meta):
        self.path = Path(path)
        self.mode = mode
        self.full_shape = (nrows, npsfs, *shape) if mode == "quad" else (npsfs, *shape)
        self.table_rows = nrows * npsfs
        self._output = AtomicOutput(self.path)
        self.temporary = self._output.temporary
        self._descriptor = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="product-writer")
        self._pending = []
        self._owner = os.getpid()
        try:
            self._regions = self._write_layout(self._layout(template, meta))
        except BaseException:
            self._writer.shutdown()
            self._output.discard()
            raise

    def _layout(self, template, meta):
        """The HDU list stdatamodels would write, built around placeholder arrays."""
        from stdatamodels import fits_support
        from stdatamodels.jwst import datamodels

        count = int(np.prod(self.full_shape))
        with tempfile.TemporaryFile(dir=self.temporary.parent) as scratch:
            scratch.truncate(count * 4)  # sparse: no data is ever written or read
            arrays = {
                attribute: np.memmap(
                    scratch, dtype=dtype.replace(">", "<"), mode="r", shape=self.full_shape
                )
                for _, attribute, dtype in self._ARRAYS
            }
            model_type = datamodels.QuadModel if self.mode == "quad" else datamodels.CubeModel
            model = model_type(**arrays)
            model.update(template)
            for key, value in meta.items():
                _set_meta(model.meta, key, value)
            # The shift table's extension, laid out now (its size is known) and filled at
            # commit, so the headers stdatamodels checksums are the final ones.
            model.extra_fits = {SHIFT_EXTENSION: {"data": self._placeholder_records()}}
            model.on_save(str(self.path))
            hdulist = fits_support.to_fits(model._instance, model._schema)
            headers = {hdu.name: hdu.header.copy() for hdu in hdulist}
            asdf_bytes = _hdu_bytes(hdulist["ASDF"])
            del arrays, model, hdulist
        return headers, asdf_bytes

    def _placeholder_records(self):
        """Shift-table records of the right size, to lay the extension out."""
        from .align import AlignmentResult

        empty = np.zeros((self.table_rows, 1))
        return shift_records(
            AlignmentResult(
                integrations=list(range(self.table_rows)),
                xshift=empty,
                yshift=empty,
                beta=empty,
                rms=empty,
                iterations=np.zeros((self.table_rows, 1), dtype=np.int64),
                status=np.full((self.table_rows, 1), "", dtype="<U13"),
            )
        )

    def _write_layout(self, layout):
        """Write headers and metadata, reserve the data regions; return their offsets."""
        headers, asdf_bytes = layout
        names = [name for name in headers if name != "ASDF"]
        dtypes = {name: dtype for name, _, dtype in self._ARRAYS}
        offsets = {}
        with self.temporary.open("wb") as stream:
            for name in names:
                stream.write(headers[name].tostring().encode("ascii"))
                if name in dtypes:
                    size = int(np.prod(self.full_shape)) * 4
                elif name == SHIFT_EXTENSION:
                    self._table_header = headers[name]
                    size = _table_data_size(headers[name])
                else:
                    continue
                offsets[name] = stream.tell()
                stream.seek(_padded(size), os.SEEK_CUR)
            stream.write(asdf_bytes)
        self._descriptor = os.open(self.temporary, os.O_WRONLY)
        self._table_offset = offsets[SHIFT_EXTENSION]
        return {name: (offsets[name], np.dtype(dtypes[name])) for name in dtypes}

    #: Integrations queued for writing at most (bounds the memory held by the queue).
    QUEUE = 2
    #: Rows may also be written from forked worker processes (see ``align_stacks``).
    fork_safe = True

    def __call__(self, row, sci, err, dq):
        """Queue the planes aligned to one integration for writing (the ``sink`` interface).

        The conversion to the stored types and the writes run on a background thread
        (both release the GIL), overlapping the next integration's fits. The arrays must
        not be modified by the caller afterwards. In a forked worker process (which has
        no copy of that thread) the row is written at once, to the same file.
        """
        if os.getpid() != self._owner:
            self._write_row(row, sci, err, dq)
            return
        while len(self._pending) >= self.QUEUE:
            self._pending.pop(0).result()
        self._pending.append(self._writer.submit(self._write_row, row, sci, err, dq))

    def _write_row(self, row, sci, err, dq):
        """Convert and write one integration's planes to their places in the file."""
        block = int(np.prod(self.full_shape[1:])) * 4 if self.mode == "quad" else 0
        # FITS has no unsigned 32-bit type: stored as int32 with BZERO = 2**31.
        stored_dq = np.asarray(dq, dtype=np.uint32) ^ np.uint32(2**31)  # a new array
        values = {"SCI": sci, "ERR": err, "DQ": stored_dq.byteswap(inplace=True).view(">u4")}
        for name, (offset, dtype) in self._regions.items():
            data = np.ascontiguousarray(values[name], dtype=dtype)
            self._write_at(memoryview(data).cast("B"), offset + row * block)

    def _write_at(self, buffer, position):
        """Write all of ``buffer`` at ``position``; a failure names the file."""
        try:
            while buffer:
                written = os.pwrite(self._descriptor, buffer, position)
                buffer, position = buffer[written:], position + written
        except OSError as error:
            raise InputFileError(self.path, f"cannot write the product: {error.strerror}") from None

    def _drain(self):
        """Wait for every queued write; re-raise the first failure."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def commit(self, records):
        """Finish the writes, fill the shift table, close and give the product its name.

        Parameters
        ----------
        records : numpy.ndarray
            The shift table (:func:`shift_records`), one record per (row, PSF).
        """
        self._drain()
        data = _table_bytes(records, self._table_header)
        self._write_at(memoryview(data), self._table_offset)
        self._writer.shutdown()
        os.close(self._descriptor)
        self._descriptor = None
        self._output.commit()
        log.info("wrote %s %s", "QuadModel" if self.mode == "quad" else "CubeModel", self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        for future in self._pending:
            future.cancel()
        self._writer.shutdown(wait=True)
        self._pending = []
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None
        self._output.discard()  # no-op once committed
        return False


def _padded(size):
    """Size rounded up to whole 2880-byte FITS blocks."""
    return -(-size // 2880) * 2880


def _table_data_size(header):
    """Bytes of a binary table's data (no heap) from its header."""
    return int(header["NAXIS1"]) * int(header["NAXIS2"])


def _table_bytes(records, header):
    """The data bytes (padded) of a binary table whose layout ``header`` describes.

    The records must give exactly that layout (same columns, formats and row count): the
    product's headers were written, and checksummed by stdatamodels, before the fits.
    """
    hdu = fits.BinTableHDU(data=records, name=SHIFT_EXTENSION)
    if (hdu.header["NAXIS1"], hdu.header["NAXIS2"]) != (header["NAXIS1"], header["NAXIS2"]):
        raise ValueError("the shift table does not have the layout reserved for it")
    data = _hdu_bytes(hdu)[len(hdu.header.tostring()) :]
    return data[: _padded(_table_data_size(header))]


def _hdu_bytes(hdu):
    """Bytes of one extension HDU as astropy writes it."""
    buffer = io.BytesIO()
    primary = fits.PrimaryHDU()
    fits.HDUList([primary, hdu]).writeto(buffer)
    return buffer.getvalue()[len(primary.header.tostring()) :]


def _set_meta(node, dotted, value):
    """Set ``node.a.b.c = value`` from ``"a.b.c"``."""
    *parents, last = dotted.split(".")
    for name in parents:
        node = getattr(node, name)
    setattr(node, last, value)


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

    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "shift table not found")
    try:
        return Table.read(path, format="ascii.ecsv")
    except Exception as error:  # astropy raises many kinds for a bad table
        raise InputFileError(path, f"is not a readable ECSV shift table ({error})") from None


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
    "status": "converged, not_converged, no_data, out_of_window or outlier",
}


#: Name of the product's binary-table extension holding the shift table.
SHIFT_EXTENSION = "PSFSHIFTS"
#: Width of the status column in the product's table (the longest status is 13).
_STATUS_WIDTH = 16


def shift_records(result):
    """The fitted parameters as a structured array, one record per (integration, PSF).

    Parameters
    ----------
    result : coronalign.align.AlignmentResult
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
    result : coronalign.align.AlignmentResult
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
    result : coronalign.align.AlignmentResult
        The fit results.
    meta : dict
        Table metadata (inputs, parameters, provenance).
    """
    table = shift_table(result, meta)
    with atomic_output(path) as temporary:
        table.write(temporary, format="ascii.ecsv", overwrite=True)
    log.info("wrote shift table %s", path)
