"""PSFMASK from an offline CRDS cache, end to end: the workflow and the command line.

A real CRDS cache (``tests.helpers.crds_cache.build_simulator_cache``: pmap -> imap -> rmap with
correct sha1sums, server_config, masks) is built at test time; its rules select for the simulator's
real parameter values (NIRCam NRC_CORON/F335M/MASKA335R/SUB320A335R, MIRI
MIR_4QPM/F1550C/4QPM_1550/MASK1550; NRC_TACQ and MIR_TACQ are N/A). Snakemake and
``coronalign`` run in subprocesses, as users run them (tests/helpers/workflow.py), with no CRDS
variable inherited (the workflow must set them all) and with a ``sitecustomize`` that refuses
and records every non-local connection or name lookup, so "no network" is checked, not
assumed.

Time: one simulated NIRCam and one MIRI association (64 x 64, 2 integrations, 2 PSFs) serve
the whole module; two complete workflow runs, three that stop early, two dry runs and a few
command-line calls (about 55 s on two shared cores).
"""

import hashlib
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from stdatamodels.jwst import datamodels

from coronalign import simulation
from coronalign.references.mask import load_psfmask
from tests.helpers.crds_cache import (
    SIM_CONTEXT,
    SIM_CONTEXT_FULL_FRAME,
    SIM_CONTEXT_MISPLACED,
    SIM_MISPLACED_SHAPE,
    SIM_MISSING_REFERENCE,
    SIM_NOT_APPLICABLE,
    build_simulator_cache,
)
from tests.helpers.paths import BIN
from tests.helpers.workflow import (
    assert_offline,
    run_coronalign,
    run_snakemake,
    validation_report,
)

pytestmark = pytest.mark.slow

SHAPE = (64, 64)
NINTS, NPSF, PSF_NINTS = 2, 1, 2
NIRCAM_START = (1729, 1)  # 1-based (xstart, ystart) of the simulated NIRCam subarray
CRDS_VERSION = importlib.metadata.version("crds")


def test_the_network_guard_refuses_and_records_in_subprocesses(environment, tmp_path):
    env = dict(environment, CORONALIGN_TEST_NETWORK_LOG=str(tmp_path / "network.log"))
    code = "import socket; socket.create_connection(('jwst-crds.stsci.edu', 443), timeout=1)"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "network use in a test: name lookup of 'jwst-crds.stsci.edu'" in done.stderr
    assert "jwst-crds.stsci.edu" in (tmp_path / "network.log").read_text()


def _crds(cache, context=None):
    crds = {"path": str(cache["crds_path"]), "context": context, "offline": True}
    return {"psfmask": None, "crds": crds}


# ---------------------------------------------------------------------------------------------
# Data: one CRDS cache, one NIRCam and one MIRI association, variants made by copying


def _json(path):
    return json.loads(Path(path).read_text())


