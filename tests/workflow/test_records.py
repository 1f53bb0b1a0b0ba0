"""The records the workflow keeps besides the inputs lock (coronalign.steps.records): the CRDS
selection of each exposure, each PSF stack and the products' values, in `config/records`.

Whatever Snakemake does to the outputs (--forceall, --delete-all-output, rm -r results), the
records keep their bytes when the regenerated outputs are the same; a regenerated output that
differs is said with its cause (another CRDS context, a changed PSF member, other software),
or, with nothing to explain it, stops the run naming the record. Against the offline CRDS
stand-in of tests.helpers.crds_cache; no network.
"""

import json
import shutil
from pathlib import Path

import pytest
from stdatamodels.jwst import datamodels

from coronalign import simulation
from tests.helpers.crds_cache import SIM_CONTEXT, SIM_CONTEXT_FULL_FRAME, build_simulator_cache
from tests.helpers.workflow import run_snakemake

pytestmark = pytest.mark.slow

RECORDS = Path("config") / "records"


def _config(cache, context=None, crds_path=None):
    crds = {"path": str(crds_path or cache["crds_path"]), "context": context, "offline": True}
    return {"asn": "data/" + cache["asn"], "psfmask": None, "crds": crds}


def _records(work):
    """Every record file under ``work``: relative path -> bytes."""
    folder = work / RECORDS
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.json"))}


def _json(path):
    return json.loads(Path(path).read_text())


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return build_simulator_cache(tmp_path_factory.mktemp("crds") / "cache", (64, 64))


@pytest.fixture(scope="module")
def recorded(environment, cache, tmp_path_factory):
    """A complete run (the context not pinned: the cache's operational jwst_0001.pmap), with
    its association inside the tree so copies carry their own data."""
    tree = tmp_path_factory.mktemp("recorded")
    written = simulation.write_association(
        tree / "data", n_science=2, n_psf=1, nints=1, psf_nints=2, shape=(64, 64)
    )
    cache["asn"] = written["asn"].name
    run = run_snakemake(environment, tree, _config(cache))
    assert run.returncode == 0, run.stderr[-4000:]
    records = _records(tree)
    stems = [p.name.removesuffix("_psfmask.json") for p in (tree / "results" / "psfmask").iterdir()]
    assert sorted(records) == sorted(
        [
            *(f"psfmask/{stem}.json" for stem in stems),
            *(
                f"stack/{p.name.removesuffix('_psfstack.fits')}.json"
                for p in (tree / "results" / "stack").iterdir()
            ),
            "products.json",
        ]
    )
    return {"tree": tree, "records": records, "stems": sorted(stems), "psf": written["psf"]}


def _copy(recorded, tmp_path, metadata=False):
    """A copy of the recorded tree; with ``metadata``, Snakemake's too (so a changed
    parameter re-runs the jobs that use it, as in the user's own tree)."""
    work = tmp_path / "work"
    ignore = None if metadata else shutil.ignore_patterns(".snakemake")
    shutil.copytree(recorded["tree"], work, ignore=ignore)
    return work


def test_the_first_run_records_the_selection_the_stack_and_the_products(recorded):
    selection = _json(recorded["tree"] / RECORDS / "psfmask" / f"{recorded['stems'][0]}.json")
    assert selection["format"] == "coronalign-record-1"
    assert selection["current"]["reference"] == "crds://jwst_nircam_psfmask_0001.fits"
    assert selection["current"]["context"] == SIM_CONTEXT
    assert selection["current"]["pinned_context"] is None
    assert len(selection["current"]["mask_sha256"]) == 64
    assert selection["history"] == []
    stack = _json(next((recorded["tree"] / RECORDS / "stack").glob("*.json")))
    # the simulated PSF exposures carry VAR_POISSON and VAR_RNOISE: so do the stack's digests
    assert sorted(stack["current"]["data_sha256"]) == [
        "DQ", "ERR", "SCI", "VAR_POISSON", "VAR_RNOISE",
    ]  # fmt: skip
    assert list(stack["current"]["members"]) == [p.name for p in recorded["psf"]]
    products = _json(recorded["tree"] / RECORDS / "products.json")["current"]["products"]
    assert sorted(products) == [f"{stem}_psfalign.fits" for stem in recorded["stems"]]


