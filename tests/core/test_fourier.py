import numpy as np
import pytest
import scipy.ndimage

from coronalign.core.fourier import fourier_shift, fourier_shift_pair
from tests.helpers.images import blob_image


@pytest.mark.parametrize("shape", [(64, 64), (63, 70), (32, 45)])
@pytest.mark.parametrize(("dx", "dy"), [(0.37, -1.21), (-2.5, 0.5), (0.0, 3.75)])
def test_matches_scipy_fourier_shift_on_complex_fft(shape, dx, dy):
    """Same operator as the official step: ndimage.fourier_shift on fftn, real part."""
    image = blob_image(shape)
    expected = np.fft.ifftn(scipy.ndimage.fourier_shift(np.fft.fftn(image), (dy, dx))).real
    np.testing.assert_allclose(fourier_shift(image, dx, dy), expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize(("dx", "dy"), [(3, -2), (-7, 11), (0, 1)])
def test_integer_shift_is_an_exact_roll_and_round_trips(dx, dy):
    image = blob_image((48, 50))
    moved = fourier_shift(image, dx, dy)
    np.testing.assert_allclose(moved, np.roll(image, (dy, dx), axis=(0, 1)), rtol=0, atol=1e-14)
    np.testing.assert_allclose(fourier_shift(moved, -dx, -dy), image, rtol=0, atol=1e-14)


def test_subpixel_round_trip_and_direction():
    image = blob_image((64, 64))
    back = fourier_shift(fourier_shift(image, 0.3, -0.6), -0.3, 0.6)
    np.testing.assert_allclose(back, image, atol=1e-3 * image.max())
    # A point-like peak moves by +dx columns, +dy rows.
    peak = np.zeros((32, 32))
    peak[10, 12] = 1.0
    moved = fourier_shift(peak, 2.0, 5.0)
    assert np.unravel_index(np.argmax(moved), moved.shape) == (15, 14)


def test_stack_and_dtype():
    stack = np.stack([blob_image((40, 40), seed) for seed in range(3)]).astype(np.float32)
    out = fourier_shift(stack, 0.25, 0.5)
    assert out.dtype == np.float64
    assert out.shape == stack.shape
    np.testing.assert_allclose(out[1], fourier_shift(stack[1].astype(np.float64), 0.25, 0.5))


@pytest.mark.parametrize("shape", [(64, 64), (63, 70)])
def test_pair_shift_equals_two_single_shifts(shape):
    first, second = blob_image(shape, 1), blob_image(shape, 2) * 1e-3
    a, b = fourier_shift_pair(first, second, -0.37, 1.41)
    np.testing.assert_allclose(a, fourier_shift(first, -0.37, 1.41), rtol=0, atol=1e-14)
    # Packing mixes rounding: errors stay at the level of eps times the larger image.
    tolerance = 1e-15 * np.abs(first).max()
    np.testing.assert_allclose(b, fourier_shift(second, -0.37, 1.41), rtol=0, atol=tolerance)
