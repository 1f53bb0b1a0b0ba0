"""Tests for coronalign.core.badpix: median replacement of bad pixels."""

import tracemalloc

import numpy as np
import pytest

from coronalign.core import badpix
from coronalign.core.badpix import (
    bad_pixel_mask,
    box_half_width,
    clean_plane_stack,
    replace_bad_pixels,
)
from coronalign.steps.parameters import parse_bad_bits

# --------------------------------------------------------------------------- reference


def reference_replace(data, bad, box_length, zero=None):
    """Slow, obvious implementation of the documented rule (one pixel at a time).

    Each bad pixel gets the median of the ORIGINAL good pixels (not bad, finite) in the
    clipped box of half width h = L // 2; while the box has none, h -> max(1, 2h), capped at
    max(ny, nx) - 1; a plane without any good pixel gives 0.0; bad & zero gives 0.0.
    """
    data = np.asarray(data, dtype=np.float64)
    out = data.copy()
    ny, nx = data.shape[-2:]
    planes = data.reshape(-1, ny, nx)
    out_planes = out.reshape(-1, ny, nx)
    bad_planes = np.asarray(bad).reshape(-1, ny, nx)
    zero_planes = None if zero is None else np.asarray(zero).reshape(-1, ny, nx)
    h_max = max(ny, nx) - 1
    for p in range(planes.shape[0]):
        plane = planes[p]
        good = ~bad_planes[p] & np.isfinite(plane)
        for y, x in zip(*np.nonzero(bad_planes[p]), strict=True):
            if zero_planes is not None and zero_planes[p][y, x]:
                out_planes[p][y, x] = 0.0
                continue
            if not good.any():
                out_planes[p][y, x] = 0.0
                continue
            h = min(box_length // 2, h_max)
            while True:
                box = (slice(max(0, y - h), y + h + 1), slice(max(0, x - h), x + h + 1))
                values = plane[box][good[box]]
                if values.size:
                    out_planes[p][y, x] = np.median(values)
                    break
                h = min(max(1, 2 * h), h_max)
    return out


def random_case(rng, shape=(37, 43), fraction=0.1, clusters=3):
    """Random data with random bad pixels, a few bad clusters and edge/corner bad pixels."""
    data = rng.normal(100.0, 10.0, size=shape)
    bad = rng.random(shape) < fraction
    ny, nx = shape[-2:]
    for _ in range(clusters):
        y, x = rng.integers(0, ny - 4), rng.integers(0, nx - 4)
        size = rng.integers(2, 5)
        bad[..., y : y + size, x : x + size] = True
    bad[..., 0, 0] = bad[..., 0, 5] = bad[..., 7, 0] = bad[..., -1, -1] = True
    data[bad] = np.nan
    return data, bad


# --------------------------------------------------------------------------- box


@pytest.mark.parametrize(
    ("length", "half"), [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2), (5, 2), (9, 4)]
)
def test_box_half_width(length, half):
    assert box_half_width(length) == half


def test_box_half_width_rejects_negative():
    with pytest.raises(ValueError, match="box_length"):
        box_half_width(-1)


# --------------------------------------------------------------------------- mask


def test_bad_pixel_mask_flags_and_non_finite():
    data = np.ones((2, 3, 4), dtype=np.float32)
    dq = np.zeros((2, 3, 4), dtype=np.uint32)
    dq[0, 0, 0] = 1  # DO_NOT_USE
    dq[0, 0, 1] = 2  # SATURATED
    dq[1, 2, 3] = 16 | 4  # OUTLIER | JUMP_DET
    dq[1, 1, 1] = 2**31  # REFERENCE_PIXEL
    data[0, 1, 0] = np.nan
    data[0, 1, 1] = np.inf
    data[1, 0, 2] = -np.inf
    non_finite = ~np.isfinite(data)

    mask = bad_pixel_mask(data, dq, 18)
    expected = non_finite.copy()
    expected[0, 0, 1] = expected[1, 2, 3] = True
    np.testing.assert_array_equal(mask, expected)

    np.testing.assert_array_equal(bad_pixel_mask(data, dq, 0), non_finite)
    assert bad_pixel_mask(data, dq, 2**31)[1, 1, 1]
    assert bad_pixel_mask(data, dq.astype(np.int32), 2**31)[1, 1, 1]
    assert bad_pixel_mask(data, dq, parse_bad_bits("DO_NOT_USE"))[0, 0, 0]


