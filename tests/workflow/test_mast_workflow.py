"""A reprocessing from nothing: the workflow downloads an association and its members from a
stand-in for MAST on 127.0.0.1, pins them, aligns them, and `coronalign verify` reproduces
the run bit for bit; a pinned file that changes stops the next run before alignment."""

import json
import shutil

import pytest

from coronalign import simulation
from tests.helpers.fake_mast import FakeMast
from tests.helpers.workflow import run_coronalign, run_snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """What MAST would hold: a coron3 association and its member files (and the mask, which
    the run takes as an override)."""
    folder = tmp_path_factory.mktemp("mast")
    written = simulation.write_association(
        folder, n_science=2, n_psf=1, nints=1, psf_nints=2, shape=(64, 64)
    )
    mask = tmp_path_factory.mktemp("mask") / written["psfmask"].name
    shutil.move(written["psfmask"], mask)
    (folder / "truth.json").unlink()
    return {"folder": folder, "asn": written["asn"].name, "mask": mask, "written": written}


def _config(archive, url):
    return {
        "mast": {"associations": [archive["asn"]], "base_url": url},
        "asn": f"results/inputs/{archive['asn']}",
        "psfmask": str(archive["mask"]),
    }


def test_a_run_downloads_pins_aligns_and_verify_reproduces_it(environment, archive, tmp_path):
    with FakeMast(archive["folder"], drop={archive["asn"]: 1}) as mast:
        run = run_snakemake(environment, tmp_path, _config(archive, mast.download_url))
        assert run.returncode == 0, run.stderr[-3000:]
        names = [p.name for p in archive["folder"].iterdir()]
        assert sorted(p.name for p in (tmp_path / "results" / "inputs").glob("*.*")) == sorted(
            [*names, "download.done"]
        )
        assert mast.count(archive["asn"]) == 2  # a dropped connection, then complete
        lock = json.loads((tmp_path / "config" / "inputs.lock.json").read_text())
        assert sorted(f["name"] for f in lock["files"]) == sorted(names)
        manifest = json.loads((tmp_path / "results" / "manifest.json").read_text())
        assert manifest["inputs_lock"]["files"] == lock["files"]
        assert len(manifest["products"]) == 2
        # A second run downloads nothing and finds nothing to do.
        before = len(mast.requests)
        again = run_snakemake(environment, tmp_path, _config(archive, mast.download_url))
        assert again.returncode == 0, again.stderr[-3000:]
        assert len(mast.requests) == before
    verify = run_coronalign(
        environment, "verify", "results/manifest.json", cwd=tmp_path, timeout=300
    )
    assert verify.returncode == 0, verify.stderr[-2000:]
    assert "2 of 2 product(s) reproduced bit for bit" in verify.stdout


def test_a_pinned_input_that_changed_stops_the_run_before_alignment(environment, archive, tmp_path):
    with FakeMast(archive["folder"]) as mast:
        first = run_snakemake(
            environment, tmp_path, _config(archive, mast.download_url), "--until", "download"
        )
        assert first.returncode == 0, first.stderr[-3000:]
        member = next((tmp_path / "results" / "inputs").glob("*_calints.fits"))
        data = bytearray(member.read_bytes())
        data[-1] ^= 1
        member.write_bytes(bytes(data))
        run = run_snakemake(environment, tmp_path, _config(archive, mast.download_url))
    assert run.returncode != 0
    assert member.name in run.stderr
    assert "SHA-256" in run.stderr or "sha256" in run.stderr.lower()
    assert not (tmp_path / "results" / "psfalign").exists()


# The lock is a record, not an output: whatever Snakemake does to outputs, it keeps its bytes;
# a missing pinned file is fetched again and compared with it.
FORCED = {
    "plain rerun": (),
    "--forceall": ("--forceall",),
    "--forcerun download": ("--forcerun", "download"),
}


@pytest.fixture(scope="module")
def pinned_tree(environment, archive, tmp_path_factory):
    """A tree where the download checkpoint has run once (the lock in config/), and an archive
    where MAST has "reprocessed" one member (one byte changed)."""
    tree = tmp_path_factory.mktemp("pinned")
    with FakeMast(archive["folder"]) as mast:
        first = run_snakemake(
            environment, tree, _config(archive, mast.download_url), "--until", "download"
        )
    assert first.returncode == 0, first.stderr[-3000:]
    reprocessed = tmp_path_factory.mktemp("reprocessed")
    shutil.copytree(archive["folder"], reprocessed, dirs_exist_ok=True)
    member = sorted(reprocessed.glob("*_calints.fits"))[0]
    data = bytearray(member.read_bytes())
    data[-1] ^= 1
    member.write_bytes(bytes(data))
    return {"tree": tree, "reprocessed": reprocessed, "member": member.name}


def _copy(pinned_tree, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(pinned_tree["tree"], work, ignore=shutil.ignore_patterns(".snakemake"))
    lock = work / "config" / "inputs.lock.json"
    return work, lock, lock.read_bytes()


def _assert_stops_naming(run, work, member):
    assert run.returncode != 0
    assert member in run.stderr
    assert "MAST may have reprocessed it" in run.stderr
    assert not (work / "results" / "psfalign").exists()


@pytest.mark.parametrize("how", list(FORCED))
def test_a_changed_missing_file_stops_the_run_and_the_lock_keeps_its_bytes(
    environment, archive, pinned_tree, tmp_path, how
):
    work, lock, pinned = _copy(pinned_tree, tmp_path)
    (work / "results" / "inputs" / pinned_tree["member"]).unlink()
    with FakeMast(pinned_tree["reprocessed"]) as mast:
        run = run_snakemake(environment, work, _config(archive, mast.download_url), *FORCED[how])
    _assert_stops_naming(run, work, pinned_tree["member"])
    assert lock.read_bytes() == pinned


@pytest.mark.parametrize("how", ["--delete-all-output", "rm -r results"])
def test_deleting_every_output_keeps_the_lock_and_a_changed_file_stops_the_rerun(
    environment, archive, pinned_tree, tmp_path, how
):
    work, lock, pinned = _copy(pinned_tree, tmp_path)
    with FakeMast(pinned_tree["reprocessed"]) as mast:
        config = _config(archive, mast.download_url)
        if how == "rm -r results":
            shutil.rmtree(work / "results")
        else:
            deleted = run_snakemake(environment, work, config, "--delete-all-output")
            assert deleted.returncode == 0, deleted.stderr[-3000:]
            # downloaded inputs are not outputs: they stay, so remove the local copy too
            (work / "results" / "inputs" / pinned_tree["member"]).unlink()
        assert lock.read_bytes() == pinned
        run = run_snakemake(environment, work, config)
    _assert_stops_naming(run, work, pinned_tree["member"])
    assert lock.read_bytes() == pinned


def test_an_unchanged_missing_file_is_fetched_again_and_the_run_completes(
    environment, archive, pinned_tree, tmp_path
):
    work, lock, pinned = _copy(pinned_tree, tmp_path)
    missing = work / "results" / "inputs" / pinned_tree["member"]
    missing.unlink()
    with FakeMast(archive["folder"]) as mast:
        run = run_snakemake(environment, work, _config(archive, mast.download_url))
        assert mast.count(pinned_tree["member"]) == 1
    assert run.returncode == 0, run.stderr[-3000:]
    assert missing.is_file()
    assert lock.read_bytes() == pinned
    assert (work / "results" / "manifest.json").is_file()
