"""The options the official step lacks, through the command line: recorded, validated."""

import json

import numpy as np
import pytest
from astropy.table import Table
from stdatamodels.jwst import datamodels

from coronalign.cli import main
from coronalign.steps.parameters import StepParameters
from tests.helpers.commands import align_command
from tests.helpers.datasets import write_small_dataset

OPTIONS = ["--edges", "pad", "--reference", "mean", "--blur-fwhm", "1.5", "--err-shift", "official"]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    paths, truth = write_small_dataset(folder)
    return folder, paths, truth


def _align(folder, paths, name, *extra):
    out = folder / f"{name}_psfalign.fits"
    table = folder / f"{name}_psfshifts.ecsv"
    args = align_command(paths["science"], paths["psfstack"], paths["psfmask"], out)
    assert main(["-q", *args, "--shifts", str(table), *extra]) == 0
    return out, table


def test_options_are_recorded_and_read_back(small):
    folder, paths, _ = small
    out, table = _align(folder, paths, "options", *OPTIONS)
    with datamodels.open(out) as model:
        record = model.meta.coronalign.instance["parameters"]
        nan = np.isnan(model.data)
        flagged = (model.dq & 1) == 1
    expected = {"edges": "pad", "reference": "mean", "blur_fwhm": 1.5, "err_shift": "official"}
    assert {key: record[key] for key in expected} == expected
    assert StepParameters.from_record(record) == StepParameters(**expected)
    assert Table.read(table).meta["parameters"]["edges"] == "pad"
    assert nan.any()  # pad: the pixels with no source are NaN...
    assert flagged[nan].all()  # ...and flagged
    # reference mean: every integration got the same shifts
    shifts = Table.read(table)
    for psf in set(shifts["psf"]):
        assert len(set(shifts["xshift"][shifts["psf"] == psf])) == 1


def test_a_padded_product_validates_with_a_warning(small):
    folder, paths, _ = small
    out, table = _align(folder, paths, "padded", "--edges", "pad")
    report = folder / "padded.json"
    assert main(["-q", "validate", str(out), "--shifts", str(table), "--report", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["status"] == "passed"
    assert any("non-finite" in warning for warning in result["warnings"])
    assert result["commanded_offsets"] is None  # no XOFFSET/YOFFSET in these files


def test_the_defaults_record_the_official_behaviour_but_err(small):
    folder, paths, _ = small
    _, table = _align(folder, paths, "defaults")
    parameters = Table.read(table).meta["parameters"]
    assert parameters["edges"] == "wrap"
    assert parameters["reference"] == "each"
    assert parameters["blur_fwhm"] == "none"
    assert parameters["err_shift"] == "propagated"


@pytest.mark.parametrize(
    ("option", "value"),
    [("--edges", "mirror"), ("--reference", "last"), ("--err-shift", "shifted")],
)
def test_unknown_choices_are_refused(small, option, value, capsys):
    folder, paths, _ = small
    args = align_command(paths["science"], paths["psfstack"], paths["psfmask"], folder / "x.fits")
    with pytest.raises(SystemExit):
        main([*args, option, value])
    assert "invalid choice" in capsys.readouterr().err


def test_a_negative_blur_is_one_error_line(small, capsys):
    folder, paths, _ = small
    args = align_command(paths["science"], paths["psfstack"], paths["psfmask"], folder / "y.fits")
    assert main([*args, "--blur-fwhm", "-1"]) == 2
    assert "blur_fwhm" in capsys.readouterr().err
