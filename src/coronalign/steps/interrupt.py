"""Termination signals: stop at once, and leave no unfinished output behind.

``timeout``, Slurm (a time limit, ``scancel``) and ``kill`` send ``SIGTERM``; a closed
terminal sends ``SIGHUP``; Ctrl-C sends ``SIGINT``. Within :func:`termination_signals`
the first of them raises :class:`~coronalign.errors.Interrupted` in the main thread, which
unwinds the step like any error: every temporary output is removed
(:mod:`coronalign.io.atomic`), the worker processes are stopped and reaped
(:mod:`coronalign.core.pool`; they also die with their parent) and the background threads
stop. The command line then exits with status 128 + the signal number, the shells'
convention. A second signal while that happens removes every temporary output at once and
exits with that status (the unwinding is not awaited); so does a first signal whose
exception Python had to drop (raised in a callback of ``os.fork`` or in a ``__del__``
method, where it cannot be passed on). A worker process forked a moment before the signal,
still with the caller's handler, dies of the signal at once.

A signal ignored when the process started (``nohup`` ignores ``SIGHUP``) stays ignored,
and nothing is installed outside the main thread (signals are delivered there).
"""

import contextlib
import os
import signal
import sys
import threading

from coronalign.errors import Interrupted
from coronalign.io.atomic import discard_all, in_progress

__all__ = ["SIGNALS", "termination_signals"]

#: The signals that stop a step cleanly.
SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


@contextlib.contextmanager
def termination_signals():
    """Turn SIGTERM, SIGHUP and SIGINT into :class:`~coronalign.errors.Interrupted` here.

    The previous handlers are restored on leaving.

    Yields
    ------
    None
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()
    arrived = []

    def leave_now(signum):
        """Remove the temporary files and exit at once, with the one line."""
        message = f"coronalign: {Interrupted(signum, in_progress())}\n"
        discard_all()
        with contextlib.suppress(OSError):
            os.write(2, message.encode("utf-8", "backslashreplace"))
        os._exit(128 + signum)

    def handler(signum, frame):
        if os.getpid() != owner:  # a worker forked a moment ago: die as the signal says
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if arrived:  # a second signal: do not wait for the unwinding
            leave_now(signum)
        arrived.append(signum)
        raise Interrupted(signum, in_progress())

    def unraisable(information):
        # Python drops an exception raised where it cannot be passed on (a callback of
        # os.fork, a __del__ method): an Interrupted dropped so must still stop the command.
        if isinstance(information.exc_value, Interrupted) and os.getpid() == owner:
            leave_now(information.exc_value.signum)
        previous_hook(information)

    previous_hook = sys.unraisablehook
    sys.unraisablehook = unraisable
    previous = {}
    for signum in SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, signal.SIG_DFL if old is None else old)
        sys.unraisablehook = previous_hook
