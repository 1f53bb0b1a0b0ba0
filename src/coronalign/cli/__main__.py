"""``python -m coronalign.cli``: the ``coronalign`` command."""

import sys

from coronalign.cli import main

sys.exit(main())
