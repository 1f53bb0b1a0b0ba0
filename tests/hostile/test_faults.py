"""The catalogue of faults: signals mid-write, a full disk, a read-only folder, two writers.

Each case runs the real command (a new interpreter, in its own process group) on a copy of
the inputs. Signals are sent while the product is being written: ``tests.helpers.slow_cli``
makes every integration's write wait a little, in tests only. After a signal the command
must exit with 128 + the signal number and one line, remove its temporary outputs, leave
no worker process running and change no input; after ``SIGKILL`` (which nothing can catch)
the next run of the same command must remove what was left and finish. The disk and
folder cases need root to mount a small tmpfs (CI runs as root; elsewhere they skip).
"""

import os
import signal
import time

import pytest
from stdatamodels.jwst import datamodels

from coronalign.io.provenance import data_sha256
from tests.helpers.hostile import (
    HostileRun,
    children_of,
    mounted_tmpfs,
    running,
    tree_state,
    wait_for,
)

OUT = "x_psfalign.fits"
TABLE = "x_psfshifts.ecsv"


def _align(names, *extra, out=OUT):
    inputs = [names["science"], names["psfstack"], "--psfmask", names["psfmask"]]
    return ["align", *inputs, "-o", out, *extra]


def _held(run, names, threads, *extra):
    """Start an alignment that holds every process mid-write (``tests.helpers.slow_cli``);
    return it once all ``threads`` processes have written a row and wait, with the hold folder
    (create ``release`` in it to let them go on)."""
    hold = run.base / f"hold-{time.monotonic_ns()}"
    hold.mkdir()
    command = _align(names, *extra, "--threads", threads)
    process = run.start(*command, env={"CORONALIGN_TEST_HOLD": str(hold)})
    wait_for(
        lambda: len(list(hold.glob("held-*"))) == threads or process.poll() is not None,
        what="every process to hold mid-write",
    )
    assert process.poll() is None, process.stderr_path.read_text()
    assert run.partial_files()
    return process, hold


def _started(run, names, threads):
    """Start an alignment held mid-write (not timed: it cannot finish before the signal);
    return it with the workers' process ids."""
    process, _ = _held(run, names, threads, "--shifts", TABLE)
    return process, children_of(process.pid)


def _send(process, signum, group):
    if group:
        os.killpg(process.pid, signum)
    else:
        os.kill(process.pid, signum)


#: id: (signal, processes (--threads), sent to the whole process group (as scancel does)).
SIGNALS = {
    "SIGTERM, one process": (signal.SIGTERM, 1, False),
    "SIGTERM, two processes": (signal.SIGTERM, 2, False),
    "SIGTERM to the group, two processes (scancel)": (signal.SIGTERM, 2, True),
    "SIGINT, one process": (signal.SIGINT, 1, False),
    "SIGINT to the group, two processes (Ctrl-C)": (signal.SIGINT, 2, True),
    "SIGHUP, one process": (signal.SIGHUP, 1, False),
    "SIGHUP to the group, two processes": (signal.SIGHUP, 2, True),
}


@pytest.mark.parametrize("case", list(SIGNALS))
def test_signal_mid_write_removes_the_outputs_and_stops(case, long_data, tmp_path):
    signum, threads, group = SIGNALS[case]
    data, names = long_data
    run = HostileRun(tmp_path, data)
    run.snapshot()
    process, workers = _started(run, names, threads)
    _send(process, signum, group)
    status = process.wait(timeout=60)
    stderr = process.stderr_path.read_text()
    assert status == 128 + signum, stderr
    name = signal.Signals(signum).name
    run.assert_one_line(stderr, f"coronalign: interrupted by {name}; not written", [OUT])
    assert len(workers) == threads - 1
    wait_for(lambda: not [pid for pid in workers if running(pid)], 30, "the workers to stop")
    run.assert_untouched()


#: id: (processes (--threads), SIGKILL to the whole process group, or to the parent only).
KILLS = {
    "SIGKILL, one process": (1, False),
    "SIGKILL to the group, two processes": (2, True),
    "SIGKILL to the parent only, two processes (the workers die with it)": (2, False),
}


@pytest.mark.parametrize("case", list(KILLS))
def test_sigkill_mid_write_then_the_same_command_cleans_up_and_finishes(case, long_data, tmp_path):
    threads, group = KILLS[case]
    data, names = long_data
    run = HostileRun(tmp_path, data)
    before = run.snapshot()
    process, workers = _started(run, names, threads)
    _send(process, signal.SIGKILL, group)
    assert process.wait(timeout=60) == -signal.SIGKILL
    wait_for(lambda: not [pid for pid in workers if running(pid)], 30, "the workers to die")
    assert len(run.partial_files()) == 1  # nothing can remove it: the process had no say
    assert not (run.folder / OUT).exists()
    status, stderr = run.run(*_align(names, "--shifts", TABLE))
    assert status == 0, stderr
    assert run.partial_files() == []
    after = tree_state(run.folder)
    assert {key: after[key] for key in before} == before  # no input changed
    assert set(after) - set(before) == {OUT, TABLE}
    assert data_sha256(run.folder / OUT) == data_sha256(data / names["product"])
    run.assert_nothing_outside()


