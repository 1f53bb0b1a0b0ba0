"""The simulated PSFMASKs: geometric, full frame, and shaped like the CRDS files."""

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from coronalign import simulation
from coronalign.simulation import instruments
from tests.helpers.reference_fit import scipy_fit, truth_of

DO_NOT_USE = 1
SATURATED = 2
JUMP_DET = 4
NON_SCIENCE = 512

SHAPES = {"nircam": (320, 320), "miri": (224, 288)}


# ---------------------------------------------------------------- mask


@pytest.mark.parametrize("inst", sorted(SHAPES))
def test_mask_properties(sims, inst):
    mask = sims[inst].mask
    assert np.array_equal(mask, simulation.psfmask_array(inst))
    assert set(np.unique(mask)) == {0.0, 1.0}
    for edge in (mask[:10], mask[-10:], mask[:, :10], mask[:, -10:]):
        assert not edge.any()
    assert mask.mean() > 0.6
    cx, cy = sims[inst].truth["mask_center"]
    assert mask[round(cy), round(cx)] == 0  # occulted core
    assert mask[round(cy) + 20, round(cx)] == 1  # the useful annulus
    tapered = simulation.psfmask_array(inst, taper=4.0)
    fractional = (tapered > 0) & (tapered < 1)
    assert fractional.any()
    assert np.all(tapered <= mask + 1e-6)  # the taper only removes weight


def test_full_frame_mask_cut_out():
    for inst, meta in (("nircam", None), ("miri", None)):
        del meta
        small = simulation.psfmask_array(inst)
        full = simulation.psfmask_array(inst, full_frame=True)
        setup = instruments.SETUPS[inst]
        ny, nx = small.shape
        y0, x0 = setup.ystart - 1, setup.xstart - 1
        assert np.array_equal(full[y0 : y0 + ny, x0 : x0 + nx], small)
        assert full.sum() == small.sum()


# ---------------------------------------------------------------- CRDS-like PSFMASKs


@pytest.mark.parametrize("key", ["nircam", "nircam-sw"])
def test_crds_like_nircam_mask(key):
    mask = simulation.psfmask_array(key, mask_style="crds")
    assert mask.dtype == np.float32
    assert mask.shape == instruments.SETUPS[key].shape
    assert not mask[-1, :].any()  # the whole last row and last column are exactly 0
    assert not mask[:, -1].any()
    inner = mask[:-1, :-1]
    assert inner.min() > 0
    assert 1e-5 <= inner.min() < 2e-5  # ~1e-5 at the occulter centre ...
    cx, cy = simulation.simulate_exposures(key, 1, 1, shape=(64, 64)).truth["mask_center"]
    cy += (mask.shape[0] - 64) / 2  # the centre moves with the frame centre
    cx += (mask.shape[1] - 64) / 2
    iy, ix = np.unravel_index(np.argmin(inner), inner.shape)
    assert np.hypot(iy - cy, ix - cx) < 1.0
    assert np.all(inner[round(cy) - 1 : round(cy) + 2, round(cx) - 1 : round(cx) + 2] < 5e-3)
    assert 0.985 <= np.median(mask) <= 0.995  # ... rising to ~1 (real files: median 0.99)
    assert mask.max() <= 1.0
    # smooth: no jumps between neighbours, and a real transition region
    steps = max(np.abs(np.diff(inner, axis=0)).max(), np.abs(np.diff(inner, axis=1)).max())
    assert steps < 0.2
    assert np.count_nonzero((inner > 0.01) & (inner < 0.9)) > 100
    # the profile is the occulter's intensity transmission: 0.5 at its half width
    setup = instruments.SETUPS[key]
    yy, xx = np.indices(inner.shape)
    r = np.hypot(yy - cy, xx - cx)
    ring = np.abs(r - setup.occulter_hwhm) < 0.5
    assert np.allclose(inner[ring], 0.5 * 0.99, atol=0.06)


@pytest.mark.parametrize("key", ["miri", "miri-lyot"])
def test_crds_like_miri_mask_is_binary(key):
    mask = simulation.psfmask_array(key, mask_style="crds")
    assert set(np.unique(mask)) == {0.0, 1.0}
    geometric = simulation.psfmask_array(key)
    assert np.all(mask <= geometric)
    if key == "miri":
        assert np.array_equal(mask, geometric)
    else:  # the occulting bar (towards +y from the spot) is masked too
        setup = instruments.SETUPS[key]
        cx, cy = simulation.simulate_exposures(key, 1, 1, noise=False).truth["mask_center"]
        above = mask[round(cy) + 20 : -setup.border, round(cx)]
        assert above.size > 50
        assert not above.any()
        assert geometric[round(cy) + 20, round(cx)] == 1


def test_crds_mask_truth_uses_mask_squared():
    sim = simulation.simulate_exposures(
        "nircam", nints=1, npsfs=2, seed=6, mask_style="crds", shape=(128, 128)
    )
    assert sim.truth["weighting"] == "mask**2"
    assert sim.truth["mask_style"] == "crds"
    assert np.array_equal(
        sim.mask, simulation.psfmask_array("nircam", (128, 128), mask_style="crds")
    )
    for m in range(2):  # scipy_fit multiplies the residual by the mask: sum((mask*r)**2)
        fit = scipy_fit(sim.sci_noiseless[0], sim.psf_noiseless[m], sim.mask)
        truth = truth_of(sim.truth, 0, m)
        assert np.abs(fit[:2] - truth[:2]).max() < 1e-5
        assert abs(fit[2] / truth[2] - 1) < 1e-6
    assert "fractional" in sim.psfmask_meta["description"]


def test_crds_mask_file(tmp_path):
    sim = simulation.simulate_exposures("nircam-sw", 1, 1, seed=2, mask_style="crds")
    paths = simulation.write_simulation(sim, tmp_path)
    with datamodels.open(paths["psfmask"]) as model:
        model.validate()
        assert np.array_equal(model.data, sim.mask)
        assert model.data.shape == (640, 640)
    full = simulation.psfmask_array("nircam-sw", mask_style="crds", full_frame=True)
    assert full.shape == (2048, 2048)
    assert full.sum() == pytest.approx(float(sim.mask.sum(dtype=np.float64)), rel=1e-6)
