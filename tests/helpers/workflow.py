"""Running the Snakemake workflow from tests, as users run it: `snakemake` in a subprocess.

Snakemake runs with this repository's Snakefile and ``--directory`` set to a temporary
folder, so nothing is written into the repository.

Note on time: the Slurm executor plugin installed in .venv runs ``scontrol show config``
when Snakemake starts; with Slurm installed but no controller running that waits 10 s.
:func:`workflow_environment` puts a stand-in ``scontrol`` that fails at once in front of
PATH (tests that use a real cluster build their own environment).
"""

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPOSITORY = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

__all__ = ["BIN", "REPOSITORY", "run_snakemake", "workflow_environment"]


def workflow_environment(folder):
    """Environment for Snakemake subprocesses: the project's tools first on PATH."""
    scontrol = Path(folder) / "scontrol"
    scontrol.write_text("#!/bin/sh\nexit 1\n")
    scontrol.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{BIN}{os.pathsep}{os.environ['PATH']}"}


def run_snakemake(environment, workdir, config, *args, timeout=600):
    """Run snakemake on ``config`` (a dict) in ``workdir``; return the CompletedProcess."""
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    executable = BIN / "snakemake"
    assert executable.exists(), f"{executable} missing: run `make env`"
    command = [str(executable), "--snakefile", str(REPOSITORY / "Snakefile")]
    command += ["--directory", str(workdir), "--configfile", str(configfile), "--cores", "2"]
    return subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        check=False,
    )
