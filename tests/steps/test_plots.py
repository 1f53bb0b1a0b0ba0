"""The report figure: bad pixels of the aligned PSF are shown masked (grey), not as values."""

import numpy as np
import pytest
from astropy.io import fits
from matplotlib.colors import to_rgba

from coronalign.dq import DO_NOT_USE
from coronalign.io.preview import Plane, read_plane
from coronalign.io.tables import read_shift_table
from coronalign.steps.plots import BAD_PIXEL_GREY, aligned_bad_pixels, plot_exposure


def test_the_bad_pixels_move_with_the_psf_by_minus_the_rounded_shift():
    dq = np.zeros((8, 10), np.uint32)
    dq[4, 5] = DO_NOT_USE
    data = np.ones((8, 10))
    data[1, 1] = np.nan
    bad = aligned_bad_pixels(Plane(data, dq, {}, 3), (1.6, -2.2))  # rows +2, columns -2
    assert sorted(zip(*np.nonzero(bad), strict=True)) == [
        (3, 9),
        (6, 3),
    ]  # circular, as the Fourier shift


def test_unaligned_or_unknown_shifts_leave_the_bad_pixels_in_place():
    dq = np.zeros((4, 4), np.uint32)
    dq[2, 3] = DO_NOT_USE | 4
    assert np.array_equal(
        aligned_bad_pixels(Plane(np.ones((4, 4)), dq, {}, 3), (np.nan, 0.0)), dq > 0
    )


@pytest.fixture
def flagged_stack(aligned, tmp_path):
    """The PSF stack of ``aligned`` with pixels of plane 0 flagged DO_NOT_USE."""
    path = tmp_path / "flagged_psfstack.fits"
    with fits.open(aligned["psfstack"]) as hdulist:
        hdulist["DQ"].data[0, 20, 30] = DO_NOT_USE
        hdulist["DQ"].data[0, 40, 12] = DO_NOT_USE
        hdulist.writeto(path)
    return path


def _psf_panel(figure):
    """The image of the aligned PSF panel (the second image of the figure)."""
    images = [image for ax in figure.axes for image in ax.get_images()]
    return images[1]


def test_the_aligned_psf_shows_the_psf_stacks_bad_pixels_in_grey(aligned, flagged_stack, tmp_path):
    figure = plot_exposure(
        aligned["product"],
        aligned["science"],
        aligned["shifts"],
        tmp_path / "x.png",
        selection=aligned["selection"],
        psfstack=flagged_stack,
    )
    assert (tmp_path / "x.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = read_shift_table(aligned["shifts"])
    first = (np.asarray(table["integration"]) == 0) & (np.asarray(table["psf"]) == 0)
    dx, dy = (round(float(np.asarray(table[c])[first][0])) for c in ("xshift", "yshift"))
    panel = _psf_panel(figure)
    shown = np.ma.getmaskarray(np.ma.masked_invalid(panel.get_array()))
    assert shown[20 - dy, 30 - dx]
    assert shown[40 - dy, 12 - dx]
    # the product holds values there and does not flag them: without the stack they
    # would be drawn as values
    product_plane = read_plane(aligned["product"], "product")
    own = ~np.isfinite(product_plane.data) | ((product_plane.dq & DO_NOT_USE) != 0)
    assert not own[20 - dy, 30 - dx]
    assert not own[40 - dy, 12 - dx]
    # nothing else is hidden than the product's own bad pixels and these two
    assert shown.sum() == own.sum() + 2
    assert panel.cmap.get_bad() == pytest.approx(to_rgba(BAD_PIXEL_GREY))


def test_without_the_psf_stack_only_the_products_own_bad_pixels_are_masked(aligned, tmp_path):
    figure = plot_exposure(
        aligned["product"], aligned["science"], aligned["shifts"], tmp_path / "y.png"
    )
    assert not np.isnan(_psf_panel(figure).get_array()).any()


def test_read_plane_reads_one_plane_of_sci_and_dq(aligned, flagged_stack):
    plane = read_plane(flagged_stack, "PSF stack", index=(0,))
    with fits.open(flagged_stack) as hdulist:
        assert np.array_equal(plane.data, hdulist["SCI"].data[0])
        assert np.array_equal(plane.dq, hdulist["DQ"].data[0])
    assert plane.ndim == 3
    assert plane.subarray["xstart"] == 1
