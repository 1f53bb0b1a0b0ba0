"""The run summary (coronalign summarize) and the report figure (coronalign plot)."""

import numpy as np
import pytest
from astropy.table import Table

from coronalign.cli import main
from coronalign.errors import InputFileError
from coronalign.steps.summary import SUMMARY_COLUMNS, summarize
from coronalign.steps.validate import validate_product


def test_summary_table_and_figure(aligned, tmp_path):
    report = tmp_path / "v.json"
    validate_product(aligned["product"], aligned["shifts"], mode="quad", report=report)
    out = tmp_path / "summary.tsv"
    args = ["-q", "summarize", str(report), "--shifts", str(aligned["shifts"]), "-o", str(out)]
    assert main(args) == 0
    lines = out.read_text().splitlines()
    assert lines[0].split("\t") == list(SUMMARY_COLUMNS)
    row = dict(zip(SUMMARY_COLUMNS, lines[1].split("\t"), strict=True))
    table = Table.read(aligned["shifts"])
    assert row["product"] == "x_psfalign.fits"
    assert row["validation"] == "passed"
    assert int(row["n_fits"]) == len(table) == 6
    assert float(row["xshift_max"]) == pytest.approx(float(np.max(table["xshift"])), rel=1e-4)
    assert float(row["beta_median"]) == pytest.approx(float(np.median(table["beta"])), rel=1e-4)
    with pytest.raises(InputFileError, match="1 validation reports but 2 shift tables"):
        summarize([report], [aligned["shifts"], aligned["shifts"]], out)
    figure = tmp_path / "x.png"
    args = ["-q", "plot", str(aligned["product"]), "--science", str(aligned["science"])]
    assert main([*args, "--shifts", str(aligned["shifts"]), "-o", str(figure)]) == 0
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
