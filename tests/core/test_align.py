import mmap
import os

import numpy as np
import pytest

from coronalign.core import align, pool
from coronalign.core.align import DQ_DO_NOT_USE, DQ_REPLACED, DQ_WRAPPED, Stack, align_stacks
from tests.helpers.images import blob_image, border_weight, shifted


def _stack(planes, dq=None):
    planes = np.asarray(planes, dtype=np.float64)
    return Stack(
        data=planes,
        err=np.full(planes.shape, 0.1),
        dq=np.zeros(planes.shape, np.uint32) if dq is None else dq,
    )


class Collect:
    """A sink that keeps every block."""

    def __init__(self):
        self.blocks = {}

    def __call__(self, row, sci, err, dq):
        self.blocks[row] = (sci.copy(), err.copy(), dq.copy())


class SharedCollect:
    """A sink for worker processes: the rows land in memory shared with forked processes."""

    def __init__(self, nrows, npsfs, shape):
        full = (nrows, npsfs, *shape)
        size = int(np.prod(full))
        self._memory = mmap.mmap(-1, size * (8 + 8 + 4) + nrows * 8)  # MAP_SHARED
        arrays, offset = [], 0
        for dtype, shape_ in ((np.float64, full), (np.float64, full), (np.uint32, full)):
            arrays.append(np.frombuffer(self._memory, dtype, size, offset).reshape(shape_))
            offset += size * np.dtype(dtype).itemsize
        self.sci, self.err, self.dq = arrays
        self.pids = np.frombuffer(self._memory, np.int64, nrows, offset)

    def __call__(self, row, sci, err, dq):
        self.sci[row], self.err[row], self.dq[row] = sci, err, dq
        self.pids[row] = os.getpid()


def _problem(shape=(64, 64), nints=3, npsfs=2):
    base = blob_image(shape, seed=8)
    science = _stack([shifted(base, 0.1 * k, -0.2 * k) for k in range(nints)])
    offsets = [(0.4 - 0.5 * m, -0.3 + 0.2 * m, 1 + m) for m in range(npsfs)]
    psfs = _stack([shifted(base, dx, dy, b) for dx, dy, b in offsets])
    truth = np.array(
        [[(dx - 0.1 * k, dy + 0.2 * k) for dx, dy, _ in offsets] for k in range(nints)]
    )
    return science, psfs, truth


def test_quad_alignment_recovers_every_pair_and_aligns_the_psfs():
    science, psfs, truth = _problem()
    sink = Collect()
    result = align_stacks(science, psfs, border_weight((64, 64)), sink)
    assert result.xshift.shape == (3, 2)
    np.testing.assert_allclose(result.xshift, truth[..., 0], atol=1e-6)
    np.testing.assert_allclose(result.yshift, truth[..., 1], atol=1e-6)
    np.testing.assert_allclose(result.beta, [[1, 2]] * 3, rtol=1e-6)
    assert result.converged.all()
    assert sorted(sink.blocks) == [0, 1, 2]
    # Plane [k, m] is PSF m moved onto integration k: beta * science_k.
    sci_block = sink.blocks[2][0]
    inner = (slice(8, -8), slice(8, -8))
    np.testing.assert_allclose(sci_block[1][inner], 2 * science.data[2][inner], atol=1e-6)


def test_cube_mode_fits_integration_zero_only():
    science, psfs, truth = _problem()
    sink = Collect()
    result = align_stacks(science, psfs, border_weight((64, 64)), sink, integrations=[0])
    assert result.xshift.shape == (1, 2)
    assert list(sink.blocks) == [0]
    np.testing.assert_allclose(result.xshift[0], truth[0, :, 0], atol=1e-6)


def test_results_do_not_depend_on_thread_count():
    science, psfs, _ = _problem(npsfs=4)
    one, two = Collect(), Collect()
    r1 = align_stacks(science, psfs, border_weight((64, 64)), one, threads=1)
    r2 = align_stacks(science, psfs, border_weight((64, 64)), two, threads=2)
    assert np.array_equal(r1.xshift, r2.xshift)
    for row in one.blocks:
        for a, b in zip(one.blocks[row], two.blocks[row], strict=True):
            assert np.array_equal(a, b)


@pytest.mark.skipif(not pool.can_fork(), reason="worker processes need Linux")
def test_worker_processes_give_the_same_rows_as_one_process():
    science, psfs, truth = _problem(nints=5, npsfs=3)
    weight = border_weight((64, 64))
    one = Collect()
    r1 = align_stacks(science, psfs, weight, one, threads=1)
    shared = SharedCollect(5, 3, (64, 64))
    r2 = align_stacks(science, psfs, weight, shared, threads=2, processes=2)
    assert len(set(shared.pids)) == 2  # rows were written by two processes
    assert os.getpid() in set(shared.pids)  # this process takes rows too
    for name in ("xshift", "yshift", "beta", "rms", "iterations", "status"):
        assert np.array_equal(getattr(r1, name), getattr(r2, name)), name
    np.testing.assert_allclose(r2.xshift, truth[..., 0], atol=1e-6)
    for row, (sci, err, dq) in one.blocks.items():
        assert np.array_equal(shared.sci[row], sci)
        assert np.array_equal(shared.err[row], err)
        assert np.array_equal(shared.dq[row], dq)