def _snapshot(root):
    """Every file and folder under ``root``: kind, size, mtime and (files) SHA-1."""
    state = {}
    for path in sorted(Path(root).rglob("*")):
        info = path.stat()
        digest = hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        state[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns, digest)
    return state


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The shared offline cache, with a snapshot taken before any job reads it."""
    built = build_simulator_cache(tmp_path_factory.mktemp("crds") / "cache", SHAPE)
    built["snapshot"] = _snapshot(built["crds_path"])
    return built


def _association(folder, instrument):
    files = simulation.write_association(
        folder, instrument, n_science=2, n_psf=NPSF, nints=NINTS, psf_nints=PSF_NINTS, shape=SHAPE
    )
    asn_id = _json(files["asn"])["asn_id"]
    files["stems"] = [f"{p.name.removesuffix('_calints.fits')}_{asn_id}" for p in files["science"]]
    return files


def _variant(files, folder, changes):
    """Copy an association and change science metadata: ``{index: {"exposure.type": ...}}``."""
    shutil.copytree(files["asn"].parent, folder)
    copied = dict(files, asn=folder / files["asn"].name)
    copied["science"] = [folder / p.name for p in files["science"]]
    for index, values in changes.items():
        path = copied["science"][index]
        with datamodels.open(path) as model:
            for dotted, value in values.items():
                group, name = dotted.split(".")
                setattr(getattr(model.meta, group), name, value)
            model.save(path)
    return copied


@pytest.fixture(scope="module")
def nircam(tmp_path_factory):
    return _association(tmp_path_factory.mktemp("nircam"), "nircam")


@pytest.fixture(scope="module")
def miri(tmp_path_factory):
    """MIRI: the first science exposure is coronagraphic, the second a target acquisition."""
    files = _association(tmp_path_factory.mktemp("miri_original"), "miri")
    folder = tmp_path_factory.mktemp("miri") / "data"
    return _variant(files, folder, {1: {"exposure.type": SIM_NOT_APPLICABLE["MIRI"]}})


def _results(workdir, stem):
    results = workdir / "results"
    return {
        "product": results / "psfalign" / f"{stem}_psfalign.fits",
        "shifts": results / "shifts" / f"{stem}_psfshifts.ecsv",
        "validation": validation_report(results, stem),  # made by then, or absent
        "selection": results / "psfmask" / f"{stem}_psfmask.json",
        "psfmask_log": workdir / "logs" / "psfmask" / f"{stem}.log",
        "align_log": workdir / "logs" / "align" / f"{stem}.log",
    }


# ---------------------------------------------------------------------------------------------
# The workflow with `psfmask: null`: CRDS selects, the product records


@pytest.fixture(scope="module")
def nircam_run(environment, cache, nircam, tmp_path_factory):
    """Two NIRCam exposures, context pinned; their psfmask jobs share the cache."""
    workdir = tmp_path_factory.mktemp("nircam_run")
    config = {"asn": str(nircam["asn"]), **_crds(cache, SIM_CONTEXT)}
    run = run_snakemake(environment, workdir, config)
    assert run.returncode == 0, run.stderr[-4000:]
    return workdir


def test_workflow_selects_the_nircam_mask_from_the_cache_and_records_it(nircam, nircam_run):
    for stem in nircam["stems"]:
        out = _results(nircam_run, stem)
        selection = _json(out["selection"])
        assert selection["status"] == "selected"
        assert selection["reference"] == "crds://jwst_nircam_psfmask_0001.fits"
        assert selection["context"] == SIM_CONTEXT
        assert "FILTER=F335M" in selection["reason"]
        assert "selects jwst_nircam_psfmask_0001.fits" in out["psfmask_log"].read_text()
        with datamodels.open(out["product"]) as model:
            assert isinstance(model, datamodels.QuadModel)
            assert model.meta.cal_step.align_psfs == "COMPLETE"
            assert model.meta.ref_file.psfmask.name == "crds://jwst_nircam_psfmask_0001.fits"
            assert model.meta.ref_file.crds.context_used == SIM_CONTEXT
            assert model.meta.ref_file.crds.sw_version == CRDS_VERSION
        table = Table.read(out["shifts"])
        assert table.meta["psfmask"] == "crds://jwst_nircam_psfmask_0001.fits"
        assert len(table) == NINTS * NPSF * PSF_NINTS
        assert table["converged"].all()
        assert _json(out["validation"])["status"] == "passed"


def test_changing_the_pinned_context_reruns_the_selection(environment, cache, nircam, nircam_run):
    config = {"asn": str(nircam["asn"]), **_crds(cache, SIM_CONTEXT)}
    same = run_snakemake(environment, nircam_run, config, "--dry-run")
    assert same.returncode == 0, same.stderr
    assert "Nothing to be done" in same.stdout + same.stderr
    config = {"asn": str(nircam["asn"]), **_crds(cache, SIM_CONTEXT_FULL_FRAME)}
    other = run_snakemake(environment, nircam_run, config, "--dry-run", "--quiet", "rules")
    assert other.returncode == 0, other.stderr
    table = (other.stdout + other.stderr).split("Job stats:", 1)[1]
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}
    assert counts["psfmask"] == counts["align"] == len(nircam["stems"])
    assert "stack_refs" not in counts  # only what depends on the mask


def test_the_crds_mask_gives_the_simulators_true_shifts(nircam, nircam_run):
    truth = _json(nircam["truth"])["science"]
    for path, stem in zip(nircam["science"], nircam["stems"], strict=True):
        table = Table.read(_results(nircam_run, stem)["shifts"])
        expected = truth[path.name]
        shape = np.shape(expected["xshift"])
        errors = np.concatenate(
            [
                (np.reshape(table["xshift"], shape) - expected["xshift"]).ravel(),
                (np.reshape(table["yshift"], shape) - expected["yshift"]).ravel(),
            ]
        )
        assert np.sqrt(np.mean(errors**2)) < 0.05


@pytest.fixture(scope="module")
def miri_run(environment, cache, miri, tmp_path_factory):
    """MIRI, context from the cache's configuration: one selected, one N/A exposure."""
    workdir = tmp_path_factory.mktemp("miri_run")
    run = run_snakemake(environment, workdir, {"asn": str(miri["asn"]), **_crds(cache)})
    assert run.returncode == 0, run.stderr[-4000:]
    return workdir


