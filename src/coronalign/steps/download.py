"""Inputs from MAST, pinned by an inputs lock: what ``coronalign download`` does.

:func:`download_inputs` fetches associations (and the science and psf members each names)
and single exposures by their MAST product file names into a folder, skipping files that are
already there, and pins every file in the inputs lock (:mod:`coronalign.io.inputs_lock`):
files the lock does not know yet are added to it; files it knows must match it, whether
already on disk or just downloaded, or the run stops with an error naming the file and both
checksums. :func:`verify_inputs_lock` checks a folder against a lock (or a manifest that
embeds one) without the network.

The keyword arguments of :func:`download_inputs` are the keys of the workflow
configuration's ``mast:`` section, so ``download_inputs(**config["mast"])`` does what the
configuration says. Standard library only at import (astropy reads ``CRDS_CTX``, PyYAML a
configuration file, when asked).
"""

import logging
import os
import time
from pathlib import Path

from coronalign.errors import ConfigurationError, InputsLockError, ParameterError
from coronalign.io.association import association_members
from coronalign.io.config import read_config_section
from coronalign.io.headers import primary_header_value
from coronalign.io.inputs_lock import (
    FileRecord,
    compare,
    read_inputs_lock,
    write_inputs_lock,
)
from coronalign.io.mast import (
    MAST_DOWNLOAD_URL,
    TOKEN_VARIABLE,
    ChecksumMismatchError,
    check_product_name,
    download_file,
)

__all__ = [
    "DEFAULT_FOLDER",
    "LOCK_NAME",
    "MAST_SETTINGS",
    "DownloadSummary",
    "calibration_contexts",
    "download_inputs",
    "lock_path",
    "mast_settings",
    "missing_pinned_files",
    "verify_inputs_lock",
]

log = logging.getLogger(__name__)

#: Where the inputs go by default (the ``mast.folder`` default of the workflow).
DEFAULT_FOLDER = "results/inputs"
#: The lock's name in the inputs folder when no other is given.
LOCK_NAME = "inputs.lock.json"
#: The keys of the configuration's ``mast:`` section and their defaults (as in the schema).
MAST_SETTINGS = {
    "associations": [],
    "exposures": [],
    "folder": DEFAULT_FOLDER,
    "lock": f"config/{LOCK_NAME}",
    "base_url": MAST_DOWNLOAD_URL,
}


def lock_path(folder=DEFAULT_FOLDER, lock=None):
    """The inputs lock to use: ``lock`` if given, else ``inputs.lock.json`` in ``folder``."""
    return Path(lock) if lock else Path(folder) / LOCK_NAME