def test_bad_pixel_mask_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        bad_pixel_mask(np.zeros((3, 3)), np.zeros((3, 4), dtype=np.uint32), 1)


# --------------------------------------------------------------------------- replacement


@pytest.mark.parametrize("box_length", [0, 1, 2, 3, 4, 5, 7])
def test_replace_matches_reference(rng, box_length):
    data, bad = random_case(rng, shape=(2, 37, 43))
    cleaned, filled = replace_bad_pixels(data, bad, box_length)
    expected = reference_replace(data, bad, box_length)
    assert cleaned.dtype == np.float64
    assert np.isfinite(cleaned).all()
    np.testing.assert_array_equal(cleaned, expected)
    np.testing.assert_array_equal(filled, bad)


def test_replace_hand_computed_edges_and_corners():
    data = np.arange(30, dtype=np.float64).reshape(5, 6)
    bad = np.zeros(data.shape, dtype=bool)
    bad[0, 0] = bad[0, 3] = bad[2, 0] = bad[4, 5] = True
    cleaned, _ = replace_bad_pixels(data, bad, 3)
    assert cleaned[0, 0] == np.median([1, 6, 7])  # row 0 and column 0 are not zeroed
    assert cleaned[0, 3] == np.median([2, 4, 8, 9, 10])
    assert cleaned[2, 0] == np.median([6, 7, 13, 18, 19])
    assert cleaned[4, 5] == np.median([22, 23, 28])
    assert cleaned[1, 1] == 7.0


def test_replace_grows_box_until_a_good_pixel():
    data = np.arange(400, dtype=np.float64).reshape(20, 20)
    bad = np.zeros(data.shape, dtype=bool)
    bad[5:14, 6:15] = True  # 9x9 hole: the centre (9, 10) needs half width 4 + ... growth
    cleaned, filled = replace_bad_pixels(data, bad, 3)
    np.testing.assert_array_equal(cleaned, reference_replace(data, bad, 3))
    assert filled[bad].all()
    # Centre: half widths 1, 2, 4 hold only bad pixels, 8 reaches the good ring around the hole.
    box = (slice(1, 18), slice(2, 19))
    assert cleaned[9, 10] == np.median(data[box][~bad[box]])


def test_replace_growth_from_one_by_one_box():
    data = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    bad = np.zeros(data.shape, dtype=bool)
    bad[1, 1] = True
    for length in (0, 1):
        cleaned, _ = replace_bad_pixels(data, bad, length)
        assert cleaned[1, 1] == np.median([1, 2, 3, 4, 6])


def test_replace_only_one_good_pixel_in_frame(rng):
    data = rng.normal(size=(30, 25))
    bad = np.ones(data.shape, dtype=bool)
    bad[29, 24] = False
    cleaned, _ = replace_bad_pixels(data, bad, 3)
    np.testing.assert_array_equal(cleaned, np.full(data.shape, data[29, 24]))


def test_replace_fully_bad_frame_gives_zeros(rng):
    data = rng.normal(size=(3, 16, 12))
    data[1] = np.nan
    bad = ~np.isfinite(data)
    bad[2, 4, 4] = True
    cleaned, filled = replace_bad_pixels(data, bad, 5)
    np.testing.assert_array_equal(cleaned[1], 0.0)
    assert filled[1].all()
    np.testing.assert_array_equal(cleaned[0], data[0])
    np.testing.assert_array_equal(cleaned, reference_replace(data, bad, 5))


def test_replace_box_larger_than_frame(rng):
    data, bad = random_case(rng, shape=(9, 11), fraction=0.3, clusters=1)
    cleaned, _ = replace_bad_pixels(data, bad, 1001)
    np.testing.assert_array_equal(cleaned, reference_replace(data, bad, 1001))
    np.testing.assert_array_equal(cleaned[bad], np.median(data[~bad]))


