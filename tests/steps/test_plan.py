"""The workflow's input resolution (coronalign.steps.plan), a function of the configuration."""

import json
import subprocess
import sys

import pytest

from coronalign.errors import ConfigurationError
from coronalign.steps.plan import (
    NO_INPUTS,
    PSF_ONLY_STACK,
    WorkflowInputs,
    association_stack,
    resolve_inputs,
)

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
    assert inputs.psf == [f"{PSF_ROOT}_calints.fits"]
    assert inputs.psfstack == association_stack(PRODUCT)
    assert inputs.psfstack == f"results/stack/{PRODUCT}_psfstack.fits"
    assert inputs.asn_id == "a3001"


def test_files_give_stems_by_exposure_root(files):
    science = [f"{root}_calints.fits" for root in ROOTS]
    stacked = resolve_inputs({"science": science, "psf": [f"{PSF_ROOT}_calints.fits"]})
    assert stacked.science == {root: f"{root}_calints.fits" for root in ROOTS}
    assert stacked.psfstack == PSF_ONLY_STACK
    assert stacked.asn_id is None
    given = resolve_inputs({"science": science, "psfstack": "stack_psfstack.fits"})
    assert given.psfstack == "stack_psfstack.fits"
    assert given.psf == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, NO_INPUTS),
        ({"asn": None, "science": None}, NO_INPUTS),
        (
            {"asn": "asn.json", "psf": ["x"], "psfstack": "y"},
            "config: `asn` and `psf`, `psfstack` are both set; give either an association or",
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
