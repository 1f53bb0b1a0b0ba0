"""VAR_POISSON and VAR_RNOISE from the PSF exposures to the aligned product (files)."""

import logging

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from stdatamodels.jwst import datamodels

from coronalign.cli import main
from coronalign.core import pool
from coronalign.core.fourier import fourier_shift
from coronalign.core.variance import clean_variances
from coronalign.simulation import simulate_exposures, write_association, write_simulation
from coronalign.steps.stack_refs import stack_refs
from coronalign.steps.validate import validate_product
from tests.core.test_variance import _propagated
from tests.helpers.commands import align_command

SHAPE = (64, 72)
NAMES = ("VAR_POISSON", "VAR_RNOISE")


@pytest.fixture(scope="module")
def association(tmp_path_factory):
    """Two science exposures and two PSF exposures whose ERR² is VAR_POISSON + VAR_RNOISE."""
    folder = tmp_path_factory.mktemp("variances")
    paths = write_association(
        folder, n_science=1, n_psf=2, nints=2, psf_nints=2, seed=3, shape=SHAPE,
        consistent_variances=True,
    )  # fmt: skip
    stack = folder / "x_psfstack.fits"
    stack_refs(paths["psf"], stack)
    return {**paths, "psfstack": stack, "folder": folder}


def _align(association, name, *options):
    out = association["folder"] / f"{name}_psfalign.fits"
    table = association["folder"] / f"{name}_psfshifts.ecsv"
    args = align_command(
        association["science"][0], association["psfstack"], association["psfmask"], out,
        "--shifts", table, *options,
    )  # fmt: skip
    assert main(["-q", *args]) == 0
    return out, Table.read(table)


def _variance(hdulist, name):
    return np.asarray(hdulist[name].data, dtype=np.float64)


def test_stack_refs_stacks_the_variances_of_every_member(association):
    with datamodels.open(association["psfstack"]) as stack:
        members = [datamodels.open(path) for path in association["psf"]]
        try:
            for name in ("var_poisson", "var_rnoise"):
                expected = np.concatenate([getattr(member, name) for member in members])
                np.testing.assert_array_equal(getattr(stack, name), expected)
                assert getattr(stack, name).dtype.newbyteorder("=") == np.float32
            assert not stack.hasattr("var_flat")  # the members have none
        finally:
            for member in members:
                member.close()
        finite = np.isfinite(stack.err)
        total = stack.var_poisson.astype(np.float64) + stack.var_rnoise
        np.testing.assert_allclose(
            stack.err[finite].astype(np.float64) ** 2, total[finite], rtol=1e-6, atol=1e-30
        )


@pytest.mark.parametrize("mode", ["quad", "cube"])
def test_the_product_carries_the_propagated_variances(association, mode):
    product, table = _align(association, f"prop-{mode}", "--mode", mode)
    with fits.open(product) as hdulist, datamodels.open(association["psfstack"]) as stack:
        sci_shape = hdulist["SCI"].data.shape
        for name in NAMES:
            assert hdulist[name].data.shape == sci_shape
            assert hdulist[name].data.dtype == np.dtype(">f4")
        planes = sci_shape[0] * (sci_shape[1] if mode == "quad" else 1)
        assert len(table) == planes
        for row in table:
            k, m = int(row["integration"]), int(row["psf"])
            at = (k, m) if mode == "quad" else (m,)
            dx, dy = -float(row["xshift"]), -float(row["yshift"])
            err = np.asarray(hdulist["ERR"].data[at], dtype=np.float64)
            total = 0
            for name in NAMES:
                source = np.asarray(getattr(stack, name.lower())[m], dtype=np.float64)
                clean = np.where(np.isfinite(source), source, 0.0)  # where ERR is finite
                out = _variance(hdulist, name)[at]
                good = np.isfinite(source).all() or None
                expected = _propagated(clean, dx, dy)
                if good:  # no NaN to clean in this plane: the exact convolution
                    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-6 * source.max())
                assert np.all(out >= 0)
                total = total + out
            # ERR² is the sum of the variances, as it was in the stack, to float32 rounding;
            # but next to the NaN pixels, where ERR and each variance are replaced by their
            # own box medians (the median of ERR² is not the sum of the variances' medians):
            # there (flagged) by up to a few %, and by a few 0.1 % in the kernel's tail.
            relative = np.abs(err**2 / total - 1)
            usable = np.asarray(hdulist["DQ"].data[at]) == 0
            assert np.median(relative) < 1e-5
            assert np.mean(relative[usable] < 1e-4) > 0.98
            assert relative[usable].max() < 0.005
            assert relative.max() < 0.05
    report = validate_product(product, product.with_name(f"prop-{mode}_psfshifts.ecsv"), mode=mode)
    assert report["status"] == "passed"
    assert any(check["name"] == "variances" and check["passed"] for check in report["checks"])


