"""The workflow with ``coron3: true``: official klip, outlier_detection and resample (jwst,
in its own environment) after our alignment, offline, on a simulated association."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from tests.helpers.jwst_env import jwst_bin, simulate_association
from tests.helpers.workflow import run_coronalign, run_snakemake, workflow_environment

pytestmark = [pytest.mark.jwst, pytest.mark.slow]


def test_coron3_writes_psfsub_and_i2d(tmp_path):
    data = simulate_association(tmp_path / "asn")
    truth = json.loads((data / "truth.json").read_text())
    (tmp_path / "env").mkdir()
    environment = workflow_environment(tmp_path / "env")
    config = {
        "asn": str(data / truth["asn"]),
        "psfmask": str(data / truth["psfmask"]),
        "mode": "cube",
        "coron3": True,
        "jwst_python": str(jwst_bin() / "python"),
    }
    run = run_snakemake(environment, tmp_path / "run", config, timeout=1200)
    assert run.returncode == 0, run.stderr[-4000:]
    results = tmp_path / "run" / "results" / "coron3"
    psfsubs = sorted(results.glob("*_psfsub.fits"))
    assert len(psfsubs) == 2
    for path in psfsubs:
        planes = fits.getdata(path, "SCI")
        assert planes.ndim == 3
        assert np.isfinite(planes).all()
    (i2d,) = results.glob("*_i2d.fits")
    assert i2d.name == f"{truth['product']}_i2d.fits"
    with fits.open(i2d) as hdus:
        assert hdus["SCI"].data.ndim == 2
        assert np.isfinite(hdus["SCI"].data).any()
    work = tmp_path / "run"
    _check_report_figure(environment, work, config, truth["product"])
    _check_manifest_and_verify(environment, work, psfsubs, i2d)


def _check_report_figure(environment, work, config, product):
    """The report shows the association's _i2d image (asinh stretch) beside the figures."""
    figure = work / "results" / "plots" / f"{product}_i2d.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figure.stat().st_size > 10_000
    report = work / "report.html"
    built = run_snakemake(environment, work, config, "--report", report)
    assert built.returncode == 0, built.stderr[-3000:]
    text = report.read_text()
    assert f"{product}_i2d.png" in text
    assert "Associations" in text


def _check_manifest_and_verify(environment, work, psfsubs, i2d):
    """The manifest records the jwst version and the coron3 products' SHA-256; verify re-runs
    them (klip, then outlier_detection and resample) and finds the same values."""
    manifest = json.loads((work / "results" / "manifest.json").read_text())
    section = manifest["coron3"]
    assert section["jwst"] == "3.0.0"
    products = {Path(entry["product"]).name: entry for entry in section["products"]}
    assert sorted(products) == sorted([*(p.name for p in psfsubs), i2d.name])
    for path in [*psfsubs, i2d]:
        entry = products[path.name]
        assert entry["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert "SCI" in entry["data_sha256"]
    assert products[i2d.name]["step"] == "outlier_detection+resample"
    assert sorted(products[psfsubs[0].name]["inputs"]) == ["aligned", "science"]
    record = json.loads((work / "config" / "records" / "products.json").read_text())
    assert sorted(record["current"]["coron3_products"]) == sorted(products)
    verify = run_coronalign(environment, "verify", "results/manifest.json", cwd=work, timeout=900)
    assert verify.returncode == 0, verify.stdout + verify.stderr[-3000:]
    for name in products:
        assert f"{name}: identical" in verify.stdout
    assert "5 of 5 product(s) reproduced bit for bit" in verify.stdout
    # a coron3 product whose values were recorded otherwise is found out
    manifest["coron3"]["products"][0]["data_sha256"]["SCI"] = "0" * 64
    (work / "tampered.json").write_text(json.dumps(manifest))
    tampered = run_coronalign(environment, "verify", "tampered.json", cwd=work, timeout=900)
    assert tampered.returncode == 1
    assert "SCI values differ from the recorded run" in tampered.stdout


def test_coron3_needs_cube_mode(tmp_path):
    data = simulate_association(tmp_path / "asn")
    truth = json.loads((data / "truth.json").read_text())
    (tmp_path / "env").mkdir()
    environment = workflow_environment(tmp_path / "env")
    config = {"asn": str(data / truth["asn"]), "psfmask": str(data / truth["psfmask"]),
              "coron3": True}  # fmt: skip
    run = run_snakemake(environment, tmp_path / "run", config, "--dry-run")
    assert run.returncode != 0
    assert "coron3: true needs mode: cube" in run.stdout + run.stderr
