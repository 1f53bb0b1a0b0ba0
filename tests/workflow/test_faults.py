"""Faults: a run killed during alignment resumes to identical products; unwritable outputs."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from coronalign import simulate
from coronalign.cli import main
from coronalign.provenance import data_sha256
from tests.helpers import align_command
from tests.workflow_helpers import BIN, REPOSITORY


@pytest.fixture(scope="module")
def association(tmp_path_factory):
    # Enough integrations that the alignment lasts long enough to be interrupted.
    folder = tmp_path_factory.mktemp("data")
    return simulate.write_association(folder, n_science=1, n_psf=2, nints=24, psf_nints=4)


def _start(environment, workdir, association, *extra):
    workdir.mkdir(parents=True, exist_ok=True)
    config = {"asn": str(association["asn"]), "psfmask": str(association["psfmask"])}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    command = [str(BIN / "snakemake"), "--snakefile", str(REPOSITORY / "Snakefile")]
    command += ["--directory", str(workdir), "--configfile", str(workdir / "config.yaml")]
    command += ["--cores", "2", *extra]
    with (workdir / "snakemake-output.txt").open("a") as log:  # the child keeps its own copy
        process = subprocess.Popen(
            command,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, so it can be killed whole
        )
    process.output_file = workdir / "snakemake-output.txt"
    return process


def _wait(process, timeout):
    """Wait for a run; return its exit status and what it printed."""
    status = process.wait(timeout=timeout)
    return status, process.output_file.read_text()


def _products(workdir):
    return sorted((workdir / "results" / "psfalign").glob("*_psfalign.fits"))


@pytest.mark.slow
def test_sigkill_during_alignment_then_rerun_incomplete_gives_identical_products(
    environment, association, tmp_path
):
    reference = tmp_path / "reference"
    status, output = _wait(_start(environment, reference, association), 600)
    assert status == 0, output[-3000:]

    killed = tmp_path / "killed"
    process = _start(environment, killed, association)
    partial = None
    deadline = time.monotonic() + 300
    while partial is None and time.monotonic() < deadline and process.poll() is None:
        partial = next((killed / "results" / "psfalign").glob(".*.partial.fits"), None)
        time.sleep(0.005)
    assert partial is not None, "the alignment finished before it could be interrupted"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    assert not _products(killed)  # nothing half-written under the product's name

    # A killed Snakemake leaves its lock: the documented resume is --unlock, then
    # --rerun-incomplete (which re-runs the job whose output was incomplete).
    status, output = _wait(_start(environment, killed, association, "--unlock"), 300)
    assert status == 0, output[-3000:]
    status, output = _wait(_start(environment, killed, association, "--rerun-incomplete"), 600)
    assert status == 0, output[-3000:]
    assert "incomplete" in output.lower()
    assert [p.name for p in _products(killed)] == [p.name for p in _products(reference)]
    for mine, theirs in zip(_products(killed), _products(reference), strict=True):
        assert data_sha256(mine) == data_sha256(theirs)
    assert not list((killed / "results").rglob(".*partial*"))


def test_unwritable_output_folder_is_a_clear_error(tmp_path, capsys):
    sim = simulate.simulate_exposures("nircam", nints=1, npsfs=1, seed=5)
    paths = simulate.write_simulation(sim, tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: use a read-only path
            target = Path("/proc/coronalign_psfalign.fits")
        else:
            target = locked / "out_psfalign.fits"
        status = main(align_command(paths["science"], paths["psfstack"], paths["psfmask"], target))
    finally:
        locked.chmod(0o700)
    assert status == 2
    message = capsys.readouterr().err
    assert "output folder is not writable" in message or "cannot" in message
    assert str(target.parent) in message
