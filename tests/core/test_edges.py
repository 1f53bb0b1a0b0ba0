"""``edges: pad``: the shift in a reflect-padded frame, against an analytic truth.

The simulator's images are periodic and band-limited, so there the circular shift is exact;
real frames are not. This scene is not periodic: a background gradient (the periodic image
jumps from one edge to the other) and a bright source cut by the right edge, sampled from
their analytic form at the shifted position for the PSF. The truth of the aligned PSF is
then the science scene itself.
"""

import numpy as np
import pytest

from coronalign.core.align import DQ_WRAPPED, Stack, align_stacks
from coronalign.core.edges import MARGIN, pad_frames, pad_widths
from tests.helpers.images import border_weight

SHAPE = (64, 72)
SHIFT = (1.3, -0.7)


def _scene(dx=0.0, dy=0.0):
    ny, nx = SHAPE
    y, x = np.mgrid[:ny, :nx].astype(float)
    x, y = x - dx, y - dy

    def star(cx, cy, sigma, amplitude):
        return amplitude * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * sigma * sigma))

    return star(nx / 2, ny / 2, 2.5, 100) + star(nx - 3, 20, 1.6, 60) + 0.05 * x + 0.03 * y + 2


def _stack(image):
    return Stack(image[None], np.full((1, *SHAPE), 0.1), np.zeros((1, *SHAPE), np.uint32))


def _align(edges):
    blocks = {}
    result = align_stacks(
        _stack(_scene()),
        _stack(_scene(*SHIFT)),
        border_weight(SHAPE, 12),
        lambda row, *block: blocks.update({row: block}),
        edges=edges,
    )
    sci, err, dq = blocks[0]
    return result, sci[0], err[0], dq[0]


def _edge_band(width=8):
    band = np.zeros(SHAPE, bool)
    band[:width] = band[-width:] = True
    band[:, :width] = band[:, -width:] = True
    return band


def test_pad_beats_wrap_against_the_analytic_truth():
    truth = _scene()
    wrap, wrap_sci, _, wrap_dq = _align("wrap")
    pad, pad_sci, _pad_err, pad_dq = _align("pad")
    np.testing.assert_array_equal(pad.xshift, wrap.xshift)  # the fit is the same
    np.testing.assert_allclose(pad.xshift[0, 0], SHIFT[0], atol=2e-3)
    np.testing.assert_array_equal(pad_dq, wrap_dq)  # the same pixels flagged
    usable = (pad_dq & DQ_WRAPPED) == 0
    band = _edge_band() & usable

    def rms(image, where):
        return float(np.sqrt(np.mean((image - truth)[where] ** 2)))

    # Measured: 0.35 -> 0.10 next to the edges, 0.083 -> 0.023 inside (zero padding: 0.36).
    assert rms(pad_sci, band) < 0.4 * rms(wrap_sci, band)
    assert rms(pad_sci, ~_edge_band() & usable) < 0.4 * rms(wrap_sci, ~_edge_band() & usable)


def test_pad_never_invents_the_pixels_without_a_source():
    _, wrap_sci, _, _ = _align("wrap")
    _, sci, err, dq = _align("pad")
    outside = (dq & DQ_WRAPPED) == DQ_WRAPPED
    # Shifted by -(1.3, -0.7): columns 71 and 70 and row 0 have their source outside.
    assert outside[:, -2:].all()
    assert outside[0].all()
    assert outside.sum() == 2 * 64 + 70
    assert np.isnan(sci[outside]).all()
    assert np.isnan(err[outside]).all()
    assert np.isfinite(sci[~outside]).all()
    assert np.isfinite(err[~outside]).all()
    assert np.isfinite(wrap_sci).all()  # wrap keeps the wrapped values (flagged)


@pytest.mark.parametrize(("priors", "max_shift"), [([[0, 0]], 10.0), ([[3.2, -7.9]], 2.5)])
def test_pad_widths_reach_beyond_any_fit(priors, max_shift):
    (top, bottom), (left, right) = pad_widths(SHAPE, priors, max_shift)
    reach_x = abs(priors[0][0]) + max_shift
    reach_y = abs(priors[0][1]) + max_shift
    assert min(left, right) >= reach_x + MARGIN - 1
    assert min(top, bottom) >= reach_y + MARGIN - 1
    padded = pad_frames(np.zeros((2, *SHAPE)), ((top, bottom), (left, right)))
    assert padded.shape == (2, SHAPE[0] + top + bottom, SHAPE[1] + left + right)


def test_padding_is_a_reflection():
    image = np.arange(12.0).reshape(3, 4)
    padded = pad_frames(image, ((1, 1), (2, 1)))
    np.testing.assert_array_equal(padded[1, :3], [2, 1, 0])
    np.testing.assert_array_equal(padded[0, 2:6], image[1])