def test_official_mode_shifts_the_variances_as_signal(association):
    product, table = _align(association, "official", "--err-shift", "official")
    propagated, _ = _align(association, "prop-quad-again")
    with (
        fits.open(product) as official,
        fits.open(propagated) as default,
        datamodels.open(association["psfstack"]) as stack,
    ):
        for part in ("SCI", "DQ"):
            assert official[part].data.tobytes() == default[part].data.tobytes()
        row = table[0]
        k, m = int(row["integration"]), int(row["psf"])
        one = slice(m, m + 1)
        arrays = {"var_poisson": stack.var_poisson[one]}
        source = clean_variances(arrays, stack.data[one], stack.dq[one], 1, 3)["var_poisson"][0]
        expected = fourier_shift(source, -float(row["xshift"]), -float(row["yshift"]))
        out = _variance(official, "VAR_POISSON")[k, m]
        np.testing.assert_allclose(out, expected, atol=1e-6 * source.max())
        assert np.max(np.abs(out - _variance(default, "VAR_POISSON")[k, m])) > 0


def test_padded_edges_make_the_variances_nan_where_err_is(association):
    product, _ = _align(association, "pad", "--edges", "pad")
    with fits.open(product) as hdulist:
        outside = np.isnan(hdulist["ERR"].data)
        assert outside.any()
        for name in NAMES:
            np.testing.assert_array_equal(np.isnan(hdulist[name].data), outside)


def test_a_stack_without_variances_gives_a_product_without_them(tmp_path):
    sim = simulate_exposures("nircam", nints=1, npsfs=2, seed=4, shape=SHAPE)
    paths = write_simulation(sim, tmp_path, root="x")
    out = tmp_path / "x_psfalign.fits"
    assert (
        main(["-q", *align_command(paths["science"], paths["psfstack"], paths["psfmask"], out)])
        == 0
    )
    with fits.open(out) as hdulist:
        assert not [hdu.name for hdu in hdulist if hdu.name.startswith("VAR_")]


def test_members_lacking_a_variance_leave_it_out_with_a_warning(association, tmp_path, caplog):
    lacking = tmp_path / "lacking_calints.fits"
    with datamodels.open(association["psf"][1]) as model:
        bare = datamodels.CubeModel(data=model.data, err=model.err, dq=model.dq)
        bare.update(model)
        bare.var_poisson = model.var_poisson  # VAR_RNOISE missing
        bare.save(lacking)
        bare.close()
    out = tmp_path / "partial_psfstack.fits"
    with caplog.at_level(logging.WARNING):
        stack_refs([association["psf"][0], lacking], out)
    with datamodels.open(out) as stack:
        assert stack.hasattr("var_poisson")
        assert not stack.hasattr("var_rnoise")
    assert "VAR_RNOISE is left out of the PSF stack" in caplog.text
    assert "lacking_calints.fits" in caplog.text


@pytest.mark.skipif(not pool.can_fork(), reason="worker processes need Linux")
def test_rows_from_worker_processes_carry_the_same_variances(association):
    one, _ = _align(association, "one-process")
    two, _ = _align(association, "two-processes", "--threads", 2)
    with fits.open(one) as a, fits.open(two) as b:
        for name in ("SCI", "ERR", "DQ", *NAMES):
            assert a[name].data.tobytes() == b[name].data.tobytes(), name
