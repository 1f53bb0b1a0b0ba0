"""What a command may be given: inputs that are regular files, outputs that are not inputs.

Checked before anything is opened or written, so a hostile path fails at once with one
clear message:

* an input must be a regular file once symbolic links are followed: reading ``/dev/zero``
  never ends, opening a FIFO blocks until someone writes into it, and a folder or a device
  is no data file either (:func:`check_input`, :func:`open_input`);
* an output must not be an input or another output of the same command, however the two
  are spelled (relative or absolute, ``./``, ``..``, symbolic or hard links): comparing
  resolved paths and, for files that exist, their (device, inode) (:func:`check_outputs`);
* an output that exists must be a regular file: the atomic rename would otherwise replace
  a folder, a FIFO or a device (``-o /dev/null`` as root);
* a FITS output's file name must be printable ASCII: FITS headers are ASCII and ``FILENAME``
  records the name (:func:`check_fits_name`); its folders may have any name.

Standard library only.
"""

import os
import stat
from pathlib import Path

from coronalign.errors import InputFileError, shown

__all__ = ["check_fits_name", "check_input", "check_outputs", "kind_of", "open_input"]

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def kind_of(mode):
    """What a file of ``st_mode`` is, for messages (``"a folder"``, ``"a FIFO (named pipe)"``).

    Parameters
    ----------
    mode : int
        ``os.stat(path).st_mode``.

    Returns
    -------
    str
    """
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def check_input(path, role, missing=None):
    """Fail unless ``path`` is an existing regular file (links followed).

    Parameters
    ----------
    path : str or os.PathLike
        The input.
    role : str
        What the file is for, used in messages (``"science exposure"``).
    missing : str, optional
        The message if it does not exist (default ``"<role> file not found"``).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    InputFileError
        It does not exist, cannot be looked at, or is a folder, FIFO, device or socket.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise InputFileError(path, missing or f"{role} file not found") from None
    except OSError as error:  # permission, a loop of links, a name too long
        raise InputFileError(path, f"{role} cannot be read: {error.strerror}") from None
    except ValueError:  # an embedded NUL
        raise InputFileError(path, f"{role}: not a valid file name") from None
    if not stat.S_ISREG(mode):
        raise InputFileError(path, f"{role} is {kind_of(mode)}, not a regular file")
    return path


def open_input(path, role):
    """Open an input for reading in binary, refusing anything but a regular file.

    The file is opened without blocking (a FIFO would otherwise wait for a writer) and its
    kind is taken from the open descriptor, so it cannot be swapped after a check.

    Parameters
    ----------
    path : str or os.PathLike
        The input.
    role : str
        What the file is for, used in messages.

    Returns
    -------
    io.BufferedReader
    """
    path = check_input(path, role)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise InputFileError(path, f"{role} cannot be read: {error.strerror}") from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        raise InputFileError(path, f"{role} is {kind_of(mode)}, not a regular file")
    os.set_blocking(descriptor, True)
    return os.fdopen(descriptor, "rb")


def _identities(path):
    """What a path names: its resolved spellings and, if it exists, (device, inode)."""
    path = Path(path)
    names = {("path", os.path.realpath(path))}
    # An output that is a symbolic link is replaced itself (the rename replaces the link):
    # its own entry counts too, with its folder resolved.
    names.add(("path", os.path.join(os.path.realpath(path.parent), path.name)))
    try:
        info = path.stat()
    except (OSError, ValueError):
        return names
    return names | {("inode", info.st_dev, info.st_ino)}


def _pairs(items):
    """``(role, path)`` pairs from a mapping or an iterable of pairs; ``None`` paths dropped."""
    pairs = items.items() if isinstance(items, dict) else items
    return [(role, Path(path)) for role, path in pairs if path is not None]


def check_outputs(outputs, inputs=()):
    """Fail if an output is an input, another output, or an existing non-regular file.

    Parameters
    ----------
    outputs : dict or iterable of (str, path-like)
        What the command writes: role (``"product"``, ``"shift table"``) and path; a
        ``None`` path (an optional output not asked for) is ignored.
    inputs : dict or iterable of (str, path-like), optional
        What the command reads, likewise.

    Raises
    ------
    InputFileError
        Naming the output, and the input or other output it would replace.
    """
    outputs, inputs = _pairs(outputs), _pairs(inputs)
    for role, path in outputs:
        try:
            mode = path.stat().st_mode
        except (OSError, ValueError):
            mode = None
        if mode is not None and not stat.S_ISREG(mode):
            raise InputFileError(
                path, f"the {role} to write is {kind_of(mode)}; give the name of a file to write"
            )
    inputs = [(role, path, _identities(path)) for role, path in inputs]
    seen = []
    for role, path in outputs:
        identities = _identities(path)
        for other_role, other, other_identities in inputs:
            if identities & other_identities:
                same = "" if str(other) == str(path) else f" ({shown(other)})"
                raise InputFileError(
                    path,
                    f"the {role} to write is the {other_role}{same}: writing it would replace "
                    "an input; choose another output name",
                )
        for other_role, other, other_identities in seen:
            if identities & other_identities:
                same = "" if str(other) == str(path) else f" ({shown(other)})"
                raise InputFileError(
                    path,
                    f"the {role} and the {other_role}{same} would be the same file; give each "
                    "output its own name",
                )
        seen.append((role, path, identities))


def _printable_ascii(text):
    return all(" " <= character <= "~" for character in text)


def check_fits_name(path, role):
    """Fail unless a FITS output's file name is printable ASCII (FITS headers are ASCII).

    ``FILENAME`` records the file's own name; the folders it lies in may have any name.

    Parameters
    ----------
    path : str or os.PathLike
        The FITS file to write.
    role : str
        What it is, for the message.

    Raises
    ------
    InputFileError
    """
    name = Path(path).name
    if not _printable_ascii(name):
        raise InputFileError(
            path,
            f"the {role}'s file name must be printable ASCII: FITS headers are ASCII and "
            "FILENAME records the name (its folders may have any name); rename the output",
        )
