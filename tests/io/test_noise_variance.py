"""The noise variance of the fit errors: VAR_POISSON + VAR_RNOISE where a file has both."""

import numpy as np
from stdatamodels.jwst import datamodels

from coronalign.io.models import read_stack


def _cube(path, **arrays):
    shape = (2, 8, 8)
    rng = np.random.default_rng(3)
    model = datamodels.CubeModel(
        data=rng.normal(size=shape).astype(np.float32),
        err=np.full(shape, 2.0, dtype=np.float32),
        dq=np.zeros(shape, dtype=np.uint32),
        **arrays,
    )
    model.save(path)
    return path


def test_var_poisson_and_var_rnoise_are_the_noise_variance(tmp_path):
    poisson = np.full((2, 8, 8), 1.5, dtype=np.float32)
    rnoise = np.full((2, 8, 8), 0.25, dtype=np.float32)
    path = _cube(tmp_path / "a_calints.fits", var_poisson=poisson, var_rnoise=rnoise)
    stack, model = read_stack(path, "science exposure")
    model.close()
    np.testing.assert_array_equal(stack.noise_variance, poisson + rnoise)
    np.testing.assert_array_equal(stack.variance(1), np.full((8, 8), 1.75))  # not ERR² = 4


def test_without_both_variances_err_squared_stands_for_them(tmp_path):
    path = _cube(tmp_path / "b_calints.fits", var_poisson=np.ones((2, 8, 8), np.float32))
    stack, model = read_stack(path, "science exposure")
    model.close()
    assert stack.noise_variance is None
    np.testing.assert_array_equal(stack.variance(0), np.full((8, 8), 4.0))


def test_variance_arrays_are_read_on_request_and_one_of_another_shape_is_left_out(tmp_path, caplog):
    poisson = np.full((2, 8, 8), 1.5, dtype=np.float32)
    flat = np.full((2, 4, 4), 0.1, dtype=np.float32)  # not the data's shape
    path = _cube(tmp_path / "c_calints.fits", var_poisson=poisson, var_flat=flat)
    stack, model = read_stack(path, "PSF stack")
    model.close()
    assert stack.variance_arrays is None  # not asked for: not read
    with caplog.at_level("WARNING"):
        stack, model = read_stack(path, "PSF stack", variance_arrays=True)
    model.close()
    assert list(stack.variance_arrays) == ["var_poisson"]
    np.testing.assert_array_equal(stack.variance_arrays["var_poisson"], poisson)
    assert "VAR_FLAT array of the PSF stack has shape (2, 4, 4)" in caplog.text


def test_empty_variance_extensions_are_left_out_without_a_warning(tmp_path, caplog):
    # Re-processed flight files (program 1184, NIRCam) carry VAR_* extensions without data,
    # which stdatamodels reports as set to None: nothing to use, and nothing to warn about.
    from coronalign.io.models import VARIANCE_NAMES, _variance_arrays

    class Model:  # the data model as stdatamodels opens such a file
        def hasattr(self, name):
            return name in VARIANCE_NAMES

        var_poisson = var_rnoise = var_flat = None

    with caplog.at_level("INFO", logger="coronalign.io.models"):
        arrays = _variance_arrays("x_calints.fits", Model(), "PSF exposure", (2, 8, 8))
    assert arrays is None
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert sum("is empty: not used" in r.getMessage() for r in caplog.records) == 3
