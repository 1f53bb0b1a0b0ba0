"""Outputs written under a temporary name beside their destination and renamed when complete.

An interrupted run (even killed with ``SIGKILL``) never leaves a partial file under an
output's name; the next attempt at the same output removes what it left behind. Standard
library only.
"""

import contextlib
import logging
import os
import tempfile
from pathlib import Path

from coronalign.errors import InputFileError

__all__ = ["AtomicOutput", "atomic_output"]

log = logging.getLogger(__name__)


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