DELETIONS = {
    "--forceall": ("--forceall",),
    "--forcerun psfmask stack_refs manifest": ("--forcerun", "psfmask", "stack_refs", "manifest"),
    "--delete-all-output": None,
    "rm -r results": None,
}


@pytest.mark.parametrize("how", list(DELETIONS))
def test_regenerating_every_output_keeps_every_records_bytes(
    environment, cache, recorded, tmp_path, how
):
    work = _copy(recorded, tmp_path)
    args = DELETIONS[how] or ()
    if how == "rm -r results":
        shutil.rmtree(work / "results")
    elif how == "--delete-all-output":
        deleted = run_snakemake(environment, work, _config(cache), "--delete-all-output")
        assert deleted.returncode == 0, deleted.stderr[-3000:]
        assert not list((work / "results").rglob("*.json"))
    run = run_snakemake(environment, work, _config(cache), *args)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "stack_refs" in run.stderr  # the stack really was made again
    assert "WARNING" not in run.stderr
    assert _records(work) == recorded["records"]


def test_a_forced_rerun_that_selects_another_crds_file_says_so(
    environment, cache, recorded, tmp_path
):
    """The context is not pinned and the cache's operational context moved (as after a
    `crds sync` on a later day): the forced rerun selects another PSFMASK and says so."""
    work = _copy(recorded, tmp_path)
    moved = tmp_path / "moved_cache"
    shutil.copytree(cache["crds_path"], moved)
    server_config = moved / "config" / "jwst" / "server_config"
    server_config.write_text(server_config.read_text().replace(SIM_CONTEXT, SIM_CONTEXT_FULL_FRAME))
    run = run_snakemake(environment, work, _config(cache, crds_path=moved), "--forcerun", "psfmask")
    assert run.returncode == 0, run.stderr[-4000:]
    for stem in recorded["stems"]:
        said = (
            f"WARNING: {stem}: the CRDS selection changed: PSFMASK was "
            f"crds://jwst_nircam_psfmask_0001.fits (context {SIM_CONTEXT}), now "
            f"crds://jwst_nircam_psfmask_0002.fits (context {SIM_CONTEXT_FULL_FRAME})"
        )
        assert said in run.stderr
        assert said in (work / "logs" / "psfmask" / f"{stem}.log").read_text()
        record = _json(work / RECORDS / "psfmask" / f"{stem}.json")
        assert record["current"]["reference"] == "crds://jwst_nircam_psfmask_0002.fits"
        assert len(record["history"]) == 1
        assert record["history"][0]["was"]["reference"] == "crds://jwst_nircam_psfmask_0001.fits"
        assert "crds.context is not pinned" in record["history"][0]["why"][0]
    assert "crds.context is not pinned and the context in use moved" in run.stderr
    # the full-frame mask cut to the subarray holds the same weights: the same product values
    records = _records(work)
    assert records["products.json"] == recorded["records"]["products.json"]


def test_pinning_another_context_says_which_mask_it_selects(environment, cache, recorded, tmp_path):
    work = _copy(recorded, tmp_path, metadata=True)
    run = run_snakemake(environment, work, _config(cache, context=SIM_CONTEXT_FULL_FRAME))
    assert run.returncode == 0, run.stderr[-4000:]
    assert f"crds.context changed from None to {SIM_CONTEXT_FULL_FRAME}" in run.stderr
    assert "now crds://jwst_nircam_psfmask_0002.fits" in run.stderr


def _edit(path, change):
    record = _json(path)
    change(record["current"])
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path.read_bytes()


