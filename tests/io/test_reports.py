"""JSON reports: written atomically, NaN as null, numpy values as numbers, no astropy needed."""

import json
import subprocess
import sys

import numpy as np
import pytest

from coronalign.errors import InputFileError
from coronalign.io.reports import read_json_report, write_json_report


def test_round_trip_with_numpy_values_paths_and_nan(tmp_path):
    report = {
        "status": "passed",
        "count": np.int64(3),
        "values": np.array([1.5, np.nan]),
        "nested": {"largest": np.float32(2.0), "where": tmp_path, 4: [np.inf, -np.inf]},
    }
    path = tmp_path / "r.json"
    write_json_report(path, report)
    assert read_json_report(path) == {
        "status": "passed",
        "count": 3,
        "values": [1.5, None],
        "nested": {"largest": 2.0, "where": str(tmp_path), "4": [None, None]},
    }
    assert "NaN" not in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "report not found"), ("{", "not valid JSON"), ("[1, 2]", "must hold a JSON object")],
)
def test_bad_reports_are_named(tmp_path, content, message):
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputFileError, match=message):
        read_json_report(path, "report")


def test_writing_a_report_needs_neither_astropy_nor_asdf(tmp_path):
    code = (
        "import sys\n"
        "from coronalign.io.reports import write_json_report\n"
        f"write_json_report({str(tmp_path / 'r.json')!r}, {{'a': 1}})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('astropy', 'asdf', 'stdatamodels')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.replace("'", '"')) == []
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 1}
