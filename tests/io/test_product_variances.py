"""The product's variance arrays: what stdatamodels writes, in the quad and the cube layout."""

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels

from coronalign.io.models import set_meta
from coronalign.io.product import ProductWriter
from coronalign.io.provenance import data_sha256
from coronalign.io.tables import SHIFT_EXTENSION, shift_extension
from tests.io.test_product import (
    META,
    NPSFS,
    NROWS,
    SHAPE,
    WRITTEN_AT,
    _planes,
    _records,
    _template,
)

NAMES = ("var_poisson", "var_rnoise")


def _variances(rng, shape):
    return {name: rng.uniform(0.01, 1.0, size=shape).astype(np.float32) for name in NAMES}


def _reference(path, mode, sci, err, dq, variances, records):
    """The same model saved by stdatamodels (the variances in the schema for a cube, as
    extra extensions for a quad)."""
    arrays = {"data": sci.astype(np.float32), "err": err.astype(np.float32), "dq": dq}
    data, cards = shift_extension(records)
    extra = {SHIFT_EXTENSION: {"data": data, "header": cards}}
    if mode == "cube":
        model = datamodels.CubeModel(**arrays, **variances)
    else:
        model = datamodels.QuadModel(**arrays)
        extra = {**{name.upper(): {"data": v} for name, v in variances.items()}, **extra}
    model.update(_template())
    for key, value in META.items():
        set_meta(model.meta, key, value)
    model.extra_fits = extra
    model.save(path)
    return path


@pytest.mark.parametrize("mode", ["quad", "cube"])
def test_streamed_variances_are_what_stdatamodels_writes(rng, tmp_path, mode):
    sci, err, dq = _planes(rng)
    if mode == "cube":
        sci, err, dq = sci[0], err[0], dq[0]
    nrows = NROWS if mode == "quad" else 1
    variances = _variances(rng, sci.shape)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ours = tmp_path / "a" / "x_psfalign.fits"
    with ProductWriter(
        ours, mode, nrows, NPSFS, SHAPE, _template(), META, variances=NAMES
    ) as writer:
        for row in range(nrows):
            at = (row,) if mode == "quad" else ()
            planes = {n: v[at] for n, v in variances.items()}
            writer(row, sci[at], err[at], dq[at], planes)
        writer.commit(_records()[: nrows * NPSFS])
    theirs = _reference(
        tmp_path / "b" / "x_psfalign.fits",
        mode,
        sci,
        err,
        dq,
        variances,
        _records()[: nrows * NPSFS],
    )
    with fits.open(ours) as mine, fits.open(theirs) as reference:
        names = [hdu.name for hdu in mine]
        assert names == [hdu.name for hdu in reference]
        assert {"VAR_POISSON", "VAR_RNOISE"} <= set(names)
        for a, b in zip(mine, reference, strict=True):
            keep = [(c.keyword, c.value) for c in a.header.cards if c.keyword not in WRITTEN_AT]
            want = [(c.keyword, c.value) for c in b.header.cards if c.keyword not in WRITTEN_AT]
            assert keep == want, a.name
        for name in NAMES:
            hdu = mine[name.upper()]
            assert hdu.data.dtype == np.dtype(">f4")
            assert hdu.data.shape == sci.shape
            np.testing.assert_array_equal(hdu.data, variances[name])
    with datamodels.open(ours, strict_validation=True) as model:
        model.validate()
        for name in NAMES:
            stored = (
                getattr(model, name)
                if mode == "cube"
                else getattr(model.extra_fits, name.upper()).data
            )
            np.testing.assert_array_equal(stored, variances[name])


def test_a_row_without_its_variances_is_refused(rng, tmp_path):
    sci, err, dq = _planes(rng)
    path = tmp_path / "x_psfalign.fits"
    with (
        ProductWriter(
            path, "quad", NROWS, NPSFS, SHAPE, _template(), META, variances=NAMES
        ) as writer,
        pytest.raises(ValueError, match="var_rnoise"),
    ):
        writer(0, sci[0], err[0], dq[0], {"var_poisson": sci[0]})
    assert not path.exists()


def test_without_variances_the_product_has_none(rng, tmp_path):
    sci, err, dq = _planes(rng)
    path = tmp_path / "x_psfalign.fits"
    with ProductWriter(path, "quad", NROWS, NPSFS, SHAPE, _template(), META) as writer:
        for row in range(NROWS):
            writer(row, sci[row], err[row], dq[row])
        writer.commit(_records())
    with fits.open(path) as hdulist:
        assert not any(hdu.name.startswith("VAR_") for hdu in hdulist)


def test_the_data_digests_cover_the_variances(rng, tmp_path):
    sci, err, dq = _planes(rng)
    variances = _variances(rng, sci.shape)
    digests = {}
    for tag, names in (("with", NAMES), ("without", ())):
        path = tmp_path / f"{tag}_psfalign.fits"
        with ProductWriter(
            path, "quad", NROWS, NPSFS, SHAPE, _template(), META, variances=names
        ) as writer:
            for row in range(NROWS):
                planes = {name: variances[name][row] for name in names}
                writer(row, sci[row], err[row], dq[row], planes or None)
            writer.commit(_records())
        digests[tag] = data_sha256(path)
    assert sorted(digests["with"]) == ["DQ", "ERR", "SCI", "VAR_POISSON", "VAR_RNOISE"]
    assert sorted(digests["without"]) == ["DQ", "ERR", "SCI"]
    for name in ("SCI", "ERR", "DQ"):
        assert digests["with"][name] == digests["without"][name]
