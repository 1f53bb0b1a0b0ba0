"""The Snakemake workflow, run as users run it (see tests/helpers/workflow.py)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from coronalign import simulation
from coronalign.io.provenance import data_sha256
from tests.helpers.hostile import running
from tests.helpers.workflow import (
    exposure_figure,
    run_coronalign,
    run_snakemake,
    validation_report,
)

NINTS, PSF_NINTS, NPSF_EXPOSURES, SHAPE = 2, 2, 2, (128, 128)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    return simulation.write_association(
        folder,
        n_science=3,
        n_psf=NPSF_EXPOSURES,
        nints=NINTS,
        psf_nints=PSF_NINTS,
        shape=SHAPE,
    )


def _asn_config(data, **extra):
    return {"asn": str(data["asn"]), "psfmask": str(data["psfmask"]), **extra}


def _roots(paths):
    return [Path(p).name.removesuffix("_calints.fits") for p in paths]


def _job_counts(output):
    """{rule: count} from the "Job stats" table of a dry run."""
    table = output.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


def test_dry_run_plans_one_align_job_per_science_exposure(environment, data, tmp_path):
    run = run_snakemake(environment, tmp_path, _asn_config(data), "--dry-run", "--quiet", "rules")
    assert run.returncode == 0, run.stderr
    counts = _job_counts(run.stdout + run.stderr)
    assert counts["align"] == len(data["science"]) == 3
    assert counts["psfmask"] == 3
    # the light jobs are per PSF stack (one association here): one process for its products
    assert counts["validate"] == counts["plot"] == 1
    assert counts["stack_refs"] == counts["check_psfstack"] == counts["summary"] == 1
    assert not (tmp_path / "results").exists()


def test_products_without_association_are_named_by_exposure_root(environment, data, tmp_path):
    config = {
        "science": [str(p) for p in data["science"]],
        "psf": [str(p) for p in data["psf"]],
        "psfmask": str(data["psfmask"]),
    }
    run = run_snakemake(environment, tmp_path, config, "--dry-run", "--printshellcmds")
    assert run.returncode == 0, run.stderr
    planned = set(re.findall(r"results/psfalign/\S+_psfalign\.fits", run.stdout))
    assert planned == {f"results/psfalign/{root}_psfalign.fits" for root in _roots(data["science"])}
    assert "results/stack/psf_psfstack.fits" in run.stdout


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mode": "hex"}, "mode: 'hex' is not one of the allowed values: quad, cube"),
        ({"median_box_length": -1}, "median_box_length: -1 is below the minimum 0"),
        ({"median_box_length": 2.5}, "median_box_length: 2.5 is not of type integer"),
        ({"asn": "missing/asn.json"}, "config asn: missing/asn.json: association file not found"),
        ({"science": ["a_calints.fits"]}, "`asn` and `science` are both set"),
        ({"colour": "red"}, "unknown key(s) colour; allowed keys: asn, bad_bits"),
        ({"asn": None}, "no inputs configured: set `asn:`"),
        ({"edges": "mirror"}, "edges: 'mirror' is not one of the allowed values: wrap, pad"),
        ({"blur_fwhm": -1}, "blur_fwhm: -1 is below the minimum 0"),
        ({"offset_tolerance_mas": 0}, "offset_tolerance_mas"),
    ],
)
def test_config_errors_name_the_key(environment, data, tmp_path, change, message):
    run = run_snakemake(environment, tmp_path, _asn_config(data, **change), "--dry-run")
    assert run.returncode != 0
    assert message in run.stdout + run.stderr


@pytest.fixture(scope="module")
def finished_run(environment, data, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    run = run_snakemake(environment, workdir, _asn_config(data))
    assert run.returncode == 0, run.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_real_run_gives_named_shaped_validated_products(data, finished_run):
    asn_id = json.loads(Path(data["asn"]).read_text())["asn_id"]
    stems = [f"{root}_{asn_id}" for root in _roots(data["science"])]
    results = finished_run / "results"
    products = sorted((results / "psfalign").glob("*.fits"))
    assert [p.name for p in products] == sorted(f"{stem}_psfalign.fits" for stem in stems)
    npsfs = NPSF_EXPOSURES * PSF_NINTS
    for stem in stems:
        with datamodels.open(results / "psfalign" / f"{stem}_psfalign.fits") as model:
            assert isinstance(model, datamodels.QuadModel)
            assert model.data.shape == (NINTS, npsfs, *SHAPE)
            assert model.meta.cal_step.align_psfs == "COMPLETE"
            assert np.isfinite(model.data).all()
        report = json.loads(validation_report(results, stem).read_text())
        assert report["status"] == "passed"
        assert (results / "shifts" / f"{stem}_psfshifts.ecsv").is_file()
        assert exposure_figure(results, stem).stat().st_size > 1000
        assert (results / "benchmarks" / "align" / f"{stem}.tsv").is_file()
        assert "done:" in (finished_run / "logs" / "align" / f"{stem}.log").read_text()
    summary = (results / "summary" / "summary.tsv").read_text().splitlines()
    assert len(summary) == 1 + len(stems)
    assert all("\tpassed\t" in line for line in summary[1:])
    assert not list(results.rglob(".*partial*"))


@pytest.mark.slow
def test_warm_start_forks_the_jobs_and_changes_no_product(environment, data, finished_run):
    logs = "".join(log.read_text() for log in (finished_run / "logs" / "align").glob("*.log"))
    servers = {int(m[1]) for m in re.finditer(r"warm start: .* server \(process (\d+)\)", logs)}
    assert len(servers) == 1
    assert not running(servers.pop())  # it ended with the run

    cold = finished_run.parent / f"{finished_run.name}-cold"
    run = run_snakemake(environment, cold, _asn_config(data, warm_start=False))
    assert run.returncode == 0, run.stderr[-3000:]

    for log in (cold / "logs").rglob("*.log"):
        assert "warm start" not in log.read_text()
    products = sorted((finished_run / "results" / "psfalign").glob("*.fits"))
    assert products
    for product in products:
        again = cold / "results" / "psfalign" / product.name
        assert data_sha256(again) == data_sha256(product)


@pytest.mark.slow
def test_report_builds(environment, data, finished_run):
    report = finished_run / "report.html"
    run = run_snakemake(environment, finished_run, _asn_config(data), "--report", report)
    assert run.returncode == 0, run.stderr
    text = report.read_text(errors="replace")
    assert "summary.tsv" in text
    assert "aligned to the PSF stack jw" in text  # the rendered figure caption
    for figure in (finished_run / "results" / "plots" / "psfalign").glob("*/*.png"):
        assert figure.name.removesuffix("_psfalign.png") in text  # each exposure's figure


@pytest.mark.slow
def test_manifest_records_the_run_and_verify_reproduces_it(environment, data, finished_run):
    manifest = json.loads((finished_run / "results" / "manifest.json").read_text())
    assert len(manifest["products"]) == len(data["science"])
    entry = manifest["products"][0]
    assert set(entry["inputs"]) == {"science", "psfstack", "psfmask"}
    assert entry["parameters"]["median_box_length"] == 3
    assert set(entry["data_sha256"]) == {"SCI", "ERR", "DQ", "VAR_POISSON", "VAR_RNOISE"}
    # The run's align jobs shared the 2 cores (threads per job: cores / exposures, 1 to 2);
    # verify runs with 1 process and another BLAS kernel and thread count.
    other_machine = {
        **environment,
        "OPENBLAS_CORETYPE": "Prescott",
        "OPENBLAS_NUM_THREADS": "3",
        "OMP_NUM_THREADS": "3",
    }
    verify = run_coronalign(
        other_machine, "verify", "results/manifest.json", cwd=finished_run, timeout=300
    )
    assert verify.returncode == 0, verify.stderr[-2000:]
    count = len(data["science"])
    assert f"{count} of {count} product(s) reproduced bit for bit" in verify.stdout


@pytest.mark.slow
def test_a_product_that_fails_validation_fails_the_run(environment, data, finished_run):
    product = next((finished_run / "results" / "psfalign").glob("*_psfalign.fits"))
    stem = product.name.removesuffix("_psfalign.fits")
    with datamodels.open(product) as model:
        model.data[0, 0, 10, 10] = np.nan
        model.save(product)
    run = run_snakemake(environment, finished_run, _asn_config(data))
    assert run.returncode != 0
    # one validate job per PSF stack: its log names the product that failed, and no report of
    # the stack's products is left (Snakemake removes the failed job's folder)
    stack = json.loads(Path(data["asn"]).read_text())["products"][0]["name"]
    log = (finished_run / "logs" / "validate" / f"{stack}.log").read_text()
    assert f"{product.name}: validation failed: finite: SCI has 1 NaN/inf pixels" in log
    assert "validate" in run.stderr
    assert not validation_report(finished_run / "results", stem).exists()
    assert not (finished_run / "results" / "validation" / stack).exists()


@pytest.fixture(scope="module")
def crds_cache(tmp_path_factory):
    from tests.helpers.crds_cache import build_crds_cache

    return build_crds_cache(tmp_path_factory.mktemp("crds") / "cache", frame_shape=(64, 64))


def _crds_run(environment, workdir, instrument, crds_cache, exp_type=None):
    """One science and one PSF exposure (64x64), PSFMASK from the offline CRDS cache."""
    files = simulation.write_association(
        workdir / "data", instrument, n_science=1, n_psf=1, nints=2, psf_nints=2, shape=(64, 64)
    )
    if exp_type is not None:
        with datamodels.open(files["science"][0]) as model:
            model.meta.exposure.type = exp_type
            model.save(files["science"][0])
    config = {
        "asn": str(files["asn"]),
        "psfmask": None,
        "crds": {
            "path": str(crds_cache["crds_path"]),
            "context": crds_cache["context"],
            "offline": True,
        },
    }
    run = run_snakemake(environment, workdir, config)
    assert run.returncode == 0, run.stderr[-3000:]
    return next((workdir / "results" / "psfalign").glob("*_psfalign.fits"))


@pytest.mark.slow
def test_psfmask_from_an_offline_crds_cache_is_recorded(environment, crds_cache, tmp_path):
    product = _crds_run(environment, tmp_path, "nircam", crds_cache)
    with datamodels.open(product) as model:
        assert model.meta.cal_step.align_psfs == "COMPLETE"
        assert model.meta.ref_file.psfmask.name == "crds://jwst_nircam_psfmask_0002.fits"
        assert model.meta.ref_file.crds.context_used == crds_cache["context"]
    stem = product.name.removesuffix("_psfalign.fits")
    selection = json.loads((tmp_path / "results" / "psfmask" / f"{stem}_psfmask.json").read_text())
    assert selection["status"] == "selected"


@pytest.mark.slow
def test_not_applicable_psfmask_skips_the_alignment_and_completes(
    environment, crds_cache, tmp_path
):
    product = _crds_run(environment, tmp_path, "miri", crds_cache, exp_type="MIR_TACQ")
    stem = product.name.removesuffix("_psfalign.fits")
    with datamodels.open(product) as model:
        assert isinstance(model, datamodels.CubeModel)  # the unaligned PSF stack
        assert model.meta.cal_step.align_psfs == "SKIPPED"
        assert model.meta.ref_file.psfmask.name == "N/A"
    report = json.loads(validation_report(tmp_path / "results", stem).read_text())
    assert report["status"] == "passed"
    assert report["skipped"] is True
    assert "N/A" in report["reason"]
    assert "skipped" in (tmp_path / "logs" / "align" / f"{stem}.log").read_text()
    summary = (tmp_path / "results" / "summary" / "summary.tsv").read_text().splitlines()
    assert summary[1].split("\t")[2:4] == ["passed", "yes"]
