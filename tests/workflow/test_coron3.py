"""The workflow with ``coron3: true``: official klip, outlier_detection and resample (jwst,
in its own environment) after our alignment, offline, on a simulated association."""

import json

import numpy as np
import pytest
from astropy.io import fits

from tests.helpers.jwst_env import jwst_bin, simulate_association
from tests.helpers.workflow import run_snakemake, workflow_environment

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
