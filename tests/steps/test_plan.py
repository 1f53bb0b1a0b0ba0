"""The workflow's input resolution (coronalign.steps.plan), a function of the configuration."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from coronalign.errors import ConfigurationError
from coronalign.steps.plan import (
    NO_INPUTS,
    PSF_ONLY_STACK,
    SAFE_NAME,
    WorkflowInputs,
    association_stack,
    resolve_inputs,
)
from tests.helpers.paths import DATA

_SAFE_STEM = re.compile(rf"^{SAFE_NAME}$")

ROOTS = ["jw01234001001_03106_00001_nrcalong", "jw01234001001_03106_00002_nrcalong"]
PSF_ROOT = "jw01234002001_03106_00001_nrcalong"
PRODUCT = "jw01234-a3001_t001_nircam_f335m"


@pytest.fixture
def files(tmp_path, monkeypatch):
    """Empty member files and a coron3 association naming them; the current folder is theirs."""
    for root in [*ROOTS, PSF_ROOT]:
        (tmp_path / f"{root}_calints.fits").touch()
    (tmp_path / "mask.fits").touch()
    (tmp_path / "stack_psfstack.fits").touch()
    members = [{"expname": f"{root}_calints.fits", "exptype": "science"} for root in ROOTS]
    members.append({"expname": f"{PSF_ROOT}_calints.fits", "exptype": "psf"})
    asn = {"asn_id": "a3001", "products": [{"name": PRODUCT, "members": members}]}
    (tmp_path / "asn.json").write_text(json.dumps(asn))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_an_association_gives_stems_with_its_id_and_the_stack_to_make(files):
    inputs = resolve_inputs({"asn": "asn.json", "psfmask": "mask.fits"})
    assert isinstance(inputs, WorkflowInputs)
    assert inputs.science == {f"{root}_a3001": f"{root}_calints.fits" for root in ROOTS}
    assert list(inputs.science) == [f"{root}_a3001" for root in ROOTS]  # member order
    (stack,) = inputs.stacks.values()
    assert stack.members == (f"{PSF_ROOT}_calints.fits",)
    assert stack.path == association_stack(PRODUCT)
    assert stack.path == f"results/stack/{PRODUCT}_psfstack.fits"
    assert stack.made
    assert stack.science == tuple(f"{root}_calints.fits" for root in ROOTS)
    assert all(
        e.stack == PRODUCT and e.association == "asn.json" for e in inputs.exposures.values()
    )
    assert {stem.rsplit("_", 1)[1] for stem in inputs.exposures} == {"a3001"}


def test_files_give_stems_by_exposure_root(files):
    science = [f"{root}_calints.fits" for root in ROOTS]
    stacked = resolve_inputs({"science": science, "psf": [f"{PSF_ROOT}_calints.fits"]})
    assert stacked.science == {root: f"{root}_calints.fits" for root in ROOTS}
    assert stacked.stacks["psf"].path == PSF_ONLY_STACK
    assert all(e.association is None for e in stacked.exposures.values())
    given = resolve_inputs({"science": science, "psfstack": "stack_psfstack.fits"})
    assert given.stacks["psf"].path == "stack_psfstack.fits"
    assert given.stacks["psf"].members == ()
    assert not given.stacks["psf"].made


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, NO_INPUTS),
        ({"asn": None, "science": None}, NO_INPUTS),
        (
            {"asn": "asn.json", "psf": ["x"], "psfstack": "y"},
            "config: `asn` and `psf`, `psfstack` are both set; give either associations or",
        ),
        ({"asn": "absent.json"}, "config asn: absent.json: association file not found"),
        (
            {"science": [f"{ROOTS[0]}_calints.fits"]},
            "config: with `science`, give exactly one of `psfstack` (an existing _psfstack) "
            "and `psf` (PSF _calints files to stack)",
        ),
        (
            {"science": [f"{ROOTS[0]}_calints.fits"], "psf": ["a"], "psfstack": "b"},
            "and `psf` (PSF _calints files to stack), not both",
        ),
        (
            {"science": ["gone_calints.fits"], "psfstack": "stack_psfstack.fits"},
            "config science: file gone_calints.fits not found (relative paths are relative to",
        ),
        (
            {"science": [f"{ROOTS[0]}_calints.fits"], "psfstack": "gone_psfstack.fits"},
            "config psfstack: file gone_psfstack.fits not found",
        ),
        ({"asn": "asn.json", "psfmask": "gone.fits"}, "config psfmask: file gone.fits not found"),
    ],
)
def test_configuration_errors_name_the_key(files, config, message):
    with pytest.raises(ConfigurationError) as info:
        resolve_inputs(config)
    assert message in str(info.value)
    if "relative paths" in message:
        assert str(files) in str(info.value)


def test_two_exposures_with_one_name_root_are_refused(files):
    (files / "other").mkdir()
    (files / "other" / f"{ROOTS[0]}_calints.fits").touch()
    science = [f"{ROOTS[0]}_calints.fits", f"other/{ROOTS[0]}_calints.fits"]
    with pytest.raises(ConfigurationError, match=f"have the same name root {ROOTS[0]}"):
        resolve_inputs({"science": science, "psfstack": "stack_psfstack.fits"})


def test_the_plan_needs_the_standard_library_only():
    """Snakemake's interpreter imports it from src/, also where numpy is not installed."""
    code = (
        "import sys\n"
        "import coronalign.steps.plan\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'yaml', 'astropy'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------- many associations

OFFICIAL = DATA / "asn_official"


@pytest.fixture
def program(tmp_path, monkeypatch):
    """The official generator's 8 coron3 associations, with empty science and psf files (the
    target_acquisition members, `_cal.fits`, are left missing: they are not needed)."""
    for asn in OFFICIAL.glob("*_asn.json"):
        (tmp_path / asn.name).write_bytes(asn.read_bytes())
        for member in json.loads(asn.read_text())["products"][0]["members"]:
            if member["exptype"] in ("science", "psf"):
                (tmp_path / member["expname"]).touch()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_program_of_official_associations_one_stack_each_shared_psfs_stacked_into_each(program):
    inputs = resolve_inputs({"asn": ["jw10005-a3001_*_asn.json", "jw10005-c1*_asn.json"]})
    assert len(inputs.stacks) == 8
    stacked_into = [s.key for s in inputs.stacks.values() if "jw_00004_calints.fits" in s.members]
    assert len(stacked_into) == 5  # the F210M PSF exposure of 5 associations
    science_members = sum(len(s.science) for s in inputs.stacks.values())
    assert len(inputs.exposures) == science_members == 15
    assert "jw_00024_a3001" in inputs.exposures
    assert "jw_00024_c1000" in inputs.exposures
    assert "jw_00024_c1004" in inputs.exposures
    for exposure in inputs.exposures.values():
        assert exposure.science in inputs.stacks[exposure.stack].science


def test_a_list_and_a_glob_name_each_association_once(program):
    one = resolve_inputs({"asn": "jw10005-c1000_pool-013-coron-nircam_coron3_00001_asn.json"})
    assert list(one.stacks) == ["jw10005-c1000_t001_nircam_f210m-maskrnd-maska210r"]
    twice = [
        "jw10005-c1000_*_asn.json",
        "jw10005-c1000_pool-013-coron-nircam_coron3_00001_asn.json",
    ]
    assert resolve_inputs({"asn": twice}).exposures == one.exposures
    with pytest.raises(ConfigurationError, match=r"config asn: no file matches nothing\*.json"):
        resolve_inputs({"asn": ["nothing*.json"]})


def test_two_associations_writing_one_product_are_named_both(program):
    first = program / "jw10005-c1000_pool-013-coron-nircam_coron3_00001_asn.json"
    asn = json.loads(first.read_text())
    asn["products"][0]["name"] = asn["products"][0]["name"].replace("t001", "t009")
    (program / "copy_asn.json").write_text(json.dumps(asn))  # same asn_id, same science
    with pytest.raises(ConfigurationError) as info:
        resolve_inputs({"asn": [first.name, "copy_asn.json"]})
    message = str(info.value)
    assert f"associations {first.name} and copy_asn.json would both write the product" in message
    assert "jw_00020_c1000_psfalign.fits" in message
    asn["products"][0]["name"] = json.loads(first.read_text())["products"][0]["name"]
    asn["asn_id"] = "c1999"
    (program / "copy_asn.json").write_text(json.dumps(asn))  # another id, the same product
    with pytest.raises(ConfigurationError, match="have the same product jw10005-c1000_t001"):
        resolve_inputs({"asn": [first.name, "copy_asn.json"]})


@pytest.mark.parametrize(
    ("field", "value", "what"),
    [
        ("product", "../../../../tmp/x", "product name"),
        ("product", "a/b", "product name"),
        ("asn_id", "a3001/../../x", "asn_id"),
        ("asn_id", "..", "asn_id"),
        ("member", "../elsewhere/x_calints.fits", None),
        ("member", "..%2F_calints.fits", "exposure name"),
        ("member", "..._calints.fits", "exposure name"),
    ],
)
def test_names_that_would_leave_the_results_folder_are_refused(files, field, value, what):
    asn = json.loads((files / "asn.json").read_text())
    if field == "product":
        asn["products"][0]["name"] = value
    elif field == "asn_id":
        asn["asn_id"] = value
    else:
        Path(files / value).parent.mkdir(parents=True, exist_ok=True)
        (files / value).touch()
        asn["products"][0]["members"][0]["expname"] = value
    (files / "asn.json").write_text(json.dumps(asn))
    if what is None:  # a member anywhere is only read; its product name is still safe
        stems = resolve_inputs({"asn": "asn.json"}).exposures
        assert all(_SAFE_STEM.match(stem) for stem in stems)
        return
    with pytest.raises(ConfigurationError) as info:
        resolve_inputs({"asn": "asn.json"})
    name = value.removesuffix("_calints.fits") if field == "member" else value
    assert str(info.value).startswith(
        f"config asn: asn.json: {what} {name!r} cannot be used in a file name"
    )
