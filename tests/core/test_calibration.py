"""Calibration of the fit errors on the simulator's NIRCam and MIRI scenes (issue 23).

Small frames (96 × 96 px, 2 integrations × 3 PSFs) keep each case to a few seconds; the
optics and pixel scales are the instruments', only the field of view is cut.

* Noise alone: realisations of one scene that differ only in their pixel noise
  (``noise_seed``), no bad pixels. The scatter of the fits over the realisations, in units
  of their statistical error, must lie within 0.7–1.4.
* Speckles the reference does not share (``decorrelation`` 10 % and 30 %) and bad pixels:
  the RMS of (fit − truth) / total error must be at most 2, where the statistical error
  alone (the only error before the total existed) gives several; and over scenes (seeds)
  the total error must describe the distance of the fits from where the stars are (the
  geometric shift), not only from the minimum of the noiseless objective, which the
  statistical error alone misses by a factor of 8–20.
"""

import numpy as np
import pytest

from coronalign import dq
from coronalign.core.align import align_stacks
from coronalign.core.results import Stack
from coronalign.simulation import simulate_exposures

SHAPE = (96, 96)
REALISATIONS = 16
#: Read noise (e-) that makes each instrument's frame read-noise dominated everywhere.
READ_DOMINATED = {"nircam": 300.0, "miri": 1500.0}


def _align(sim, instrument, weighting="official"):
    return align_stacks(
        Stack(sim.sci, sim.sci_err, sim.sci_dq),
        Stack(sim.psf, sim.psf_err, sim.psf_dq),
        sim.mask,
        lambda *planes: None,
        zero_flags=dq.NON_SCIENCE if instrument == "miri" else 0,
        weighting=weighting,
    )


def _parameters(result, suffix=""):
    return np.stack([getattr(result, name + suffix) for name in ("xshift", "yshift", "beta")])


def _pooled_ratio(fits, errors):
    """Scatter over the realisations / median error, pooled over every fit (x, y, beta)."""
    deviation = (fits - fits.mean(axis=0)) / np.median(errors, axis=0)
    dof = (len(fits) - 1) * deviation[0, 0].size
    return np.sqrt(np.sum(deviation * deviation, axis=(0, 2, 3)) / dof)


@pytest.mark.parametrize("regime", ["photon", "read"])
@pytest.mark.parametrize("instrument", ["nircam", "miri"])
def test_noise_alone_scatter_matches_the_statistical_error(instrument, regime):
    read_noise = READ_DOMINATED[instrument] if regime == "read" else None
    fits, errors = [], []
    for k in range(REALISATIONS):
        sim = simulate_exposures(
            instrument, nints=2, npsfs=3, seed=7, shape=SHAPE, garbage=False,
            noise_seed=k, read_noise=read_noise,
        )  # fmt: skip
        result = _align(sim, instrument)
        fits.append(_parameters(result))
        errors.append(_parameters(result, "_err_stat"))
    ratio = _pooled_ratio(np.array(fits), np.array(errors))
    assert np.all((ratio > 0.7) & (ratio < 1.4)), ratio


@pytest.mark.parametrize("weighting", ["official", "linear"])
def test_noise_alone_with_a_fractional_mask_under_either_weighting(weighting):
    """NIRCam's CRDS-like PSFMASK is fractional, so the official (m²) and linear (m)
    weights differ; the statistical error follows either."""
    fits, errors = [], []
    for k in range(REALISATIONS):
        sim = simulate_exposures(
            "nircam", nints=2, npsfs=3, seed=7, shape=SHAPE, garbage=False, noise_seed=k,
            mask_style="crds",
        )  # fmt: skip
        result = _align(sim, "nircam", weighting)
        fits.append(_parameters(result))
        errors.append(_parameters(result, "_err_stat"))
    ratio = _pooled_ratio(np.array(fits), np.array(errors))
    assert np.all((ratio > 0.7) & (ratio < 1.4)), ratio


@pytest.mark.parametrize("decorrelation", [0.1, 0.3])
@pytest.mark.parametrize("instrument", ["nircam", "miri"])
def test_with_unmatched_speckles_the_total_error_holds_the_truth(instrument, decorrelation):
    fits, totals, stats = [], [], []
    for k in range(8):
        sim = simulate_exposures(
            instrument, nints=2, npsfs=3, seed=7, shape=SHAPE, decorrelation=decorrelation,
            noise_seed=k,
        )  # fmt: skip
        result = _align(sim, instrument)
        fits.append(_parameters(result))
        totals.append(_parameters(result, "_err"))
        stats.append(_parameters(result, "_err_stat"))
    truth = np.stack([np.array(sim.truth[name]) for name in ("xshift", "yshift", "beta")])
    error = np.array(fits) - truth
    rms_total = np.sqrt(np.mean((error / np.array(totals)) ** 2, axis=(0, 2, 3)))
    rms_stat = np.sqrt(np.mean((error / np.array(stats)) ** 2, axis=(0, 2, 3)))
    assert np.all(rms_total <= 2.0), rms_total
    assert np.all(rms_stat[:2] > 2.0), rms_stat  # the pixel noise alone does not explain it


@pytest.mark.parametrize("decorrelation", [0.0, 0.3])
@pytest.mark.parametrize("instrument", ["nircam", "miri"])
def test_over_scenes_the_total_error_describes_the_distance_from_the_stars(
    instrument, decorrelation
):
    z_total, z_stat = [], []
    for seed in range(10):
        sim = simulate_exposures(
            instrument, nints=2, npsfs=3, seed=100 + seed, shape=SHAPE,
            decorrelation=decorrelation,
        )  # fmt: skip
        result = _align(sim, instrument)
        for axis in ("xshift", "yshift"):
            error = getattr(result, axis) - np.array(sim.truth[f"{axis}_geometric"])
            z_total.append((error / getattr(result, f"{axis}_err")).ravel())
            z_stat.append((error / getattr(result, f"{axis}_err_stat")).ravel())
    rms_total = np.sqrt(np.mean(np.concatenate(z_total) ** 2))
    rms_stat = np.sqrt(np.mean(np.concatenate(z_stat) ** 2))
    assert 0.5 <= rms_total <= 2.0, rms_total
    assert rms_stat > 4.0, rms_stat


def test_outliers_are_far_beyond_their_own_error_too():
    from coronalign.core.outliers import mark_outliers
    from coronalign.dq import FitStatus

    # one PSF, six integrations: a fit 0.8 px away from the others (0.01 px apart)
    x = np.array([[0.30], [0.31], [0.29], [0.30], [0.31], [1.10]])
    y = np.zeros_like(x)
    for error, expected in ((0.01, FitStatus.OUTLIER), (0.3, FitStatus.CONVERGED)):
        status = np.full(x.shape, FitStatus.CONVERGED, dtype="<U16")
        errors = np.full(x.shape, error)
        mark_outliers(x, y, status, errors, errors)
        assert status[5, 0] == expected  # 0.8 px is 57 sigma at 0.01 px, 1.9 at 0.3 px
        assert (status[:5, 0] == FitStatus.CONVERGED).all()
    status = np.full(x.shape, FitStatus.CONVERGED, dtype="<U16")
    mark_outliers(x, y, status, np.full(x.shape, np.nan), np.full(x.shape, np.nan))
    assert status[5, 0] == FitStatus.OUTLIER  # no errors: the robust rule alone