def test_replace_non_finite_values(rng):
    data = rng.normal(size=(12, 14))
    data[0, 0], data[5, 5], data[11, 13] = np.nan, np.inf, -np.inf
    bad = bad_pixel_mask(data, np.zeros(data.shape, dtype=np.uint32), 0)
    cleaned, filled = replace_bad_pixels(data, bad, 3)
    assert np.isfinite(cleaned).all()
    assert filled.sum() == 3
    np.testing.assert_array_equal(cleaned, reference_replace(data, bad, 3))


def test_unmarked_non_finite_values_are_kept_but_never_used(rng):
    data = rng.normal(size=(8, 8))
    data[3, 4] = np.inf  # not marked bad: kept as is, excluded from the medians
    bad = np.zeros(data.shape, dtype=bool)
    bad[3, 3] = True
    cleaned, _ = replace_bad_pixels(data, bad, 3)
    assert cleaned[3, 4] == np.inf
    box = data[2:5, 2:5].ravel()
    assert cleaned[3, 3] == np.median(box[np.isfinite(box) & (box != data[3, 3])])


def test_replace_is_order_independent():
    # Filling one pixel at a time in scan order would give [10, 10, 15, 20].
    data = np.array([[10.0, np.nan, np.nan, 20.0]])
    bad = ~np.isfinite(data)
    cleaned, _ = replace_bad_pixels(data, bad, 3)
    np.testing.assert_array_equal(cleaned, [[10.0, 10.0, 20.0, 20.0]])
    # Reversing the scan direction mirrors the result.
    flipped, _ = replace_bad_pixels(data[:, ::-1], bad[:, ::-1], 3)
    np.testing.assert_array_equal(flipped, cleaned[:, ::-1])


def test_replace_commutes_with_flips_and_transpose(rng):
    data, bad = random_case(rng, shape=(31, 29), fraction=0.2)
    cleaned, _ = replace_bad_pixels(data, bad, 3)
    for transform in (np.flipud, np.fliplr, np.transpose, lambda a: a[::-1, ::-1].T):
        other, _ = replace_bad_pixels(transform(data), transform(bad), 3)
        np.testing.assert_array_equal(other, transform(cleaned))


def test_replace_zero_mask(rng):
    data, bad = random_case(rng, shape=(20, 24))
    zero = np.zeros(data.shape, dtype=bool)
    zero[:, :6] = True  # a NON_SCIENCE strip
    cleaned, filled = replace_bad_pixels(data, bad, 3, zero=zero)
    np.testing.assert_array_equal(cleaned[bad & zero], 0.0)
    np.testing.assert_array_equal(cleaned[~bad], data[~bad])  # zero alone changes nothing
    np.testing.assert_array_equal(filled, bad)
    np.testing.assert_array_equal(cleaned, reference_replace(data, bad, 3, zero=zero))


def test_replace_does_not_modify_inputs(rng):
    data, bad = random_case(rng, shape=(2, 15, 17))
    zero = rng.random(data.shape) < 0.05
    copies = [a.copy() for a in (data, bad, zero)]
    replace_bad_pixels(data, bad, 3, zero=zero)
    for original, copy in zip((data, bad, zero), copies, strict=True):
        np.testing.assert_array_equal(original, copy)


def test_replace_float32_gives_float64_of_float64_computation(rng):
    data, bad = random_case(rng, shape=(3, 22, 19))
    data32 = data.astype(np.float32)
    cleaned32, _ = replace_bad_pixels(data32, bad, 3)
    cleaned64, _ = replace_bad_pixels(data32.astype(np.float64), bad, 3)
    assert cleaned32.dtype == np.float64
    np.testing.assert_array_equal(cleaned32, cleaned64)
    np.testing.assert_array_equal(cleaned32[~bad], data32[~bad].astype(np.float64))
    big_endian, _ = replace_bad_pixels(data32.astype(">f4"), bad, 3)
    np.testing.assert_array_equal(big_endian, cleaned64)


