"""Warm start (coronalign.cli.warm): a job's commands forked from the workflow's server."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from coronalign.cli import main
from coronalign.cli.warm import SOCKET_VARIABLE, run_commands_warm, stop_server
from coronalign.io.provenance import data_sha256
from tests.helpers.commands import align_command
from tests.helpers.datasets import write_small_dataset
from tests.helpers.hostile import running, wait_for

REPOSITORY = Path(__file__).resolve().parents[1]


def _start_server(folder, environment=None, preamble=""):
    """A server on ``folder/socket`` (its parent: this process); (process, socket path)."""
    path = folder / "socket"
    code = f"{preamble}\nfrom coronalign.cli.warm import serve\nserve({str(path)!r}, {os.getpid()})"
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, **(environment or {})},
        cwd=REPOSITORY,
        start_new_session=True,
    )
    wait_for(lambda: path.exists() or process.poll() is not None, 120, "the server to listen")
    assert process.poll() is None
    return process, path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    paths, _ = write_small_dataset(tmp_path_factory.mktemp("data"))
    return paths


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process, path = _start_server(tmp_path_factory.mktemp("server"))
    yield path
    stop_server(str(path))
    assert process.wait(timeout=30) == 0


def _warm(commands, log, socket_path, monkeypatch, then=()):
    monkeypatch.setenv(SOCKET_VARIABLE, str(socket_path))
    with open(log, "w") as stream:
        return run_commands_warm(commands, stream.fileno(), then=then)


def test_a_forked_command_writes_the_same_product_as_one_run_here(
    dataset, server, tmp_path, monkeypatch
):
    here, forked, log = tmp_path / "here.fits", tmp_path / "forked.fits", tmp_path / "job.log"
    assert main(["-q", *align_command(*dataset.values(), here)]) == 0
    command = align_command(*dataset.values(), forked)

    assert _warm([command], log, server, monkeypatch) == 0

    text = log.read_text()
    assert "warm start: process" in text
    assert "done:" in text  # the command's own messages, in the job's log
    assert data_sha256(forked) == data_sha256(here)


def test_a_failing_command_gives_its_status_and_message_to_the_job(
    dataset, server, tmp_path, monkeypatch
):
    missing = tmp_path / "absent_calints.fits"
    paths = dict(dataset, science=missing)
    command = align_command(*paths.values(), tmp_path / "out.fits")

    assert _warm([command, command], tmp_path / "job.log", server, monkeypatch) == 2

    text = (tmp_path / "job.log").read_text()
    assert text.count("coronalign: error:") == 2
    assert str(missing) in text
    assert not (tmp_path / "out.fits").exists()


def test_the_commands_run_in_the_jobs_folder_and_environment(
    dataset, server, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CORONALIGN_PLAIN_ASDF", "1")
    command = align_command(*dataset.values(), "relative_psfalign.fits")

    assert _warm([command], tmp_path / "job.log", server, monkeypatch) == 0

    assert (tmp_path / "relative_psfalign.fits").exists()


def test_without_a_server_the_job_runs_its_commands_itself(tmp_path, monkeypatch):
    monkeypatch.delenv(SOCKET_VARIABLE, raising=False)
    assert run_commands_warm([["--version"]], 2) is None
    monkeypatch.setenv(SOCKET_VARIABLE, str(tmp_path / "no-such-socket"))
    assert run_commands_warm([["--version"]], 2) is None


JOB = """import sys
from coronalign.cli.warm import run_commands_warm
sys.exit(run_commands_warm({!r}, 2))"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_stopped_job_stops_its_commands_and_leaves_no_output(dataset, tmp_path, signum):
    hold = tmp_path / "hold"
    hold.mkdir()
    holding = {"CORONALIGN_TEST_HOLD": str(hold)}
    process, path = _start_server(tmp_path, holding, "import tests.helpers.slow_cli")
    product = tmp_path / "out" / "x_psfalign.fits"
    product.parent.mkdir()
    command = align_command(*dataset.values(), product)
    log = tmp_path / "job.log"
    with open(log, "w") as stream:
        job = subprocess.Popen(
            [sys.executable, "-c", JOB.format([command])],
            env={**os.environ, SOCKET_VARIABLE: str(path)},
            stderr=stream,
        )
    held = wait_for(lambda: list(hold.glob("held-*")), 120, "the command to hold mid-write")
    child = int(held[0].name.removeprefix("held-"))
    assert list(product.parent.glob(".*.partial.fits"))

    job.send_signal(signum)

    status = job.wait(timeout=60)
    wait_for(lambda: not running(child), 60, "the forked command to stop")
    assert not list(product.parent.iterdir())  # neither the product nor its partial file
    if signum == signal.SIGKILL:
        assert status == -signal.SIGKILL
    else:
        assert status == 128 + signum  # the command's own status, as a job run here ends
        assert f"interrupted by {signal.Signals(signum).name}" in log.read_text()
    path.unlink()  # the server ends when its socket is gone
    assert process.wait(timeout=30) == 0


#: A server's preamble: its imports wait until the file ``{release}`` exists.
HELD_IMPORTS = """import os, time
import coronalign.cli.warm as warm
_preload = warm.preload
def _held():
    while not os.path.exists({release!r}):
        time.sleep(0.01)
    _preload()
warm.preload = _held"""

