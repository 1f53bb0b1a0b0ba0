"""``reference: each | first | mean``, against the simulator's truth."""

import numpy as np
import pytest

from coronalign.core.align import Stack, align_stacks, mean_integration
from coronalign.simulation import simulate_exposures

NINTS, NPSFS = 4, 2


@pytest.fixture(scope="module")
def sim():
    return simulate_exposures("nircam", nints=NINTS, npsfs=NPSFS, seed=11)


def _run(sim, **options):
    blocks = {}
    result = align_stacks(
        Stack(sim.sci, sim.sci_err, sim.sci_dq),
        Stack(sim.psf, sim.psf_err, sim.psf_dq),
        sim.mask,
        lambda row, *block: blocks.update({row: tuple(b.copy() for b in block)}),
        **options,
    )
    return result, blocks


def _truth(sim):
    return np.asarray(sim.truth["xshift"]), np.asarray(sim.truth["yshift"])


def test_each_fits_every_integration_to_its_truth(sim):
    result, blocks = _run(sim)
    x, y = _truth(sim)
    assert sorted(blocks) == list(range(NINTS))
    assert np.max(np.abs(result.xshift - x)) < 0.02
    assert np.max(np.abs(result.yshift - y)) < 0.02
    # The integrations' pointing differs (jitter) by more than the fits' error.
    assert np.std(x, axis=0).min() > 0.005


def test_first_gives_every_integration_the_first_ones_shifts(sim):
    each, each_blocks = _run(sim)
    first, blocks = _run(sim, reference="first")
    for name in ("xshift", "yshift", "beta", "xshift_err"):
        values = getattr(first, name)
        np.testing.assert_array_equal(values, np.repeat(getattr(each, name)[:1], NINTS, axis=0))
    assert first.integrations == list(range(NINTS))
    assert sorted(blocks) == list(range(NINTS))
    for row in range(NINTS):
        for got, expected in zip(blocks[row], each_blocks[0], strict=True):
            np.testing.assert_array_equal(got, expected)
    x, _ = _truth(sim)
    # Right for the first integration, off by the jitter for the others.
    assert np.max(np.abs(first.xshift[0] - x[0])) < 0.02
    assert np.sqrt(np.mean((first.xshift - x) ** 2)) > np.sqrt(np.mean((each.xshift - x) ** 2))


def test_mean_fits_the_mean_pointing(sim):
    mean, blocks = _run(sim, reference="mean")
    x, y = _truth(sim)
    np.testing.assert_array_equal(mean.xshift, np.repeat(mean.xshift[:1], NINTS, axis=0))
    assert np.max(np.abs(mean.xshift[0] - x.mean(axis=0))) < 0.01
    assert np.max(np.abs(mean.yshift[0] - y.mean(axis=0))) < 0.01
    assert (mean.status == "converged").all()
    for row in range(1, NINTS):
        np.testing.assert_array_equal(blocks[row][0], blocks[0][0])


def test_cube_with_the_mean_is_one_row(sim):
    result, blocks = _run(sim, reference="mean", integrations=[0])
    assert result.xshift.shape == (1, NPSFS)
    assert sorted(blocks) == [0]


def test_mean_integration_cleans_then_averages():
    data = np.arange(2 * 5 * 5, dtype=float).reshape(2, 5, 5)
    dq = np.zeros(data.shape, np.uint32)
    data[1, 2, 2] = 1e9  # a bad pixel, flagged: replaced before the mean
    dq[1, 2, 2] = 1
    err = np.full(data.shape, 2.0)
    err[0, 0, 0] = np.nan
    mean = mean_integration(Stack(data, err, dq), 1, 3, 0)
    assert mean.data.shape == (1, 5, 5)
    assert mean.data[0, 2, 2] < 100
    assert mean.data[0, 0, 0] == pytest.approx((data[0, 0, 0] + data[1, 0, 0]) / 2)
    assert mean.err[0, 1, 1] == pytest.approx(np.sqrt(8) / 2)
    assert mean.err[0, 0, 0] == pytest.approx(1.0)
    assert not mean.dq.any()
