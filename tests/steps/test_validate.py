"""Validation of a product and its shift table (coronalign validate)."""

import json
import re
import shutil

import numpy as np
import pytest
from astropy.table import Table
from stdatamodels.jwst import datamodels

from coronalign.cli import main
from coronalign.steps.validate import ValidationError, expected_shape, validate_product


def _copy(aligned, folder):
    product, shifts = folder / "x_psfalign.fits", folder / "x_psfshifts.ecsv"
    shutil.copy(aligned["product"], product)
    shutil.copy(aligned["shifts"], shifts)
    return product, shifts


def test_good_product_passes_with_expected_shape(aligned, tmp_path):
    shape = expected_shape(aligned["science"], aligned["psfstack"], "quad")
    assert shape == (3, 2, 64, 64)
    report = validate_product(
        aligned["product"], aligned["shifts"], mode="quad", expected_shape=shape,
        report=tmp_path / "v.json",
    )  # fmt: skip
    assert report["status"] == "passed"
    written = json.loads((tmp_path / "v.json").read_text())
    assert {check["name"] for check in written["checks"]} >= {
        "schema", "shape", "finite", "step_status", "shift_table", "shift_range", "window",
        "convergence",
    }  # fmt: skip
    assert all(check["passed"] for check in written["checks"])


def _tamper(product, **changes):
    with datamodels.open(product) as model:
        for name, value in changes.items():
            if name == "status":
                model.meta.cal_step.align_psfs = value
            else:
                getattr(model, name)[0, 0, 5, 5] = value
        model.save(product)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"data": np.nan}, "finite: SCI has 1 NaN/inf pixels not flagged DO_NOT_USE"),
        ({"err": np.inf}, "finite: ERR has 1 NaN/inf"),
        ({"status": "SKIPPED"}, "step_status: S_PSFALI = SKIPPED, expected COMPLETE"),
    ],
)
def test_tampered_product_fails_and_the_report_says_why(aligned, tmp_path, change, reason):
    product, shifts = _copy(aligned, tmp_path)
    _tamper(product, **change)
    with pytest.raises(ValidationError, match=reason):
        validate_product(product, shifts, mode="quad", report=tmp_path / "v.json")
    written = json.loads((tmp_path / "v.json").read_text())
    assert written["status"] == "failed"
    assert any(reason in line for line in written["reasons"])


def test_flagged_nan_is_only_a_warning(aligned, tmp_path):
    product, shifts = _copy(aligned, tmp_path)
    _tamper(product, data=np.nan, dq=1)
    report = validate_product(product, shifts, mode="quad")
    assert report["status"] == "passed"
    assert any("flagged DO_NOT_USE" in warning for warning in report["warnings"])


def _edit_table(shifts, **columns):
    table = Table.read(shifts)
    table["status"] = table["status"].astype("<U13")  # room for "not_converged"
    for name, (row, value) in columns.items():
        table[name][row] = value
    table.write(shifts, overwrite=True)


def test_shift_table_problems_fail(aligned, tmp_path):
    product, shifts = _copy(aligned, tmp_path)
    _edit_table(shifts, xshift=(1, 40.0))
    message = r"shift_range: 1 shifts are non-finite or farther than 10 px from their prior"
    with pytest.raises(ValidationError, match=message + r" \(largest 40.000 px\): \(k=0, m=1\)"):
        validate_product(product, shifts, mode="quad")
    assert validate_product(product, shifts, mode="quad", max_shift=41)["status"] == "passed"
    product, shifts = _copy(aligned, tmp_path)
    _edit_table(shifts, status=(2, "not_converged"))
    with pytest.raises(ValidationError, match="convergence: 5 of 6 fits converged, 1 did not"):
        validate_product(product, shifts, mode="quad")
    with pytest.raises(ValidationError, match="expected a CubeModel"):
        validate_product(product, shifts, mode="cube")
    with pytest.raises(ValidationError, match=r"differs from the expected \(4, 2, 64, 64\)"):
        validate_product(product, aligned["shifts"], mode="quad", expected_shape=(4, 2, 64, 64))


def test_a_fit_on_the_window_edge_fails_and_outliers_warn_naming_the_fits(aligned, tmp_path):
    product, shifts = _copy(aligned, tmp_path)
    _edit_table(shifts, status=(3, "out_of_window"))
    with pytest.raises(ValidationError, match=r"window: 1 fits ended on the edge.*\(k=1, m=1\)"):
        validate_product(product, shifts, mode="quad")
    product, shifts = _copy(aligned, tmp_path)
    _edit_table(shifts, status=(4, "outlier"))
    report = validate_product(product, shifts, mode="quad")
    assert report["status"] == "passed"
    assert report["fits"] == {"converged": 5, "outlier": 1}
    assert any("status outlier): (k=2, m=0)" in warning for warning in report["warnings"])
    # the warning says how far, in units of the fit's total error
    assert any(re.search(r"px = \d+ sigma from the PSF", w) for w in report["warnings"])


def test_the_range_check_follows_max_shift_around_each_prior(aligned, tmp_path):
    product, shifts = _copy(aligned, tmp_path)
    table = Table.read(shifts)
    table["xprior"] += 30.0  # priors far off: every fit is 30 px from its prior
    table.write(shifts, overwrite=True)
    with pytest.raises(ValidationError, match="6 shifts are non-finite or farther than 10 px"):
        validate_product(product, shifts, mode="quad")
    table["xshift"] += 30.0
    table.write(shifts, overwrite=True)
    assert validate_product(product, shifts, mode="quad")["status"] == "passed"
    table.meta["parameters"]["max_shift"] = 0.01
    table.write(shifts, overwrite=True)
    with pytest.raises(ValidationError, match=r"farther than 0\.01 px"):
        validate_product(product, shifts, mode="quad")


def test_fits_without_data_are_warnings(aligned, tmp_path):
    product, shifts = _copy(aligned, tmp_path)
    table = Table.read(shifts)
    table["status"] = table["status"].astype("<U13")
    table["status"][table["integration"] == 1] = "no_data"
    table["xshift"][table["integration"] == 1] = np.nan
    table.write(shifts, overwrite=True)
    report = validate_product(product, shifts, mode="quad")
    assert report["status"] == "passed"
    assert report["fits"] == {"converged": 4, "no_data": 2}
    assert any("integrations [1]" in warning for warning in report["warnings"])


def test_validate_command_exit_status_and_report(aligned, tmp_path, capsys):
    product, shifts = _copy(aligned, tmp_path)
    report = tmp_path / "v.json"
    args = ["-q", "validate", str(product), "--shifts", str(shifts), "--report", str(report)]
    extra = ["--science", str(aligned["science"]), "--psfstack", str(aligned["psfstack"])]
    assert main([*args, *extra]) == 0
    assert json.loads(report.read_text())["status"] == "passed"
    _tamper(product, data=np.nan)
    assert main([*args, *extra]) == 2
    assert "validation failed: finite: SCI" in capsys.readouterr().err
    assert json.loads(report.read_text())["status"] == "failed"
    assert main([*args, "--science", str(aligned["science"])]) == 2