def mast_settings(section=None, *, config=None):
    """The ``mast:`` section of a configuration with its defaults filled in, checked.

    Parameters
    ----------
    section : mapping or None
        The section as read (the workflow has already validated it against its schema;
        ``coronalign download --config`` has not).
    config : str or os.PathLike, optional
        A configuration file (YAML) to read the section from instead.

    Returns
    -------
    dict
        The keyword arguments of :func:`download_inputs`.

    Raises
    ------
    ConfigurationError
        An unknown key, or a value of the wrong type.
    """
    if config is not None:
        section = read_config_section(config, "mast")
    if section is not None and not isinstance(section, dict):
        raise ConfigurationError(f"config mast: a mapping of keys, not {section!r}")
    section = dict(section or {})
    unknown = sorted(set(section) - set(MAST_SETTINGS))
    if unknown:
        raise ConfigurationError(
            f"config mast: unknown key(s) {', '.join(unknown)}; allowed keys: "
            + ", ".join(MAST_SETTINGS)
        )
    settings = {**MAST_SETTINGS, **{k: v for k, v in section.items() if v is not None}}
    for key in ("associations", "exposures"):
        value = settings[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigurationError(f"config mast.{key}: a list of MAST file names, not {value!r}")
    for key in ("folder", "lock", "base_url"):
        if not isinstance(settings[key], str):
            raise ConfigurationError(f"config mast.{key}: a string, not {settings[key]!r}")
    return settings


class DownloadSummary(list):
    """The local paths of the inputs (a list), with what was done to get them.

    Attributes
    ----------
    downloaded, present : list of str
        Names fetched now, and names that were already in the folder.
    lock : pathlib.Path
        The inputs lock that pins them.
    added : list of str
        Names the lock did not pin before (written to it now).
    """

    def __init__(self, paths, downloaded, present, lock, added):
        super().__init__(paths)
        self.downloaded, self.present, self.lock, self.added = downloaded, present, lock, added
        self.repinned = {}


def _names(key, names):
    if isinstance(names, str):
        raise ParameterError(key, f"a list of MAST file names, not the string {names!r}")
    try:
        return [check_product_name(name) for name in names]
    except ParameterError as error:
        raise ParameterError(key, error.problem) from None


def download_inputs(
    associations=(),
    exposures=(),
    folder=DEFAULT_FOLDER,
    lock=None,
    base_url=MAST_DOWNLOAD_URL,
    token_env=TOKEN_VARIABLE,
    *,
    retries=5,
    timeout=60.0,
    sleep=time.sleep,
    repin=(),
):
    """Download associations, their science and psf members, and exposures from MAST.

    Parameters
    ----------
    associations : sequence of str
        Association file names as at MAST (``jw01386-c1020_..._coron3_..._asn.json``); each
        is fetched, then its ``science`` and ``psf`` members (not ``target_acquisition``).
    exposures : sequence of str
        Other product file names (e.g. ``_calints.fits`` files).
    folder : str or os.PathLike
        Where the files go (created if needed); files already there are not fetched again.
    lock : str or os.PathLike, optional
        The inputs lock (default ``<folder>/inputs.lock.json``): created on the first
        download, extended with files it does not pin yet, checked for every file it pins. A
        run manifest that embeds a lock is accepted too, and then only read: every file
        must be pinned by it.
    base_url : str
        The download service (MAST's; the tests give a local one).
    token_env : str
        The environment variable holding a MAST token for proprietary data; sent when set,
        never logged or written.
    retries, timeout, sleep
        As :func:`coronalign.io.mast.download_file`.
    repin : sequence of str
        Pinned names to re-pin deliberately: the local copy is removed, fetched again and
        its lock entry replaced; ``summary.repinned`` maps each to (old, new) SHA-256.

    Returns
    -------
    DownloadSummary
        The local paths, in order: each association and its members, then the exposures
        (each file once).

    Raises
    ------
    InputsLockError
        A file on disk or just downloaded differs from the lock (names the file and both
        SHA-256), or the lock is a manifest that does not pin a file.
    DownloadError
        A file could not be downloaded (not at MAST, needs a token, retries exhausted).
    """
    associations = _names("mast.associations", associations)
    exposures = _names("mast.exposures", exposures)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = lock_path(folder, lock)
    pinned = read_inputs_lock(lock) if lock.exists() else None
    known = dict(pinned.files) if pinned else {}
    token = os.environ.get(token_env, "").strip() or None
    old_pins = {}
    for name in repin:
        if name not in known:
            raise InputsLockError(lock, [f"{name}: not pinned, nothing to re-pin"])
        if pinned.in_manifest:
            raise InputsLockError(lock, [f"{name}: a manifest's lock is only read"])
        old_pins[name] = known.pop(name).sha256
        (folder / name).unlink(missing_ok=True)
    paths, downloaded, present, added, problems = [], [], [], [], []

    def fetch(name):
        path = folder / name
        if path in paths:
            return path
        pin = known.get(name)
        if pin is None and pinned is not None and pinned.in_manifest:
            raise InputsLockError(lock, [f"{name}: not pinned by the manifest"])
        if path.is_file():
            record = FileRecord.of(path)
            present.append(name)
            log.info("%s: already in %s, not downloaded", name, folder)
            problem = compare(pin, record) if pin is not None else None
            if problem:
                problems.append(f"{problem} (found in {folder}; delete it to download it again)")
        else:
            try:
                record = download_file(
                    name,
                    folder,
                    base_url=base_url,
                    token=token,
                    expected=pin,
                    retries=retries,
                    timeout=timeout,
                    sleep=sleep,
                )
            except ChecksumMismatchError as error:
                raise InputsLockError(
                    lock,
                    [
                        f"{error} (downloaded again from {base_url}: MAST may have "
                        "reprocessed it; re-pin deliberately with `coronalign download "
                        "--repin` if the new file is wanted)"
                    ],
                ) from None
            downloaded.append(name)
        if pin is None:
            known[name] = record
            added.append(name)
        paths.append(path)
        return path

    try:
        for association in associations:
            members = association_members(fetch(association))
            for member in (*members["science"], *members["psf"]):
                fetch(_member_name(association, member))
        for exposure in exposures:
            fetch(exposure)
    finally:  # what was obtained is pinned, also when a later file fails
        if (added or old_pins) and not (pinned and pinned.in_manifest):
            write_inputs_lock(lock, known.values(), folder)
    if problems:
        raise InputsLockError(lock, problems)
    log.info(
        "%d input file(s) in %s: %d downloaded, %d already there; pinned by %s (%d new)",
        len(paths),
        folder,
        len(downloaded),
        len(present),
        lock,
        len(added),
    )
    summary = DownloadSummary(paths, downloaded, present, lock, added)
    summary.repinned = {name: (old, known[name].sha256) for name, old in old_pins.items()}
    for name, (old, new) in summary.repinned.items():
        log.warning("%s re-pinned in %s: SHA-256 %s -> %s", name, lock, old, new)
    return summary


def _member_name(association, member):
    try:
        return check_product_name(member)
    except ParameterError:
        raise ConfigurationError(
            f"{association}: member {member!r} is not a plain file name, so it cannot be "
            "fetched from MAST"
        ) from None


def verify_inputs_lock(lock, folder=None):
    """Check that a folder holds every file an inputs lock pins, byte for byte. No network.

    Parameters
    ----------
    lock : str or os.PathLike
        An inputs lock, or a run manifest that embeds one.
    folder : str or os.PathLike, optional
        Where the files are (default: the folder recorded in the lock).

    Returns
    -------
    list of pathlib.Path
        The pinned files, in name order.

    Raises
    ------
    InputsLockError
        Missing files and files whose size or SHA-256 differ, each named with both checksums.
    ParameterError
        No folder given and none recorded in the lock.
    """
    pinned = read_inputs_lock(lock)
    if folder is None:
        if pinned.folder is None:
            raise ParameterError("folder", f"{lock} records no folder: give the inputs folder")
        folder = pinned.folder
    folder = Path(folder)
    problems, paths = [], []
    for name, pin in sorted(pinned.files.items()):
        path = folder / name
        paths.append(path)
        if not path.is_file():
            problems.append(f"{name}: missing from {folder} (the lock pins {pin.sha256})")
        elif problem := compare(pin, FileRecord.of(path)):
            problems.append(problem)
    if problems:
        raise InputsLockError(lock, problems)
    log.info("%d file(s) in %s match %s", len(paths), folder, lock)
    return paths


def missing_pinned_files(lock, folder):
    """The names an inputs lock pins that are not in ``folder`` (none if there is no lock).

    The workflow fetches them again with :func:`download_inputs`, which compares each with
    the lock: identical is accepted, different stops the run naming both SHA-256.
    """
    lock = Path(lock)
    if not lock.exists():
        return []
    pinned = read_inputs_lock(lock)
    return sorted(name for name in pinned.files if not (Path(folder) / name).is_file())


def calibration_contexts(paths):
    """The CRDS contexts the FITS files among ``paths`` were calibrated with (``CRDS_CTX``).

    Pin ``crds.context`` to it to select the PSFMASK with the rules MAST used.

    Returns
    -------
    dict
        Context (or ``"unknown"``) to the names of the files that record it.
    """
    contexts = {}
    for path in paths:
        if Path(path).suffix.lower() == ".fits":
            context = primary_header_value(path, "CRDS_CTX") or "unknown"
            contexts.setdefault(str(context), []).append(Path(path).name)
    return contexts
