"""The workflow's hostile inputs: association names that would leave the run folder, and
configuration type errors. One case per line; each must stop Snakemake before any job runs,
with one message naming the file or the key, and create nothing anywhere.

What is checked for every case: a non-zero exit, the message, no job (no ``results/`` and no
``logs/`` in the run folder), and nothing new in the test's folder outside the run folder
(where ``../`` names would land), nor the ``/tmp`` target one of the names aims at.
"""

import json
import shutil
from pathlib import Path

import pytest

from coronalign import simulation
from tests.helpers.workflow import run_snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def association(tmp_path_factory):
    folder = tmp_path_factory.mktemp("asn")
    return simulation.write_association(
        folder, n_science=1, n_psf=1, nints=1, psf_nints=1, shape=(48, 48)
    )


def _snapshot(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _hostile_association(association, folder, field, value):
    """A copy of the association (beside its members) with one field made hostile."""
    asn = json.loads(Path(association["asn"]).read_text())
    if field == "product":
        asn["products"][0]["name"] = value
    elif field == "asn_id":
        asn["asn_id"] = value
    else:
        member = asn["products"][0]["members"][0]
        target = Path(association["asn"]).parent / value
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(association["asn"]).parent / member["expname"], target)
        member["expname"] = value
    path = Path(association["asn"]).parent / f"hostile_{field}_asn.json"
    path.write_text(json.dumps(asn))
    return path


NAMES = [
    ("product", "../../../../tmp/coronalign_hostile_x", "product name"),
    ("product", "a/../../b", "product name"),
    ("asn_id", "a3001/../../../x", "asn_id"),
    ("asn_id", "..", "asn_id"),
    ("member", "../../outside/..._calints.fits", "exposure name"),
    ("member", "sub/.hidden_calints.fits", "exposure name"),
]


@pytest.mark.parametrize(("field", "value", "what"), NAMES)
def test_a_hostile_association_name_stops_the_run_and_creates_nothing(
    environment, association, tmp_path, field, value, what
):
    asn = _hostile_association(association, tmp_path, field, value)
    workdir = tmp_path / "run"
    before = _snapshot(tmp_path)
    run = run_snakemake(
        environment, workdir, {"asn": str(asn), "psfmask": str(association["psfmask"])}
    )
    assert run.returncode != 0
    assert f"{what} " in run.stderr
    assert "cannot be used in a file name" in run.stderr
    assert asn.name in run.stderr
    assert not (workdir / "results").exists()
    assert not (workdir / "logs").exists()
    after = [p for p in _snapshot(tmp_path) if not p.startswith("run")]
    assert after == [p for p in before if not p.startswith("run")]
    assert not list(Path("/tmp").glob("coronalign_hostile_x*"))


CONFIG_TYPES = [
    ({"median_box_length": 3.0}, "median_box_length: 3.0 is not of type integer"),
    ({"median_box_length": "3"}, "median_box_length: '3' is not of type integer"),
    ({"bad_bits": 3.5}, "bad_bits: 3.5 is not of type string or integer"),
    ({"bad_bits": 2.0}, "bad_bits: 2.0 is not of type integer"),
    ({"bad_bits": "BOGUS"}, "bad_bits: unknown DQ flag name or malformed token 'BOGUS'"),
    ({"max_shift": "10"}, "max_shift: '10' is not of type number"),
    ({"max_shift": 0}, "max_shift: 0 must be above 0"),
    ({"weighting": "Official"}, "weighting: 'Official' is not one of the allowed values"),
    ({"mode": ["quad"]}, "mode: ['quad'] is not of type string"),
    ({"crds": {"offline": "yes"}}, "crds.offline: 'yes' is not of type boolean"),
    ({"asn": 5}, "asn: 5 is not of type string or array or null"),
]


@pytest.mark.parametrize(("change", "message"), CONFIG_TYPES)
def test_a_configuration_type_error_stops_the_run_before_any_job(
    environment, association, tmp_path, change, message
):
    config = {"asn": str(association["asn"]), "psfmask": str(association["psfmask"]), **change}
    run = run_snakemake(environment, tmp_path, config)
    assert run.returncode != 0
    assert message in run.stderr, run.stderr[-2000:]
    assert not (tmp_path / "results").exists()
    assert not (tmp_path / "logs").exists()
