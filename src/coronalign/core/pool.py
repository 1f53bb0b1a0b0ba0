"""Spread independent pieces of work over forked worker processes.

The fits hold Python's GIL for most of their time (many small numpy operations), so
threads cannot run them side by side; forked processes can, and they start in
milliseconds because they share the parent's memory (copy-on-write) instead of
re-importing and re-reading anything. Where ``fork`` is not available or not safe
(anything but Linux), the work runs in the calling process.

Process ``j`` (the caller is the last) starts with item ``j``; after that every process
takes the next item not yet taken (a counter shared between the processes), so a process
slowed down by other work on the machine simply takes fewer items. Each worker returns
its results to the caller through a pipe. Which process computes an item must never
change its result: every item must be computed from the shared state alone, not from
another item's result.

Why not :mod:`concurrent.futures` or :mod:`multiprocessing`
-----------------------------------------------------------
Both were tried with a ``fork`` context against the guarantees this module gives (a
worker's exception re-raised here with its type, a killed worker reported, identical
results, nothing left running). ``multiprocessing.Pool`` fails *a killed worker is
reported*: the task a killed worker held never returns, and the caller waits forever.
``ProcessPoolExecutor`` reports a killed worker only as ``BrokenProcessPool`` (the signal
is in a private attribute), and when the caller's own share fails it cannot stop a
worker that is still running (``shutdown(cancel_futures=True)`` leaves it running; a
public ``terminate_workers`` exists only from Python 3.14): a worker would go on writing
into a product that will never be committed. That last guarantee decided it.
"""

import contextlib
import ctypes
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import traceback

from coronalign.errors import CoronalignError

__all__ = ["can_fork", "map_in_processes"]

log = logging.getLogger(__name__)


def can_fork():
    """Whether worker processes can be forked here.

    Returns
    -------
    bool
        True on Linux; elsewhere (macOS frameworks are not fork-safe) the work runs in the
        calling process.
    """
    return sys.platform.startswith("linux") and hasattr(os, "fork")


class _Work:
    """The items, and which of them have been taken (shared by the forked processes)."""

    def __init__(self, function, items, processes):
        self.function = function
        self.items = items
        self.parent = os.getpid()
        self._next = multiprocessing.get_context("fork").Value("q", processes)

    def _take(self):
        with self._next.get_lock():
            index = self._next.value
            self._next.value = index + 1
        return index

    def run(self, first):
        """Compute item ``first``, then items nobody has taken; return ``(index, result)``s."""
        done = []
        index = first
        while index < len(self.items):
            if os.getpid() != self.parent and os.getppid() != self.parent:
                raise SystemExit(1)  # the caller is gone: nobody wants the results
            done.append((index, self.function(self.items[index])))
            index = self._take()
        return done


#: prctl(2) option: the signal this process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


def _bind_to_parent(parent):
    """Make a freshly forked worker die with its parent, and leave signals to the parent.

    The kernel sends ``SIGKILL`` to the worker when the caller dies, however it dies (a
    ``SIGKILL`` too), so no worker goes on writing into a product nobody will commit.
    ``SIGTERM``, ``SIGHUP`` and ``SIGINT`` get their default action back (the caller's
    Python handlers are inherited with the fork): the caller stops its workers itself, and
    a signal sent to the whole process group stops them at once.
    """
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        if callable(signal.getsignal(signum)):
            signal.signal(signum, signal.SIG_DFL)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the caller died before the request took effect
        os._exit(1)


def _run_child(work, first, write_fd):
    """Body of a worker process: compute, send the results, never return."""
    status = 0
    try:
        _bind_to_parent(work.parent)
        try:
            payload = ("ok", work.run(first))
        except BaseException as error:  # everything goes back to the caller
            status = 1
            payload = ("error", error, traceback.format_exc())
        try:
            data = pickle.dumps(payload)
        except Exception:  # an exception that cannot be pickled: send its text
            data = pickle.dumps(("error", None, payload[-1]))
        with os.fdopen(write_fd, "wb") as stream:
            stream.write(data)
    finally:
        os._exit(status)  # no atexit handlers, no cleanup of the caller's resources


def _collect(pid, read_fd, name):
    """Read a worker's results and reap it; raise what it raised."""
    with os.fdopen(read_fd, "rb") as stream:
        data = stream.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        if os.WIFSIGNALED(status):
            cause = f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
        else:
            cause = f"exited with status {os.waitstatus_to_exitcode(status)}"
        raise CoronalignError(f"a worker process computing {name} {cause} (out of memory?)")
    payload = pickle.loads(data)
    if payload[0] == "ok":
        return payload[1]
    _, error, text = payload
    if error is None:
        raise RuntimeError(f"a worker process failed:\n{text}")
    raise error


def map_in_processes(function, items, processes, name="items"):
    """``[function(item) for item in items]``, with the items spread over processes.

    Parameters
    ----------
    function : callable
        Called once per item. In a worker it runs in a forked copy of this process, so
        it sees everything as it was at the call, and its side effects on this process's
        memory are lost: it must deliver its output through its return value or through
        something shared between processes (a file written with ``pwrite``).
    items : sequence
        The work.
    processes : int
        Processes to use, this one included. With 1 (or one item, or no ``fork``) the
        items are computed here, in order.
    name : str, optional
        What the items are, for the message if a worker dies (``"integrations"``).

    Returns
    -------
    list
        The results, in the order of ``items``.

    Raises
    ------
    Exception
        The first exception a worker raised (re-raised here); a
        :class:`~coronalign.errors.CoronalignError` if a worker died without a result.
    """
    items = list(items)
    processes = min(processes, len(items))
    if processes <= 1 or not can_fork():
        return [function(item) for item in items]
    try:
        work = _Work(function, items, processes)
    except OSError as error:  # no POSIX semaphores (e.g. no /dev/shm in a container)
        log.warning("cannot share work between processes (%s): using one", error)
        return [function(item) for item in items]
    children = []
    results = [None] * len(items)
    try:
        for first in range(processes - 1):
            read_fd, write_fd = os.pipe()
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the worker, which never returns
                os.close(read_fd)
                _run_child(work, first, write_fd)
            os.close(write_fd)
            children.append((pid, read_fd))
        log.debug("forked %d worker process(es)", len(children))
        done = work.run(processes - 1)
        while children:
            pid, read_fd = children.pop(0)
            done += _collect(pid, read_fd, name)
        for index, result in done:
            results[index] = result
        return results
    finally:
        for pid, read_fd in children:  # only after a failure: stop and reap the rest
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            with contextlib.suppress(OSError):
                os.close(read_fd)