def test_workflow_selects_the_miri_mask_with_the_caches_default_context(miri, miri_run):
    out = _results(miri_run, miri["stems"][0])
    with datamodels.open(out["product"]) as model:
        assert model.meta.cal_step.align_psfs == "COMPLETE"
        assert model.meta.ref_file.psfmask.name == "crds://jwst_miri_psfmask_0001.fits"
        assert model.meta.ref_file.crds.context_used == SIM_CONTEXT  # operational context
        assert model.meta.ref_file.crds.sw_version == CRDS_VERSION
    assert _json(out["validation"])["status"] == "passed"


def test_not_applicable_exposure_gets_the_unaligned_psf_stack(miri, miri_run):
    out = _results(miri_run, miri["stems"][1])
    selection = _json(out["selection"])
    assert selection["status"] == "not_applicable"
    assert selection["path"] is None
    why = "PSFMASK is not applicable (N/A)"
    assert why in selection["reason"]
    assert "EXP_TYPE=MIR_TACQ" in selection["reason"]
    assert why in out["psfmask_log"].read_text()
    align_log = out["align_log"].read_text()
    assert "skipped" in align_log
    assert why in align_log
    stack = next((miri_run / "results" / "stack").glob("*_psfstack.fits"))
    with datamodels.open(out["product"]) as model, datamodels.open(stack) as psfs:
        assert isinstance(model, datamodels.CubeModel)
        np.testing.assert_array_equal(model.data, psfs.data)
        assert model.meta.cal_step.align_psfs == "SKIPPED"
        assert model.meta.ref_file.psfmask.name == "N/A"
        assert model.meta.ref_file.crds.context_used == SIM_CONTEXT
    validation = _json(out["validation"])
    assert validation["status"] == "passed"
    assert validation["skipped"] is True
    assert why in validation["reason"]
    assert len(Table.read(out["shifts"])) == 0
    summary = (miri_run / "results" / "summary" / "summary.tsv").read_text().splitlines()
    assert len(summary) == 3  # the workflow completed for both exposures


# ---------------------------------------------------------------------------------------------
# The override: CRDS is not consulted, even with a broken cache


def test_override_does_not_consult_a_broken_cache(
    environment, nircam, nircam_run, tmp_path_factory
):
    workdir = tmp_path_factory.mktemp("override_run")
    broken = workdir / "broken_cache"
    (broken / "config" / "jwst").mkdir(parents=True)
    (broken / "config" / "jwst" / "server_config").write_text("this is not a CRDS config {\n")
    config = {
        "asn": str(nircam["asn"]),
        "psfmask": str(nircam["psfmask"]),
        "crds": {"path": str(broken), "context": "jwst_9999.pmap", "offline": True},
    }
    stem = nircam["stems"][0]
    stack = json.loads(Path(nircam["asn"]).read_text())["products"][0]["name"]
    run = run_snakemake(environment, workdir, config, f"results/validation/{stack}")
    out = _results(workdir, stem)
    assert run.returncode == 0, run.stderr[-4000:]
    selection = _json(out["selection"])
    assert selection["status"] == "override"
    assert selection["context"] is None
    assert selection["crds_version"] is None
    assert "CRDS not consulted" in out["psfmask_log"].read_text()
    with datamodels.open(out["product"]) as model:
        assert model.meta.ref_file.psfmask.name == str(nircam["psfmask"])
        assert model.meta.ref_file.crds.context_used is None
    assert _json(out["validation"])["status"] == "passed"
    # The simulator's mask and the CRDS one hold the same weights: the same fit, bit for bit.
    ours = Table.read(out["shifts"])
    crds = Table.read(_results(nircam_run, stem)["shifts"])
    for column in ("xshift", "yshift", "beta"):
        np.testing.assert_array_equal(ours[column], crds[column])


