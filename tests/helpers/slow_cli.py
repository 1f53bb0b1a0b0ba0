"""``python -m tests.helpers.slow_cli ARGS``: ``coronalign ARGS``, writing products slowly.

Every integration's planes wait ``CORONALIGN_TEST_ROW_DELAY`` seconds (default 0.3) before
they are written, in the main process and in forked workers alike. With
``CORONALIGN_TEST_HOLD`` set to a folder, each process instead writes the first row of each
product and then stops before its second (so a warm-start server's one-row warm-up products,
:mod:`coronalign.io.warm_up`, never stop): it creates ``held-<pid>`` in that folder and waits
until a file ``release`` appears there, or until the process is told to stop (a termination
signal has raised :class:`~coronalign.errors.Interrupted`: a real write would finish its row
in a moment, so the held one then finishes too rather than blocking the unwinding for ever).
A test can then send a real signal to a real ``coronalign align`` that is certain to be
mid-write, however busy the machine is. Only the tests use this: the package has no such
delay.
"""

import os
import sys
import threading
import time
from pathlib import Path

from coronalign import errors
from coronalign.cli import main
from coronalign.io import product

DELAY = float(os.environ.get("CORONALIGN_TEST_ROW_DELAY", "0.3"))
HOLD = os.environ.get("CORONALIGN_TEST_HOLD")
_write_row = product.ProductWriter._write_row
_rows = {}  # (process id, writer) -> rows written (forked workers start afresh)
_stopping = threading.Event()  # set when a termination signal raised Interrupted here
_interrupted_init = errors.Interrupted.__init__


def _noting_interrupted_init(self, *args, **kwargs):
    _stopping.set()
    _interrupted_init(self, *args, **kwargs)


def _hold():
    folder = Path(HOLD)
    (folder / f"held-{os.getpid()}").touch()
    while not (folder / "release").exists() and not _stopping.is_set():
        time.sleep(0.02)


def _slow_write_row(self, *args):
    if HOLD is None:
        time.sleep(DELAY)
    else:
        key = (os.getpid(), id(self))
        written = _rows.get(key, 0)
        _rows[key] = written + 1
        if written == 1:
            _hold()
    return _write_row(self, *args)


product.ProductWriter._write_row = _slow_write_row
errors.Interrupted.__init__ = _noting_interrupted_init

if __name__ == "__main__":
    sys.exit(main())
