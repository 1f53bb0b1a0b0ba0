"""``python -m tests.helpers.zygote``: run ``coronalign`` commands forked from one interpreter.

Imports every command's modules once, then, for each request (one JSON line on standard
input: ``argv``, ``cwd``, ``env``, ``stderr``), forks a process that runs
``coronalign.cli.main(argv)`` in that folder with that environment, its standard error to
that file, and exits as the command would (the interpreter's normal exit: threads still
running are waited for, so a command that hangs hangs here too). Answers two JSON lines:
``{"pid": ...}`` at once, ``{"status": ...}`` (the exit status) when the process ends.
Ends at the end of its input. Used by tests/helpers/hostile.py: a case costs the command's
own work, not a second of imports.
"""

import importlib
import json
import os
import signal
import sys

#: What is imported once: every command's modules.
PRELOAD = (
    "coronalign.cli",
    "coronalign.steps.align_refs",
    "coronalign.steps.stack_refs",
    "coronalign.steps.psfmask",
    "coronalign.steps.validate",
    "coronalign.steps.summary",
    "coronalign.steps.plots",
    "coronalign.steps.manifest",
    "coronalign.steps.interrupt",
    "matplotlib.figure",
    "stdatamodels.jwst.datamodels",
)


def _redirect(stderr_path):
    """Standard input and output to /dev/null, standard error to ``stderr_path``."""
    null = os.open(os.devnull, os.O_RDWR)
    descriptor = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(descriptor, 2)
    os.close(null)
    os.close(descriptor)


def _command(request):  # pragma: no cover - runs in the forked process
    """Become the command: its folder, environment, streams; then exit with its status."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    _redirect(request["stderr"])
    import tempfile

    tempfile.tempdir = None  # read TMPDIR again
    from coronalign.cli import main

    raise SystemExit(main(request["argv"]))


def serve():
    """Answer requests until the end of standard input."""
    for module in PRELOAD:
        importlib.import_module(module)
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the command
            _command(request)
        answers.write(json.dumps({"pid": pid}) + "\n")
        _, status = os.waitpid(pid, 0)
        answers.write(json.dumps({"status": os.waitstatus_to_exitcode(status)}) + "\n")


if __name__ == "__main__":
    serve()
