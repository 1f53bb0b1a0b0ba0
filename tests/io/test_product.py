"""The streamed ``_psfalign`` product is what stdatamodels itself would write.

io/product.py lays the file out with ``stdatamodels.fits_support.to_fits(model.instance,
model.schema)`` and writes the data planes into it; these tests pin that the result has the
headers, data, shift table and metadata of the same model saved by stdatamodels, for the
installed stdatamodels (pyproject.toml pins the versions where that call is the same).
"""

import os

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.exceptions import ValidationWarning
from stdatamodels.jwst import datamodels

from coronalign.core import pool
from coronalign.core.align import AlignmentResult
from coronalign.io.models import set_meta
from coronalign.io.product import ProductWriter, write_unaligned_product
from coronalign.io.tables import (
    SHIFT_COLUMNS,
    SHIFT_EXTENSION,
    SHIFT_UNITS,
    shift_extension,
    shift_records,
)

NROWS, NPSFS, SHAPE = 3, 2, (8, 10)
META = {
    "cal_step.align_psfs": "COMPLETE",
    "ref_file.psfmask.name": "crds://jwst_nircam_psfmask_0001.fits",
    "coronalign": {"version": "test", "parameters": {"mode": "quad"}},
}
#: Header keywords that differ between two writes of the same model (the time of writing).
WRITTEN_AT = {"DATE", "CHECKSUM", "DATASUM"}


def _template():
    """A small PSF stack whose metadata the product copies."""
    data = np.ones((NPSFS, *SHAPE), np.float32)
    model = datamodels.CubeModel(data=data, err=data / 10, dq=np.zeros(data.shape, np.uint32))
    model.meta.instrument.name = "NIRCAM"
    model.meta.instrument.filter = "F335M"
    model.meta.subarray.name = "SUB320A335R"
    model.meta.exposure.type = "NRC_CORON"
    return model


def _planes(rng):
    sci = rng.normal(size=(NROWS, NPSFS, *SHAPE))
    err = rng.uniform(0.1, 1.0, size=sci.shape)
    dq = rng.integers(0, 2**32, size=sci.shape, dtype=np.uint64).astype(np.uint32)
    dq[0, 0, 0, :4] = [0, 1, 2**31, 2**32 - 1]  # the sign bit and both ends survive
    return sci, err, dq


def _records():
    values = np.arange(NROWS * NPSFS, dtype=float).reshape(NROWS, NPSFS) / 10
    status = np.full((NROWS, NPSFS), "converged", dtype="<U13")
    status[1, 0] = "out_of_window"
    return shift_records(
        AlignmentResult(
            integrations=list(range(NROWS)),
            xshift=values,
            yshift=-values,
            beta=1 + values,
            rms=values / 100,
            iterations=np.full((NROWS, NPSFS), 4, dtype=np.int64),
            status=status,
        )
    )


def _streamed(path, sci, err, dq, rows=None, template=None):
    template = _template() if template is None else template
    with ProductWriter(path, "quad", NROWS, NPSFS, SHAPE, template, META) as writer:
        for row in range(NROWS) if rows is None else rows:
            writer(row, sci[row], err[row], dq[row])
        writer.commit(_records())
    return path


def _saved_by_stdatamodels(path, sci, err, dq, template=None):
    model = datamodels.QuadModel(
        data=sci.astype(np.float32), err=err.astype(np.float32), dq=dq.astype(np.uint32)
    )
    model.update(_template() if template is None else template)
    for key, value in META.items():
        set_meta(model.meta, key, value)
    data, cards = shift_extension(_records())
    model.extra_fits = {SHIFT_EXTENSION: {"data": data, "header": cards}}
    model.save(path)
    return path


def _tree(path):
    """The product's metadata tree, without what depends on the time of writing."""
    with datamodels.open(path) as model:
        tree = model.to_flat_dict(include_arrays=False)
    return {
        key: value
        for key, value in tree.items()
        if key not in ("meta.date", "_fits_hash") and "extra_fits" not in key
    }


def test_the_streamed_product_is_what_stdatamodels_writes(rng, tmp_path):
    sci, err, dq = _planes(rng)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    streamed = _streamed(tmp_path / "a" / "x_psfalign.fits", sci, err, dq)
    saved = _saved_by_stdatamodels(tmp_path / "b" / "x_psfalign.fits", sci, err, dq)
    with fits.open(streamed) as ours, fits.open(saved) as theirs:
        assert [hdu.name for hdu in ours] == [hdu.name for hdu in theirs]
        for mine, reference in zip(ours, theirs, strict=True):
            cards = [(c.keyword, c.value) for c in mine.header.cards if c.keyword not in WRITTEN_AT]
            expected = [
                (c.keyword, c.value) for c in reference.header.cards if c.keyword not in WRITTEN_AT
            ]
            assert cards == expected, mine.name
            if mine.name in ("SCI", "ERR", "DQ", SHIFT_EXTENSION):
                assert np.asarray(mine.data).tobytes() == np.asarray(reference.data).tobytes()
    assert _tree(streamed) == _tree(saved)
    with datamodels.open(streamed) as model:
        model.validate()
        assert isinstance(model, datamodels.QuadModel)
        np.testing.assert_array_equal(model.dq, dq)
        assert model.meta.filename == "x_psfalign.fits"