def test_replace_no_bad_pixels_returns_copy(rng):
    data = rng.normal(size=(6, 7))
    cleaned, filled = replace_bad_pixels(data, np.zeros(data.shape, dtype=bool), 3)
    assert not filled.any()
    assert cleaned is not data
    np.testing.assert_array_equal(cleaned, data)


def test_replace_empty_and_single_pixel_frames():
    cleaned, filled = replace_bad_pixels(np.zeros((0, 5)), np.zeros((0, 5), dtype=bool), 3)
    assert cleaned.shape == filled.shape == (0, 5)
    cleaned, filled = replace_bad_pixels(np.full((2, 1, 1), np.nan), np.ones((2, 1, 1), bool), 3)
    np.testing.assert_array_equal(cleaned, 0.0)
    assert filled.all()


def test_replace_shape_errors():
    with pytest.raises(ValueError, match="2 dimensions"):
        replace_bad_pixels(np.zeros(5), np.zeros(5, dtype=bool), 3)
    with pytest.raises(ValueError, match="bad mask shape"):
        replace_bad_pixels(np.zeros((4, 5)), np.zeros((5, 4), dtype=bool), 3)
    with pytest.raises(ValueError, match="zero mask shape"):
        replace_bad_pixels(np.zeros((4, 5)), np.zeros((4, 5), dtype=bool), 3, zero=np.zeros(3))


@pytest.mark.parametrize(
    ("rank_min_work", "chunk_elements", "first_round_window"),
    [
        (0, 1_000_000, 49),  # every median by the rank-bucket method
        (10**18, 1_000_000, 49),  # never the rank method: window or list gathering
        (10**18, 7, 0),  # tiny chunks, summed-area table from the first round
        (0, 7, 0),  # rank method with tiny chunks
    ],
)
def test_all_median_methods_and_chunkings_agree(
    rng, monkeypatch, rank_min_work, chunk_elements, first_round_window
):
    monkeypatch.setattr(badpix, "_RANK_MIN_WORK", rank_min_work)
    monkeypatch.setattr(badpix, "_CHUNK_ELEMENTS", chunk_elements)
    monkeypatch.setattr(badpix, "_FIRST_ROUND_WINDOW", first_round_window)
    data, bad = random_case(rng, shape=(2, 24, 30), fraction=0.3, clusters=4)
    data[..., 8:12, 10:14] = 5.0  # ties
    bad[0, :, :20] = True  # a large hole: boxes larger than the good-pixel count
    bad[1, 3:21, 2:27] = True
    for box_length in (0, 3, 6):
        cleaned, _ = replace_bad_pixels(data, bad, box_length)
        np.testing.assert_array_equal(cleaned, reference_replace(data, bad, box_length))


