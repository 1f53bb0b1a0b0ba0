"""Outputs written under a temporary name beside their destination and renamed when complete.

An interrupted run never leaves a partial file under an output's name. What it may leave
is its hidden temporary file (killed with ``SIGKILL``, or the machine lost; a run stopped
by ``SIGTERM``, ``SIGHUP`` or ``SIGINT`` removes its own, see
:mod:`coronalign.steps.interrupt`). A later attempt at the same output removes such a
file only when its owner is provably gone, never one another process is still writing:

* a temporary file is named ``.<stem>.<pid>-<start>-<machine>-<random>.partial<ext>``,
  with its owner's process id, the owner's start time (clock ticks since boot, from
  ``/proc``: a process id can be reused, the pair cannot) and a tag of the machine
  (host name, boot and process-id namespace, hashed);
* it is stale when the tag is this machine's and no process with that id and start time
  runs. A file made on another host (a shared file system, a cluster) or in another boot
  is left alone, as is anything not named exactly so: an output's name is matched
  literally (glob characters in it are plain characters), and ``a.fits``'s temporary
  files are never confused with those of ``a.b.fits``.

Where ``/proc`` is missing (not Linux), nothing is ever removed. Standard library only.
"""

import contextlib
import hashlib
import logging
import os
import re
import socket
import stat
import tempfile
from pathlib import Path

from coronalign.errors import InputFileError
from coronalign.io.paths import kind_of

__all__ = ["AtomicOutput", "atomic_output", "discard_all", "in_progress"]

log = logging.getLogger(__name__)

#: Temporary files of this process not yet committed or discarded: path -> (final, pid).
_LIVE = {}


def _start_time(pid):
    """Start time of process ``pid`` in clock ticks since boot, or None if it does not run."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as stream:
            fields = stream.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError, ValueError):
        return None
    try:
        return int(fields[19])  # field 22 of proc(5); fields[0] is field 3
    except (IndexError, ValueError):
        return None


def _read(path):
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


_MACHINE = []


def _machine():
    """8 hex digits naming this host, boot and process-id namespace; None without /proc."""
    if not _MACHINE:
        boot = _read("/proc/sys/kernel/random/boot_id")
        try:
            namespace = os.stat("/proc/self/ns/pid").st_ino
        except OSError:
            namespace = None
        if boot is None or namespace is None or _start_time(os.getpid()) is None:
            _MACHINE.append(None)
        else:
            text = f"{socket.gethostname()}\n{boot}\n{namespace}"
            _MACHINE.append(hashlib.sha256(text.encode()).hexdigest()[:8])
    return _MACHINE[0]


def _pattern(path):
    """The names of ``path``'s temporary files; groups: pid, start time, machine."""
    return re.compile(
        rf"\.{re.escape(path.stem)}\.(\d+)-(\d+)-([0-9a-f]{{8}}|none)-[a-z0-9_]+"
        rf"\.partial{re.escape(path.suffix)}"
    )


def _remove_stale(path):
    """Remove temporary files of ``path`` whose owner provably no longer runs."""
    machine = _machine()
    if machine is None:
        return
    pattern = _pattern(path)
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        found = pattern.fullmatch(entry.name)
        if found is None or found.group(3) != machine:
            continue
        pid, start = int(found.group(1)), int(found.group(2))
        if _start_time(pid) == start:
            continue  # its owner is still writing it
        try:
            if not stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        log.info("removed %s, left by process %d, which no longer runs", entry.path, pid)


class AtomicOutput:
    """A temporary file beside ``path`` that becomes ``path`` only when committed.

    Parameters
    ----------
    path : str or os.PathLike
        Final destination. Its folder must exist and be writable; if it exists, it must be
        a regular file (or a link to one), which the commit replaces.

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
        try:
            mode = self.path.stat().st_mode
        except OSError:
            mode = None
        if mode is not None and not stat.S_ISREG(mode):
            raise InputFileError(self.path, f"the output is {kind_of(mode)}, not a file")
        _remove_stale(self.path)
        pid = os.getpid()
        owner = f"{pid}-{_start_time(pid) or 0}-{_machine() or 'none'}-"
        # Keep the extension: writers choose the format from it.
        try:
            handle, temporary = tempfile.mkstemp(
                prefix=f".{self.path.stem}.{owner}",
                suffix=f".partial{self.path.suffix}",
                dir=folder,
            )
        except OSError as error:
            raise InputFileError(
                folder, f"cannot create a file in the output folder: {error.strerror}"
            ) from None
        self.temporary = Path(temporary)
        _LIVE[self.temporary] = (self.path, pid)
        os.close(handle)
        umask = os.umask(0)
        os.umask(umask)
        self.temporary.chmod(0o666 & ~umask)  # mkstemp creates 0600; products are ordinary

    def commit(self):
        """Rename the temporary file to the final path."""
        try:
            os.replace(self.temporary, self.path)
        except OSError as error:
            raise InputFileError(self.path, f"cannot write the output: {error.strerror}") from None
        _LIVE.pop(self.temporary, None)

    def discard(self):
        """Remove the temporary file (harmless after :meth:`commit`)."""
        if self.temporary in _LIVE:
            self.temporary.unlink(missing_ok=True)
            _LIVE.pop(self.temporary, None)


def in_progress():
    """The outputs this process is writing (their final paths), oldest first.

    Returns
    -------
    list of pathlib.Path
    """
    pid = os.getpid()
    return [final for final, owner in list(_LIVE.values()) if owner == pid]


def discard_all():
    """Remove every temporary file of this process at once (a last resort: see
    :mod:`coronalign.steps.interrupt`); their outputs are not written."""
    pid = os.getpid()
    for temporary, (_, owner) in list(_LIVE.items()):
        if owner == pid:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            _LIVE.pop(temporary, None)


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
        Where to write. Removed if the block raises; an ``OSError`` raised by the block
        (disk full, read-only file system) becomes an
        :class:`~coronalign.errors.InputFileError` naming ``path``.
    """
    output = AtomicOutput(path)
    try:
        try:
            yield output.temporary
        except OSError as error:
            raise InputFileError(
                output.path, f"cannot write the output: {error.strerror or error}"
            ) from None
        output.commit()
    finally:
        output.discard()
