"""ERR through the shift: the squared kernel, checked against Monte Carlo."""

import numpy as np
import pytest
import scipy.fft

from coronalign.core.align import Stack, align_stacks
from coronalign.core.fourier import fourier_shift, shift_single, single_spectra
from coronalign.core.variance import squared_kernel_transfer, variance_phases
from tests.helpers.images import blob_image, border_weight, shifted

SHAPE = (24, 21)  # an even and an odd axis: the Nyquist term of the even one counts


def _propagated(variance, dx, dy):
    """The variance map convolved with the squared kernel, in float64."""
    ny, nx = variance.shape
    ty = squared_kernel_transfer(ny, [dy])[0]
    tx = squared_kernel_transfer(nx, [dx], real=True)[0]
    spectrum = scipy.fft.rfft2(variance) * ty[:, None] * tx[None, :]
    return scipy.fft.irfft2(spectrum, s=(ny, nx))


def _variance_map(seed=1):
    """A background and a few very noisy pixels (a bright PSF core, hot pixels)."""
    rng = np.random.default_rng(seed)
    variance = rng.uniform(0.5, 1.5, SHAPE)
    variance[12, 10] = 400.0
    variance[12, 11] = 150.0
    variance[3, 17] = 90.0
    return variance


@pytest.mark.parametrize(("dx", "dy"), [(0.37, -1.62), (0.5, 0.5), (-2.25, 0.81)])
def test_propagated_variance_matches_monte_carlo(dx, dy):
    variance = _variance_map()
    rng = np.random.default_rng(7)
    draws = 20000
    noise = rng.standard_normal((draws, *SHAPE)) * np.sqrt(variance)
    empirical = fourier_shift(noise, dx, dy).var(axis=0, ddof=1)
    predicted = _propagated(variance, dx, dy)
    # The sample variance of a Gaussian scatters by sqrt(2 / (draws - 1)) relative.
    relative = empirical / predicted - 1
    sigma = np.sqrt(2 / (draws - 1))
    assert np.max(np.abs(relative)) < 5 * sigma
    assert abs(relative.mean()) < 5 * sigma / np.sqrt(relative.size)
    # The official step's shifted ERR is not the noise of the shifted plane: far off next to
    # the noisy pixels (it rings, and can even go negative).
    official = fourier_shift(np.sqrt(variance), dx, dy) ** 2
    assert np.max(np.abs(official / empirical - 1)) > 20 * sigma


def test_integer_shift_rolls_the_variance():
    variance = _variance_map()
    np.testing.assert_allclose(
        _propagated(variance, 3, -2), np.roll(variance, (-2, 3), axis=(0, 1)), atol=1e-12
    )


def test_uniform_variance_loses_only_the_nyquist_term():
    # Σ k² = 1 - (1 - cos²(π d)) / n on an even axis (the Nyquist term), 1 on an odd one.
    dx, dy = 0.3, 0.4
    out = _propagated(np.ones(SHAPE), dx, dy)
    expected = 1 - (1 - np.cos(np.pi * dy) ** 2) / SHAPE[0]
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_single_precision_factors_agree_with_float64():
    variance = _variance_map()
    dx, dy = np.array([0.37, -1.2]), np.array([-1.62, 0.4])
    real, imag = single_spectra(np.stack([variance, variance]))
    out = np.empty((2, *SHAPE), dtype=np.float32)
    for i in range(2):
        one = tuple(part[i] for part in variance_phases(SHAPE, dx, dy))
        shift_single((real[i : i + 1], imag[i : i + 1]), one, out[i : i + 1])
        np.testing.assert_allclose(out[i], _propagated(variance, dx[i], dy[i]), atol=2e-6 * 400)


def _problem():
    base = blob_image((48, 48), seed=3)
    science = Stack(
        data=shifted(base, 0.3, -0.2)[None],
        err=np.full((1, 48, 48), 0.1),
        dq=np.zeros((1, 48, 48), np.uint32),
    )
    err = 0.05 + 0.3 * base / base.max()
    psfs = Stack(data=base[None], err=err[None], dq=np.zeros((1, 48, 48), np.uint32))
    return science, psfs, err


def _collect(science, psfs, **options):
    blocks = {}
    result = align_stacks(
        science, psfs, border_weight((48, 48)), lambda row, *b: blocks.update({row: b}), **options
    )
    return result, blocks[0]


def test_align_propagates_err_by_default_and_shifts_it_as_official():
    science, psfs, err = _problem()
    result, (sci, out_err, _) = _collect(science, psfs)
    dx, dy = -result.xshift[0, 0], -result.yshift[0, 0]
    np.testing.assert_allclose(out_err[0] ** 2, _propagated(err**2, dx, dy), rtol=1e-5)
    official_result, (official_sci, official_err, _) = _collect(science, psfs, err_shift="official")
    np.testing.assert_array_equal(official_sci, sci)  # SCI does not depend on the option
    np.testing.assert_array_equal(official_result.xshift, result.xshift)
    np.testing.assert_allclose(official_err[0], fourier_shift(err, dx, dy), atol=1e-6)
    assert np.max(np.abs(official_err - out_err)) > 1e-3
