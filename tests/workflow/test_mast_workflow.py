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
            [*names, "inputs.lock.json"]
        )
        assert mast.count(archive["asn"]) == 2  # a dropped connection, then complete
        lock = json.loads((tmp_path / "results" / "inputs" / "inputs.lock.json").read_text())
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
