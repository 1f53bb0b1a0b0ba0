"""Spread independent pieces of work over forked worker processes.

The fits hold Python's GIL for most of their time (many small numpy operations), so
threads cannot run them side by side; forked processes can, and they start in
milliseconds because they share the parent's memory (copy-on-write) instead of
re-importing and re-reading anything. Each worker returns its results to the parent
through a pipe. Where ``fork`` is not available or not safe (anything but Linux), the
work runs in the calling process.

The split of the items among the processes never changes the result of an item: every
item must be computed from the shared state alone, not from another item's result.
"""

import contextlib
import logging
import os
import pickle
import signal
import sys
import traceback

from .errors import CoronalignError

__all__ = ["can_fork", "map_in_processes"]

log = logging.getLogger(__name__)


def can_fork():
    """True where worker processes are forked (Linux; macOS frameworks are not fork-safe)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def _shares(items, processes):
    """Items dealt round-robin, the biggest shares first (the caller keeps the last)."""
    shares = [items[i::processes] for i in range(processes)]
    return [share for share in shares if share]


def _run_child(function, share, write_fd, parent):
    """Body of a worker process: compute its share, send the results, never return."""
    status = 0
    try:
        try:
            results = []
            for item in share:
                if os.getppid() != parent:  # the parent is gone: nobody wants the results
                    raise SystemExit(1)
                results.append(function(item))
            payload = ("ok", results)
        except BaseException as error:  # everything goes back to the parent
            status = 1
            payload = ("error", error, traceback.format_exc())
        try:
            data = pickle.dumps(payload)
        except Exception:  # an exception that cannot be pickled: send its text
            data = pickle.dumps(("error", None, payload[-1]))
        with os.fdopen(write_fd, "wb") as stream:
            stream.write(data)
    finally:
        os._exit(status)  # no atexit handlers, no cleanup of the parent's resources


def _collect(pid, read_fd, share, name):
    """Read a worker's results and reap it; raise what it raised."""
    with os.fdopen(read_fd, "rb") as stream:
        data = stream.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        if os.WIFSIGNALED(status):
            cause = f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
        else:
            cause = f"exited with status {os.waitstatus_to_exitcode(status)}"
        raise CoronalignError(
            f"the worker process for {name} {', '.join(map(str, share))} {cause} (out of memory?)"
        )
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
        The work, in order.
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
    *forked, own = _shares(list(range(len(items))), processes)
    parent = os.getpid()
    children = []
    results = [None] * len(items)
    try:
        for indices in forked:
            read_fd, write_fd = os.pipe()
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the worker, which never returns
                os.close(read_fd)
                _run_child(function, [items[i] for i in indices], write_fd, parent)
            os.close(write_fd)
            children.append((pid, read_fd, indices))
        log.debug("forked %d worker process(es)", len(children))
        for i in own:
            results[i] = function(items[i])
        while children:
            pid, read_fd, indices = children.pop(0)
            values = _collect(pid, read_fd, [items[i] for i in indices], name)
            for i, value in zip(indices, values, strict=True):
                results[i] = value
        return results
    finally:
        for pid, read_fd, _ in children:  # only after a failure: stop and reap the rest
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            with contextlib.suppress(OSError):
                os.close(read_fd)
