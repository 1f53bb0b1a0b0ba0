"""Loading a PSFMASK as fit weights, and cutting a larger mask to the science subarray."""

import numpy as np
import pytest
from astropy.io import fits

from coronalign.errors import InputFileError
from coronalign.references.mask import load_psfmask
from tests.helpers.crds_cache import FRAME_SHAPE, NIRCAM_SUBARRAY_START, mask_values

# ----------------------------------------------------------------------------------------------
# load_psfmask


def _write_fits(path, data, **primary_keywords):
    primary = fits.PrimaryHDU()
    primary.header.update(primary_keywords)
    hdus = [primary]
    if data is not None:
        hdus.append(fits.ImageHDU(np.asarray(data, dtype=np.float32), name="SCI"))
    fits.HDUList(hdus).writeto(path)
    return path


def test_load_same_shape_mask_as_float64(caches):
    path = caches["good"]["references"]["jwst_nircam_psfmask_0001.fits"]
    weights = load_psfmask(path, FRAME_SHAPE, None)
    assert weights.dtype == np.float64
    np.testing.assert_array_equal(
        weights, mask_values("jwst_nircam_psfmask_0001.fits", FRAME_SHAPE)
    )


def test_cut_out_from_full_frame_mask(caches):
    path = caches["good"]["references"]["jwst_nircam_psfmask_0003.fits"]
    full = mask_values("jwst_nircam_psfmask_0003.fits", caches["good"]["full_shape"])
    xstart, ystart = NIRCAM_SUBARRAY_START
    sub = {"xstart": xstart, "ystart": ystart, "xsize": 64, "ysize": 64}
    weights = load_psfmask(path, FRAME_SHAPE, sub)
    np.testing.assert_array_equal(weights, full[ystart - 1 : ystart + 63, xstart - 1 : xstart + 63])


def test_cut_out_uses_the_masks_own_position(tmp_path, rng):
    data = rng.uniform(0.1, 1.0, (100, 120))
    path = _write_fits(tmp_path / "m.fits", data, SUBSTRT1=51, SUBSTRT2=21)
    weights = load_psfmask(path, (30, 40), {"xstart": 61, "ystart": 25})
    np.testing.assert_array_equal(weights, data.astype(np.float32)[4:34, 10:50])


def test_larger_mask_without_position_is_taken_as_full_frame(tmp_path, rng):
    data = rng.uniform(0.1, 1.0, (50, 50))
    path = _write_fits(tmp_path / "m.fits", data)
    weights = load_psfmask(path, (10, 20), {"xstart": 3, "ystart": 7})
    np.testing.assert_array_equal(weights, data.astype(np.float32)[6:16, 2:22])


def test_plain_fits_and_fractional_weights(tmp_path):
    data = np.full((8, 8), 0.5)
    data[0] = 0.0
    weights = load_psfmask(_write_fits(tmp_path / "m.fits", data), (8, 8), None)
    np.testing.assert_array_equal(weights, data)


def test_weights_above_one_are_kept_with_a_warning(tmp_path, caplog):
    path = _write_fits(tmp_path / "m.fits", np.full((4, 4), 2.0))
    with caplog.at_level("WARNING", logger="coronalign.references"):
        weights = load_psfmask(path, (4, 4), None)
    assert weights.max() == 2.0
    assert "exceed 1" in caplog.text


@pytest.mark.parametrize(
    ("mask_shape", "frame_shape"),
    [((32, 32), (64, 64)), ((64, 32), (64, 64)), ((128, 32), (64, 64))],
)
def test_smaller_mask_names_both_shapes(tmp_path, mask_shape, frame_shape):
    path = _write_fits(tmp_path / "m.fits", np.ones(mask_shape))
    with pytest.raises(InputFileError) as info:
        load_psfmask(path, frame_shape, {"xstart": 1, "ystart": 1})
    message = str(info.value)
    assert str(path) in message
    assert f"{mask_shape[0]}x{mask_shape[1]}" in message
    assert f"{frame_shape[0]}x{frame_shape[1]}" in message


def test_larger_mask_needs_the_science_position(tmp_path):
    path = _write_fits(tmp_path / "m.fits", np.ones((256, 256)))
    with pytest.raises(InputFileError, match=r"256x256.*64x64.*position .* is unknown"):
        load_psfmask(path, (64, 64), None)


def test_cut_out_outside_the_mask(tmp_path):
    path = _write_fits(tmp_path / "m.fits", np.ones((256, 256)), SUBSTRT1=1, SUBSTRT2=1)
    with pytest.raises(InputFileError, match=r"256x256.*64x64.*does not lie inside the mask"):
        load_psfmask(path, (64, 64), {"xstart": 200, "ystart": 1})


def test_cut_out_refuses_inconsistent_science_metadata(tmp_path):
    path = _write_fits(tmp_path / "m.fits", np.ones((256, 256)))
    with pytest.raises(InputFileError, match="xsize=320"):
        load_psfmask(path, (64, 64), {"xstart": 1, "ystart": 1, "xsize": 320, "ysize": 64})


@pytest.mark.parametrize(
    ("value", "match"),
    [(np.nan, "1 NaN or infinite"), (np.inf, "1 NaN or infinite"), (-0.5, "1 negative")],
)
def test_bad_weights(tmp_path, value, match):
    data = np.ones((16, 16))
    data[3, 4] = value
    path = _write_fits(tmp_path / "m.fits", data)
    with pytest.raises(InputFileError, match=match) as info:
        load_psfmask(path, (16, 16), None)
    assert info.value.path == str(path)


def test_all_zero_weights(tmp_path):
    path = _write_fits(tmp_path / "m.fits", np.zeros((16, 16)))
    with pytest.raises(InputFileError, match=r"all PSFMASK weights .* are zero"):
        load_psfmask(path, (16, 16), None)


def test_all_zero_inside_the_cut_out(tmp_path):
    data = np.zeros((64, 64))
    data[40:, 40:] = 1.0
    path = _write_fits(tmp_path / "m.fits", data)
    with pytest.raises(InputFileError, match="are zero"):
        load_psfmask(path, (16, 16), {"xstart": 1, "ystart": 1})


def test_not_fits(tmp_path):
    path = tmp_path / "mask.fits"
    path.write_text("this is not a FITS file\n")
    with pytest.raises(InputFileError, match="not a readable FITS file") as info:
        load_psfmask(path, (8, 8), None)
    assert info.value.path == str(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        load_psfmask(tmp_path / "absent.fits", (8, 8), None)


def test_no_sci_extension(tmp_path):
    path = _write_fits(tmp_path / "m.fits", None)
    with pytest.raises(InputFileError, match="no SCI extension"):
        load_psfmask(path, (8, 8), None)


def test_sci_not_2d(tmp_path):
    path = _write_fits(tmp_path / "m.fits", np.ones((2, 8, 8)))
    with pytest.raises(InputFileError, match="must be 2D, it has 3 dimensions"):
        load_psfmask(path, (8, 8), None)
