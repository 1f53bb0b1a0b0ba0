"""The commands a workflow rule's ``script:`` runs, their messages in the rule's log.

A rule's script (``workflow/scripts/*.py``) imports this module alone and hands it the
command lines of its job: :func:`run_from_snakemake` for one, :func:`run_each_from_snakemake`
for several (every product of an association), and the calls to make once they have
succeeded (the records the workflow keeps). With warm start the commands run in a child
of the workflow's server (:mod:`coronalign.cli.warm`), otherwise in the script's process.
"""

import sys

from coronalign.cli import run_command

__all__ = ["run_calls", "run_commands", "run_each_from_snakemake", "run_from_snakemake"]


def run_from_snakemake(snakemake, argv, *, then=()):
    """Run a command for a rule's ``script:`` (run by Snakemake's own Python, or the rule's
    conda environment: never what is on PATH), its messages in the rule's log file.

    Parameters
    ----------
    snakemake : snakemake.script.Snakemake
        The object Snakemake gives the script.
    argv : sequence
        The command and its arguments (converted to ``str``).
    then : sequence of tuple, optional
        Calls after the command (see :func:`run_each_from_snakemake`).
    """
    run_each_from_snakemake(snakemake, [argv], then=then)


def run_each_from_snakemake(snakemake, commands, *, then=()):
    """Run several commands in turn in one process for a rule's ``script:`` (e.g. the
    validation of every product of an association), their messages in the rule's log.

    One process pays the start of Python and the imports once for all the commands (with
    warm start, the workflow's server has paid them: :mod:`coronalign.cli.warm`). Every
    command runs, also after one has failed, so the log names every failure; the script
    then ends with the first failure's exit status (Snakemake removes the job's outputs).

    Parameters
    ----------
    snakemake : snakemake.script.Snakemake
        The object Snakemake gives the script.
    commands : sequence of sequence
        The commands, each with its arguments (converted to ``str``).
    then : sequence of tuple, optional
        ``(function, args, kwargs)``: a function named ``"module:name"`` and its arguments
        (JSON values), called in turn once every command has succeeded, in the same
        process, with the job's own standard error (Snakemake's console): the records the
        workflow keeps (:func:`coronalign.steps.records.keep_record`). A call that exits
        ends the job with that status.
    """
    import contextlib

    from coronalign.cli.warm import run_commands_warm

    log = snakemake.log[0] if len(snakemake.log) else None
    then = [(function, list(args), dict(kwargs)) for function, args, kwargs in then]
    with contextlib.ExitStack() as stack:
        stream = sys.stderr
        if log is not None:
            stream = stack.enter_context(open(log, "w", encoding="utf-8", buffering=1))
        status = run_commands_warm(commands, stream.fileno(), then=then)
        if status is None:  # no warm-start server: run them here
            with contextlib.redirect_stderr(stream):
                status = run_commands(commands)
            stack.close()
            status = status or run_calls(then)
    if status:
        sys.exit(status)


def run_calls(calls):
    """Call ``(function, args, kwargs)`` in turn (see :func:`run_each_from_snakemake`).

    Parameters
    ----------
    calls : sequence of tuple
        A function named ``"module:name"``, its positional and keyword arguments.

    Returns
    -------
    int
        0, or the status a call exited with (and the calls after it are not made).
    """
    import importlib

    for function, args, kwargs in calls:
        module, name = function.split(":")
        try:
            getattr(importlib.import_module(module), name)(*args, **kwargs)
        except SystemExit as stop:
            if stop.code:
                return stop.code if isinstance(stop.code, int) else 1
    return 0


def run_commands(commands):
    """Run commands in turn in this process (see :func:`run_each_from_snakemake`).

    Parameters
    ----------
    commands : sequence of sequence
        The commands, each with its arguments (converted to ``str``); the process ends
        after the last.

    Returns
    -------
    int
        The first failure's exit status, or 0.
    """
    statuses = []
    for number, argv in enumerate(commands, start=1):
        argv = [str(part) for part in argv]
        # the rule's script ends with the last command
        status = run_command(argv, ends_process=number == len(commands))
        statuses.append(status)
        if status and status >= 128:  # stopped by a signal: nothing more runs
            break
    failed = [status for status in statuses if status]
    return failed[0] if failed else 0