def test_output_dq_marks_replaced_and_wrapped_pixels_and_keeps_psf_dq():
    science, psfs, _ = _problem(nints=1, npsfs=1)
    dq = np.zeros(psfs.data.shape, np.uint32)
    data = psfs.data.copy()
    dq[0, 30, 30] = 1  # DO_NOT_USE: replaced by a median
    data[0, 30, 30] = 1e6
    dq[0, 40, 20] = 4  # JUMP_DET: a flag that does not make the pixel bad
    psfs = Stack(data=data, err=psfs.err, dq=dq)
    sink = Collect()
    result = align_stacks(science, psfs, border_weight((64, 64)), sink)
    dx, dy = result.xshift[0, 0], result.yshift[0, 0]
    out_dq = sink.blocks[0][2][0]
    # The replaced pixel now sits near (30 - dy, 30 - dx).
    ys, xs = np.nonzero(out_dq & DQ_REPLACED)
    assert np.all(np.abs(ys - (30 - dy)) < 1)
    assert np.all(np.abs(xs - (30 - dx)) < 1)
    assert np.all(out_dq[ys, xs] & DQ_DO_NOT_USE)
    ys, xs = np.nonzero(out_dq & 4)
    assert np.all(np.abs(ys - (40 - dy)) < 1)
    assert np.all(np.abs(xs - (20 - dx)) < 1)
    # dx = 0.4 > 0: the last column comes from wrapped data; dy < 0: the first row.
    assert np.all(out_dq[:, -1] & DQ_WRAPPED == DQ_WRAPPED)
    assert np.all(out_dq[0, :] & DQ_WRAPPED == DQ_WRAPPED)
    assert not np.any(out_dq[5:-5, 5:-5] & (1 << 30))  # OTHER_BAD_PIXEL: wrapped only
    # The bright garbage value did not reach the output.
    assert np.abs(sink.blocks[0][0]).max() < 10


def test_all_nan_integration_is_reported_not_fitted():
    science, psfs, _ = _problem(nints=2)
    data = science.data.copy()
    data[1] = np.nan
    science = Stack(data=data, err=science.err, dq=science.dq)
    sink = Collect()
    result = align_stacks(science, psfs, border_weight((64, 64)), sink)
    assert list(result.status[0]) == ["converged", "converged"]
    assert list(result.status[1]) == ["no_data", "no_data"]
    assert np.isnan(result.xshift[1]).all()
    sci, _, dq = sink.blocks[1]
    assert np.isfinite(sci).all()
    assert np.all(dq & DQ_DO_NOT_USE)


@pytest.mark.parametrize(("dx", "dy"), [(0.3, 0.0), (-1.5, 2.2), (0.0, -0.7)])
def test_moved_and_wrapped_masks(dx, dy):
    mask = np.zeros((10, 12), dtype=bool)
    mask[5, 6] = True
    moved = align._moved(mask, dx, dy)
    ys, xs = np.nonzero(moved)
    assert np.all(np.abs(ys - (5 - dy)) < 1)
    assert np.all(np.abs(xs - (6 - dx)) < 1)
    wrapped = align._wrapped((10, 12), dx, dy)
    assert wrapped.any() == (dx != 0 or dy != 0)


def test_a_jump_between_integrations_is_still_fitted_exactly():
    """The warm start from the first integration must not trap a fit far from it."""
    base = blob_image((96, 96), seed=9)
    moves = [(0.0, 0.0), (0.1, -0.1), (4.3, -3.6), (4.2, -3.5)]
    science = _stack([shifted(base, dx, dy) for dx, dy in moves])
    psfs = _stack([shifted(base, 0.25, 0.4, 1.3)])
    result = align_stacks(science, psfs, border_weight((96, 96), 12), Collect())
    expected_x = [0.25 - dx for dx, _ in moves]
    expected_y = [0.4 - dy for _, dy in moves]
    np.testing.assert_allclose(result.xshift[:, 0], expected_x, atol=1e-6)
    np.testing.assert_allclose(result.yshift[:, 0], expected_y, atol=1e-6)
    assert result.converged.all()


def test_more_psfs_than_one_chunk():
    """PSFs are fitted in chunks of PSF_CHUNK; every one must still be fitted and shifted."""
    shape = (48, 48)
    base = blob_image(shape, seed=12)
    science = _stack([shifted(base, 0.05 * k, 0.0) for k in range(2)])
    count = align.PSF_CHUNK + 4
    offsets = [(0.1 * (m % 5) - 0.2, 0.07 * (m % 7) - 0.2) for m in range(count)]
    psfs = _stack([shifted(base, dx, dy, 1 + 0.1 * m) for m, (dx, dy) in enumerate(offsets)])
    sink = Collect()
    result = align_stacks(science, psfs, border_weight(shape), sink, threads=2)
    expected_x = [[dx - 0.05 * k for dx, _ in offsets] for k in range(2)]
    np.testing.assert_allclose(result.xshift, expected_x, atol=1e-6)
    assert result.converged.all()
    assert sink.blocks[1][0].shape == (count, *shape)
    inner = (slice(6, -6), slice(6, -6))
    last = count - 1
    np.testing.assert_allclose(
        sink.blocks[1][0][last][inner], (1 + 0.1 * last) * science.data[1][inner], atol=1e-6
    )
