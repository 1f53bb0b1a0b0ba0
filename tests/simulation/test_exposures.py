"""One simulated exposure: shapes, metadata, determinism, truth, noise, defects, parameters."""

import numpy as np
import pytest

from coronalign import simulation
from coronalign.errors import ParameterError
from tests.helpers.reference_fit import scipy_fit, truth_of

DO_NOT_USE = 1
SATURATED = 2
JUMP_DET = 4
NON_SCIENCE = 512

SHAPES = {"nircam": (320, 320), "miri": (224, 288)}


# ---------------------------------------------------------------- shapes, types, metadata


@pytest.mark.parametrize("inst", sorted(SHAPES))
def test_shapes_and_dtypes(sims, inst):
    sim = sims[inst]
    ny, nx = SHAPES[inst]
    assert sim.instrument == inst
    for name, n in (("sci", 2), ("psf", 3)):
        for suffix, dtype in (("", np.float32), ("_err", np.float32), ("_dq", np.uint32)):
            array = getattr(sim, name + suffix)
            assert array.shape == (n, ny, nx), name + suffix
            assert array.dtype == dtype, name + suffix
        assert getattr(sim, name + "_noiseless").dtype == np.float64
        assert getattr(sim, name + "_noiseless").shape == (n, ny, nx)
    assert sim.mask.shape == (ny, nx)
    assert sim.mask.dtype == np.float32
    for key in ("xshift", "yshift", "beta", "xshift_geometric", "yshift_geometric"):
        assert np.asarray(sim.truth[key]).shape == (2, 3), key
    assert len(sim.truth["sci_x"]) == 2
    assert len(sim.truth["psf_y"]) == 3
    betas = np.asarray(sim.truth["beta"])
    assert np.all((betas > 0.4) & (betas < 3.5))
    # a few tenths of a pixel by default, and the truth close to the star positions
    shifts = np.hypot(sim.truth["xshift"], sim.truth["yshift"])
    assert shifts.max() < 2.5
    geometric = np.asarray(sim.truth["xshift_geometric"])
    assert np.abs(np.asarray(sim.truth["xshift"]) - geometric).max() < 0.05


@pytest.mark.parametrize("inst", sorted(SHAPES))
def test_metadata(sims, inst):
    sim = sims[inst]
    expected = {
        "nircam": ("NIRCAM", "NRCALONG", "F335M", "MASKA335R", "SUB320A335R", "NRC_CORON"),
        "miri": ("MIRI", "MIRIMAGE", "F1550C", "4QPM_1550", "MASK1550", "MIR_4QPM"),
    }[inst]
    for meta, psf, nints in ((sim.sci_meta, False, 2), (sim.psf_meta, True, 3)):
        got = (
            meta["instrument"]["name"],
            meta["instrument"]["detector"],
            meta["instrument"]["filter"],
            meta["instrument"]["coronagraph"],
            meta["subarray"]["name"],
            meta["exposure"]["type"],
        )
        assert got == expected
        assert meta["exposure"]["psf_reference"] is psf
        assert meta["exposure"]["nints"] == nints
        assert (meta["subarray"]["ysize"], meta["subarray"]["xsize"]) == SHAPES[inst]
        assert meta["telescope"] == "JWST"
    assert sim.sci_meta["filename"].endswith(f"_{expected[1].lower()}_calints.fits")
    assert sim.sci_meta["filename"].startswith("jw01234001001_03106_00001")
    assert sim.psf_meta["filename"].endswith("_psfstack.fits")
    assert sim.psfmask_meta["reftype"] == "PSFMASK"


# ---------------------------------------------------------------- determinism


