"""Faults: a run killed during alignment resumes to identical products."""

import os
import signal

import pytest

from coronalign import simulation
from coronalign.io.provenance import data_sha256
from tests.helpers.hostile import wait_for
from tests.helpers.paths import REPOSITORY
from tests.helpers.workflow import start_snakemake


@pytest.fixture(scope="module")
def association(tmp_path_factory):
    # More than one integration, so that a job can be held between two rows.
    folder = tmp_path_factory.mktemp("data")
    return simulation.write_association(folder, n_science=1, n_psf=2, nints=4, psf_nints=4)


def _start(environment, workdir, association, *extra):
    """Start the workflow on the association in the background (see start_snakemake)."""
    config = {"asn": str(association["asn"]), "psfmask": str(association["psfmask"])}
    return start_snakemake(environment, workdir, config, "--cores", "2", *extra)


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

    # Every align job holds mid-write (after its first row) until killed: no race.
    killed, hold = tmp_path / "killed", tmp_path / "hold"
    hold.mkdir()
    holding = {
        **environment,
        "CORONALIGN_TEST_HOLD": str(hold),
        "CORONALIGN_TEST_REPOSITORY": str(REPOSITORY),
    }
    process = _start(holding, killed, association)
    wait_for(
        lambda: list(hold.glob("held-*")) or process.poll() is not None,
        600,
        "an align job to hold mid-write",
    )
    assert process.poll() is None, process.output_file.read_text()[-3000:]
    assert list((killed / "results" / "psfalign").glob(".*.partial.fits"))
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
