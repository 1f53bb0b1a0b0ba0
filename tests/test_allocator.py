import platform

from coronalign.cli.allocator import MMAP_THRESHOLD, keep_freed_memory


def test_glibc_takes_every_setting():
    """On glibc every mallopt value is within what it accepts (it refuses an mmap
    threshold above 32 MiB, for one); elsewhere nothing is done and False is said."""
    taken = keep_freed_memory()
    assert taken is (platform.libc_ver()[0] == "glibc")
    assert MMAP_THRESHOLD <= 32 << 20
