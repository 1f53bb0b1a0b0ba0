"""Scratch memory kept between calls that need arrays of the same kind again and again.

A new large numpy array is fresh memory from the kernel (glibc gives blocks above its mmap
threshold back when they are freed), faulted in and zeroed page by page; an alignment
that makes the same temporaries for every integration spends much of a 640 × 640 step
there (docs/speed.md, "Fresh memory"). numpy keeps no such arrays itself.
"""

import numpy as np

__all__ = ["Scratch"]


class Scratch:
    """One block of memory, handed out as an array of the shape asked for.

    The block grows to the largest request and is never shrunk. An array it gives is
    valid until the next request (which may return the same memory): a user must be done
    with one before asking for the next.

    Parameters
    ----------
    dtype : data-type
        The type of the arrays given.
    """

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self._block = np.empty(0, dtype=self.dtype)

    def array(self, shape):
        """An uninitialised C-contiguous array of ``shape`` on the kept block.

        Parameters
        ----------
        shape : tuple of int

        Returns
        -------
        ndarray
        """
        count = int(np.prod(shape))
        if self._block.size < count:
            self._block = np.empty(count, dtype=self.dtype)
        return self._block[:count].reshape(shape)
