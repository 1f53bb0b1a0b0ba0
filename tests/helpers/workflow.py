"""Running the workflow and ``coronalign`` from tests as users run them: in subprocesses.

Snakemake runs with this repository's Snakefile and ``--directory`` set to a temporary
folder, so nothing is written into the repository.

The subprocesses' environment (:func:`workflow_environment`) holds no ``CRDS_*`` variable
(the workflow must set every one it needs) and a ``sitecustomize`` on ``PYTHONPATH`` that
refuses and records every non-local connection or name lookup, so "no network" is checked,
not assumed: every run helper fails the test if a subprocess tried.

Note on time: the Slurm executor plugin installed in .venv runs ``scontrol show config``
when Snakemake starts; with Slurm installed but no controller running that waits 10 s.
The environment puts a stand-in ``scontrol`` that fails at once in front of PATH (tests
that use a real cluster build their own environment).
"""

import os
import subprocess
import textwrap
from pathlib import Path

import yaml

from tests.helpers.paths import BIN, REPOSITORY

__all__ = [
    "assert_offline",
    "run_coronalign",
    "run_snakemake",
    "run_snakemake_in",
    "snakemake_command",
    "start_snakemake",
    "workflow_environment",
]

# Loaded by every Python subprocess (PYTHONPATH): refuse and record non-local network use.
NETWORK_GUARD = textwrap.dedent(
    """
    import ipaddress
    import os
    import socket
    import sys

    _LOG = os.environ.get("CORONALIGN_TEST_NETWORK_LOG")
    _LOCAL_NAMES = {None, "", "localhost", socket.gethostname()}

    def _local(host):
        if isinstance(host, bytes):
            host = host.decode()
        if host in _LOCAL_NAMES:
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def _refuse(what):
        if _LOG:
            with open(_LOG, "a") as record:
                record.write(f"pid {os.getpid()} ({' '.join(sys.argv[:3])}): {what}\\n")
        raise OSError(f"network use in a test: {what}")

    def _checked(real):
        def connect(self, address):
            if not isinstance(address, (str, bytes)) and not _local(address[0]):
                _refuse(f"connect to {address!r}")
            return real(self, address)
        return connect

    _getaddrinfo = socket.getaddrinfo

    def _guarded_getaddrinfo(host, *args, **kwargs):
        if not _local(host):
            _refuse(f"name lookup of {host!r}")
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = _checked(socket.socket.connect)
    socket.socket.connect_ex = _checked(socket.socket.connect_ex)
    socket.getaddrinfo = _guarded_getaddrinfo

    # A test that must interrupt a job mid-write sets CORONALIGN_TEST_HOLD (and the
    # repository): every product writer then holds after its first row (tests.helpers.slow_cli).
    if os.environ.get("CORONALIGN_TEST_HOLD"):
        sys.path.append(os.environ["CORONALIGN_TEST_REPOSITORY"])
        import tests.helpers.slow_cli
    """
)


def workflow_environment(folder):
    """Subprocess environment as a newcomer's bare shell: only HOME and PATH=/usr/bin:/bin.

    Nothing of the project is on PATH (what `env -i HOME=$HOME PATH=/usr/bin:/bin
    .venv/bin/snakemake ...` gives, which the README documents), so every rule must run
    with Snakemake's own interpreter. Added for the tests only: the network guard
    (``PYTHONPATH``), where it records attempts, and a stand-in ``scontrol``.

    Parameters
    ----------
    folder : pathlib.Path
        An empty folder for the guard, the stand-in ``scontrol`` and the network record.

    Returns
    -------
    dict
    """
    folder = Path(folder)
    (folder / "sitecustomize.py").write_text(NETWORK_GUARD)
    scontrol = folder / "scontrol"
    scontrol.write_text("#!/bin/sh\nexit 1\n")
    scontrol.chmod(0o755)
    return {
        "HOME": os.environ.get("HOME", str(folder)),
        "PATH": os.pathsep.join([str(folder), "/usr/bin", "/bin"]),
        "PYTHONPATH": str(folder),
        "CORONALIGN_TEST_NETWORK_LOG": str(folder / "network.log"),
    }


def assert_offline(environment):
    """Fail if a subprocess run with ``environment`` tried to use the network."""
    record = environment.get("CORONALIGN_TEST_NETWORK_LOG")
    attempts = Path(record).read_text() if record and Path(record).exists() else ""
    assert not attempts, f"a subprocess tried to use the network:\n{attempts}"


def snakemake_command(workdir, config, *args):
    """The command that runs the workflow on ``config`` (a dict) in ``workdir``.

    The configuration is written to ``workdir/config.yaml``.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    executable = BIN / "snakemake"
    assert executable.exists(), f"{executable} missing: run `make env`"
    command = [str(executable), "--snakefile", str(REPOSITORY / "Snakefile")]
    command += ["--directory", str(workdir), "--configfile", str(configfile)]
    return [*command, *map(str, args)]


def _run(command, environment, timeout):
    """Run a command; fail the test if it used the network; return the CompletedProcess."""
    done = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        check=False,
    )
    assert_offline(environment)
    return done


def run_snakemake(environment, workdir, config, *args, timeout=600):
    """Run the workflow on ``config`` in ``workdir`` with 2 cores; return the CompletedProcess."""
    command = snakemake_command(workdir, config, "--cores", "2", *args)
    return _run(command, environment, timeout)


def run_snakemake_in(environment, workdir, *args, timeout=600):
    """Run the workflow with the configuration of ``workdir`` itself (its config/config.yaml),
    as the catalog's `snakemake --directory .test` does."""
    command = [BIN / "snakemake", "--snakefile", REPOSITORY / "Snakefile", "--directory", workdir]
    return _run([*command, *args], environment, timeout)


def start_snakemake(environment, workdir, config, *args):
    """Start the workflow in the background, in its own process group (so it can be killed
    whole), its output appended to ``workdir/snakemake-output.txt``.

    Returns
    -------
    subprocess.Popen
        With ``output_file``, the path of the output.
    """
    command = snakemake_command(workdir, config, *args)
    output = Path(workdir) / "snakemake-output.txt"
    with output.open("a") as log:  # the child keeps its own copy
        process = subprocess.Popen(
            command,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    process.output_file = output
    return process


def run_coronalign(environment, *args, timeout=120, cwd=None):
    """Run the ``coronalign`` command (in ``cwd``); return the CompletedProcess."""
    done = subprocess.run(
        [str(BIN / "coronalign"), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        check=False,
    )
    assert_offline(environment)
    return done


def validation_report(results, stem):
    """The validation report of the exposure ``stem`` under ``results``: in the folder of
    the PSF stack it was aligned to (one ``validate`` job per stack). Where there is none,
    a path that does not exist, so that a test can assert its absence."""
    found = sorted(Path(results).glob(f"validation/*/{stem}_psfalign.json"))
    return found[0] if found else Path(results) / "validation" / "(none)" / f"{stem}_psfalign.json"


def exposure_figure(results, stem):
    """The report figure of the exposure ``stem`` under ``results`` (see
    :func:`validation_report`)."""
    found = sorted(Path(results).glob(f"plots/psfalign/*/{stem}_psfalign.png"))
    return found[0] if found else Path(results) / "plots" / "(none)" / f"{stem}_psfalign.png"
