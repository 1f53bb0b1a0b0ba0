"""Termination signals become Interrupted: outputs in progress named, handlers restored."""

import os
import signal
import time

import pytest

from coronalign.errors import Interrupted
from coronalign.io.atomic import AtomicOutput
from coronalign.steps.interrupt import termination_signals


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_raises_interrupted_naming_the_outputs_in_progress(signum, tmp_path):
    # A signal ignored when the process started stays ignored (tested below); a suite run
    # under nohup starts with SIGHUP ignored, so the default is put back for this test.
    inherited = signal.getsignal(signum)
    if inherited is signal.SIG_IGN:
        signal.signal(signum, signal.SIG_DFL)
    try:
        _raises_interrupted(signum, tmp_path)
    finally:
        signal.signal(signum, inherited)


def _raises_interrupted(signum, tmp_path):
    before = signal.getsignal(signum)

    def write():
        output = AtomicOutput(tmp_path / "x_psfalign.fits")
        try:
            os.kill(os.getpid(), signum)
        finally:
            output.discard()

    with pytest.raises(Interrupted) as info, termination_signals():
        write()
    assert info.value.signum == signum
    assert info.value.status == 128 + signum
    assert info.value.outputs == (str(tmp_path / "x_psfalign.fits"),)
    assert f"interrupted by {signal.Signals(signum).name}; not written" in str(info.value)
    assert signal.getsignal(signum) is before
    assert list(tmp_path.iterdir()) == []


def test_interrupted_is_not_an_exception_so_no_error_handler_stops_it():
    assert not issubclass(Interrupted, Exception)
    assert str(Interrupted(signal.SIGTERM)) == (
        "interrupted by SIGTERM; no output was being written"
    )


def test_a_signal_ignored_at_the_start_stays_ignored():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup does
    try:
        with termination_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)  # nothing happens
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_second_signal_removes_the_temporary_files_and_exits_at_once(tmp_path):
    """The unwinding after the first signal is not awaited when a second one comes."""
    output = tmp_path / "x_psfalign.fits"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            with termination_signals():
                AtomicOutput(output)
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                except Interrupted:  # a slow unwinding, still inside
                    os.kill(os.getpid(), signal.SIGTERM)
        finally:
            os._exit(99)  # not reached: the second signal exits
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_dropped_by_python_still_stops_the_command(tmp_path):
    """Raised in a callback of os.fork, the exception is dropped: the command leaves at once."""
    output = tmp_path / "x_psfalign.fits"
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_fd)
        os.dup2(write_fd, 2)
        try:
            with termination_signals():
                AtomicOutput(output)
                os.register_at_fork(after_in_parent=lambda: os.kill(os.getpid(), signal.SIGTERM))
                if os.fork() == 0:
                    os._exit(0)
                time.sleep(10)  # not reached: the dropped Interrupted exits
        finally:
            os._exit(99)
    os.close(write_fd)
    with os.fdopen(read_fd) as stream:
        stderr = stream.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 128 + signal.SIGTERM
    line = f"coronalign: interrupted by SIGTERM; not written (unfinished, removed): {output}\n"
    assert stderr == line
    assert list(tmp_path.iterdir()) == []
