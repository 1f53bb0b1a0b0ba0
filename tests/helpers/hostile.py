"""Running ``coronalign`` on hostile inputs and faults, and checking it failed cleanly.

Every case runs the command (``coronalign.cli.main`` in a process of its own: forked from an
interpreter that imported coronalign once, or a new interpreter for the faults) in a run folder
of its own (a copy of the inputs), with a private ``TMPDIR`` beside it. A clean failure is:
the expected exit status; exactly one line on standard error, naming the file or parameter;
no traceback; the run folder exactly as before (no output, no leftover temporary file, no
input changed); and nothing written outside it (the private ``TMPDIR`` empty, nothing new
beside the run folder).
"""

import contextlib
import hashlib
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.paths import REPOSITORY

__all__ = [
    "HostileRun",
    "children_of",
    "mounted_tmpfs",
    "running",
    "stop_zygote",
    "tree_state",
    "wait_for",
]

#: Signals a test may send; the command must stop on them with status 128 + the number.
_DEFAULT_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def _default_signals():  # pragma: no cover - runs in the child before exec
    """Give the command the signal dispositions of a terminal session (not ignored)."""
    for signum in _DEFAULT_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)


def tree_state(folder):
    """What a folder holds: relative name -> SHA-256 (regular files), link target or kind.

    Special files are never opened (reading a FIFO would block).
    """
    folder = Path(folder)
    state = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        name = str(path.relative_to(folder))
        if stat.S_ISLNK(info.st_mode):
            state[name] = ("link", os.readlink(path))
        elif stat.S_ISREG(info.st_mode):
            state[name] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            state[name] = ("special", stat.S_IFMT(info.st_mode))
    return state


class HostileRun:
    """A run folder holding a copy of the inputs, and the command run in it.

    Parameters
    ----------
    tmp_path : pathlib.Path
        The test's own folder: the run folder and ``TMPDIR`` are made inside it.
    data : pathlib.Path
        A folder of inputs, copied into the run folder.
    """

    def __init__(self, tmp_path, data):
        self.base = Path(tmp_path)
        self.folder = self.base / "run"
        shutil.copytree(data, self.folder, symlinks=True)
        self.tmpdir = self.base / "tmp"
        self.tmpdir.mkdir()
        self.env = {**os.environ, "TMPDIR": str(self.tmpdir)}
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(REPOSITORY / "src"), str(REPOSITORY), os.environ.get("PYTHONPATH", "")]
        )
        self.before = None

    def snapshot(self):
        """Record the run folder's state (what :meth:`assert_untouched` compares with)."""
        self.before = tree_state(self.folder)
        return self.before

    def command(self, *args, slow=False):
        """The ``coronalign`` command line (``slow``: rows written slowly, for signals)."""
        module = "tests.helpers.slow_cli" if slow else "coronalign.cli"
        return [sys.executable, "-m", module, "-q", *map(str, args)]

    def run(self, *args, timeout=120):
        """Run ``coronalign -q ARGS`` in the run folder; return ``(status, stderr)``.

        The command runs in a process forked from an interpreter that imported coronalign
        once (``tests.helpers.zygote``), so a case costs tens of milliseconds instead of a
        second of imports. It exits as a command does: threads still running are waited
        for, so a command that would hang hangs there too (and fails the test after
        ``timeout`` seconds).
        """
        stderr = self.base / f"stderr-{time.monotonic_ns()}.txt"
        request = {
            "argv": ["-q", *map(str, args)],
            "cwd": str(self.folder),
            "env": self.env,
            "stderr": str(stderr),
        }
        status = _Zygote.get().run(request, timeout)
        if status is None:
            pytest.fail(f"coronalign {' '.join(map(str, args))} did not finish in {timeout} s")
        text = stderr.read_text(errors="backslashreplace")
        stderr.unlink()
        return status, text

    def run_subprocess(self, *args, timeout=120):
        """Run ``python -m coronalign.cli -q ARGS`` in the run folder (a new interpreter)."""
        try:
            done = subprocess.run(
                self.command(*args),
                cwd=self.folder,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                preexec_fn=_default_signals,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"coronalign {' '.join(map(str, args))} did not finish in {timeout} s")
        return done.returncode, done.stderr

    def start(self, *args, slow=True, env=None):
        """Start ``coronalign -q ARGS`` in its own process group; stderr to a file."""
        stderr = (self.base / f"stderr-{time.monotonic_ns()}.txt").open("w")
        with stderr:
            process = subprocess.Popen(
                self.command(*args, slow=slow),
                cwd=self.folder,
                env={**self.env, **(env or {})},
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                text=True,
                start_new_session=True,
                preexec_fn=_default_signals,
            )
        process.stderr_path = Path(stderr.name)
        return process

    def partial_files(self):
        """Temporary outputs in the run folder (hidden ``.partial`` files)."""
        return sorted(self.folder.rglob(".*.partial*"))

    def assert_one_line(self, stderr, start, words=()):
        """Exactly one line on stderr, starting with ``start``, holding every word."""
        assert "Traceback" not in stderr, stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, stderr
        assert lines[0].startswith(start), lines[0]
        for word in words:
            assert word in lines[0], f"{word!r} not in: {lines[0]}"
        return lines[0]

    def assert_untouched(self):
        """The run folder as recorded, nothing in TMPDIR, nothing new beside the run folder."""
        assert tree_state(self.folder) == self.before
        self.assert_nothing_outside()

    def assert_nothing_outside(self):
        assert list(self.tmpdir.iterdir()) == []
        beside = {path.name for path in self.base.iterdir()}
        test_files = {n for n in beside if n.startswith(("stderr-", "hold-"))}  # the tests' own
        assert beside <= {"run", "tmp"} | test_files

    def assert_refused(self, result, words, status=2):
        """A clean refusal: ``status``, one error line with ``words``, nothing changed.

        ``result`` is ``(exit status, stderr)`` as :meth:`run` returns it.
        """
        returned, stderr = result
        assert returned == status, stderr
        line = self.assert_one_line(stderr, "coronalign: error: ", words)
        self.assert_untouched()
        return line


