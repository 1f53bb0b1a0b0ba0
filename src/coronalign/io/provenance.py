"""What a product needs to be reproduced: software versions, parameters, input checksums.

Standard library at import (numpy only inside :func:`data_sha256`), so the inputs lock and
the downloader, which use :func:`file_sha256`, load without it.
"""

import hashlib
import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from coronalign.io.paths import open_input

__all__ = [
    "ENVIRONMENT_LOCK",
    "SOFTWARE",
    "data_sha256",
    "environment_lock_record",
    "file_sha256",
    "provenance_record",
    "recorded_text",
    "software_versions",
]

#: Packages whose versions can change the numbers in a product.
SOFTWARE = ("coronalign", "numpy", "scipy", "astropy", "stdatamodels", "crds")

#: The hashed lock of the Python environment (``make env`` installs it, ``make lock``
#: refreshes it), relative to the repository the package runs from.
ENVIRONMENT_LOCK = "requirements/lock.txt"


def software_versions():
    """Installed versions of the packages that shape the results.

    Returns
    -------
    dict
        Package name to version string (``"not installed"`` if absent), plus ``python``.
    """
    versions = {"python": platform.python_version()}
    for name in SOFTWARE:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def environment_lock_record(path=None):
    """Which environment lock the running code comes with: its path and SHA-256.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The lock file. By default :data:`ENVIRONMENT_LOCK` in the repository this package
        is installed from (``make env`` installs it editable, so the repository is three
        folders above this module); a package installed from a wheel has none.

    Returns
    -------
    dict
        ``path`` (as given, or :data:`ENVIRONMENT_LOCK`) and ``sha256`` (``None`` when the
        file is not there).
    """
    if path is None:
        shown, found = ENVIRONMENT_LOCK, Path(__file__).resolve().parents[3] / ENVIRONMENT_LOCK
    else:
        shown, found = str(path), Path(path)
    return {"path": shown, "sha256": file_sha256(found) if found.is_file() else None}


def file_sha256(path, chunk_size=1 << 22, stop=None):
    """SHA-256 of a file's bytes, read in chunks.

    Parameters
    ----------
    path : str or os.PathLike
        The file; it must be a regular file (a FIFO or a device is refused: reading
        ``/dev/zero`` would never end).
    chunk_size : int, optional
        Bytes read at a time.
    stop : threading.Event, optional
        When set (the step failed, from another thread), the reading stops: the result is
        then None.

    Returns
    -------
    str or None
        Hexadecimal digest; None if stopped.
    """
    digest = hashlib.sha256()
    with open_input(path, "input") as stream:
        while chunk := stream.read(chunk_size):
            if stop is not None and stop.is_set():
                return None
            digest.update(chunk)
    return digest.hexdigest()


def recorded_text(path):
    """A path as text that any UTF-8 record can hold.

    A name that is not UTF-8 (bytes of another encoding, which Python keeps as lone
    surrogates) is written with ``\\xNN`` escapes for those bytes.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def provenance_record(inputs, parameters, crds=None, digests=None):
    """Everything needed to reproduce a product, as a JSON-compatible dict.

    Parameters
    ----------
    inputs : dict
        Role (``"science"``, ``"psfstack"``, ``"psfmask"``) to file path.
    parameters : dict
        Step parameters as used.
    crds : dict, optional
        CRDS context and client version when the mask came from CRDS.
    digests : dict, optional
        Role to the file's SHA-256 when already computed (by default computed here).

    Returns
    -------
    dict
        ``software``, ``parameters``, ``inputs`` (per role: the path as given, and the
        file's name, size in bytes and SHA-256: the record of an inputs lock, see
        :mod:`coronalign.io.inputs_lock`), ``crds``.
    """
    return {
        "software": software_versions(),
        "parameters": dict(parameters),
        "inputs": {
            role: {
                "path": recorded_text(path),
                "name": recorded_text(Path(path).name),
                "size": Path(path).stat().st_size,
                "sha256": (digests or {}).get(role) or file_sha256(path),
            }
            for role, path in inputs.items()
        },
        "crds": dict(crds or {}),
    }


def data_sha256(path):
    """SHA-256 of a product's SCI, ERR and DQ arrays, and its VAR_* arrays where it has them
    (the numbers, not the file).

    The file itself also holds the date it was written, so two runs that give identical
    numbers give different files; this digest is what "bit-for-bit identical" means.

    Parameters
    ----------
    path : str or os.PathLike
        A FITS product with ``SCI``, ``ERR`` and ``DQ`` extensions.

    Returns
    -------
    dict
        Extension name to hexadecimal digest of its values, as stored in the file (FITS
        big-endian; DQ as int32 with BZERO = 2**31), read plane by plane so any product
        size fits in memory.
    """
    import numpy as np
    from astropy.io import fits

    digests = {}
    with fits.open(path, memmap=True, do_not_scale_image_data=True) as hdulist:
        from coronalign.core.results import VARIANCE_NAMES  # numpy: only when digesting

        present = {hdu.name for hdu in hdulist}
        variances = [n.upper() for n in VARIANCE_NAMES if n.upper() in present]
        for name in ("SCI", "ERR", "DQ", *variances):
            digest = hashlib.sha256()
            data = hdulist[name].data
            for plane in data.reshape(-1, *data.shape[-2:]):
                digest.update(np.ascontiguousarray(plane).tobytes())
            digests[name] = digest.hexdigest()
    return digests
