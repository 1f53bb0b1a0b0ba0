"""Errors that reach the user as one clear message (no traceback).

Every problem the user can fix (a bad file, a bad parameter, a missing CRDS
reference) is raised as a :class:`CoronalignError`; the command line prints its
message and exits with status 2. Anything else is a bug and keeps its traceback.
"""

import signal

__all__ = [
    "ConfigurationError",
    "CoronalignError",
    "DownloadError",
    "InputFileError",
    "InputsLockError",
    "Interrupted",
    "ParameterError",
    "ReferenceFileError",
    "shown",
]


def shown(path):
    """A file name as a message shows it: on one line, control characters escaped.

    A name may hold a newline or an escape sequence; the message stays one line that
    names the file (``out\\n_psfalign.fits``), other characters are kept.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
    """
    return "".join(
        character if character.isprintable() else character.encode("unicode_escape").decode()
        for character in str(path)
    )


class CoronalignError(Exception):
    """A problem the user can fix; ``str(error)`` is the whole message."""


class InputFileError(CoronalignError):
    """An input file is missing, unreadable or not what the step needs.

    Parameters
    ----------
    path : str or os.PathLike
        The offending file.
    problem : str
        What is wrong with it, and if possible what to do.
    """

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{shown(self.path)}: {problem}")

    def __reduce__(self):  # pickle (from a worker process) with both arguments
        return type(self), (self.path, self.problem)


class ParameterError(CoronalignError):
    """A parameter value is invalid.

    Parameters
    ----------
    name : str
        The parameter's name as the user wrote it (e.g. ``bad_bits``).
    problem : str
        What is wrong with the value and which values are accepted.
    """

    def __init__(self, name, problem):
        self.name = name
        self.problem = problem
        super().__init__(f"{name}: {problem}")

    def __reduce__(self):
        return type(self), (self.name, self.problem)


class ReferenceFileError(CoronalignError):
    """The PSFMASK reference could not be found, selected or used."""


class ConfigurationError(CoronalignError):
    """The workflow's configuration names no inputs, or inputs that cannot be used."""


class DownloadError(CoronalignError):
    """A file could not be downloaded (from MAST); the message names the file and why."""


class InputsLockError(CoronalignError):
    """Input files differ from the inputs lock that pins them.

    Parameters
    ----------
    lock : str or os.PathLike
        The inputs lock (or the manifest holding it).
    problems : sequence of str
        One sentence per file: its name, and the pinned and found size or SHA-256.
    """

    def __init__(self, lock, problems):
        self.lock = str(lock)
        self.problems = tuple(problems)
        super().__init__(
            f"{self.lock}: {len(self.problems)} input file(s) differ from the lock, so the "
            "run stops before alignment: " + "; ".join(self.problems)
        )

    def __reduce__(self):
        return type(self), (self.lock, self.problems)


class Interrupted(BaseException):
    """A termination signal arrived (SIGTERM, SIGHUP, SIGINT): the step stops.

    Raised in the main thread by :func:`coronalign.steps.interrupt.termination_signals`.
    Like ``KeyboardInterrupt`` it is not an ``Exception``, so nothing that handles
    errors stops it: it unwinds the step, and every unfinished output is removed on the way.

    Parameters
    ----------
    signum : int
        The signal.
    outputs : sequence of str, optional
        The outputs that were being written (they are not written).

    Attributes
    ----------
    status : int
        The conventional exit status, 128 + the signal number.
    """

    def __init__(self, signum, outputs=()):
        self.signum = int(signum)
        self.outputs = tuple(str(path) for path in outputs)
        self.status = 128 + self.signum
        name = signal.Signals(self.signum).name
        if self.outputs:
            what = f"not written (unfinished, removed): {', '.join(map(shown, self.outputs))}"
        else:
            what = "no output was being written"
        super().__init__(f"interrupted by {name}; {what}")

    def __reduce__(self):
        return type(self), (self.signum, self.outputs)
