"""The catalog test configuration (.test/) runs end to end, as CI runs it, and its report builds."""

import json
import shutil

import pytest

from tests.helpers.paths import REPOSITORY
from tests.helpers.workflow import run_snakemake_in

pytestmark = pytest.mark.slow


def test_the_test_configuration_runs_end_to_end(environment, tmp_path):
    workdir = tmp_path / ".test"
    shutil.copytree(REPOSITORY / ".test", workdir, ignore=shutil.ignore_patterns("results", "logs"))
    run = run_snakemake_in(environment, workdir, "--cores", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    reports = sorted((workdir / "results" / "validation").glob("*/*.json"))  # per PSF stack
    assert len(reports) == 2
    assert all(json.loads(p.read_text())["status"] == "passed" for p in reports)
    report = workdir / "report.html"
    built = run_snakemake_in(environment, workdir, "--report", report)
    assert built.returncode == 0, built.stderr[-3000:]
    assert report.stat().st_size > 10_000
