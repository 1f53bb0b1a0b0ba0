"""The inputs lock: the name, size and SHA-256 of every file a reduction starts from.

A JSON file, written when the inputs are first downloaded and checked on every later run::

    {
      "format": "coronalign-inputs-lock-1",
      "folder": "results/inputs",
      "files": [
        {"name": "jw01386002001_03108_00001_nrcalong_calints.fits",
         "size": 54734400, "sha256": "9f2c..."},
        ...
      ]
    }

``files`` is sorted by name; ``folder`` is where the files were put (as given, relative to
the folder the workflow runs in), the default place to look for them.

One record format for the whole project: every record here (``name``, ``size``,
``sha256``) is the record a product keeps of each of its inputs
(:func:`coronalign.io.provenance.provenance_record`, which adds the ``path``), and so the
record of the run manifest's ``inputs``. A manifest written with the lock embeds this whole
document as its ``inputs_lock``, so a paper can publish the manifest alone:
:func:`read_inputs_lock` reads a lock file or a manifest that holds one.

Standard library only.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from coronalign.errors import InputFileError
from coronalign.io.atomic import atomic_output
from coronalign.io.provenance import file_sha256
from coronalign.io.strict_load import load_json

__all__ = [
    "LOCK_FORMAT",
    "MANIFEST_KEY",
    "FileRecord",
    "InputsLock",
    "compare",
    "lock_document",
    "read_inputs_lock",
    "write_inputs_lock",
]

log = logging.getLogger(__name__)

LOCK_FORMAT = "coronalign-inputs-lock-1"
#: The key of a run manifest that holds its inputs lock.
MANIFEST_KEY = "inputs_lock"


@dataclass(frozen=True)
class FileRecord:
    """What pins one file: its name, its size in bytes and the SHA-256 of its bytes."""

    name: str
    size: int
    sha256: str

    @classmethod
    def of(cls, path):
        """The record of a file on disk (reads it whole once)."""
        path = Path(path)
        return cls(path.name, path.stat().st_size, file_sha256(path))

    def as_dict(self):
        return {"name": self.name, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class InputsLock:
    """An inputs lock as read.

    Attributes
    ----------
    path : pathlib.Path
        The file it was read from (a lock, or a manifest that embeds one).
    files : dict
        File name to :class:`FileRecord`.
    folder : str or None
        Where the files were put when the lock was written.
    in_manifest : bool
        True when read from a run manifest: such a lock is read, never rewritten.
    """

    path: Path
    files: dict
    folder: str | None = None
    in_manifest: bool = False


def compare(pinned, found):
    """One sentence naming the file and both sizes or checksums, or None when they agree.

    Parameters
    ----------
    pinned, found : FileRecord
        What the lock says and what the file is.
    """
    if found.sha256 == pinned.sha256 and found.size == pinned.size:
        return None
    return (
        f"{pinned.name}: SHA-256 {found.sha256} ({found.size} bytes), the lock pins "
        f"{pinned.sha256} ({pinned.size} bytes)"
    )


def _record(path, item):
    if not isinstance(item, dict) or not {"name", "size", "sha256"} <= set(item):
        raise InputFileError(path, f"an inputs lock entry needs name, size and sha256: {item!r}")
    try:
        record = FileRecord(str(item["name"]), int(item["size"]), str(item["sha256"]).lower())
    except (TypeError, ValueError):
        raise InputFileError(path, f"an inputs lock entry has a bad size: {item!r}") from None
    if len(record.sha256) != 64 or set(record.sha256) - set("0123456789abcdef"):
        raise InputFileError(path, f"{record.name}: {record.sha256!r} is not a SHA-256")
    return record


def read_inputs_lock(path):
    """Read an inputs lock, or the one a run manifest embeds.

    Parameters
    ----------
    path : str or os.PathLike
        A lock file (format ``coronalign-inputs-lock-1``) or a manifest written with one.

    Returns
    -------
    InputsLock

    Raises
    ------
    InputFileError
        The file is missing or not JSON, is neither a lock nor a manifest with a lock, or
        an entry lacks a name, size or SHA-256.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "inputs lock not found")
    try:
        document = load_json(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InputFileError(path, f"is not a readable JSON inputs lock: {error}") from None
    if not isinstance(document, dict):
        raise InputFileError(path, "is not an inputs lock (a JSON object)")
    in_manifest = document.get("format") != LOCK_FORMAT and "products" in document
    if in_manifest:
        document = document.get(MANIFEST_KEY)
        if not isinstance(document, dict):
            raise InputFileError(
                path,
                "is a manifest without an inputs lock (it was written without "
                "--inputs-lock); give the inputs lock itself",
            )
    if document.get("format") != LOCK_FORMAT:
        raise InputFileError(path, f"is not an inputs lock (format {LOCK_FORMAT})")
    files = document.get("files")
    if not isinstance(files, list):
        raise InputFileError(path, "the inputs lock has no list of files")
    records = {}
    for item in files:
        record = _record(path, item)
        if record.name in records and records[record.name] != record:
            raise InputFileError(path, f"{record.name} is pinned twice, differently")
        records[record.name] = record
    folder = document.get("folder")
    return InputsLock(path, records, str(folder) if folder else None, in_manifest)


def lock_document(records, folder=None):
    """The JSON document of an inputs lock.

    Parameters
    ----------
    records : iterable of FileRecord
    folder : str or os.PathLike, optional
        Where the files are (recorded as given).

    Returns
    -------
    dict
    """
    document = {"format": LOCK_FORMAT}
    if folder is not None:
        document["folder"] = str(folder)
    document["files"] = [record.as_dict() for record in sorted(records, key=lambda r: r.name)]
    return document


def write_inputs_lock(path, records, folder=None):
    """Write an inputs lock, atomically (a reader sees the old lock or the new one).

    Parameters
    ----------
    path : str or os.PathLike
        The lock file; its folder is created if needed.
    records : iterable of FileRecord
    folder : str or os.PathLike, optional
        Where the files are (recorded as given).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(lock_document(records, folder), indent=2) + "\n"
    with atomic_output(path) as temporary:
        temporary.write_text(text)
    log.info("wrote the inputs lock %s", path)