class _Zygote:
    """The ``tests.helpers.zygote`` process of this session (started on first use)."""

    _running = None

    @classmethod
    def get(cls):
        if cls._running is None or cls._running.process.poll() is not None:
            cls._running = cls()
        return cls._running

    @classmethod
    def stop(cls):
        if cls._running is not None:
            process = cls._running.process
            process.stdin.close()
            process.wait(timeout=60)
            process.stdout.close()
            cls._running = None

    def __init__(self):
        env = {**os.environ}
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPOSITORY / "src"), str(REPOSITORY), os.environ.get("PYTHONPATH", "")]
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.zygote"],
            cwd=REPOSITORY,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=_default_signals,
        )

    def _answer(self, timeout):
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            return None
        return json.loads(self.process.stdout.readline())

    def run(self, request, timeout):
        """Run one command; its exit status, or None if it did not end within ``timeout``."""
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        pid = self._answer(60)["pid"]
        answer = self._answer(timeout)
        if answer is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._answer(60)
            return None
        return answer["status"]


def stop_zygote():
    """Stop the process the input cases are forked from (if one was started), so that it
    does not outlive these tests: others check that they leave no child process."""
    _Zygote.stop()


def wait_for(condition, timeout=120, what="the condition"):
    """Poll ``condition()`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}")


def children_of(pid):
    """Process ids of ``pid``'s child processes (Linux ``/proc``)."""
    children = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                children += [int(c) for c in (task / "children").read_text().split()]
    return children


def running(pid):
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text.rsplit(")", 1)[1].split()[0] != "Z"


def _in_ci():
    return bool(os.environ.get("CI"))


def _cannot(reason):
    """Skip a test that needs root here; fail it in CI, which runs as root."""
    if _in_ci():
        pytest.fail(f"{reason}; CI runs as root, so this test must run there")
    pytest.skip(reason)


@contextlib.contextmanager
def mounted_tmpfs(folder, size="256k", readonly=False):
    """Mount a small tmpfs on ``folder`` (created) for the block; needs root.

    Skips where that is impossible (not root, no ``mount`` permission), except in CI
    (``CI`` set), where it fails.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        _cannot("mounting a tmpfs needs root")
    options = f"size={size}" + (",ro" if readonly else "")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        _cannot(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)
