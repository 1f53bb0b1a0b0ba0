"""The catalogue of bad inputs: each gives one clear message, no traceback, no output.

``coronalign align`` exits with status 2 and prints one ``coronalign: error:`` line that
names the file or parameter. Nothing is left under the output's name or as a partial file.
The workflow's side of the catalogue: tests/workflow/test_bad_input.py.
"""

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels

from coronalign import simulation
from coronalign.cli import main
from tests.helpers.commands import align_command


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    sim = simulation.simulate_exposures("nircam", nints=2, npsfs=2, seed=4, shape=(64, 64))
    return simulation.write_simulation(sim, folder)


def _with_data(source, target, change):
    """Copy a CubeModel file, changing its SCI array."""
    with datamodels.open(source) as model:
        model.data = change(model.data.copy())
        model.save(target)
    return target


def _mask(target, values):
    datamodels.PsfMaskModel(data=np.asarray(values, dtype=np.float32)).save(target)
    return target


def _not_fits(path):
    path.write_text("SIMPLE? no, this is a text file\n")
    return path


def _truncated(source, path):
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _image(path):
    datamodels.ImageModel(data=np.ones((64, 64), np.float32)).save(path)
    return path


def _cube_mask(path):
    fits.HDUList(
        [fits.PrimaryHDU(), fits.ImageHDU(np.ones((2, 64, 64), np.float32), name="SCI")]
    ).writeto(path)
    return path


def _all_nan(data):
    data[:] = np.nan
    return data


CASES = {
    # case: (which argument, how to make the bad file, words the message must contain)
    "missing science": ("science", lambda d, g: d / "nothere_calints.fits", ["file not found"]),
    "not FITS": ("science", lambda d, g: _not_fits(d / "text.fits"), ["not a FITS file"]),
    "truncated FITS": (
        "science",
        lambda d, g: _truncated(g["science"], d / "cut_calints.fits"),
        ["cannot be read", "truncated"],
    ),
    "2D image as science": (
        "science",
        lambda d, g: _image(d / "image_cal.fits"),
        ["must be a 3D CubeModel", "2D"],
    ),
    "cube as mask": ("psfmask", lambda d, g: _cube_mask(d / "cube_mask.fits"), ["2D"]),
    "mask of another frame": (
        "psfmask",
        lambda d, g: _mask(d / "small_mask.fits", np.ones((32, 32))),
        ["32x32", "64x64"],
    ),
    "all-zero mask": (
        "psfmask",
        lambda d, g: _mask(d / "zero_mask.fits", np.zeros((64, 64))),
        ["zero"],
    ),
    "negative mask weights": (
        "psfmask",
        lambda d, g: _mask(d / "neg_mask.fits", -np.ones((64, 64))),
        ["negative"],
    ),
    "NaN mask weights": (
        "psfmask",
        lambda d, g: _mask(d / "nan_mask.fits", np.full((64, 64), np.nan)),
        ["NaN"],
    ),
    "all-NaN exposure": (
        "science",
        lambda d, g: _with_data(g["science"], d / "nan_calints.fits", _all_nan),
        ["no finite pixel"],
    ),
    "all-NaN PSF stack": (
        "psfstack",
        lambda d, g: _with_data(g["psfstack"], d / "nan_psfstack.fits", _all_nan),
        ["no finite pixel"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_gives_one_clear_message_and_no_output(case, good, tmp_path, capsys):
    role, make, words = CASES[case]
    bad = make(tmp_path, good)
    paths = {**good, role: bad}
    out = tmp_path / "out" / "x_psfalign.fits"
    out.parent.mkdir()
    status = main(
        align_command(
            paths["science"],
            paths["psfstack"],
            paths["psfmask"],
            out,
            "--shifts",
            out.with_suffix(".ecsv"),
        )
    )
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("coronalign: error:")]
    assert status == 2
    assert len(errors) == 1, err
    assert bad.name in errors[0]
    for word in words:
        assert word in errors[0]
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--bad-bits", "DO_NOT_USE+NOT_A_FLAG", ["bad_bits", "NOT_A_FLAG", "SATURATED"]),
        ("--median-box-length", "-3", ["median_box_length", "-3"]),
        ("--median-box-length", "3.5", ["median_box_length", "3.5"]),
    ],
)
def test_bad_parameter_gives_one_clear_message(option, value, words, good, tmp_path, capsys):
    out = tmp_path / "x_psfalign.fits"
    args = ["align", str(good["science"]), str(good["psfstack"]), "--psfmask"]
    args += [str(good["psfmask"]), "-o", str(out), option, value]
    assert main(args) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1
    for word in words:
        assert word in errors[0]
    assert not out.exists()


def test_all_nan_integration_is_documented_not_an_error(good, tmp_path):
    """Some all-NaN integrations: aligned anyway, those rows say no_data, planes flagged."""

    def first_nan(data):
        data[0] = np.nan
        return data

    science = _with_data(good["science"], tmp_path / "half_calints.fits", first_nan)
    out = tmp_path / "x_psfalign.fits"
    table = tmp_path / "x.ecsv"
    args = ["-q", "align", str(science), str(good["psfstack"]), "--psfmask"]
    args += [str(good["psfmask"]), "-o", str(out), "--shifts", str(table)]
    assert main(args) == 0
    from astropy.table import Table

    rows = Table.read(table)
    assert set(rows[rows["integration"] == 0]["status"]) == {"no_data"}
    assert set(rows[rows["integration"] == 1]["status"]) == {"converged"}
    with datamodels.open(out) as model:
        assert np.all(model.dq[0] & 1)
        assert np.isfinite(model.data).all()