def test_large_hole_stays_within_memory_budget(rng):
    data = rng.normal(size=(320, 320))
    bad = np.zeros(data.shape, dtype=bool)
    bad[100:150, 100:150] = True
    tracemalloc.start()
    try:
        cleaned, _ = replace_bad_pixels(data, bad, 3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.isfinite(cleaned).all()
    assert peak < 50e6
    # Spot checks against the reference on a few hole pixels (full reference is slow here).
    for y, x in [(100, 100), (125, 125), (149, 120), (130, 149)]:
        h = 1
        while not (~bad[max(0, y - h) : y + h + 1, max(0, x - h) : x + h + 1]).any():
            h *= 2
        box = (slice(max(0, y - h), y + h + 1), slice(max(0, x - h), x + h + 1))
        assert cleaned[y, x] == np.median(data[box][~bad[box]])


# --------------------------------------------------------------------------- clean_plane_stack


def test_clean_plane_stack(rng):
    shape = (2, 18, 21)
    data = rng.normal(50.0, 5.0, size=shape).astype(np.float32)
    err = rng.uniform(1.0, 2.0, size=shape).astype(np.float32)
    dq = np.zeros(shape, dtype=np.uint32)
    dq[0, 3, 4] = 1  # DO_NOT_USE
    dq[0, 5, 5] = 4  # JUMP_DET: not in bad_bits
    dq[1, 0, 0] = 16  # OUTLIER
    dq[1, 10, :5] = 512 | 1  # NON_SCIENCE + DO_NOT_USE
    dq[1, 11, :5] = 512  # NON_SCIENCE only: not bad, kept
    data[0, 7, 7] = np.nan
    err[0, 3, 4] = np.nan  # bad data pixel with NaN ERR
    err[1, 12, 12] = np.inf
    err[1, 10, 1:3] = np.nan  # at pixels whose DATA becomes 0: ERR becomes 0 too
    err_before, data_before = err.copy(), data.copy()

    bad_bits = parse_bad_bits("DO_NOT_USE, OUTLIER")
    data_clean, err_clean, replaced = clean_plane_stack(data, err, dq, bad_bits, 3, zero_flags=512)

    bad = bad_pixel_mask(data, dq, bad_bits)
    zero = (dq & 512) != 0
    np.testing.assert_array_equal(replaced, bad)
    assert replaced[[0, 1, 0], [3, 0, 7], [4, 0, 7]].all()
    assert not replaced[0, 5, 5]
    assert not replaced[1, 11, :5].any()
    np.testing.assert_array_equal(data_clean[1, 10, :5], 0.0)
    np.testing.assert_array_equal(data_clean, reference_replace(data, bad, 3, zero=zero))
    assert data_clean.dtype == err_clean.dtype == np.float64

    assert np.isfinite(err_clean).all()
    finite = np.isfinite(err)
    np.testing.assert_array_equal(err_clean[finite], err[finite].astype(np.float64))
    np.testing.assert_array_equal(err_clean[1, 10, 1:3], 0.0)
    np.testing.assert_array_equal(err_clean, reference_replace(err, ~finite, 3, zero=zero & bad))
    np.testing.assert_array_equal(err, err_before)
    np.testing.assert_array_equal(data, data_before)


def test_clean_plane_stack_all_nan_err_plane_and_no_zero_flags(rng):
    data = rng.normal(size=(2, 8, 9))
    err = np.ones((2, 8, 9))
    err[1] = np.nan
    dq = np.zeros((2, 8, 9), dtype=np.uint32)
    dq[0, 2, 2] = 512 | 1
    data_clean, err_clean, replaced = clean_plane_stack(data, err, dq, 1, 3)
    np.testing.assert_array_equal(err_clean[1], 0.0)
    np.testing.assert_array_equal(err_clean[0], 1.0)
    # Without zero_flags a NON_SCIENCE bad pixel gets a median, not 0.
    assert replaced[0, 2, 2]
    assert data_clean[0, 2, 2] == np.median(np.delete(data[0, 1:4, 1:4].ravel(), 4))


def test_clean_plane_stack_shape_mismatch():
    with pytest.raises(ValueError, match="err shape"):
        clean_plane_stack(
            np.zeros((4, 4)), np.zeros((4, 5)), np.zeros((4, 4), dtype=np.uint32), 1, 3
        )


@pytest.mark.parametrize("zero_flags", [0, 512])
def test_clean_data_planes_is_the_data_of_clean_plane_stack(zero_flags):
    rng = np.random.default_rng(3)
    data = rng.normal(size=(2, 30, 40))
    err = rng.random((2, 30, 40))
    dq = np.where(rng.random((2, 30, 40)) < 0.05, 1, 0).astype(np.uint32)
    dq[0, 5:15, 5:9] |= 513
    data[1, 3, 4] = np.nan
    err[1, 7, 8] = np.nan
    expected, _, expected_replaced = badpix.clean_plane_stack(
        data, err, dq, 1, 3, zero_flags=zero_flags
    )
    clean, replaced = badpix.clean_data_planes(data, dq, 1, 3, zero_flags=zero_flags)
    np.testing.assert_array_equal(clean, expected)
    np.testing.assert_array_equal(replaced, expected_replaced)
