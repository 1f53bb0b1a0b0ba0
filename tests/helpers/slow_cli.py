"""``python -m tests.helpers.slow_cli ARGS``: ``coronalign ARGS``, writing products slowly.

Every integration's planes wait ``CORONALIGN_TEST_ROW_DELAY`` seconds (default 0.3) before
they are written, in the main process and in forked workers alike, so a test can send a
real signal to a real ``coronalign align`` while its product is being written. Only the
tests use this: the package has no such delay.
"""

import os
import sys
import time

from coronalign.cli import main
from coronalign.io import product

DELAY = float(os.environ.get("CORONALIGN_TEST_ROW_DELAY", "0.3"))
_write_row = product.ProductWriter._write_row


def _slow_write_row(self, *args):
    time.sleep(DELAY)
    return _write_row(self, *args)


product.ProductWriter._write_row = _slow_write_row

if __name__ == "__main__":
    sys.exit(main())
