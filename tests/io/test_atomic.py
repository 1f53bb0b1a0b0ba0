"""Outputs written under a temporary name: nothing half-written, clear errors."""

import errno
import os
import subprocess
from pathlib import Path

import pytest

from coronalign import simulation
from coronalign.cli import main
from coronalign.errors import InputFileError
from coronalign.io import atomic
from coronalign.io.atomic import AtomicOutput, atomic_output
from tests.helpers.commands import align_command


def test_unwritable_output_folder_is_a_clear_error(tmp_path, capsys):
    sim = simulation.simulate_exposures("nircam", nints=1, npsfs=1, seed=5)
    paths = simulation.write_simulation(sim, tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: use a read-only path
            target = Path("/proc/coronalign_psfalign.fits")
        else:
            target = locked / "out_psfalign.fits"
        status = main(align_command(paths["science"], paths["psfstack"], paths["psfmask"], target))
    finally:
        locked.chmod(0o700)
    assert status == 2
    message = capsys.readouterr().err
    assert "output folder is not writable" in message or "cannot" in message
    assert str(target.parent) in message


# ---------------------------------------------------------------- stale temporary files


def _temporary_name(output, pid, start, machine=None, random="abcd1234"):
    """The name AtomicOutput gives a temporary file of ``output`` owned by ``pid``."""
    machine = machine or atomic._machine()
    return f".{output.stem}.{pid}-{start}-{machine}-{random}.partial{output.suffix}"


def _dead_pid():
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


needs_proc = pytest.mark.skipif(atomic._machine() is None, reason="needs Linux /proc")


@needs_proc
def test_a_temporary_file_left_by_a_dead_process_is_removed(tmp_path):
    output = tmp_path / "x_psfalign.fits"
    stale = tmp_path / _temporary_name(output, _dead_pid(), 12345)
    stale.write_bytes(b"half a product")
    with atomic_output(output) as temporary:
        temporary.write_bytes(b"whole")
    assert output.read_bytes() == b"whole"
    assert not stale.exists()


@needs_proc
def test_a_reused_process_id_does_not_keep_a_stale_file(tmp_path):
    """Same pid, another start time: another process, so the owner is gone."""
    output = tmp_path / "x.fits"
    pid = os.getpid()
    stale = tmp_path / _temporary_name(output, pid, atomic._start_time(pid) + 1)
    stale.write_bytes(b"")
    with atomic_output(output) as temporary:
        temporary.write_bytes(b"")
    assert not stale.exists()


def test_a_live_writers_temporary_file_is_kept_and_both_writers_finish(tmp_path):
    output = tmp_path / "x_psfalign.fits"
    first = AtomicOutput(output)
    first.temporary.write_bytes(b"first")
    second = AtomicOutput(output)
    second.temporary.write_bytes(b"second")
    assert first.temporary.exists()
    first.commit()
    second.commit()
    assert output.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == [output.name]


@needs_proc
def test_only_provably_stale_files_of_this_very_output_are_removed(tmp_path):
    output = tmp_path / "a[1]*.fits"  # glob characters are plain characters here
    dead = _dead_pid()
    kept = [
        _temporary_name(output, dead, 1, machine="0badf00d"),  # another host or boot
        _temporary_name(tmp_path / "a[1]*.b.fits", dead, 1),  # the output a[1]*.b.fits
        _temporary_name(tmp_path / "a1x.fits", dead, 1),  # what the glob would have matched
        f".{output.stem}.{dead}.partial.fits",  # not named as coronalign names them
        ".a[1]*.fits",
    ]
    for name in kept:
        (tmp_path / name).write_bytes(b"")
    folder = tmp_path / _temporary_name(output, dead, 2)
    folder.mkdir()  # named like a stale file, but a folder: not ours
    removed = tmp_path / _temporary_name(output, dead, 3)
    removed.write_bytes(b"")
    with atomic_output(output) as temporary:
        temporary.write_bytes(b"")
    assert not removed.exists()
    assert folder.is_dir()
    assert all((tmp_path / name).exists() for name in kept)


def test_a_write_error_in_the_block_names_the_output_and_leaves_nothing(tmp_path):
    output = tmp_path / "x.ecsv"
    message = r"x\.ecsv: cannot write the output: No space left"
    with pytest.raises(InputFileError, match=message), atomic_output(output):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_an_output_that_is_not_a_file_is_refused(kind, tmp_path):
    output = tmp_path / "x.fits"
    if kind == "folder":
        output.mkdir()
    else:
        os.mkfifo(output)
    with pytest.raises(InputFileError, match=r"the output is a (folder|FIFO)"):
        AtomicOutput(output)
    assert [p.name for p in tmp_path.iterdir()] == ["x.fits"]


def test_outputs_in_progress_are_known_and_can_be_discarded_at_once(tmp_path):
    first, second = AtomicOutput(tmp_path / "a.fits"), AtomicOutput(tmp_path / "b.ecsv")
    assert atomic.in_progress()[-2:] == [tmp_path / "a.fits", tmp_path / "b.ecsv"]
    atomic.discard_all()
    assert list(tmp_path.iterdir()) == []
    assert tmp_path / "a.fits" not in atomic.in_progress()
    first.discard()
    second.discard()