def test_a_selection_that_changes_without_cause_stops_the_run(
    environment, cache, recorded, tmp_path
):
    """The same context and crds client selecting another file means a damaged cache (CRDS
    mappings never change under their name): stand in for it by editing the record."""
    work = _copy(recorded, tmp_path)
    stem = recorded["stems"][0]
    record = work / RECORDS / "psfmask" / f"{stem}.json"
    edited = _edit(record, lambda c: c.update(reference="crds://jwst_nircam_psfmask_0009.fits"))
    run = run_snakemake(environment, work, _config(cache), "--forcerun", "psfmask")
    assert run.returncode != 0
    assert f"coronalign: error: {record.relative_to(work)}: the regenerated CRDS selection" in (
        run.stderr
    )
    assert "PSFMASK was crds://jwst_nircam_psfmask_0009.fits" in run.stderr
    assert "now crds://jwst_nircam_psfmask_0001.fits" in run.stderr
    assert record.read_bytes() == edited
    assert not (work / "results" / "psfmask" / f"{stem}_psfmask.json").exists()


def test_a_remade_stack_with_other_values_and_nothing_changed_stops_the_run(
    environment, cache, recorded, tmp_path
):
    work = _copy(recorded, tmp_path)
    record = next((work / RECORDS / "stack").glob("*.json"))
    edited = _edit(record, lambda c: c["data_sha256"].update(SCI="0" * 64))
    run = run_snakemake(environment, work, _config(cache), "--forcerun", "stack_refs")
    assert run.returncode != 0
    assert "the regenerated PSF stack differs from its record" in run.stderr
    assert "its SCI values differ from the recorded ones" in run.stderr
    assert f"delete {record.relative_to(work)}" in run.stderr
    assert record.read_bytes() == edited
    assert not list((work / "results" / "stack").glob("*_psfstack.fits"))


def test_a_changed_psf_member_remakes_the_stack_and_the_products_and_says_why(
    environment, cache, recorded, tmp_path
):
    work = _copy(recorded, tmp_path)
    member = work / "data" / recorded["psf"][0].name
    with datamodels.open(member) as model:
        model.data[:, 10, 10] += 1.0
        model.save(member)
    run = run_snakemake(environment, work, _config(cache))
    assert run.returncode == 0, run.stderr[-4000:]
    assert "the PSF stack changed: its SCI values differ" in run.stderr
    assert f"member {member.name} changed (SHA-256" in run.stderr
    assert "the product values changed" in run.stderr
    assert "its psfstack input changed" in run.stderr
    stack = _json(next((work / RECORDS / "stack").glob("*.json")))
    assert len(stack["history"]) == 1
    products = _json(work / RECORDS / "products.json")
    assert len(products["history"]) == 1


def test_products_with_other_values_say_the_software_that_changed_or_stop(
    environment, cache, recorded, tmp_path
):
    work = _copy(recorded, tmp_path)
    record = work / RECORDS / "products.json"
    name = f"{recorded['stems'][0]}_psfalign.fits"

    def other_values(current):
        current["products"][name]["data_sha256"]["ERR"] = "0" * 64

    edited = _edit(record, other_values)
    stopped = run_snakemake(environment, work, _config(cache), "--forcerun", "manifest")
    assert stopped.returncode != 0
    assert f"product {name}: ERR values differ" in stopped.stderr
    assert record.read_bytes() == edited
    assert not (work / "results" / "manifest.json").exists()

    def older_numpy(current):
        current["products"][name]["software"]["numpy"] = "1.0.0"

    _edit(record, older_numpy)
    said = run_snakemake(environment, work, _config(cache), "--forcerun", "manifest")
    assert said.returncode == 0, said.stderr[-4000:]
    assert f"{name}: software changed: numpy 1.0.0 -> " in said.stderr
    after = _json(record)
    assert after["history"][-1]["was"]["products"][name]["data_sha256"]["ERR"] == "0" * 64
    assert after["current"] == _json(recorded["tree"] / RECORDS / "products.json")["current"]