def test_same_seed_is_bit_identical():
    a = simulation.simulate_exposures("miri", nints=2, npsfs=2, seed=3)
    b = simulation.simulate_exposures("miri", nints=2, npsfs=2, seed=3)
    for name in ("sci", "sci_err", "sci_dq", "psf", "psf_err", "psf_dq", "mask", "sci_noiseless"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name
    assert a.truth == b.truth
    c = simulation.simulate_exposures("miri", nints=2, npsfs=2, seed=4)
    assert not np.array_equal(a.sci, c.sci, equal_nan=True)
    assert a.truth["xshift"] != c.truth["xshift"]


def test_integrations_and_psfs_differ(sims):
    sim = sims["nircam"]
    assert not np.allclose(sim.sci_noiseless[0], sim.sci_noiseless[1])
    assert not np.allclose(sim.psf_noiseless[0], sim.psf_noiseless[1])
    # defects: a static set shared by all planes plus per-plane ones
    bad = (sim.sci_dq & DO_NOT_USE) > 0
    assert np.any(bad[0] & bad[1])
    assert np.any(bad[0] ^ bad[1])


# ---------------------------------------------------------------- truth


@pytest.mark.parametrize("inst", sorted(SHAPES))
def test_truth_is_the_noiseless_least_squares_fit(sims, inst):
    sim = sims[inst]
    for k, m in ((0, 0), (1, 2)):
        fit = scipy_fit(sim.sci_noiseless[k], sim.psf_noiseless[m], sim.mask)
        truth = truth_of(sim.truth, k, m)
        assert np.abs(fit[:2] - truth[:2]).max() < 1e-5
        assert abs(fit[2] / truth[2] - 1) < 1e-6


def test_truth_with_large_offset_and_taper():
    sim = simulation.simulate_exposures(
        "nircam", nints=1, npsfs=2, seed=11, large_offset=(7.3, 5.1), taper=3.0, shape=(160, 192)
    )
    assert np.unique(sim.mask).size > 2  # a real taper
    assert "mask**2" in sim.truth["weighting"]
    for m in range(2):
        gx = sim.truth["xshift_geometric"][0][m]
        gy = sim.truth["yshift_geometric"][0][m]
        assert abs(gx - 7.3) < 2.0
        assert abs(gy - 5.1) < 2.0
        # start where a coarse (integer) search would
        fit = scipy_fit(
            sim.sci_noiseless[0], sim.psf_noiseless[m], sim.mask, (round(gx), round(gy), 1)
        )
        truth = truth_of(sim.truth, 0, m)
        assert np.abs(fit[:2] - truth[:2]).max() < 1e-5
        assert abs(fit[2] / truth[2] - 1) < 1e-6


def test_images_are_band_limited(sims):
    """No power at the Nyquist frequency: every Fourier-shift convention gives the same shift."""
    for sim in sims.values():
        spectrum = np.abs(np.fft.fft2(sim.sci_noiseless[0]))
        ny, nx = spectrum.shape
        assert spectrum[ny // 2].max() < 1e-12 * spectrum.max()
        assert spectrum[:, nx // 2].max() < 1e-12 * spectrum.max()


def test_noisy_fit_is_close_to_truth(sims):
    """Photon + read noise alone moves the fit by ~0.001-0.02 px, not more."""
    sim = simulation.simulate_exposures("nircam", nints=1, npsfs=1, seed=5, garbage=False)
    fit = scipy_fit(sim.sci[0], sim.psf[0], sim.mask)
    truth = truth_of(sim.truth, 0, 0)
    assert 1e-5 < np.abs(fit[:2] - truth[:2]).max() < 0.03


# ---------------------------------------------------------------- noise and defects


@pytest.mark.parametrize("inst", sorted(SHAPES))
def test_err_matches_the_noise(inst):
    sim = simulation.simulate_exposures(inst, nints=2, npsfs=1, seed=2, garbage=False)
    good = np.isfinite(sim.sci)
    z = (sim.sci - sim.sci_noiseless)[good] / sim.sci_err[good]
    assert 0.95 < z.std() < 1.05
    assert abs(z.mean()) < 0.05  # ERR comes from the noisy signal, as in the pipeline
    variance = sim.sci_var_poisson + sim.sci_var_rnoise
    assert np.allclose(sim.sci_err[good] ** 2, variance[good], rtol=1e-4)


@pytest.mark.parametrize("inst", sorted(SHAPES))
def test_garbage_present(sims, inst):
    sim = sims[inst]
    for data, err, dq in ((sim.sci, sim.sci_err, sim.sci_dq), (sim.psf, sim.psf_err, sim.psf_dq)):
        for plane, eplane, dplane in zip(data, err, dq, strict=True):
            flagged = (dplane & DO_NOT_USE) > 0
            science = (dplane & NON_SCIENCE) == 0
            n_flagged = np.count_nonzero(flagged & science)
            assert 200 <= n_flagged <= 600
            assert np.count_nonzero(dplane & SATURATED) >= 10
            assert np.count_nonzero((dplane & (SATURATED | DO_NOT_USE)) == SATURATED) > 0
            assert np.count_nonzero(dplane == JUMP_DET) > 0
            nan = np.isnan(plane)
            assert np.any(nan & flagged)
            assert np.any(nan & (dplane == 0))  # NaN without any flag
            assert np.all(np.isnan(eplane[nan]))  # NaN ERR where the data are NaN
            assert np.any((plane == np.inf) & (dplane == 0))
            assert np.any((plane == -np.inf) & (dplane == 0))
            assert np.any(np.isinf(plane) & flagged)
            good = ~flagged & np.isfinite(plane)
            top = np.abs(plane[good]).max()
            garbage = plane[flagged & science & np.isfinite(plane)]
            assert garbage.max() > 10 * top
            assert garbage.min() < -0.05 * top
            # edges and corners
            assert np.any(flagged[0, 1:-1] & science[0, 1:-1])
            assert all(flagged[[0, 0, -1, -1], [0, -1, 0, -1]])
            if inst == "nircam":
                assert np.any(flagged[1:-1, 0])
    # a cluster: some 3 x 3 block entirely flagged, away from the edges and NON_SCIENCE
    flagged = ((sim.sci_dq[0] & DO_NOT_USE) > 0) & ((sim.sci_dq[0] & NON_SCIENCE) == 0)
    block = np.lib.stride_tricks.sliding_window_view(flagged, (3, 3)).all(axis=(-1, -2))
    assert block[5:-5, 5:-5].any()
    # the cluster is where the fit looks
    ys, xs = np.nonzero(block)
    assert np.any(sim.mask[ys + 1, xs + 1] > 0)


def test_miri_non_science_band(sims):
    sim = sims["miri"]
    band = (sim.sci_dq[0] & NON_SCIENCE) > 0
    columns = np.flatnonzero(band.all(axis=0))
    assert columns.size >= 16
    assert columns[0] == 0
    assert np.array_equal(columns, np.arange(columns.size))  # one band on the left
    assert np.all(sim.sci_dq[:, :, columns] & DO_NOT_USE)
    assert np.all(sim.psf_dq[:, :, columns] & NON_SCIENCE)
    assert np.all(np.isnan(sim.sci[:, :, columns]))
    assert np.all(sim.mask[:, columns] == 0)
    assert not np.any(band[:, columns.size :])


def test_garbage_and_noise_can_be_switched_off():
    sim = simulation.simulate_exposures(
        "nircam", nints=1, npsfs=1, seed=1, noise=False, garbage=False
    )
    assert np.all(np.isfinite(sim.sci))
    assert not np.any(sim.sci_dq)
    assert np.allclose(sim.sci[0], sim.sci_noiseless[0], rtol=1e-6, atol=1e-6 * sim.sci.max())


# ---------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"instrument": "nirspec"}, "instrument"),
        ({"nints": 0}, "nints"),
        ({"npsfs": 1.5}, "npsfs"),
        ({"shape": (20, 20)}, "shape"),
        ({"offset_scale": -1.0}, "offset_scale"),
        ({"large_offset": (1.0,)}, "large_offset"),
        ({"noise_seed": -1}, "noise_seed"),
        ({"noise_seed": 1.5}, "noise_seed"),
        ({"read_noise": -3.0}, "read_noise"),
    ],
)
def test_parameter_errors(kwargs, name):
    with pytest.raises(ParameterError) as info:
        simulation.simulate_exposures(**kwargs)
    assert info.value.name == name


@pytest.mark.parametrize("inst", sorted(SHAPES))
def test_noise_seed_changes_the_noise_alone(inst):
    options = {"nints": 1, "npsfs": 2, "seed": 3, "shape": (64, 80), "garbage": False}
    plain = simulation.simulate_exposures(inst, **options)
    first = simulation.simulate_exposures(inst, noise_seed=1, **options)
    again = simulation.simulate_exposures(inst, noise_seed=1, **options)
    second = simulation.simulate_exposures(inst, noise_seed=2, **options)
    for sim in (first, second):  # one scene: the same noiseless images and truth
        assert np.array_equal(sim.sci_noiseless, plain.sci_noiseless)
        assert np.array_equal(sim.psf_noiseless, plain.psf_noiseless)
        assert sim.truth["xshift"] == plain.truth["xshift"]
    assert np.array_equal(first.sci, again.sci, equal_nan=True)
    good = np.isfinite(first.sci)
    assert not np.array_equal(first.sci[good], second.sci[good])
    assert not np.array_equal(first.sci[good], plain.sci[good])
    assert first.truth["noise_seed"] == 1
    assert "noise_seed" not in plain.truth
    # the two noises are independent realisations of the same ERR
    z = (first.sci - second.sci)[good] / (np.sqrt(2.0) * plain.sci_err[good])
    assert 0.9 < z.std() < 1.1


@pytest.mark.parametrize("inst", sorted(SHAPES))
def test_read_noise_option_sets_the_read_noise(inst):
    options = {"nints": 2, "npsfs": 1, "seed": 2, "shape": (64, 80), "garbage": False}
    sim = simulation.simulate_exposures(inst, read_noise=500.0, **options)
    good = np.isfinite(sim.sci)
    z = (sim.sci - sim.sci_noiseless)[good] / sim.sci_err[good]
    assert 0.95 < z.std() < 1.05
    # VAR_RNOISE is (500 e-)^2 in MJy/sr^2 and dominates VAR_POISSON
    conversion = np.sqrt(np.median(sim.sci_var_rnoise)) / 500.0
    assert np.median(sim.sci_var_rnoise) > 3 * np.median(sim.sci_var_poisson)
    assert conversion == pytest.approx(0.01 if inst == "nircam" else 0.002, rel=1e-6)


@pytest.mark.parametrize("inst", sorted(SHAPES))
def test_consistent_variances_follow_err_and_change_nothing_else(inst):
    options = {"nints": 1, "npsfs": 2, "seed": 6, "shape": (64, 80)}
    plain = simulation.simulate_exposures(inst, **options)
    sim = simulation.simulate_exposures(inst, consistent_variances=True, **options)
    changed = {"sci_var_poisson", "sci_var_rnoise", "psf_var_poisson", "psf_var_rnoise"}
    for name, value in vars(plain).items():
        if isinstance(value, np.ndarray) and name not in changed:
            assert np.array_equal(getattr(sim, name), value, equal_nan=True), name
    assert sim.truth == plain.truth
    for side in ("sci", "psf"):
        err = getattr(sim, f"{side}_err").astype(np.float64)
        total = getattr(sim, f"{side}_var_poisson").astype(np.float64)
        total = total + getattr(sim, f"{side}_var_rnoise")
        old = getattr(plain, f"{side}_var_poisson")
        # the defaults keep the noise of the signal where a defect set ERR to 0 or NaN
        assert not np.array_equal(np.isnan(old), np.isnan(err))
        np.testing.assert_array_equal(np.isnan(total), np.isnan(err))
        np.testing.assert_allclose(err**2, total, rtol=1e-6, atol=0)  # NaN = NaN
        assert np.all((total == 0) == (err == 0))