# ---------------------------------------------------------------------------------------------
# Errors: a clear message in logs/psfmask/<stem>.log, no traceback, no product


def _assert_failed_cleanly(run, workdir, stem, *messages):
    assert run.returncode != 0
    assert f"logs/psfmask/{stem}.log" in run.stdout + run.stderr  # Snakemake points there
    out = _results(workdir, stem)
    log = out["psfmask_log"].read_text()
    assert "coronalign: error:" in log
    assert "Traceback" not in log
    for message in messages:
        assert message in log, log
    for kind in ("selection", "product", "shifts", "validation"):
        assert not out[kind].exists(), out[kind]
    return log


def test_no_rule_and_missing_reference_fail_with_clear_messages(
    environment, cache, nircam, tmp_path_factory
):
    workdir = tmp_path_factory.mktemp("errors_run")
    files = _variant(
        nircam,
        workdir / "data",
        {0: {"exposure.type": "NRC_IMAGE"}, 1: {"observation.date": "2024-06-01"}},
    )
    config = {"asn": str(files["asn"]), **_crds(cache, SIM_CONTEXT)}
    run = run_snakemake(environment, workdir, config, "--keep-going")
    no_rule, missing = nircam["stems"]
    log = _assert_failed_cleanly(run, workdir, no_rule, "EXP_TYPE", "'NRC_IMAGE'", SIM_CONTEXT)
    assert "NRC_CORON" in log  # what the rules do know
    sync = f"CRDS_PATH={cache['crds_path']} crds sync --contexts {SIM_CONTEXT} --fetch-references"
    _assert_failed_cleanly(run, workdir, missing, SIM_MISSING_REFERENCE, sync)
    assert not (workdir / "results" / "psfalign").exists()


def test_cache_without_server_config_fails_with_a_clear_message(
    environment, cache, nircam, tmp_path_factory
):
    workdir = tmp_path_factory.mktemp("no_config_run")
    half_made = workdir / "half_made_cache"
    shutil.copytree(cache["crds_path"] / "mappings", half_made / "mappings")
    config = {"asn": str(nircam["asn"]), **_crds({"crds_path": half_made}, SIM_CONTEXT)}
    stem = nircam["stems"][0]
    product = _results(workdir, stem)["product"].relative_to(workdir)
    run = run_snakemake(environment, workdir, config, product)
    _assert_failed_cleanly(
        run, workdir, stem, "config/jwst/server_config", "not a complete CRDS cache", "crds sync"
    )


# ---------------------------------------------------------------------------------------------
# The command line: a full-frame mask from CRDS is cut to the subarray; one that cannot be is
# refused


def _select(environment, cache, science, context, output):
    run = run_coronalign(
        environment,
        "psfmask",
        science,
        "-o",
        output,
        "--crds-path",
        cache["crds_path"],
        "--crds-context",
        context,
    )
    assert run.returncode == 0, run.stderr
    return _json(output)


