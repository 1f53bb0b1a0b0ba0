"""The catalogue of bad inputs at the workflow level: the run (or dry run) fails with one
clear message naming the file (the command line's side: tests/steps/test_bad_input.py)."""

import json
import shutil

import pytest
from stdatamodels.jwst import datamodels

from coronalign import simulation
from tests.helpers.workflow import run_snakemake


@pytest.fixture(scope="module")
def association(tmp_path_factory):
    folder = tmp_path_factory.mktemp("asn")
    return simulation.write_association(
        folder, n_science=1, n_psf=1, nints=1, psf_nints=1, shape=(64, 64)
    )


def _edited_association(association, folder, edit):
    folder.mkdir()
    source = association["asn"]
    for item in source.parent.iterdir():
        if item.suffix == ".fits":
            (folder / item.name).symlink_to(item)
    content = json.loads(source.read_text())
    edit(content)
    target = folder / source.name
    target.write_text(json.dumps(content))
    return target


def _members(content):
    return content["products"][0]["members"]


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda c: _members(c).clear(), ["no members"]),
        (
            lambda c: c["products"][0].update(
                members=[m for m in _members(c) if m["exptype"] != "psf"]
            ),
            ["psf"],
        ),
        (
            lambda c: c["products"][0].update(
                members=[m for m in _members(c) if m["exptype"] != "science"]
            ),
            ["science"],
        ),
        (lambda c: _members(c)[0].update(expname="gone_calints.fits"), ["gone_calints.fits"]),
    ],
    ids=["empty", "no psf", "no science", "member missing"],
)
def test_bad_association_fails_the_workflow_with_a_clear_message(
    edit, words, association, environment, tmp_path
):
    asn = _edited_association(association, tmp_path / "data", edit)
    config = {"asn": str(asn), "psfmask": str(association["psfmask"])}
    run = run_snakemake(environment, tmp_path / "run", config, "--dry-run")
    assert run.returncode != 0
    output = run.stdout + run.stderr
    assert asn.name in output
    for word in words:
        assert word in output
    # Snakemake frames errors of input functions with their location ("Traceback:");
    # what must not appear is a Python traceback.
    assert "Traceback (most recent call last)" not in output


def test_psf_stack_of_another_filter_fails_the_check(association, environment, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    science = folder / association["science"][0].name
    shutil.copy(association["science"][0], science)
    with datamodels.open(association["psf"][0]) as model:
        model.meta.instrument.filter = "F444W"
        psfstack = folder / "other_psfstack.fits"
        model.save(psfstack)
    config = {
        "science": [str(science)],
        "psfstack": str(psfstack),
        "psfmask": str(association["psfmask"]),
    }
    run = run_snakemake(environment, tmp_path / "run", config)
    assert run.returncode != 0
    log = (tmp_path / "run" / "logs" / "check_psfstack").rglob("*.log")
    text = "".join(path.read_text() for path in log)
    assert "F444W" in text
    assert "F335M" in text
    assert not list((tmp_path / "run" / "results").rglob("*_psfalign.fits"))
