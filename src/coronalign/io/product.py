"""The ``_psfalign`` product: streamed to disk one integration at a time, or the unaligned stack.

:class:`ProductWriter` writes the aligned product in bounded memory, under a temporary
name renamed when complete (:mod:`coronalign.io.atomic`). :func:`write_unaligned_product`
writes the product of a skipped alignment: the PSF stack itself, with the step's metadata.

stdatamodels lays the product out
---------------------------------
The headers and the ASDF metadata extension are what stdatamodels itself would write:
:meth:`ProductWriter._layout` calls ``stdatamodels.fits_support.to_fits(model.instance,
model.schema)``, as ``DataModel.to_fits`` does, on a model whose arrays are placeholders.
``model.instance`` and ``model.schema`` are public properties (of ``stdatamodels.properties
.Node`` and ``DataModel``), and ``fits_support.to_fits`` is in its module's ``__all__`` but
not in stdatamodels' documented API. The function and both properties are the same in
every release from 2.0.0 to 6.0.0 (read in each release's source); ``pyproject.toml``
pins ``stdatamodels>=2.0,<7`` and ``tests/io/test_product.py`` checks that a streamed
product has the headers, data and metadata stdatamodels' own ``save`` gives. There is no
public way to write only the headers: ``DataModel.save`` writes every array, and converts
the whole DQ array to signed integers in memory, which a 4D product cannot afford.
"""

import io
import logging
import os
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from astropy.io import fits

from coronalign.core.results import STATUS_DTYPE, VARIANCE_NAMES, AlignmentResult
from coronalign.core.scratch import Scratch
from coronalign.errors import InputFileError
from coronalign.io import _asdf_startup
from coronalign.io.atomic import AtomicOutput
from coronalign.io.models import save_model, set_meta
from coronalign.io.paths import check_fits_name
from coronalign.io.tables import SHIFT_EXTENSION, shift_extension, shift_records

__all__ = ["ProductWriter", "placeholder_records", "write_unaligned_product"]

log = logging.getLogger(__name__)

_asdf_startup.install()


def _filled_model(model_type, arrays, template, meta):
    """A ``model_type`` of ``arrays`` with ``template``'s metadata and ``meta`` set.

    stdatamodels validates every assignment by default: about a hundred small validations
    (~14 ms a product in a warm process, ~0.1 s in a fresh one). The model is filled
    without them and validated once; only if that one validation objects (a warning, or an
    error under ``STRICT_VALIDATION``) is it filled again validating every assignment, so
    what an invalid value does (dropped with a warning, or an error) is stdatamodels' own.
    """
    from stdatamodels.exceptions import ValidationWarning
    from stdatamodels.validate import ValidationError

    def filled(validate_on_assignment):
        model = model_type(**arrays, validate_on_assignment=validate_on_assignment)
        model.update(template)
        for key, value in meta.items():
            set_meta(model.meta, key, value)
        return model

    model = filled(False)
    with warnings.catch_warnings(record=True) as objections:
        warnings.simplefilter("always", ValidationWarning)
        try:
            model.validate()
        except ValidationError:
            objections.append(None)
    if not any(o is None or issubclass(o.category, ValidationWarning) for o in objections):
        return model
    model.close()
    return filled(True)


