"""The bounded search: a poorly matched reference cannot make a fit jump, a real offset is found.

Unit cases on analytic images (each side of the relative margin, the window's edge, the
prior) and whole-stack cases on the simulator's poorly matched references
(``decorrelation=1``: the reference star's wavefront independent of the science target's).
"""

import numpy as np
import pytest

from coronalign.core import register
from coronalign.core.align import Stack, align_stacks
from coronalign.simulation import simulate_exposures
from tests.helpers.images import blob_image, border_weight, shifted
from tests.helpers.reference_fit import scipy_fit


def compact_image(shape=(96, 96), seed=0):
    """A PSF-like image a few pixels across (copies 5 px apart have separate minima)."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    y, x = np.mgrid[:ny, :nx].astype(float)
    image = np.zeros(shape)
    for _ in range(5):
        cy, cx = ny / 2 + rng.uniform(-2, 2), nx / 2 + rng.uniform(-2, 2)
        width = rng.uniform(1.0, 1.6)
        image += rng.uniform(0.3, 1) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * width**2))
    return image


def _two_copies(far_amplitude, seed=3):
    """A PSF that is a copy of the science image near zero plus a copy 7.2 px away."""
    science = compact_image(seed=seed)
    psf = shifted(science, 0.2, 0.1) + far_amplitude * shifted(science, 6.0, 4.0)
    return psf, science


def test_a_slightly_better_far_minimum_does_not_move_the_fit_from_the_prior():
    """Objective ratio far/near about 0.9: a spurious far minimum, as with unmatched speckles."""
    psf, science = _two_copies(1.05)
    fit = register.fit_shift(psf, science, border_weight((96, 96), 12))
    assert fit.status == "converged"
    assert np.hypot(fit.xshift - 0.2, fit.yshift - 0.1) < 0.2


def test_a_clearly_better_far_minimum_wins():
    """Objective ratio far/near about 0.1, as for a real (7.3, 5.1) px offset."""
    psf, science = _two_copies(3.0)
    fit = register.fit_shift(psf, science, border_weight((96, 96), 12))
    assert fit.status == "converged"
    assert np.hypot(fit.xshift - 6.0, fit.yshift - 4.0) < 0.2


def test_no_fit_leaves_its_window_and_an_edge_minimum_is_reported():
    science = blob_image((96, 96), seed=3)
    psf = shifted(science, 7.0, 5.0, 0.8)
    fit = register.fit_shift(psf, science, border_weight((96, 96), 12), max_shift=4.0)
    assert fit.status == "out_of_window"
    assert np.hypot(fit.xshift, fit.yshift) == pytest.approx(4.0, abs=1e-9)
    assert fit.prior == (0.0, 0.0)


def test_the_window_follows_the_prior():
    science = blob_image((96, 96), seed=3)
    psf = shifted(science, 7.0, 5.0, 0.8)
    weight = border_weight((96, 96), 12)
    fit = register.fit_shift(psf, science, weight, prior=(6.5, 5.5), max_shift=1.5)
    assert fit.status == "converged"
    assert (fit.xshift, fit.yshift) == pytest.approx((7.0, 5.0), abs=1e-6)
    assert fit.prior == (6.5, 5.5)


def test_the_prior_neighbourhood_comes_first():
    """Two equal copies, 0.3 px and 7 px from the prior: the nearer one is the fit."""
    science = compact_image(seed=4)
    psf = shifted(science, 0.3, 0.0) + shifted(science, -5.0, -5.0)
    fit = register.fit_shift(psf, science, border_weight((96, 96), 12))
    assert np.hypot(fit.xshift - 0.3, fit.yshift) < 0.2
    # The same copy, given as the far one, is found when the prior points at it.
    fit = register.fit_shift(psf, science, border_weight((96, 96), 12), prior=(-4.5, -4.5))
    assert np.hypot(fit.xshift + 5.0, fit.yshift + 5.0) < 0.2


def _fit_simulation(sim, max_shift=register.DEFAULT_MAX_SHIFT):
    science = Stack(sim.sci, sim.sci_err, sim.sci_dq)
    psfs = Stack(sim.psf, sim.psf_err, sim.psf_dq)
    zero_flags = 512 if sim.instrument == "miri" else 0
    return align_stacks(science, psfs, sim.mask, lambda *_: None, zero_flags=zero_flags,
                        max_shift=max_shift)  # fmt: skip


def _distances(result, truth, kind=""):
    x = np.asarray(truth[f"xshift{kind}"])
    y = np.asarray(truth[f"yshift{kind}"])
    return np.hypot(result.xshift - x, result.yshift - y)


POORLY_MATCHED = {"nircam": (2, 5), "miri": (2, 3)}


@pytest.mark.parametrize("instrument", ["nircam", "miri"])
def test_a_poorly_matched_reference_cannot_make_a_fit_jump(instrument):
    """Decorrelation 1 over 20 seeds: no fit leaves its window or lands on a far minimum.

    With independent wavefronts the official objective itself is biased: on this
    simulator its noiseless minimum lies up to ~0.8 px (MIRI) from the geometric shift,
    and NIRCam's landscape has minima 2-3 px apart around it. So a fit is judged against
    the geometric shift with the issue's bounds where the objective allows them, and
    against the objective's own minimum otherwise.
    """
    nints, npsfs = POORLY_MATCHED[instrument]
    near, geometric_bound = (3.0, 3.0) if instrument == "nircam" else (0.05, 0.5)
    far_from_geometric = []
    for seed in range(20):
        sim = simulate_exposures(instrument, nints=nints, npsfs=npsfs, seed=seed, decorrelation=1)
        result = _fit_simulation(sim)
        assert set(np.unique(result.status)) <= {"converged", "outlier"}, seed
        from_prior = np.hypot(result.xshift - result.xprior, result.yshift - result.yprior)
        assert from_prior.max() <= register.NEAR_RADIUS + 1.5, seed  # no jump
        to_geometric = _distances(result, sim.truth, "_geometric")
        bias = np.hypot(
            np.asarray(sim.truth["xshift"]) - np.asarray(sim.truth["xshift_geometric"]),
            np.asarray(sim.truth["yshift"]) - np.asarray(sim.truth["yshift_geometric"]),
        )
        allowed = np.maximum(geometric_bound, bias + near)
        assert np.all(to_geometric <= allowed), (seed, to_geometric, bias)
        far_from_geometric.append(to_geometric.max())
    assert np.median(far_from_geometric) <= geometric_bound


@pytest.mark.parametrize("instrument", ["nircam", "miri"])
def test_matched_references_are_as_accurate_as_before(instrument):
    sim = simulate_exposures(instrument, nints=3, npsfs=3, seed=7)
    result = _fit_simulation(sim)
    assert np.all(result.status == "converged")
    assert _distances(result, sim.truth).max() < 0.05  # noise, garbage


@pytest.mark.parametrize("instrument", ["nircam", "miri"])
def test_the_large_offset_is_found_at_the_exact_minimum(instrument):
    """(7.3, 5.1) px with no pointing metadata: within 2e-3 px of an independent exact fit."""
    sim = simulate_exposures(
        instrument, nints=2, npsfs=2, seed=4, large_offset=(7.3, 5.1), noise=True, garbage=False
    )
    result = _fit_simulation(sim)
    assert np.all(result.status == "converged")
    assert np.all(result.xprior == 0)
    assert np.all(result.yprior == 0)
    for k in range(2):
        for m in range(2):
            start = (sim.truth["xshift"][k][m], sim.truth["yshift"][k][m], 1.0)
            exact = scipy_fit(sim.sci[k], sim.psf[m], sim.mask, start=start)
            assert abs(result.xshift[k, m] - exact[0]) <= 2e-3
            assert abs(result.yshift[k, m] - exact[1]) <= 2e-3


@pytest.mark.parametrize("instrument", ["nircam", "miri"])
def test_formal_errors_match_the_scatter_over_noise_realisations(instrument):
    """Matched data, 60 realisations of noise at the simulator's typical level (its median
    ERR), the same everywhere: scatter / formal error within 1 ± 0.3."""
    sim = simulate_exposures(instrument, nints=1, npsfs=1, seed=5, noise=False, garbage=False)
    science0 = np.nan_to_num(sim.sci_noiseless[0])
    psf0 = shifted(science0, 0.3, -0.2, 1.5)
    sigma = float(np.nanmedian(sim.sci_err[0]))
    rng = np.random.default_rng(1)
    fits = []
    for _ in range(60):
        science = science0 + rng.normal(0, sigma, science0.shape)
        psf = psf0 + rng.normal(0, 1.5 * sigma, science0.shape)
        fit = register.fit_shift(psf, science, sim.mask)
        names = ("xshift", "yshift", "beta", "xshift_err_stat", "yshift_err_stat")
        names += ("beta_err_stat", "xshift_err", "yshift_err", "beta_err")
        fits.append([getattr(fit, name) for name in names])
    fits = np.array(fits)
    ratio = fits[:, :3].std(axis=0, ddof=1) / np.median(fits[:, 3:6], axis=0)
    assert np.all(np.abs(ratio - 1) <= 0.3), ratio
    # without ERR arrays the total cannot tell the two images' noise apart: it is never
    # below the statistical error, and at most a few times above it on white noise
    assert np.all(fits[:, 6:] >= fits[:, 3:6])
    assert np.all(np.median(fits[:, 6:] / fits[:, 3:6], axis=0) < 3.0)


def _peaks_on_the_whole_frame(score, prior, max_shift, limit=register.MAX_CANDIDATES):
    """The peak search written on the whole frame (the reference for the windowed one)."""
    ny, nx = score.shape
    oy, ox = register._signed_offsets(ny), register._signed_offsets(nx)
    dx, dy = ox[None, :] - prior[0], oy[:, None] - prior[1]
    from_prior = np.sqrt(dx * dx + dy * dy)
    near = (np.abs(dx) < 1) & (np.abs(dy) < 1)
    peak = score > (np.max(score[near]) if near.any() else -np.inf)
    for sy in (-1, 0, 1):
        for sx in (-1, 0, 1):
            if sy or sx:
                peak &= score >= np.roll(score, (sy, sx), axis=(0, 1))
    peak &= (from_prior <= max_shift) & (from_prior > register.DISTINCT) & np.isfinite(score)
    rows, cols = np.nonzero(peak)
    kept = []
    for i in np.argsort(-score[rows, cols], kind="stable"):
        here = np.array([ox[cols[i]], oy[rows[i]]])
        if all(register.distance(here, other) > register.DISTINCT for other in kept):
            kept.append(here)
            if len(kept) == limit:
                break
    return np.array(kept, dtype=np.float64).reshape(-1, 2)


def test_the_windowed_peak_search_equals_the_whole_frame_search():
    rng = np.random.default_rng(11)
    for _ in range(200):
        ny, nx = rng.integers(5, 60, 2)
        score = np.round(rng.normal(size=(ny, nx)), 1)  # many ties
        score[rng.random((ny, nx)) < 0.05] = -np.inf
        prior = tuple(rng.normal(size=2) * rng.choice([0.5, 3.0, 30.0]))
        max_shift = float(rng.choice([0.3, 1.0, 2.5, 10.0, 100.0]))
        expected = _peaks_on_the_whole_frame(score, prior, max_shift)
        found = register.cross_correlation_peaks(score, prior, max_shift)
        np.testing.assert_array_equal(found, expected)
