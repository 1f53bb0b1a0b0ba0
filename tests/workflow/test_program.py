"""A whole program in one workflow: many coron3 associations, shared PSF exposures.

The dry run uses the official association generator's files (tests/data/asn_official/: six
discovered coron3 associations of jwst's NIRCam coronagraphy test pool) with empty member
files; the real run uses simulated NIRCam and MIRI exposures grouped into six associations
over two filters, each PSF exposure in two associations.
"""

import json
import re
import shutil

import pytest
from astropy.io import fits

from coronalign import simulation
from tests.helpers.paths import DATA
from tests.helpers.workflow import run_snakemake, validation_report

OFFICIAL = DATA / "asn_official"


def _job_counts(output):
    """{rule: count} from the "Job stats" table of a dry run."""
    table = output.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


def test_a_dry_run_of_six_official_associations_plans_one_align_job_per_science_member(
    environment, tmp_path
):
    members = 0
    for asn in sorted(OFFICIAL.glob("jw10005-a3001_*_asn.json")):
        shutil.copy(asn, tmp_path / asn.name)
        for member in json.loads(asn.read_text())["products"][0]["members"]:
            if member["exptype"] in ("science", "psf"):
                (tmp_path / member["expname"]).touch()
            members += member["exptype"] == "science"
    (tmp_path / "mask.fits").touch()
    config = {
        "asn": str(tmp_path / "jw10005-a3001_*_asn.json"),
        "psfmask": str(tmp_path / "mask.fits"),
    }
    run = run_snakemake(environment, tmp_path / "run", config, "--dry-run", "--quiet", "rules")
    assert run.returncode == 0, run.stderr[-3000:]
    counts = _job_counts(run.stdout + run.stderr)
    assert counts["align"] == members == 12
    assert counts["psfmask"] == 12
    # one validate and one plot job per PSF stack, for all its products
    assert counts["stack_refs"] == counts["check_psfstack"] == 6
    assert counts["validate"] == counts["plot"] == 6
    assert counts["summary"] == counts["manifest"] == 1


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    """Six associations, one science exposure each: NIRCam F335M (N1-N3) and MIRI F1550C
    (M1-M3); every PSF exposure is in two associations of its filter."""
    folder = tmp_path_factory.mktemp("program")
    nircam = simulation.write_association(
        folder, "nircam", n_science=3, n_psf=2, nints=1, psf_nints=1, shape=(64, 64)
    )
    miri = simulation.write_association(
        folder, "miri", n_science=3, n_psf=2, nints=1, psf_nints=1, shape=(64, 64), seed=1
    )
    groups = {}
    for offset, (name, data) in enumerate((("nircam", nircam), ("miri", miri))):
        psf = data["psf"]
        for i, members in enumerate(([psf[0]], psf, [psf[1]])):
            asn_id = f"c10{3 * offset + i + 1:02d}"
            groups[asn_id, f"{name}_{i + 1}"] = ([data["science"][i]], members)
    for (asn_id, name), (science, psf) in groups.items():
        members = [{"expname": p.name, "exptype": "science", "exposerr": "null"} for p in science]
        members += [{"expname": p.name, "exptype": "psf", "exposerr": "null"} for p in psf]
        members.append({"expname": "jw01234_tacq_cal.fits", "exptype": "target_acquisition"})
        asn = {
            "asn_id": asn_id,
            "asn_type": "coron3",
            "products": [{"name": f"jw01234-{asn_id}_t001_{name}", "members": members}],
        }
        (folder / f"jw01234-{asn_id}_coron3_00001_asn.json").write_text(json.dumps(asn))
    return {"folder": folder, "groups": groups, "mask": nircam["psfmask"]}


@pytest.mark.slow
def test_a_program_of_six_associations_runs_in_one_workflow(environment, program, tmp_path):
    folder = program["folder"]
    config = {"asn": [str(folder / "jw01234-c100*_asn.json")], "psfmask": str(program["mask"])}
    run = run_snakemake(environment, tmp_path, config)
    assert run.returncode == 0, run.stderr[-3000:]
    results = tmp_path / "results"
    for (asn_id, name), (science, psf) in program["groups"].items():
        stack = results / "stack" / f"jw01234-{asn_id}_t001_{name}_psfstack.fits"
        with fits.open(stack) as hdus:
            assert hdus["SCI"].data.shape[0] == len(psf)  # its own PSF exposures only
        assert (results / "check" / f"jw01234-{asn_id}_t001_{name}_check.json").is_file()
        for exposure in science:
            root = exposure.name.removesuffix("_calints.fits")
            product = results / "psfalign" / f"{root}_{asn_id}_psfalign.fits"
            with fits.open(product) as hdus:
                assert hdus["SCI"].data.shape[1] == len(psf)
            report = json.loads(validation_report(results, f"{root}_{asn_id}").read_text())
            assert report["status"] == "passed"
    assert len(list((results / "psfalign").glob("*.fits"))) == 6
    assert len(list((results / "stack").glob("*_psfstack.fits"))) == 6
    manifest = json.loads((results / "manifest.json").read_text())
    assert len(manifest["products"]) == 6