#: A job's preamble: it creates ``{sent}`` once its request is sent and the signals it
#: forwards have their handlers.
REQUEST_SENT = """import pathlib, signal, socket
import coronalign.cli.warm as warm
_signal = signal.signal
def _setting(signum, handler):
    previous = _signal(signum, handler)
    if all(callable(signal.getsignal(forwarded)) for forwarded in warm._FORWARDED):
        pathlib.Path({sent!r}).touch()
    return previous
signal.signal = _setting
"""


def _waiting_job(command, socket_path, folder):
    """A job process for ``command`` on the server at ``socket_path``, once it has sent its
    request (its log: ``folder/job.log``)."""
    sent = folder / "sent"
    code = REQUEST_SENT.format(sent=str(sent)) + JOB.format([command])
    with open(folder / "job.log", "w") as stream:
        job = subprocess.Popen(
            [sys.executable, "-c", code],
            env={**os.environ, SOCKET_VARIABLE: str(socket_path)},
            cwd=REPOSITORY,
            stderr=stream,
        )
    wait_for(sent.exists, 120, "the job to send its request")
    return job


def test_the_server_listens_before_its_imports_and_serves_the_jobs_that_waited(dataset, tmp_path):
    release = tmp_path / "release"
    process, path = _start_server(tmp_path, preamble=HELD_IMPORTS.format(release=str(release)))
    here, forked = tmp_path / "here_psfalign.fits", tmp_path / "forked_psfalign.fits"
    assert main(["-q", *align_command(*dataset.values(), here)]) == 0
    job = _waiting_job(align_command(*dataset.values(), forked), path, tmp_path)
    assert job.poll() is None  # waiting for the imports
    assert not forked.exists()

    release.touch()

    assert job.wait(timeout=120) == 0
    assert "warm start: process" in (tmp_path / "job.log").read_text()  # served, not run here
    assert data_sha256(forked) == data_sha256(here)
    path.unlink()
    assert process.wait(timeout=30) == 0


def test_jobs_waiting_for_a_server_whose_imports_fail_run_their_commands_themselves(
    dataset, tmp_path
):
    release = tmp_path / "release"
    failing = HELD_IMPORTS.format(release=str(release)).replace(
        "    _preload()", "    raise ImportError('a broken installation')"
    )
    process, path = _start_server(tmp_path, preamble=failing)
    product = tmp_path / "x_psfalign.fits"
    job = _waiting_job(align_command(*dataset.values(), product), path, tmp_path)

    release.touch()

    assert process.wait(timeout=60) != 0
    assert job.wait(timeout=120) == 0  # sys.exit(None): given back to the job's script
    assert "the server ended before it took the job" in (tmp_path / "job.log").read_text()
    assert not product.exists()  # nothing of the job ran in the server


def test_a_job_stopped_while_it_waits_is_not_run(dataset, tmp_path):
    release = tmp_path / "release"
    process, path = _start_server(tmp_path, preamble=HELD_IMPORTS.format(release=str(release)))
    product = tmp_path / "out" / "x_psfalign.fits"
    product.parent.mkdir()
    job = _waiting_job(align_command(*dataset.values(), product), path, tmp_path)
    job.send_signal(signal.SIGTERM)  # forwarded to the server, which has not accepted it yet

    release.touch()

    assert job.wait(timeout=120) == 128 + signal.SIGTERM
    assert not list(product.parent.iterdir())
    path.unlink()
    assert process.wait(timeout=30) == 0


def test_the_server_ends_with_its_parent(tmp_path):
    parent = subprocess.Popen(["sleep", "600"])
    path = tmp_path / "socket"
    server = subprocess.Popen(
        [sys.executable, "-m", "coronalign.cli.warm", str(path), str(parent.pid)],
        cwd=REPOSITORY,
    )
    wait_for(lambda: path.exists() or server.poll() is not None, 120, "the server to listen")
    assert server.poll() is None
    parent.kill()
    parent.wait()
    assert server.wait(timeout=30) == 0
    assert not path.exists()


def test_the_calls_after_the_commands_speak_on_the_console_and_can_fail(
    dataset, server, tmp_path, monkeypatch, capfd
):
    selection, log = tmp_path / "selection.json", tmp_path / "job.log"
    command = ["psfmask", dataset["science"], "-o", selection, "--override", dataset["psfmask"]]
    keep = [str(log), "keep_selection_record", str(selection), str(tmp_path / "record.json")]
    record = ("coronalign.steps.records:keep_record", keep, {"subject": "x"})
    stop = ("sys:exit", [3], {})

    assert _warm([command], log, server, monkeypatch, then=[record]) == 0
    first, logged = capfd.readouterr().err, log.read_text()
    assert _warm([command], log, server, monkeypatch, then=[stop, record]) == 3

    # the record's message on the job's own standard error (Snakemake's console), and in
    # its log after the command's messages
    message = f"x: CRDS selection recorded in {tmp_path / 'record.json'}\n"
    assert first == message
    assert logged.endswith(message)
    assert "INFO" in logged.removesuffix(message)
    assert (tmp_path / "record.json").is_file()
    assert not capfd.readouterr().err  # after the call that exits, none is made
