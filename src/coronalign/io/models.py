"""Opening the step's inputs: JWST data models, and the stacks the core aligns.

Every reader turns a problem with a file into an :class:`~coronalign.errors.InputFileError`
that names the file and says what is wrong.
"""

import gc
import logging
import warnings
from pathlib import Path

import numpy as np

from coronalign.core.results import VARIANCE_NAMES, Stack
from coronalign.errors import InputFileError
from coronalign.io import _asdf_startup
from coronalign.io.atomic import atomic_output
from coronalign.io.paths import check_fits_name, check_input, open_input

__all__ = [
    "fits_text",
    "open_model",
    "open_validated_model",
    "pixel_flags",
    "read_sci_shape",
    "read_stack",
    "save_model",
    "set_meta",
    "write_cube",
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
    try:
        with open_input(path, role) as stream:
            magic = stream.read(30)
    except OSError as error:
        raise InputFileError(path, f"{role} cannot be read: {error.strerror}") from None
    if not magic.startswith(b"SIMPLE  ="):
        raise InputFileError(path, f"{role} is not a FITS file")
    failure = None
    # A failed open leaves its file handle to be closed when the exception is freed (or
    # by the garbage collector): close it here, quietly, since the error is reported.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            model = datamodels.open(path)
            _ = model.data  # forces reading the data, so a truncated file fails here
        except Exception as error:  # stdatamodels/astropy raise many kinds
            failure = str(error)
        # astropy reports an unparsable header card as a VerifyWarning and reads on, so a
        # garbage NAXIS3 ends as a misleading shape error: name the card instead.
        card = _unparsable_card(caught)
        if card is not None and failure is None:
            model.close()
        if failure is not None or card is not None:
            gc.collect()
    if card is not None:
        raise InputFileError(path, f"{role} has a corrupt FITS header card: {card}")
    for warning in caught if failure is None else ():  # the others, as they would be shown
        if not issubclass(warning.category, ResourceWarning):
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if failure is not None:
        raise InputFileError(
            path, f"{role} cannot be read as a JWST data model (truncated or corrupt?): {failure}"
        )
    return model


def _unparsable_card(caught):
    """The first unparsable header card astropy warned about, as one line, or None."""
    from astropy.io.fits.verify import VerifyWarning

    for warning in caught:
        text = " ".join(str(warning.message).split())
        if issubclass(warning.category, VerifyWarning) and (
            "invalid value string" in text or "nparsable card" in text
        ):
            return text
    return None


def read_stack(path, role, *, variance_arrays=False):
    """Read a 3D CubeModel (``_calints`` or ``_psfstack``) as a core ``Stack``.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    role : str
        ``"science exposure"`` or ``"PSF stack"``; used in messages.
    variance_arrays : bool, optional
        Also read the ``VAR_POISSON``, ``VAR_RNOISE`` and ``VAR_FLAT`` arrays the file has
        (of the data's shape) into ``Stack.variance_arrays``, to move them with the data.

    Returns
    -------
    stack : coronalign.core.align.Stack
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
    planes = {}
    for name in ("err", "dq"):
        array = np.asarray(getattr(model, name)) if model.hasattr(name) else None
        if array is not None and array.shape != data.shape:
            model.close()
            raise InputFileError(
                path,
                f"the {name.upper()} array of the {role} has shape {array.shape} but its SCI "
                f"array has shape {data.shape}; they must be the same (an extension of another "
                "shape cannot say which pixels it describes)",
            )
        planes[name] = array
    err, dq = planes["err"], planes["dq"]
    if err is None:
        err = np.zeros(data.shape, dtype=np.float32)
    if dq is None:
        dq = np.zeros(data.shape, dtype=np.uint32)
    variance = _noise_variance(model, data.shape)
    arrays = _variance_arrays(path, model, role, data.shape) if variance_arrays else None
    stack = Stack(data=data, err=err, dq=dq, noise_variance=variance, variance_arrays=arrays)
    return stack, model


def _variance_arrays(path, model, role, shape):
    """The model's VAR_* arrays by attribute name (None if it has none); one of another shape
    than the data is left out, with a warning."""
    arrays = {}
    for name in VARIANCE_NAMES:
        if not model.hasattr(name):
            continue
        array = np.asarray(getattr(model, name))
        if array.ndim == 0 or array.size == 0:  # an empty extension (no data): nothing to use
            log.info("%s: the %s array of the %s is empty: not used", path, name.upper(), role)
            continue
        if array.shape != shape:
            log.warning(
                "%s: the %s array of the %s has shape %s, not that of SCI %s: not used",
                path,
                name.upper(),
                role,
                array.shape,
                shape,
            )
            continue
        arrays[name] = array
    return arrays or None


def _noise_variance(model, shape):
    """``VAR_POISSON + VAR_RNOISE`` where the model has both, of the data's shape, else None."""
    parts = []
    for name in ("var_poisson", "var_rnoise"):
        if not model.hasattr(name):
            return None
        array = np.asarray(getattr(model, name))
        if array.shape != shape:
            return None
        parts.append(array)
    total = parts[0].astype(np.float32) + parts[1].astype(np.float32)
    return total if bool(np.any(np.isfinite(total) & (total > 0))) else None


def read_sci_shape(path, role):
    """Shape of a file's SCI array from its header, without reading the data.

    Parameters
    ----------
    path : str or os.PathLike
        A FITS file with a ``SCI`` extension.
    role : str
        What the file is, for messages.

    Returns
    -------
    tuple of int
        The array's shape, slowest axis first (numpy order).
    """
    from astropy.io import fits

    path = check_input(path, role)
    try:
        header = fits.getheader(path, "SCI")
    except (OSError, KeyError, IndexError, ValueError) as error:
        raise InputFileError(path, f"{role} has no readable SCI extension ({error})") from None
    naxis = int(header.get("NAXIS", 0))
    return tuple(int(header[f"NAXIS{axis}"]) for axis in range(naxis, 0, -1))


def open_validated_model(path):
    """Open a data model with strict schema validation (for checking a product).

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    stdatamodels.DataModel

    Raises
    ------
    Exception
        Whatever stdatamodels, asdf or jsonschema raise for a file that does not open or
        validate (many kinds); the caller reports it.
    """
    from stdatamodels.jwst import datamodels

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # strict validation raises instead
        model = datamodels.open(path, strict_validation=True)
        model.validate()
    return model


def set_meta(node, dotted, value):
    """Set ``node.a.b.c = value`` from ``"a.b.c"``.

    Parameters
    ----------
    node : stdatamodels node
        Usually ``model.meta``.
    dotted : str
        Attribute path below ``node``.
    value : object
        The value (a dict the schema does not know is stored whole).
    """
    *parents, last = dotted.split(".")
    for name in parents:
        node = getattr(node, name)
    setattr(node, last, value)


def write_cube(path, stack, template, meta, *, date=None):
    """Write a CubeModel of ``stack`` with ``template``'s metadata (atomically).

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    stack : coronalign.core.align.Stack
        Data (float32), ERR (float32) and DQ (uint32) planes, and the ``variance_arrays``
        (float32) written as ``VAR_POISSON``, ``VAR_RNOISE``, ``VAR_FLAT`` where it has them.
    template : stdatamodels.DataModel
        Whose metadata the cube takes (``model.update``).
    meta : dict
        Dotted metadata keys and values set afterwards (``meta.filename`` is the file's
        name).
    date : str, optional
        ``DATE`` to record (see :func:`save_model`).
    """
    from stdatamodels.jwst import datamodels

    model = datamodels.CubeModel(
        data=stack.data, err=stack.err, dq=stack.dq, **(stack.variance_arrays or {})
    )
    model.update(template)
    for key, value in meta.items():
        set_meta(model.meta, key, value)
    save_model(model, path, date=date)
    model.close()


def save_model(model, path, *, date=None):
    """Write a data model as a FITS file, atomically, with ``path``'s own name in FILENAME.

    What ``DataModel.save`` does (its ``on_save`` hook, then
    ``stdatamodels.fits_support.to_fits``, as :mod:`coronalign.io.product` does), except
    that the file is first written under a temporary name, which ``save`` would record in
    ``FILENAME``: here ``FILENAME`` is the final name, so the bytes do not depend on the
    temporary name.

    Parameters
    ----------
    model : stdatamodels.DataModel
        The model (its ``meta.filename`` and ``meta.date`` are set).
    path : str or os.PathLike
        The ``.fits`` file to write; its name must be printable ASCII.
    date : str, optional
        ``DATE`` (ISO 8601) to record; default the time of writing.
    """
    from stdatamodels import fits_support

    check_fits_name(path, "output")
    model.on_save(str(Path(path).name))  # FILENAME, DATE, model type, as save() does
    if date is not None:
        model.meta.date = date
    hdulist = fits_support.to_fits(model.instance, model.schema)
    with atomic_output(path) as temporary, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Card is too long")
        hdulist.writeto(temporary, overwrite=True)


def fits_text(text):
    """``text`` as a FITS header value may hold it: printable ASCII.

    Characters outside printable ASCII (an accented letter of a folder's name) are written
    as ``%XX`` escapes of their UTF-8 bytes, as in a URL.

    Parameters
    ----------
    text : str

    Returns
    -------
    str
    """
    return "".join(
        character
        if " " <= character <= "~"
        else "".join(f"%{byte:02X}" for byte in character.encode("utf-8", "surrogateescape"))
        for character in str(text)
    )


def pixel_flags():
    """The JWST pixel DQ flags by name, as stdatamodels defines them (the official step's map).

    Returns
    -------
    dict
        Flag name (upper case, e.g. ``"DO_NOT_USE"``) to its bit value.
    """
    from stdatamodels.jwst.datamodels.dqflags import pixel

    return {str(name).upper(): int(value) for name, value in pixel.items()}
