import numpy as np

from coronalign.core.scratch import Scratch


def test_requests_share_one_block_grown_to_the_largest():
    scratch = Scratch(np.float64)
    small = scratch.array((2, 3))
    assert small.shape == (2, 3)
    assert small.dtype == np.float64
    assert small.flags.c_contiguous
    large = scratch.array((4, 5))
    again = scratch.array((3, 2))
    assert np.shares_memory(large, again)  # no new memory for a smaller request
    assert not np.shares_memory(small, large)  # grown: a new block
    assert scratch.array((4, 5)).base is large.base
