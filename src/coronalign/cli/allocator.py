"""The C allocator's settings of a coronalign process: freed memory kept for reuse.

An alignment makes the same large temporaries for every science integration (transforms
of a few MiB to a few tens of MiB). glibc's ``malloc`` hands every block above its mmap
threshold back to the kernel when it is freed, and its heap's free top above the trim
threshold too, so the next integration's blocks come as fresh pages, each faulted in
and zeroed by the kernel. On the 2-core virtual machine of benchmarks/RESULTS.md that
kernel time was up to a third of a 640 × 640 step. Neither numpy nor Python offers a
setting for it (numpy's own cache keeps only blocks of up to 1 KiB), so the limits are
raised here through ``mallopt``, once, when the command line starts; forked processes
(``--threads``, the workflow's warm start) inherit them. Results do not depend on them.

Elsewhere than glibc (macOS, musl) this does nothing.
"""

import ctypes

__all__ = ["keep_freed_memory"]

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

#: Blocks up to this size come from the heap (glibc's largest allowed mmap threshold).
MMAP_THRESHOLD = 32 << 20
#: Free memory kept at the top of the heap before it is given back to the kernel.
TRIM_THRESHOLD = 256 << 20
#: Extra memory asked for whenever the heap grows (fewer, larger growths).
TOP_PAD = 64 << 20


def keep_freed_memory():
    """Keep freed blocks of up to ``MMAP_THRESHOLD`` in the process for reuse.

    Returns
    -------
    bool
        True if glibc took the settings; False where there is no glibc ``mallopt``.
    """
    try:  # the symbols the process has loaded already: libc's where it is glibc
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    settings = (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (_M_TOP_PAD, TOP_PAD),
    )
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)