class ProductWriter:
    """Writes the ``_psfalign`` product one integration at a time, in bounded memory.

    The file is laid out up front: stdatamodels builds the headers and the ASDF
    metadata extension for the full shape (from placeholder arrays mapped onto a sparse
    scratch file, so nothing is allocated), the headers are written, and the SCI, DQ and
    ERR data regions are reserved. Each call writes the planes aligned to one
    integration straight to their place in the file, so the memory used does not grow
    with the product size. The file has a temporary name until :meth:`commit` renames it.

    Use as a context manager and as the ``sink`` of
    :func:`coronalign.core.align.align_stacks`; rows may be written from forked worker
    processes too (``processes`` > 1), which write straight to the file::

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
    variances : sequence of str, optional
        Variance arrays to write too, by data-model attribute (``"var_poisson"``,
        ``"var_rnoise"``, ``"var_flat"``): each row then comes with them (the ``variances``
        keyword of the sink). A CubeModel has them in its schema (``VAR_POISSON``... float32
        extensions of the SCI shape, as the JWST pipeline writes them); a QuadModel has not, so
        there they are image extensions of the same names, shape and type outside the schema
        (``model.extra_fits.VAR_POISSON.data`` in stdatamodels), as the shift table is.
    """

    _ARRAYS = (("SCI", "data", ">f4"), ("ERR", "err", ">f4"), ("DQ", "dq", ">u4"))

    def __init__(self, path, mode, nrows, npsfs, shape, template, meta, *, variances=()):
        self.path = Path(path)
        check_fits_name(self.path, "product")
        self.mode = mode
        self.variances = tuple(variances)
        unknown = set(self.variances) - set(VARIANCE_NAMES)
        if unknown:
            raise ValueError(f"unknown variance arrays {sorted(unknown)}; use {VARIANCE_NAMES}")
        self._arrays = self._ARRAYS + tuple(
            (name.upper(), name, ">f4") for name in VARIANCE_NAMES if name in self.variances
        )
        self.full_shape = (nrows, npsfs, *shape) if mode == "quad" else (npsfs, *shape)
        self.table_rows = nrows * npsfs
        self._output = AtomicOutput(self.path)
        self.temporary = self._output.temporary
        self._descriptor = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="product-writer")
        self._pending = []
        self._conversion = Scratch(np.uint32)  # where _write_row converts each array
        self._owner = os.getpid()
        try:
            try:
                self._regions = self._write_layout(self._layout(template, meta))
            except OSError as error:  # disk full, read-only file system...
                raise InputFileError(
                    self.path, f"cannot write the product: {error.strerror or error}"
                ) from None
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
                for _, attribute, dtype in self._arrays
            }
            extra = {}
            if self.mode == "quad":  # no variance arrays in the QuadModel schema
                extra = {name.upper(): {"data": arrays.pop(name)} for name in self.variances}
            model_type = datamodels.QuadModel if self.mode == "quad" else datamodels.CubeModel
            model = _filled_model(model_type, arrays, template, meta)
            # The shift table's extension, laid out now (its size is known) and filled at
            # commit, so the headers stdatamodels checksums are the final ones.
            data, cards = shift_extension(placeholder_records(self.table_rows))
            model.extra_fits = {**extra, SHIFT_EXTENSION: {"data": data, "header": cards}}
            model.on_save(str(self.path))
            # What DataModel.to_fits does, without writing the arrays (see the module).
            hdulist = fits_support.to_fits(model.instance, model.schema)
            headers = {hdu.name: hdu.header.copy() for hdu in hdulist}
            asdf_bytes = _hdu_bytes(hdulist["ASDF"])
            del arrays, model, hdulist
        return headers, asdf_bytes

    def _write_layout(self, layout):
        """Write headers and metadata, reserve the data regions; return their offsets."""
        headers, asdf_bytes = layout
        names = [name for name in headers if name != "ASDF"]
        dtypes = {name: dtype for name, _, dtype in self._arrays}
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

    def __call__(self, row, sci, err, dq, variances=None):
        """Queue the planes aligned to one integration for writing (the ``sink`` interface).

        The conversion to the stored types and the writes run on a background thread
        (both release the GIL), overlapping the next integration's fits. The arrays must
        not be modified by the caller afterwards. In a forked worker process (which has
        no copy of that thread) the row is written at once, to the same file.
        ``variances`` (name to block) must hold every array the writer was made for.
        """
        missing = [name for name in self.variances if name not in (variances or {})]
        if missing:
            raise ValueError(f"row {row} lacks the variance arrays {missing}")
        if os.getpid() != self._owner:
            self._write_row(row, sci, err, dq, variances)
            return
        while len(self._pending) >= self.QUEUE:
            self._pending.pop(0).result()
        self._pending.append(self._writer.submit(self._write_row, row, sci, err, dq, variances))

    def _write_row(self, row, sci, err, dq, variances=None):
        """Convert and write one integration's planes to their places in the file.

        Each array is converted to its stored (big-endian) type in one buffer kept for
        every array of every row: a new array per conversion would be fresh memory from the
        kernel each time (a 640 × 640 row of 9 PSFs is about 15 MB per array).
        """
        block = int(np.prod(self.full_shape[1:])) * 4 if self.mode == "quad" else 0
        values = {"SCI": sci, "ERR": err, "DQ": dq}
        for name in self.variances:
            values[name.upper()] = variances[name]
        for name, (offset, dtype) in self._regions.items():
            stored = self._conversion.array(np.shape(values[name])).view(dtype)
            if name == "DQ":
                # FITS has no unsigned 32-bit type: stored as int32 with BZERO = 2**31.
                np.bitwise_xor(np.asarray(dq, dtype=np.uint32), np.uint32(2**31), out=stored)
            else:
                np.copyto(stored, values[name], casting="same_kind")
            self._write_at(memoryview(stored).cast("B"), offset + row * block)

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


def placeholder_records(count):
    """Shift-table records for ``count`` fits (zeros), the size and layout of a product's.

    Parameters
    ----------
    count : int
        Fits in the table (rows × PSFs).

    Returns
    -------
    numpy.ndarray
        From :func:`coronalign.io.tables.shift_records`.
    """
    empty = np.zeros((count, 1))
    return shift_records(
        AlignmentResult(
            integrations=list(range(count)),
            xshift=empty,
            yshift=empty,
            beta=empty,
            rms=empty,
            iterations=np.zeros((count, 1), dtype=np.int64),
            status=np.full((count, 1), "", dtype=STATUS_DTYPE),
        )
    )


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


def write_unaligned_product(psf_model, path, meta):
    """Write the PSF stack itself as the product, with the step's metadata (atomically).

    What the official step writes when no PSFMASK applies: the PSF stack, data unchanged.

    Parameters
    ----------
    psf_model : stdatamodels.DataModel
        The open PSF stack (copied; not modified).
    path : str or os.PathLike
        The product to write.
    meta : dict
        Dotted metadata keys (``"cal_step.align_psfs"``) and their values.
    """
    product = psf_model.copy()
    for key, value in meta.items():
        set_meta(product.meta, key, value)
    save_model(product, path)
    product.close()
