"""The shift table: records in the product, the ECSV table beside it."""

import numpy as np
import pytest

from coronalign.core.align import AlignmentResult
from coronalign.dq import FitStatus
from coronalign.errors import InputFileError
from coronalign.io.tables import (
    SHIFT_COLUMNS,
    read_shift_table,
    shift_records,
    write_shift_table,
)


def _result():
    shifts = np.array([[0.25, -1.5], [0.3, np.nan]])
    status = np.array([["converged", "outlier"], ["out_of_window", "no_data"]], dtype="<U13")
    return AlignmentResult(
        integrations=[0, 4],
        xshift=shifts,
        yshift=-shifts,
        beta=np.ones((2, 2)),
        rms=np.full((2, 2), 0.01),
        iterations=np.array([[3, 4], [50, 0]]),
        status=status,
    )


def test_records_one_per_integration_and_psf():
    records = shift_records(_result())
    assert list(records.dtype.names) == list(SHIFT_COLUMNS)
    assert list(records["integration"]) == [0, 0, 4, 4]
    assert list(records["psf"]) == [0, 1, 0, 1]
    assert list(records["status"]) == [b"converged", b"outlier", b"out_of_window", b"no_data"]
    assert list(records["converged"]) == [True, True, False, False]
    assert np.isnan(records["xprior"]).all()  # not given: NaN


def test_ecsv_round_trip_keeps_statuses_units_and_metadata(tmp_path):
    path = tmp_path / "x_psfshifts.ecsv"
    write_shift_table(path, _result(), {"product": "x_psfalign.fits", "parameters": {"a": 1}})
    table = read_shift_table(path)
    assert list(table["status"]) == ["converged", "outlier", "out_of_window", "no_data"]
    assert {str(status) for status in table["status"]} <= {str(s) for s in FitStatus}
    assert str(table["xshift"].unit) == "pix"
    assert table["beta"].description == SHIFT_COLUMNS["beta"]
    assert table.meta["product"] == "x_psfalign.fits"
    assert table.meta["parameters"] == {"a": 1}
    np.testing.assert_array_equal(table["xshift"], [0.25, -1.5, 0.3, np.nan])


def test_missing_or_unreadable_table(tmp_path):
    with pytest.raises(InputFileError, match="shift table not found"):
        read_shift_table(tmp_path / "absent.ecsv")
    (tmp_path / "bad.ecsv").write_text("# %ECSV 1.0\nnot a table\n")
    with pytest.raises(InputFileError, match="not a readable ECSV shift table"):
        read_shift_table(tmp_path / "bad.ecsv")
