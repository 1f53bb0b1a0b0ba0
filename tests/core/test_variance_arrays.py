"""VAR_POISSON, VAR_RNOISE, VAR_FLAT through the shift: each as ERR², checked by Monte Carlo."""

import numpy as np
import pytest

from coronalign.core.align import Stack, align_stacks
from coronalign.core.fourier import fourier_shift
from tests.core.test_variance import _propagated
from tests.helpers.images import blob_image, border_weight, shifted

SHAPE = (40, 37)  # an even and an odd axis


def _problem(*, flat=False, nan_pixel=False):
    """A PSF with a Poisson variance following it, a uniform read noise (and a flat term)."""
    base = blob_image(SHAPE, seed=3)
    science = Stack(
        data=shifted(base, 0.37, -0.61)[None],
        err=np.full((1, *SHAPE), 0.1),
        dq=np.zeros((1, *SHAPE), np.uint32),
    )
    arrays = {
        "var_poisson": (0.002 + 0.08 * np.clip(base, 0, None) / base.max())[None],
        "var_rnoise": np.full((1, *SHAPE), 0.003),
    }
    if flat:
        arrays["var_flat"] = (1e-4 * (1 + base / base.max()))[None]
    if nan_pixel:
        arrays["var_poisson"] = arrays["var_poisson"].copy()
        arrays["var_poisson"][0, 5, 6] = np.nan
    err = np.sqrt(sum(arrays.values()))
    arrays = {name: array.astype(np.float32) for name, array in arrays.items()}
    psfs = Stack(
        data=base[None].astype(np.float32),
        err=err.astype(np.float32),
        dq=np.zeros((1, *SHAPE), np.uint32),
        variance_arrays=arrays,
    )
    return science, psfs


def _collect(science, psfs, **options):
    rows = {}

    def sink(row, sci, err, dq, **extra):
        rows[row] = (sci, err, dq, extra)

    result = align_stacks(science, psfs, border_weight(SHAPE), sink, **options)
    return result, rows[0]


def test_propagated_variances_match_monte_carlo():
    science, psfs = _problem()
    result, (_, err, _, extra) = _collect(science, psfs)
    variances = extra["variances"]
    assert list(variances) == ["var_poisson", "var_rnoise"]
    dx, dy = -result.xshift[0, 0], -result.yshift[0, 0]
    assert abs(dx % 1 - 0.5) < 0.45  # a fractional shift
    assert abs(dy % 1 - 0.5) < 0.45
    # Monte Carlo: 400 realisations of the two independent noises of the PSF, each shifted as
    # the PSF was; their sample variances against the propagated arrays.
    rng = np.random.default_rng(11)
    draws = 400
    predicted_total = 0
    for name, array in psfs.variance_arrays.items():
        noise = rng.standard_normal((draws, *SHAPE)) * np.sqrt(array[0].astype(np.float64))
        empirical = fourier_shift(noise, dx, dy).var(axis=0, ddof=1)
        relative = empirical / variances[name][0] - 1
        sigma = np.sqrt(2 / (draws - 1))  # the sample variance's relative scatter
        assert np.max(np.abs(relative)) < 5 * sigma, name
        assert abs(relative.mean()) < 5 * sigma / np.sqrt(relative.size), name
        predicted_total = predicted_total + variances[name][0].astype(np.float64)
    # ERR² is the sum of the propagated variances, as it was of the input ones.
    np.testing.assert_allclose(err[0].astype(np.float64) ** 2, predicted_total, rtol=2e-5)


def test_each_variance_is_the_squared_kernel_convolution():
    science, psfs = _problem(flat=True)
    result, (_, _, _, extra) = _collect(science, psfs)
    dx, dy = -result.xshift[0, 0], -result.yshift[0, 0]
    assert list(extra["variances"]) == ["var_poisson", "var_rnoise", "var_flat"]
    for name, array in psfs.variance_arrays.items():
        expected = _propagated(array[0].astype(np.float64), dx, dy)
        np.testing.assert_allclose(
            extra["variances"][name][0], expected, rtol=1e-5, atol=2e-7 * array.max()
        )
        assert extra["variances"][name].dtype == np.float32


def test_official_mode_shifts_the_variances_as_signal():
    science, psfs = _problem()
    result, (sci, err, dq, extra) = _collect(science, psfs, err_shift="official")
    dx, dy = -result.xshift[0, 0], -result.yshift[0, 0]
    for name, array in psfs.variance_arrays.items():
        np.testing.assert_allclose(
            extra["variances"][name][0],
            fourier_shift(array[0], dx, dy),
            atol=2e-7 * float(array.max()) * 10,
        )
    # SCI, DQ and the fits do not depend on the variances being there.
    plain = Stack(data=psfs.data, err=psfs.err, dq=psfs.dq)
    bare_result, (bare_sci, bare_err, bare_dq, bare_extra) = _collect(
        science, plain, err_shift="official"
    )
    assert bare_extra == {}
    np.testing.assert_array_equal(bare_sci, sci)
    np.testing.assert_array_equal(bare_err, err)
    np.testing.assert_array_equal(bare_dq, dq)
    np.testing.assert_array_equal(bare_result.xshift, result.xshift)


def test_without_variance_arrays_the_sink_gets_none_and_nothing_changes():
    science, psfs = _problem()
    with_vars = _collect(science, psfs)
    plain = Stack(data=psfs.data, err=psfs.err, dq=psfs.dq, noise_variance=None)
    without = _collect(science, plain)
    assert without[1][3] == {}
    for a, b in zip(with_vars[1][:3], without[1][:3], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(with_vars[0].yshift, without[0].yshift)


@pytest.mark.parametrize("err_shift", ["propagated", "official"])
def test_padded_edges_make_the_variances_nan_where_err_is(err_shift):
    science, psfs = _problem(nan_pixel=True)
    _, (_, err, _, extra) = _collect(science, psfs, edges="pad", err_shift=err_shift)
    outside = np.isnan(err)
    assert outside.any()
    for block in extra["variances"].values():
        np.testing.assert_array_equal(np.isnan(block), outside)  # the input NaN was cleaned


def test_no_data_keeps_the_unshifted_cleaned_variances():
    science, psfs = _problem(nan_pixel=True)
    empty = Stack(data=np.full((1, *SHAPE), np.nan), err=science.err, dq=science.dq)
    result, (_, _, _, extra) = _collect(empty, psfs)
    assert not np.isfinite(result.xshift).any()
    block = extra["variances"]["var_poisson"][0]
    expected = psfs.variance_arrays["var_poisson"][0].copy()
    assert np.isfinite(block).all()  # the NaN is replaced by its box median
    keep = np.isfinite(expected)
    np.testing.assert_array_equal(block[keep], expected[keep])
