"""The align_refs step on files: a PSFMASK selection (override, or N/A: the skip)."""

import json

import numpy as np
from astropy.table import Table
from stdatamodels.jwst import datamodels

from coronalign.cli import main
from coronalign.references.selection import PsfmaskSelection, write_psfmask_selection
from coronalign.steps.plots import plot_exposure
from coronalign.steps.validate import validate_product


def test_override_selection_is_recorded_in_the_product(aligned):
    content = json.loads(aligned["selection"].read_text())
    assert content["status"] == "override"
    assert content["context"] is None
    with datamodels.open(aligned["product"]) as model:
        assert model.meta.cal_step.align_psfs == "COMPLETE"
        assert model.meta.ref_file.psfmask.name == str(aligned["psfmask"])


def test_not_applicable_writes_the_unaligned_stack(aligned, tmp_path):
    selection = PsfmaskSelection(
        "not_applicable", None, "N/A", "jwst_0042.pmap", "14.0.3", "CRDS says N/A for TA"
    )
    write_psfmask_selection(selection, tmp_path / "na.json")
    product, shifts = tmp_path / "na_psfalign.fits", tmp_path / "na_psfshifts.ecsv"
    args = ["-q", "align", str(aligned["science"]), str(aligned["psfstack"])]
    args += ["--psfmask-selection", str(tmp_path / "na.json"), "-o", str(product)]
    assert main([*args, "--shifts", str(shifts)]) == 0
    with datamodels.open(product) as model, datamodels.open(aligned["psfstack"]) as stack:
        assert isinstance(model, datamodels.CubeModel)
        np.testing.assert_array_equal(model.data, stack.data)
        assert model.meta.cal_step.align_psfs == "SKIPPED"
        assert model.meta.ref_file.psfmask.name == "N/A"
        assert model.meta.ref_file.crds.context_used == "jwst_0042.pmap"
        assert model.meta.filename == "na_psfalign.fits"  # not its temporary name
    table = Table.read(shifts)
    assert len(table) == 0
    assert table.meta["skipped"] is True
    assert table.meta["reason"] == "CRDS says N/A for TA"
    report = validate_product(product, shifts, mode="quad", report=tmp_path / "v.json")
    assert report["status"] == "passed"
    assert report["skipped"] is True
    assert report["reason"] == "CRDS says N/A for TA"
    assert any("skipped" in warning for warning in report["warnings"])
    plot_exposure(product, aligned["science"], shifts, tmp_path / "na.png")
    assert (tmp_path / "na.png").stat().st_size > 1000
