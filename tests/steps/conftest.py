"""A small data set aligned through a PSFMASK selection file, shared by the steps' tests."""

import pytest

from coronalign.cli import main
from tests.helpers.datasets import write_small_dataset


@pytest.fixture(scope="package")
def aligned(tmp_path_factory):
    """A small data set aligned through a PSFMASK selection file (override)."""
    folder = tmp_path_factory.mktemp("validate")
    paths, _ = write_small_dataset(folder)
    selection = folder / "selection.json"
    science = str(paths["science"])
    args = ["-q", "psfmask", science, "--override", str(paths["psfmask"]), "-o", str(selection)]
    assert main(args) == 0
    product, shifts = folder / "x_psfalign.fits", folder / "x_psfshifts.ecsv"
    args = ["-q", "align", science, str(paths["psfstack"]), "--psfmask-selection", str(selection)]
    assert main([*args, "-o", str(product), "--shifts", str(shifts)]) == 0
    return {**paths, "selection": selection, "product": product, "shifts": shifts}
