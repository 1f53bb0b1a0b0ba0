"""Decorrelated reference wavefronts: speckles that do not match, and their truth."""

import numpy as np
import pytest
from scipy import ndimage

from coronalign import simulation
from coronalign.simulation import instruments, optics
from tests.helpers.reference_fit import scipy_fit, truth_of

DO_NOT_USE = 1
SATURATED = 2
JUMP_DET = 4
NON_SCIENCE = 512

SHAPES = {"nircam": (320, 320), "miri": (224, 288)}
#: The configurations added later (tests/simulation/test_instruments.py).
ADDED_CONFIGS = ("nircam-sw", "miri-lyot")


# ---------------------------------------------------------------- decorrelated references


def _high_pass(image, width=3.0):
    return image - ndimage.gaussian_filter(image, width)


def _aligned_speckle_correlation(sim, k=0, m=0):
    """Correlation of the high-passed noiseless science and PSF images outside the core,
    after moving the science star onto the reference star (exact Fourier shift)."""
    t = sim.truth
    shift = (t["yshift_geometric"][k][m], t["xshift_geometric"][k][m])
    sci = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(sim.sci_noiseless[k]), shift)).real
    use = sim.mask > 0.5
    a, b = _high_pass(sci)[use], _high_pass(sim.psf_noiseless[m])[use]
    return np.corrcoef(a, b)[0, 1]


def _subtraction_residual(sim, k=0, m=0):
    """sum((mask*(psf - beta*shift(sci)))**2) at the truth, relative to sum((mask*psf)**2)."""
    t = sim.truth
    dx, dy, beta = t["xshift"][k][m], t["yshift"][k][m], t["beta"][k][m]
    sci = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(sim.sci_noiseless[k]), (dy, dx))).real
    r = sim.mask * (sim.psf_noiseless[m] - beta * sci)
    return float((r**2).sum() / ((sim.mask * sim.psf_noiseless[m]) ** 2).sum())


@pytest.mark.parametrize("key", ["nircam", "nircam-sw"])
def test_decorrelated_speckles_do_not_match(key):
    """NIRCam images are speckle-dominated: the halos correlate at 0, not at 1."""
    shape = (160, 160) if key == "nircam-sw" else None
    corr = {}
    for a in (0.0, 0.5, 1.0):
        corrs = []
        for seed in (4, 5):
            sim = simulation.simulate_exposures(
                key, 1, 1, seed=seed, decorrelation=a, noise=False, garbage=False, shape=shape
            )
            corrs.append(_aligned_speckle_correlation(sim))
        corr[a] = np.mean(corrs)
    assert corr[0.0] > 0.95
    assert corr[1.0] < 0.25
    assert corr[1.0] < corr[0.5] < corr[0.0]


@pytest.mark.parametrize("key", sorted(SHAPES) + sorted(ADDED_CONFIGS))
def test_decorrelation_leaves_more_after_subtraction(key):
    """Subtracting the best-fitting reference leaves much more with independent wavefronts.

    MIRI images hold mostly the deterministic diffraction pattern (small wavefront error at
    15-23 um), so even independent wavefronts subtract to ~3-12 %; NIRCam to ~60-70 %.
    """
    shape = (160, 160) if key == "nircam-sw" else None
    sims = {
        a: simulation.simulate_exposures(
            key, 1, 1, seed=4, decorrelation=a, noise=False, garbage=False, shape=shape
        )
        for a in (0.0, 0.5, 1.0)
    }
    residual = {a: _subtraction_residual(sim) for a, sim in sims.items()}
    assert residual[0.0] < residual[0.5] < residual[1.0]
    assert residual[1.0] > 4 * residual[0.0]
    assert residual[0.0] < 0.01
    # only the references change: the science exposure is the same for every decorrelation
    assert np.array_equal(sims[0.0].sci_noiseless, sims[1.0].sci_noiseless)
    assert np.array_equal(sims[0.0].sci, sims[1.0].sci, equal_nan=True)
    assert not np.array_equal(sims[0.0].psf_noiseless, sims[1.0].psf_noiseless)
    assert sims[1.0].truth["wavefront_correlation"] == 0.0
    assert sims[0.5].truth["wavefront_correlation"] == pytest.approx(np.cos(np.pi / 4))


@pytest.mark.parametrize("key", ["nircam", "miri"])
def test_decorrelated_truth_is_a_local_minimum_near_the_geometric_shift(key):
    sim = simulation.simulate_exposures(
        key, nints=2, npsfs=2, seed=8, decorrelation=1.0, shape=(128, 128)
    )
    assert "damped" in sim.truth["truth_start"]
    geometric = np.stack([sim.truth["xshift_geometric"], sim.truth["yshift_geometric"]])
    truth = np.stack([sim.truth["xshift"], sim.truth["yshift"]])
    assert np.hypot(*(truth - geometric)).max() < 4.0  # did not run away
    for k, m in ((0, 0), (1, 1)):
        expected = truth_of(sim.truth, k, m)
        # a minimum of the objective: a brute-force fit started there stays there
        fit = scipy_fit(sim.sci_noiseless[k], sim.psf_noiseless[m], sim.mask, expected)
        assert np.abs(fit[:2] - expected[:2]).max() < 1e-5
        assert abs(fit[2] / expected[2] - 1) < 1e-6


def test_reference_screen_keeps_the_rms():
    setup = instruments.SETUPS["nircam"]
    planes = optics.make_optics(setup, (96, 96))
    rng = np.random.default_rng(1)
    static = optics.phase_screens(rng, planes, 1, setup.static_wfe, setup.wavelength, 2.5)[0]
    inside = planes.pupil_box > 0
    for a in (0.0, 0.3, 0.5, 1.0):
        screen = optics.reference_static_screen(rng, planes, setup, static, a)
        assert np.sqrt(np.mean(screen[inside] ** 2)) == pytest.approx(
            np.sqrt(np.mean(static[inside] ** 2)), rel=1e-12
        )
        corr = screen[inside] @ static[inside] / (static[inside] @ static[inside])
        assert corr == pytest.approx(np.cos(a * np.pi / 2), abs=1e-12)
        assert not screen[~inside].any()