def test_cli_cuts_a_full_frame_crds_mask_to_the_science_subarray(
    environment, cache, nircam, nircam_run, tmp_path
):
    science, stem = nircam["science"][0], nircam["stems"][0]
    selection = _select(environment, cache, science, SIM_CONTEXT_FULL_FRAME, tmp_path / "s.json")
    assert selection["reference"] == "crds://jwst_nircam_psfmask_0002.fits"
    full = Path(selection["path"])
    assert full == cache["references"]["jwst_nircam_psfmask_0002.fits"]

    # The values: the cut-out is the simulator's subarray mask, pixel for pixel.
    position = dict(zip(("xstart", "ystart"), NIRCAM_START, strict=True))
    weights = load_psfmask(full, SHAPE, position)
    np.testing.assert_array_equal(weights, simulation.psfmask_array("nircam", SHAPE))
    with datamodels.open(full) as mask:
        assert mask.data.shape == (2048, 2048)

    stack = next((nircam_run / "results" / "stack").glob("*_psfstack.fits"))
    product, shifts = tmp_path / "p_psfalign.fits", tmp_path / "p_psfshifts.ecsv"
    run = run_coronalign(
        environment,
        "align",
        science,
        stack,
        "--psfmask-selection",
        tmp_path / "s.json",
        "-o",
        product,
        "--shifts",
        shifts,
    )
    assert run.returncode == 0, run.stderr
    assert "cutting the 2048x2048 PSFMASK to the science subarray at x=1729, y=1" in run.stderr
    with datamodels.open(product) as model:
        assert model.meta.ref_file.psfmask.name == "crds://jwst_nircam_psfmask_0002.fits"
        assert model.meta.ref_file.crds.context_used == SIM_CONTEXT_FULL_FRAME
    # Same weights as the subarray-sized mask of the workflow run: the same fit, bit for bit.
    reference = Table.read(_results(nircam_run, stem)["shifts"])
    table = Table.read(shifts)
    for column in ("xshift", "yshift", "beta"):
        np.testing.assert_array_equal(table[column], reference[column])


def test_cli_refuses_a_crds_mask_that_does_not_cover_the_subarray(
    environment, cache, nircam, nircam_run, tmp_path
):
    science = nircam["science"][0]
    selection = _select(environment, cache, science, SIM_CONTEXT_MISPLACED, tmp_path / "s.json")
    assert selection["reference"] == "crds://jwst_nircam_psfmask_0003.fits"
    stack = next((nircam_run / "results" / "stack").glob("*_psfstack.fits"))
    product = tmp_path / "p_psfalign.fits"
    run = run_coronalign(
        environment,
        "align",
        science,
        stack,
        "--psfmask-selection",
        tmp_path / "s.json",
        "-o",
        product,
        "--shifts",
        tmp_path / "p.ecsv",
    )
    assert run.returncode == 2
    assert "coronalign: error:" in run.stderr
    assert "Traceback" not in run.stderr
    mask_shape = "x".join(map(str, SIM_MISPLACED_SHAPE))
    assert f"the PSFMASK is {mask_shape}, the science frames are 64x64" in run.stderr
    assert "columns 1729..1792" in run.stderr  # where the subarray is
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def test_cli_no_matching_rule_is_one_line_without_traceback(environment, cache, nircam, tmp_path):
    files = _variant(nircam, tmp_path / "data", {0: {"exposure.type": "NRC_IMAGE"}})
    run = run_coronalign(
        environment,
        "psfmask",
        files["science"][0],
        "-o",
        tmp_path / "s.json",
        "--crds-path",
        cache["crds_path"],
    )
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1
    assert errors[0].startswith("coronalign: error: no PSFMASK rule")
    assert "EXP_TYPE" in errors[0]
    assert "'NRC_IMAGE'" in errors[0]
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "s.json").exists()


# ---------------------------------------------------------------------------------------------
# Jobs sharing one cache never write into it


def test_parallel_lookups_and_workflow_runs_leave_the_shared_cache_untouched(
    environment, cache, nircam, miri, nircam_run, miri_run, tmp_path
):
    # Four lookups at the same moment, on top of the workflow runs' parallel psfmask jobs.
    jobs = []
    for i, (science, context) in enumerate(
        [
            (nircam["science"][0], SIM_CONTEXT),
            (nircam["science"][1], SIM_CONTEXT_FULL_FRAME),
            (miri["science"][0], None),
            (miri["science"][1], SIM_CONTEXT),
        ]
    ):
        command = [str(BIN / "coronalign"), "psfmask", str(science), "-o", str(tmp_path / f"{i}")]
        command += ["--crds-path", str(cache["crds_path"])]
        command += ["--crds-context", context] if context else []
        jobs.append(subprocess.Popen(command, env=environment, stderr=subprocess.PIPE, text=True))
    for job in jobs:
        _, stderr = job.communicate(timeout=120)
        assert job.returncode == 0, stderr
    assert_offline(environment)
    statuses = [_json(tmp_path / f"{i}")["status"] for i in range(4)]
    assert statuses == ["selected", "selected", "selected", "not_applicable"]
    assert _snapshot(cache["crds_path"]) == cache["snapshot"]