def test_an_invalid_template_value_is_dropped_as_stdatamodels_drops_it(rng, tmp_path):
    # The writer fills its model unvalidated and validates once; an objection makes it fill
    # the model again validating each assignment, as stdatamodels does by default.
    sci, err, dq = _planes(rng)
    template = _template()
    template._validate_on_assignment = False
    template.meta.exposure.type = "NOT_AN_EXPOSURE_TYPE"
    template.meta.instrument.filter = "F444W"  # valid: kept
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.warns(ValidationWarning, match="NOT_AN_EXPOSURE_TYPE"):
        streamed = _streamed(tmp_path / "a" / "x_psfalign.fits", sci, err, dq, template=template)
    with pytest.warns(ValidationWarning, match="NOT_AN_EXPOSURE_TYPE"):
        saved = _saved_by_stdatamodels(tmp_path / "b" / "x_psfalign.fits", sci, err, dq, template)
    tree = _tree(streamed)
    assert tree == _tree(saved)
    assert "meta.exposure.type" not in tree
    assert tree["meta.instrument.filter"] == "F444W"


@pytest.mark.skipif(not pool.can_fork(), reason="worker processes need Linux")
def test_rows_written_by_forked_workers_give_the_same_file(rng, tmp_path):
    sci, err, dq = _planes(rng)
    here = _streamed(tmp_path / "here_psfalign.fits", sci, err, dq)
    path = tmp_path / "workers_psfalign.fits"
    with ProductWriter(path, "quad", NROWS, NPSFS, SHAPE, _template(), META) as writer:

        def write(row):
            writer(row, sci[row], err[row], dq[row])
            return os.getpid()

        pids = pool.map_in_processes(write, range(NROWS), 2)
        writer.commit(_records())
    assert len(set(pids)) == 2
    with fits.open(here) as one, fits.open(path) as two:
        for name in ("SCI", "ERR", "DQ", SHIFT_EXTENSION):
            assert np.asarray(one[name].data).tobytes() == np.asarray(two[name].data).tobytes()


def _write_then_fail(path, sci, err, dq):
    with ProductWriter(path, "quad", NROWS, NPSFS, SHAPE, _template(), META) as writer:
        writer(0, sci[0], err[0], dq[0])
        raise RuntimeError("stop")


def test_a_failure_leaves_nothing_behind(rng, tmp_path):
    sci, err, dq = _planes(rng)
    with pytest.raises(RuntimeError, match="stop"):
        _write_then_fail(tmp_path / "x_psfalign.fits", sci, err, dq)
    assert list(tmp_path.iterdir()) == []


def test_a_cube_product_and_a_table_of_the_wrong_size(rng, tmp_path):
    sci, err, dq = _planes(rng)
    path = tmp_path / "x_psfalign.fits"
    with ProductWriter(path, "cube", 1, NPSFS, SHAPE, _template(), META) as writer:
        writer(0, sci[0], err[0], dq[0])
        with pytest.raises(ValueError, match="layout reserved"):
            writer.commit(_records())  # 6 rows for a 1-row product
    assert not path.exists()


def test_the_unaligned_product_is_the_stack_with_the_steps_metadata(tmp_path):
    template = _template()
    path = tmp_path / "x_psfalign.fits"
    write_unaligned_product(template, path, {"cal_step.align_psfs": "SKIPPED"})
    assert template.meta.cal_step.align_psfs is None  # copied, not modified
    with datamodels.open(path) as model:
        assert isinstance(model, datamodels.CubeModel)
        np.testing.assert_array_equal(model.data, template.data)
        assert model.meta.cal_step.align_psfs == "SKIPPED"
        assert model.meta.instrument.filter == "F335M"
    assert [p.name for p in tmp_path.iterdir()] == ["x_psfalign.fits"]


def test_the_shift_extension_carries_units_and_descriptions(rng, tmp_path):
    path = _streamed(tmp_path / "x_psfalign.fits", *_planes(rng))
    with fits.open(path) as hdus:
        header = hdus[SHIFT_EXTENSION].header
        names = [header[f"TTYPE{n}"] for n in range(1, header["TFIELDS"] + 1)]
        for number, name in enumerate(names, start=1):
            assert header[f"TCOMM{number}"] == SHIFT_COLUMNS[name]
            assert header.get(f"TUNIT{number}") == SHIFT_UNITS.get(name)
    for name in ("xshift", "yshift", "xshift_err", "yshift_err", "xshift_err_stat"):
        assert SHIFT_UNITS[name] == "pix"
    assert "statistical" in SHIFT_COLUMNS["xshift_err_stat"]
    assert "total" in SHIFT_COLUMNS["xshift_err"]
