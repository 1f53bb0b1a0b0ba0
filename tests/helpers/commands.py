"""Command lines of ``coronalign``, for :func:`coronalign.cli.main` or a subprocess."""

__all__ = ["align_command"]


def align_command(science, psfstack, psfmask, output, *extra):
    """Arguments of ``coronalign align`` (for ``coronalign.cli.main``)."""
    return [
        "align",
        str(science),
        str(psfstack),
        "--psfmask",
        str(psfmask),
        "-o",
        str(output),
        *map(str, extra),
    ]