# ---------------------------------------------------------------- disk full, read-only


def _fill(folder):
    """Fill a file system with one file, so that nothing more fits."""
    descriptor = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(descriptor, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(descriptor)


#: id: (command (``full`` is a 64 KiB tmpfs), fill it first, words of the error line).
DISK_FULL = {
    "product larger than the disk, one process": (
        "align {science} {psfstack} --psfmask {psfmask} -o full/x_psfalign.fits",
        False,
        ["full/x_psfalign.fits", "No space left on device"],
    ),
    "product larger than the disk, two processes": (
        "align {science} {psfstack} --psfmask {psfmask} -o full/x_psfalign.fits --threads 2",
        False,
        ["full/x_psfalign.fits", "No space left on device"],
    ),
    "full disk: the shift table (and so no product either)": (
        "align {science} {psfstack} --psfmask {psfmask} -o x_psfalign.fits "
        "--shifts full/x_psfshifts.ecsv",
        True,
        ["full/x_psfshifts.ecsv", "No space left on device"],
    ),
    "stack larger than the disk": (
        "stack {psf1} {psf2} -o full/x_psfstack.fits",
        False,
        ["full/x_psfstack.fits", "cannot write the output", "space on disk"],  # astropy's words
    ),
    "full disk: the input-check report": (
        "check-psfstack {psfstack} {science} --report full/check.json",
        True,
        ["full/check.json", "No space left on device"],
    ),
}


@pytest.mark.parametrize("case", list(DISK_FULL))
def test_full_disk_is_one_clear_error_and_no_leftover(case, long_data, tmp_path):
    command, fill, words = DISK_FULL[case]
    data, names = long_data
    run = HostileRun(tmp_path, data)
    with mounted_tmpfs(run.folder / "full", size="64k") as full:
        if fill:
            _fill(full)
        run.snapshot()
        result = run.run_subprocess(*command.format(**names).split())
        run.assert_refused(result, words)


#: id: command (``ro`` is a read-only tmpfs), and the words of the error line.
READ_ONLY = {
    "product into a read-only folder": (
        "align {science} {psfstack} --psfmask {psfmask} -o ro/x_psfalign.fits",
        ["ro", "output folder is not writable"],
    ),
    "shift table into a read-only folder": (
        "align {science} {psfstack} --psfmask {psfmask} -o x_psfalign.fits "
        "--shifts ro/x_psfshifts.ecsv",
        ["ro", "output folder is not writable"],
    ),
    "stack into a read-only folder": (
        "stack {psf1} {psf2} -o ro/x_psfstack.fits",
        ["ro", "output folder is not writable"],
    ),
    "report into a read-only folder": (
        "check-psfstack {psfstack} {science} --report ro/check.json",
        ["ro", "output folder is not writable"],
    ),
}


@pytest.mark.parametrize("case", list(READ_ONLY))
def test_read_only_output_folder_is_one_clear_error(case, hostile_data, tmp_path):
    command, words = READ_ONLY[case]
    data, names = hostile_data
    run = HostileRun(tmp_path, data)
    with mounted_tmpfs(run.folder / "ro", size="64k", readonly=True):
        run.snapshot()
        result = run.run(*command.format(**names).split())
        run.assert_refused(result, words)


# ---------------------------------------------------------------- two writers


@pytest.mark.parametrize("threads", [1, 2])
def test_two_writers_on_one_output_end_with_one_complete_product(threads, long_data, tmp_path):
    """The second writer leaves the first one's temporary file alone; both finish."""
    data, names = long_data
    run = HostileRun(tmp_path, data)
    before = run.snapshot()
    command = _align(names, "--shifts", TABLE, "--threads", threads)
    first, hold = _held(run, names, threads, "--shifts", TABLE)  # mid-write until released
    [first_partial] = run.partial_files()
    second = run.start(*command)

    def seconds_partial():
        theirs = [p for p in run.partial_files() if p != first_partial]
        return [p for p in theirs if p.name.startswith(f".{OUT[:-5]}.")]

    wait_for(lambda: seconds_partial() or second.poll() is not None, what="the second writer")
    assert first.poll() is None, first.stderr_path.read_text()
    assert first_partial.exists()  # the second writer did not take it for a stale file
    (hold / "release").touch()
    for process in (first, second):
        status = process.wait(timeout=120)
        stderr = process.stderr_path.read_text()
        assert status == 0, stderr
        assert stderr == ""
    assert run.partial_files() == []
    after = tree_state(run.folder)
    assert {key: after[key] for key in before} == before
    assert set(after) - set(before) == {OUT, TABLE}
    with datamodels.open(run.folder / OUT) as model:
        model.validate()
    assert data_sha256(run.folder / OUT) == data_sha256(data / names["product"])
    run.assert_nothing_outside()
