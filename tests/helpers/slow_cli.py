"""``python -m tests.helpers.slow_cli ARGS``: ``coronalign ARGS``, writing products slowly.

Every integration's planes wait ``CORONALIGN_TEST_ROW_DELAY`` seconds (default 0.3) before
they are written, in the main process and in forked workers alike. With
``CORONALIGN_TEST_HOLD`` set to a folder, each process instead writes its first row and then
stops before its second: it creates ``held-<pid>`` in that folder and waits until a file
``release`` appears there. A test can then send a real signal to a real ``coronalign align``
that is certain to be mid-write, however busy the machine is. Only the tests use this: the
package has no such delay.
"""

import os
import sys
import time
from pathlib import Path

from coronalign.cli import main
from coronalign.io import product

DELAY = float(os.environ.get("CORONALIGN_TEST_ROW_DELAY", "0.3"))
HOLD = os.environ.get("CORONALIGN_TEST_HOLD")
_write_row = product.ProductWriter._write_row
_rows = {}  # process id -> rows this process has written (forked workers start afresh)


def _hold():
    folder = Path(HOLD)
    (folder / f"held-{os.getpid()}").touch()
    while not (folder / "release").exists():
        time.sleep(0.02)


def _slow_write_row(self, *args):
    if HOLD is None:
        time.sleep(DELAY)
    else:
        written = _rows.get(os.getpid(), 0)
        _rows[os.getpid()] = written + 1
        if written == 1:
            _hold()
    return _write_row(self, *args)


product.ProductWriter._write_row = _slow_write_row

if __name__ == "__main__":
    sys.exit(main())
