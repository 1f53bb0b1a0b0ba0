"""coronalign as an stpipe step, run by jwst's own commands in the jwst environment.

``strun`` finds the step by its alias (the ``stpipe.steps`` entry point); the pipeline
variant runs a whole association, and its ``_psfsub`` planes agree with the official
calwebb_coron3's to within the difference of the two alignments.
"""

import subprocess

import numpy as np
import pytest
from astropy.io import fits

from tests.helpers.jwst_env import jwst_bin, offline_crds_env, simulate_association

pytestmark = [pytest.mark.jwst]

ASN = "jw01234-a3001_coron3_00001_asn.json"
MASK = "jwst_nircam_f335m_sub320a335r_psfmask.fits"


def _strun(folder, env, *args):
    command = [str(jwst_bin() / "strun"), *args, "--disable-crds-steppars"]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def association(tmp_path_factory):
    root = tmp_path_factory.mktemp("coron3")
    return simulate_association(root / "asn"), offline_crds_env(root)


def test_module_imports_without_jwst():
    import coronalign.stpipe_step as module

    names = [entry[1] for entry in module.get_steps()]
    assert names == ["coronalign_align_refs", "coronalign_coron3"]


def test_strun_runs_our_step(association):
    folder, env = association
    science = "jw01234001001_03106_00001_nrcalong_calints.fits"
    _strun(folder, env, "calwebb_coron3", ASN, f"--steps.align_refs.override_psfmask={MASK}",
           "--steps.klip.skip=true", "--steps.outlier_detection.skip=true",
           "--steps.resample.skip=true", "--output_dir=official_stack")  # fmt: skip
    stack = next((folder / "official_stack").glob("*_psfstack.fits"))
    _strun(folder, env, "coronalign_align_refs", science, str(stack),
           f"--override_psfmask={MASK}", "--output_dir=step")  # fmt: skip
    (product,) = (folder / "step").glob("*.fits")
    with fits.open(product) as hdus:
        assert hdus["SCI"].data.shape == fits.getdata(stack, "SCI").shape
        assert np.isfinite(hdus["SCI"].data).all()


def _planes(folder, suffix):
    return {path.name: fits.getdata(path, "SCI").astype(float)
            for path in sorted(folder.glob(f"*_{suffix}.fits"))}  # fmt: skip


@pytest.mark.slow
def test_pipeline_variant_agrees_with_official(association):
    folder, env = association
    override = f"--steps.align_refs.override_psfmask={MASK}"
    _strun(folder, env, "calwebb_coron3", ASN, override, "--output_dir=official")
    _strun(folder, env, "coronalign_coron3", ASN, override, "--output_dir=ours")
    assert list((folder / "ours").glob("*_i2d.fits"))
    official, ours = _planes(folder / "official", "psfsub"), _planes(folder / "ours", "psfsub")
    aligned_off = _planes(folder / "official", "psfalign")
    aligned_ours = _planes(folder / "ours", "psfalign")
    assert sorted(ours) == sorted(official)
    assert len(ours) == 2
    for name in ours:
        align_name = name.replace("psfsub", "psfalign")
        align_rms = np.sqrt(np.mean((aligned_ours[align_name] - aligned_off[align_name]) ** 2))
        sub_rms = np.sqrt(np.mean((ours[name] - official[name]) ** 2))
        assert np.isfinite(ours[name]).all()
        # klip subtracts a projection of the aligned stack: its change is bounded by theirs.
        assert sub_rms <= align_rms, (name, sub_rms, align_rms)
        # the figures docs/coron3.md states (pytest -s shows them)
        science = fits.getdata(folder / (name.split("_a3001")[0] + "_calints.fits"), "SCI")
        print(f"{name}: psfsub rms difference {sub_rms:.3g} ({sub_rms / align_rms:.2f} of the "
              f"aligned PSFs' {align_rms:.3g}; science rms {_rms(science):.3g}, official "
              f"psfsub rms {_rms(official[name]):.3g}, aligned PSF rms "
              f"{_rms(aligned_off[align_name]):.3g})")  # fmt: skip


def _rms(values):
    values = np.asarray(values, dtype=float)
    return float(np.sqrt(np.mean(values[np.isfinite(values)] ** 2)))
