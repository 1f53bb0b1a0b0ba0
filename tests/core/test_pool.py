"""Work spread over forked worker processes (coronalign.core.pool)."""

import multiprocessing
import os
import signal
import time

import pytest

from coronalign.core import pool
from coronalign.errors import CoronalignError, InputFileError

pytestmark = pytest.mark.skipif(not pool.can_fork(), reason="worker processes need Linux")


def test_results_come_back_in_order_from_several_processes():
    parent = os.getpid()
    results = pool.map_in_processes(lambda item: (item * item, os.getpid()), range(7), 3)
    assert [value for value, _ in results] == [item * item for item in range(7)]
    pids = [pid for _, pid in results]
    assert len(set(pids[:3])) == 3  # process j starts with item j, the caller last
    assert pids[2] == parent


def test_a_slow_process_takes_fewer_items():
    # The caller is "slow" by construction, not by a delay: its first item does not finish
    # before the worker has finished 6 (so the test does not depend on the machine's load).
    parent = os.getpid()
    done_by_worker = multiprocessing.Value("i", 0)

    def work(item):
        if os.getpid() != parent:
            with done_by_worker.get_lock():
                done_by_worker.value += 1
        else:
            deadline = time.monotonic() + 120
            while done_by_worker.value < 6 and time.monotonic() < deadline:
                time.sleep(0.001)
        return os.getpid()

    pids = pool.map_in_processes(work, range(12), 2)
    assert pids.count(parent) < 6


def test_one_process_or_one_item_runs_here():
    here = os.getpid()
    assert pool.map_in_processes(lambda item: os.getpid(), range(3), 1) == [here] * 3
    assert pool.map_in_processes(lambda item: os.getpid(), [5], 4) == [here]
    assert pool.map_in_processes(lambda item: item, [], 4) == []


def test_a_worker_error_is_raised_here_with_its_type_and_message():
    def work(item):
        if item == 4:
            raise InputFileError("/data/x.fits", "cannot write the product: No space left")
        return item

    with pytest.raises(InputFileError, match=r"x\.fits: cannot write the product") as error:
        pool.map_in_processes(work, range(6), 2)
    assert error.value.path == "/data/x.fits"


def test_an_unpicklable_worker_error_arrives_as_text():
    class LocalError(Exception):
        pass

    def work(item):
        if item == 0:  # the first item goes to the forked worker
            raise LocalError("unpicklable, defined in a function")
        return item

    with pytest.raises(RuntimeError, match="unpicklable, defined in a function"):
        pool.map_in_processes(work, range(4), 2)


def test_a_killed_worker_is_reported_and_the_others_are_reaped():
    def work(item):
        if item == 0:  # the first item goes to the forked worker
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.01)
        return item

    with pytest.raises(CoronalignError, match="killed by SIGKILL"):
        pool.map_in_processes(work, range(4), 2)
    with pytest.raises(ChildProcessError):  # no worker is left behind
        os.waitpid(-1, os.WNOHANG)


def test_an_error_here_stops_the_workers():
    def work(item):
        if os.getpid() == parent:
            raise ValueError("the parent's share failed")
        signal.pause()  # a worker would wait forever unless stopped

    parent = os.getpid()
    with pytest.raises(ValueError, match="parent's share"):
        pool.map_in_processes(work, range(4), 2)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_workers_die_with_their_caller_even_if_it_is_killed():
    """A caller killed with SIGKILL cannot stop its workers: the kernel does (prctl)."""
    read_fd, write_fd = os.pipe()
    caller = os.fork()
    if caller == 0:  # pragma: no cover - the caller

        def work(item):
            if item == 0:  # the forked worker: report, then wait forever
                os.write(write_fd, f"{os.getpid()}\n".encode())
                signal.pause()
            signal.pause()

        pool.map_in_processes(work, range(2), 2)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as stream:
        worker = int(stream.readline())
    os.kill(caller, signal.SIGKILL)
    os.waitpid(caller, 0)
    deadline = time.monotonic() + 30
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _running(worker)


def _running(pid):
    try:
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_leave_termination_signals_to_their_caller():
    """The caller's Python handlers are not inherited: SIGTERM stops a worker at once."""
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        handlers = pool.map_in_processes(
            lambda item: signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, range(2), 2
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert handlers == [True, False]  # the worker's, then the caller's own
