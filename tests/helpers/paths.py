"""Where things are: the repository, the test data, the project's tools."""

import sys
from pathlib import Path

__all__ = ["BIN", "DATA", "REPOSITORY"]

#: The repository's root (the Snakefile's folder).
REPOSITORY = Path(__file__).resolve().parents[2]
#: Committed test data (golden files of the official step, associations).
DATA = REPOSITORY / "tests" / "data"
#: The folder of this Python's tools (``coronalign``, ``snakemake``): ``.venv/bin``.
BIN = Path(sys.executable).parent
