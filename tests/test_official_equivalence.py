"""Agreement with the official jwst 1.15.1 step, on golden files it produced.

The inputs and the official results under tests/data/ were made by
benchmarks/official/make_golden.py, which runs the released jwst in a throw-away
environment (see tests/data/official*/README.md). Two sets:

* ``official_clean``: noise, no bad pixels. Both implementations then clean the images
  identically, so this compares the fits themselves: within 2e-3 px is required.
* ``official``: noise and bad pixels. jwst 1.15.1 zeroes bad pixels next to unflagged
  NaNs and row/column 0 (documented defects we fix), which moves its fit by up to
  ~2e-2 px; there we require agreement to that level and that our fit is the closer one
  to the simulator's exact truth.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from stdatamodels.jwst import datamodels

from coronalign.cli import main
from tests.helpers.commands import align_command

DATA = Path(__file__).parent / "data"
INSTRUMENTS = ("nircam", "miri")


def _run(folder, tmp_path):
    out = tmp_path / f"{folder.name}_psfalign.fits"
    table = tmp_path / f"{folder.name}_psfshifts.ecsv"
    args = [
        "-q",
        *align_command(
            folder / "golden_calints.fits",
            folder / "golden_psfstack.fits",
            folder / "golden_psfmask.fits",
            out,
            "--shifts",
            table,
        ),
    ]
    assert main(args) == 0
    official = json.loads((folder / "official_shifts_jwst-1.15.1.json").read_text())
    shape = np.shape(official["xshift"])
    ours = Table.read(table)
    ours = {key: np.reshape(ours[key], shape) for key in ("xshift", "yshift", "beta")}
    official = {key: np.asarray(official[key]) for key in ("xshift", "yshift", "beta")}
    return out, ours, official


@pytest.mark.parametrize("instrument", INSTRUMENTS)
def test_fit_matches_official_115_on_identical_arrays(instrument, tmp_path):
    folder = DATA / "official_clean" / instrument
    out, ours, official = _run(folder, tmp_path)
    for key in ("xshift", "yshift"):
        assert np.max(np.abs(ours[key] - official[key])) <= 2e-3
    np.testing.assert_allclose(ours["beta"], official["beta"], rtol=1e-4)
    # The aligned plane [k=1, m=2] agrees to float32 precision.
    plane = np.load(folder / "official_aligned_sci_k1_m2_jwst-1.15.1.npy")
    with datamodels.open(out) as model:
        np.testing.assert_allclose(model.data[1, 2], plane, rtol=0, atol=1e-5 * np.abs(plane).max())


@pytest.mark.parametrize("instrument", INSTRUMENTS)
def test_with_bad_pixels_we_are_close_to_official_and_closer_to_truth(instrument, tmp_path):
    folder = DATA / "official" / instrument
    _, ours, official = _run(folder, tmp_path)
    truth = json.loads((folder / "truth.json").read_text())

    def rms_error(values):
        errors = [np.asarray(values[key]) - np.asarray(truth[key]) for key in ("xshift", "yshift")]
        return float(np.sqrt(np.mean(np.square(errors))))

    for key in ("xshift", "yshift"):
        assert np.max(np.abs(ours[key] - official[key])) <= 2e-2
    assert rms_error(ours) <= rms_error(official)
