"""Tests of the synthetic-data simulator: shapes, determinism, exact truth, defects, files."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage
from stdatamodels.jwst import datamodels

from coronalign import simulate
from coronalign.errors import ParameterError
from tests.helpers_sim import scipy_fit, truth_of

DO_NOT_USE = 1
SATURATED = 2
JUMP_DET = 4
NON_SCIENCE = 512

SHAPES = {"nircam": (320, 320), "miri": (224, 288)}


@pytest.fixture(scope="module")
def sims():
    """One default-size simulation per instrument (2 integrations x 3 PSFs), made once."""
    return {inst: simulate.simulate_exposures(inst, nints=2, npsfs=3, seed=7) for inst in SHAPES}


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
    a = simulate.simulate_exposures("miri", nints=2, npsfs=2, seed=3)
    b = simulate.simulate_exposures("miri", nints=2, npsfs=2, seed=3)
    for name in ("sci", "sci_err", "sci_dq", "psf", "psf_err", "psf_dq", "mask", "sci_noiseless"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name
    assert a.truth == b.truth
    c = simulate.simulate_exposures("miri", nints=2, npsfs=2, seed=4)
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
    sim = simulate.simulate_exposures(
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
    sim = simulate.simulate_exposures("nircam", nints=1, npsfs=1, seed=5, garbage=False)
    fit = scipy_fit(sim.sci[0], sim.psf[0], sim.mask)
    truth = truth_of(sim.truth, 0, 0)
    assert 1e-5 < np.abs(fit[:2] - truth[:2]).max() < 0.03


# ---------------------------------------------------------------- noise and defects


@pytest.mark.parametrize("inst", sorted(SHAPES))
def test_err_matches_the_noise(inst):
    sim = simulate.simulate_exposures(inst, nints=2, npsfs=1, seed=2, garbage=False)
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
    sim = simulate.simulate_exposures(
        "nircam", nints=1, npsfs=1, seed=1, noise=False, garbage=False
    )
    assert np.all(np.isfinite(sim.sci))
    assert not np.any(sim.sci_dq)
    assert np.allclose(sim.sci[0], sim.sci_noiseless[0], rtol=1e-6, atol=1e-6 * sim.sci.max())


# ---------------------------------------------------------------- mask


@pytest.mark.parametrize("inst", sorted(SHAPES))
def test_mask_properties(sims, inst):
    mask = sims[inst].mask
    assert np.array_equal(mask, simulate.psfmask_array(inst))
    assert set(np.unique(mask)) == {0.0, 1.0}
    for edge in (mask[:10], mask[-10:], mask[:, :10], mask[:, -10:]):
        assert not edge.any()
    assert mask.mean() > 0.6
    cx, cy = sims[inst].truth["mask_center"]
    assert mask[round(cy), round(cx)] == 0  # occulted core
    assert mask[round(cy) + 20, round(cx)] == 1  # the useful annulus
    tapered = simulate.psfmask_array(inst, taper=4.0)
    fractional = (tapered > 0) & (tapered < 1)
    assert fractional.any()
    assert np.all(tapered <= mask + 1e-6)  # the taper only removes weight


def test_full_frame_mask_cut_out():
    for inst, meta in (("nircam", None), ("miri", None)):
        del meta
        small = simulate.psfmask_array(inst)
        full = simulate.psfmask_array(inst, full_frame=True)
        setup = simulate._SETUPS[inst]
        ny, nx = small.shape
        y0, x0 = setup.ystart - 1, setup.xstart - 1
        assert np.array_equal(full[y0 : y0 + ny, x0 : x0 + nx], small)
        assert full.sum() == small.sum()


# ---------------------------------------------------------------- files


def test_write_simulation_files_validate(sims, tmp_path):
    sim = sims["nircam"]
    paths = simulate.write_simulation(sim, tmp_path)
    assert set(paths) == {"science", "psfstack", "psfmask", "truth"}
    assert paths["science"].name == "jw01234001001_03106_00001_nrcalong_calints.fits"
    assert paths["psfstack"].name.endswith("_psfstack.fits")
    assert paths["psfmask"].name.endswith("_psfmask.fits")
    with datamodels.open(paths["science"]) as model:
        assert isinstance(model, datamodels.CubeModel)
        model.validate()
        assert np.array_equal(model.data, sim.sci, equal_nan=True)
        assert np.array_equal(model.dq, sim.sci_dq)
        assert model.meta.exposure.psf_reference is False
        assert model.meta.filename == paths["science"].name
        crds = {k.upper(): v for k, v in model.get_crds_parameters().items()}
        for key in (
            "META.EXPOSURE.TYPE",
            "META.INSTRUMENT.NAME",
            "META.INSTRUMENT.DETECTOR",
            "META.INSTRUMENT.FILTER",
            "META.INSTRUMENT.PUPIL",
            "META.INSTRUMENT.CORONAGRAPH",
            "META.SUBARRAY.NAME",
            "META.OBSERVATION.DATE",
            "META.OBSERVATION.TIME",
        ):
            assert key in crds, key
        assert crds["META.OBSERVATION.DATE"] == "2023-05-10"
    with datamodels.open(paths["psfstack"]) as model:
        assert isinstance(model, datamodels.CubeModel)
        model.validate()
        assert model.data.shape == sim.psf.shape
        assert model.meta.exposure.psf_reference is True
        assert model.meta.exposure.nints == 3
    with datamodels.open(paths["psfmask"]) as model:
        assert isinstance(model, datamodels.PsfMaskModel)
        model.validate()
        assert model.meta.reftype == "PSFMASK"
        assert model.meta.instrument.coronagraph == "MASKA335R"
        assert (model.meta.subarray.xstart, model.meta.subarray.ystart) == (1729, 1)
        assert (model.meta.subarray.xsize, model.meta.subarray.ysize) == (320, 320)
        assert np.array_equal(model.data, sim.mask)
    truth = json.loads(paths["truth"].read_text())
    assert truth["xshift"] == sim.truth["xshift"]
    assert truth["psfstack"] == paths["psfstack"].name


def test_write_simulation_root(sims, tmp_path):
    paths = simulate.write_simulation(sims["miri"], tmp_path, root="case")
    assert paths["science"].name == "case_calints.fits"
    assert paths["psfstack"].name == "case_psfstack.fits"
    assert paths["psfmask"].name == "case_psfmask.fits"
    with datamodels.open(paths["science"]) as model:
        model.validate()
        assert model.meta.subarray.ystart == 467
        assert model.meta.instrument.name == "MIRI"


def test_association(tmp_path):
    paths = simulate.write_association(
        tmp_path, "nircam", n_science=2, n_psf=2, nints=2, psf_nints=2, seed=3,
        shape=(128, 128), noise=False, garbage=False,
    )  # fmt: skip
    asn = json.loads(paths["asn"].read_text())
    assert asn["asn_type"] == "coron3"
    assert asn["asn_id"] == "a3001"
    product = asn["products"][0]
    assert product["name"]
    members = product["members"]
    assert [m["exptype"] for m in members] == ["science", "science", "psf", "psf"]
    for member in members:
        assert (tmp_path / member["expname"]).is_file()
    assert [p.name for p in paths["psf"]] == [m["expname"] for m in members[2:]]
    truth = json.loads(paths["truth"].read_text())
    assert truth["psf_members"] == [m["expname"] for m in members[2:]]
    # stack all PSF integrations in member order, as stack_refs does
    planes = []
    for path in paths["psf"]:
        with datamodels.open(path) as model:
            model.validate()
            assert model.meta.exposure.psf_reference is True
            planes.append(np.array(model.data, dtype=np.float64))
    stack = np.concatenate(planes)
    assert stack.shape[0] == 4
    with datamodels.open(paths["psfmask"]) as model:
        mask = np.array(model.data)
    sci_data = []
    for path in paths["science"]:
        with datamodels.open(path) as model:
            model.validate()
            assert model.meta.exposure.psf_reference is False
            sci_data.append(np.array(model.data, dtype=np.float64))
    assert not np.allclose(sci_data[0], sci_data[1])  # different exposures differ
    for i, k, m in ((0, 1, 3), (1, 0, 2)):
        entry = truth["science"][paths["science"][i].name]
        assert np.asarray(entry["xshift"]).shape == (2, 4)
        fit = scipy_fit(sci_data[i][k], stack[m], mask)
        assert np.abs(fit - truth_of(entry, k, m)).max() < 1e-3


def test_association_realistic_files(tmp_path):
    paths = simulate.write_association(tmp_path, "miri", n_science=1, n_psf=1, nints=1, psf_nints=2)
    for path in [*paths["science"], *paths["psf"], paths["psfmask"]]:
        with datamodels.open(path) as model:
            model.validate()
            assert model.data.shape[-2:] == (224, 288)
    with datamodels.open(paths["psf"][0]) as model:
        assert model.meta.exposure.nints == 2
        assert np.any(np.isnan(model.data))


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
    ],
)
def test_parameter_errors(kwargs, name):
    with pytest.raises(ParameterError) as info:
        simulate.simulate_exposures(**kwargs)
    assert info.value.name == name


# ---------------------------------------------------------------- reproducibility of old outputs
#
# New options (decorrelation, mask styles, configurations, dithers) must leave every output
# made with their defaults bit-identical. Two independent pins:
#
# * the committed golden inputs under tests/data/official*/ (made by
#   benchmarks/official/make_golden.py from the simulator before these options existed) must be
#   reproduced exactly;
# * SHA-256 digests of every array (and of the truth entries that existed then) of a few small
#   simulations, computed with the unmodified simulator at commit 3674045 (before any of the new
#   code was written) and pasted here. They are exact only for the same numpy / scipy FFT and
#   random-number code; the golden-file test fails too if those change.

DATA = Path(__file__).parent / "data"
ARRAYS = (
    "sci", "sci_err", "sci_dq", "psf", "psf_err", "psf_dq", "mask", "sci_noiseless",
    "psf_noiseless", "sci_var_poisson", "sci_var_rnoise", "psf_var_poisson", "psf_var_rnoise",
)  # fmt: skip
#: The truth entries a simulation had at commit 3674045.
OLD_TRUTH_KEYS = (
    "xshift", "yshift", "beta", "xshift_geometric", "yshift_geometric", "sci_x", "sci_y",
    "psf_x", "psf_y", "sci_flux", "psf_flux", "definition", "weighting",
)  # fmt: skip


def _digest(*arrays):
    """SHA-256 of dtype, shape and little-endian bytes of each array, in order."""
    h = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        h.update(array.dtype.str.encode())
        h.update(str(array.shape).encode())
        h.update(array.tobytes())
    return h.hexdigest()


def _truth_digest(truth, keys=OLD_TRUTH_KEYS):
    return hashlib.sha256(
        json.dumps({k: truth[k] for k in keys}, sort_keys=True).encode()
    ).hexdigest()


PINNED = {
    "nircam": {"instrument": "nircam", "nints": 2, "npsfs": 2, "seed": 5, "shape": (64, 80)},
    "miri": {"instrument": "miri", "nints": 2, "npsfs": 2, "seed": 5, "shape": (64, 80)},
    "large_taper": {
        "instrument": "nircam",
        "nints": 1,
        "npsfs": 2,
        "seed": 11,
        "large_offset": (7.3, 5.1),
        "taper": 3.0,
        "shape": (96, 112),
    },
}
#: (arrays, truth) digests, computed with the unmodified simulator (commit 3674045).
PINNED_DIGESTS = {
    "nircam": (
        "67a8efe0214d921a4cc0d2a8dd4f1735431b2364486d432f0f7c4b8b5d988eef",
        "8268759b94b34190ef3218ec0ac2139a2832d470beaf314bbdfad5fa929a5d9a",
    ),
    "miri": (
        "6c7637992a03ac2a0d379b85415a851128be5e21ee368b4c9dc38ba0ea7d0f27",
        "cfeade0f830cf248e6b0d9c9e12c1d0ebd70cfbcdf7242f86eb31a7e6e4d86ab",
    ),
    "large_taper": (
        "c2c1d479bfcbd486f0de86cf6210a8ad3e687f93c6463ae1e553981efaa9652e",
        "7bbab128f958978c78825bf57196f1d4f01a80b97b2bf1b9310e2123510d7316",
    ),
}
PINNED_ASSOCIATION = (
    "b787b40876e49a2a0c319c2327f0099648f128eed414f5d18ab25cbf0b2b378a",
    "9b287e29768f3876ae611144c91f0e161ec14ec624a2b3dbca56de19229c9d95",
)


#: Every option added since commit 3674045, at its default.
NEW_OPTION_DEFAULTS = {
    "mask_style": "geometric",
    "decorrelation": 0.0,
    "psf_dither": "none",
    "record_large_offset": False,
}


@pytest.mark.parametrize("explicit", [False, True])
@pytest.mark.parametrize("case", sorted(PINNED))
def test_defaults_reproduce_pinned_digests(case, explicit):
    options = dict(PINNED[case], **(NEW_OPTION_DEFAULTS if explicit else {}))
    sim = simulate.simulate_exposures(**options)
    arrays, truth = PINNED_DIGESTS[case]
    assert _digest(*(getattr(sim, name) for name in ARRAYS)) == arrays
    assert _truth_digest(sim.truth) == truth


def _association_digests(paths):
    files = [*paths["science"], *paths["psf"]]
    arrays = []
    for path in files:
        with datamodels.open(path) as model:
            arrays += [model.data, model.err, model.dq, model.var_poisson, model.var_rnoise]
    with datamodels.open(paths["psfmask"]) as model:
        arrays.append(model.data)
    truth = json.loads(paths["truth"].read_text())["science"]
    return _digest(*arrays), hashlib.sha256(
        json.dumps({name: {k: t[k] for k in OLD_TRUTH_KEYS} for name, t in truth.items()},
                   sort_keys=True).encode()
    ).hexdigest()  # fmt: skip


def test_association_defaults_reproduce_pinned_digests(tmp_path):
    paths = simulate.write_association(
        tmp_path, "nircam", n_science=2, n_psf=2, nints=2, psf_nints=2, seed=3, shape=(64, 64)
    )
    assert _association_digests(paths) == PINNED_ASSOCIATION
    again = simulate.write_association(
        tmp_path / "explicit", "nircam", n_science=2, n_psf=2, nints=2, psf_nints=2, seed=3,
        shape=(64, 64), **NEW_OPTION_DEFAULTS,
    )  # fmt: skip
    assert _association_digests(again) == PINNED_ASSOCIATION


@pytest.mark.parametrize(
    ("folder", "inst"), [(f, i) for f in ("official", "official_clean") for i in SHAPES]
)
def test_defaults_reproduce_the_golden_inputs(folder, inst):
    """The committed golden inputs (README there: seed 2024, 96 x 96, 2 x 3) are made again."""
    sim = simulate.simulate_exposures(
        inst, nints=2, npsfs=3, seed=2024, shape=(96, 96), garbage=folder == "official"
    )
    for data, dq in ((sim.sci, sim.sci_dq), (sim.psf, sim.psf_dq)):
        data[np.isinf(data) & ((dq & DO_NOT_USE) == 0)] = np.nan  # as make_golden.py does
    where = DATA / folder / inst
    with datamodels.open(where / "golden_calints.fits") as model:
        assert np.array_equal(model.data, sim.sci, equal_nan=True)
        assert np.array_equal(model.err, sim.sci_err, equal_nan=True)
        assert np.array_equal(model.dq, sim.sci_dq)
        assert np.array_equal(model.var_poisson, sim.sci_var_poisson)
    with datamodels.open(where / "golden_psfstack.fits") as model:
        assert np.array_equal(model.data, sim.psf, equal_nan=True)
        assert np.array_equal(model.err, sim.psf_err, equal_nan=True)
        assert np.array_equal(model.dq, sim.psf_dq)
    with datamodels.open(where / "golden_psfmask.fits") as model:
        assert np.array_equal(model.data, sim.mask)
    truth = json.loads((where / "truth.json").read_text())
    for key in ("xshift", "yshift", "beta", "xshift_geometric", "yshift_geometric"):
        assert truth[key] == sim.truth[key], key


def test_more_spawned_streams_keep_the_first_five():
    """New random streams come from extra spawned children; the first five are unchanged."""
    for entropy in ([0, 0], [7, 1], [2024, 3]):
        five = np.random.SeedSequence(entropy).spawn(5)
        eight = np.random.SeedSequence(entropy).spawn(8)
        for a, b in zip(five, eight[:5], strict=True):
            assert np.array_equal(
                np.random.default_rng(a).random(8), np.random.default_rng(b).random(8)
            )


# ---------------------------------------------------------------- more configurations

NEW_CONFIGS = {
    # key: (shape, detector, filter, coronagraph, subarray, exp_type, (xstart, ystart), scale)
    "nircam-sw": (
        (640, 640), "NRCA2", "F210M", "MASKA210R", "SUB640A210R", "NRC_CORON", (392, 1186),
        0.031,
    ),
    "miri-lyot": (
        (304, 320), "MIRIMAGE", "F2300C", "LYOT_2300", "MASKLYOT", "MIR_LYOT", (1, 717), 0.11,
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def new_sims():
    """One full-size simulation per added configuration (2 integrations x 2 PSFs)."""
    return {key: simulate.simulate_exposures(key, nints=2, npsfs=2, seed=3) for key in NEW_CONFIGS}


@pytest.mark.parametrize("key", sorted(NEW_CONFIGS))
def test_new_configuration_files_validate(new_sims, key, tmp_path):
    shape, detector, filt, coronagraph, subarray, exp_type, start, scale = NEW_CONFIGS[key]
    sim = new_sims[key]
    assert sim.instrument == key
    assert sim.sci.shape == (2, *shape)
    assert sim.psf.shape == (2, *shape)
    assert sim.mask.shape == shape
    paths = simulate.write_simulation(sim, tmp_path)
    for role in ("science", "psfstack", "psfmask"):
        with datamodels.open(paths[role]) as model:
            model.validate()
            assert model.data.shape[-2:] == shape
            meta = model.meta
            got = (
                meta.instrument.detector,
                meta.instrument.filter,
                meta.instrument.coronagraph,
                meta.subarray.name,
                meta.exposure.type,
            )
            assert got == (detector, filt, coronagraph, subarray, exp_type)
            assert (meta.subarray.xstart, meta.subarray.ystart) == start
            assert (meta.subarray.ysize, meta.subarray.xsize) == shape
            if role != "psfmask":
                assert meta.photometry.pixelarea_arcsecsq == pytest.approx(scale**2)
    with datamodels.open(paths["science"]) as model:
        if key == "nircam-sw":
            assert model.meta.instrument.channel == "SHORT"
            assert model.meta.instrument.pupil == "MASKRND"
        aperture = {"nircam-sw": "NRCA2_MASK210R", "miri-lyot": "MIRIM_MASKLYOT"}[key]
        assert model.meta.aperture.name == aperture
    full = simulate.psfmask_array(key, full_frame=True)
    x0, y0 = start[0] - 1, start[1] - 1
    assert np.array_equal(full[y0 : y0 + shape[0], x0 : x0 + shape[1]], sim.mask)


@pytest.mark.parametrize("key", sorted(NEW_CONFIGS))
def test_new_configuration_truth(new_sims, key):
    sim = new_sims[key]
    geometric = np.asarray(sim.truth["xshift_geometric"])
    assert np.abs(np.asarray(sim.truth["xshift"]) - geometric).max() < 0.05
    spectrum = np.abs(np.fft.fft2(sim.sci_noiseless[0]))
    ny, nx = spectrum.shape
    assert spectrum[ny // 2].max() < 1e-12 * spectrum.max()  # band-limited
    assert spectrum[:, nx // 2].max() < 1e-12 * spectrum.max()
    fit = scipy_fit(sim.sci_noiseless[1], sim.psf_noiseless[0], sim.mask)
    truth = truth_of(sim.truth, 1, 0)
    assert np.abs(fit[:2] - truth[:2]).max() < 1e-5
    assert abs(fit[2] / truth[2] - 1) < 1e-6


def test_miri_lyot_spot_and_bar_block_light():
    """The opaque spot and its bar (towards +y) darken the coronagraphic image there."""
    sim = simulate.simulate_exposures(
        "miri-lyot", nints=1, npsfs=1, seed=1, noise=False, garbage=False, offset_scale=0.0
    )
    setup = simulate._SETUPS["miri-lyot"]
    image = sim.psf_noiseless[0]
    x, y = sim.truth["psf_x"][0], sim.truth["psf_y"][0]
    r = 4.0 * setup.occulter_radius  # well away from the spot, along the bar and beside it
    on_bar = image[round(y + r), round(x)]
    beside = 0.5 * (image[round(y + r), round(x - r)] + image[round(y + r), round(x + r)])
    assert on_bar < beside
    assert simulate.psfmask_array("miri-lyot").shape == (304, 320)


# ---------------------------------------------------------------- CRDS-like PSFMASKs


@pytest.mark.parametrize("key", ["nircam", "nircam-sw"])
def test_crds_like_nircam_mask(key):
    mask = simulate.psfmask_array(key, mask_style="crds")
    assert mask.dtype == np.float32
    assert mask.shape == simulate._SETUPS[key].shape
    assert not mask[-1, :].any()  # the whole last row and last column are exactly 0
    assert not mask[:, -1].any()
    inner = mask[:-1, :-1]
    assert inner.min() > 0
    assert 1e-5 <= inner.min() < 2e-5  # ~1e-5 at the occulter centre ...
    cx, cy = simulate.simulate_exposures(key, 1, 1, shape=(64, 64)).truth["mask_center"]
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
    setup = simulate._SETUPS[key]
    yy, xx = np.indices(inner.shape)
    r = np.hypot(yy - cy, xx - cx)
    ring = np.abs(r - setup.occulter_hwhm) < 0.5
    assert np.allclose(inner[ring], 0.5 * 0.99, atol=0.06)


@pytest.mark.parametrize("key", ["miri", "miri-lyot"])
def test_crds_like_miri_mask_is_binary(key):
    mask = simulate.psfmask_array(key, mask_style="crds")
    assert set(np.unique(mask)) == {0.0, 1.0}
    geometric = simulate.psfmask_array(key)
    assert np.all(mask <= geometric)
    if key == "miri":
        assert np.array_equal(mask, geometric)
    else:  # the occulting bar (towards +y from the spot) is masked too
        setup = simulate._SETUPS[key]
        cx, cy = simulate.simulate_exposures(key, 1, 1, noise=False).truth["mask_center"]
        above = mask[round(cy) + 20 : -setup.border, round(cx)]
        assert above.size > 50
        assert not above.any()
        assert geometric[round(cy) + 20, round(cx)] == 1


def test_crds_mask_truth_uses_mask_squared():
    sim = simulate.simulate_exposures(
        "nircam", nints=1, npsfs=2, seed=6, mask_style="crds", shape=(128, 128)
    )
    assert sim.truth["weighting"] == "mask**2"
    assert sim.truth["mask_style"] == "crds"
    assert np.array_equal(sim.mask, simulate.psfmask_array("nircam", (128, 128), mask_style="crds"))
    for m in range(2):  # scipy_fit multiplies the residual by the mask: sum((mask*r)**2)
        fit = scipy_fit(sim.sci_noiseless[0], sim.psf_noiseless[m], sim.mask)
        truth = truth_of(sim.truth, 0, m)
        assert np.abs(fit[:2] - truth[:2]).max() < 1e-5
        assert abs(fit[2] / truth[2] - 1) < 1e-6
    assert "fractional" in sim.psfmask_meta["description"]


def test_crds_mask_file(tmp_path):
    sim = simulate.simulate_exposures("nircam-sw", 1, 1, seed=2, mask_style="crds")
    paths = simulate.write_simulation(sim, tmp_path)
    with datamodels.open(paths["psfmask"]) as model:
        model.validate()
        assert np.array_equal(model.data, sim.mask)
        assert model.data.shape == (640, 640)
    full = simulate.psfmask_array("nircam-sw", mask_style="crds", full_frame=True)
    assert full.shape == (2048, 2048)
    assert full.sum() == pytest.approx(float(sim.mask.sum(dtype=np.float64)), rel=1e-6)


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
            sim = simulate.simulate_exposures(
                key, 1, 1, seed=seed, decorrelation=a, noise=False, garbage=False, shape=shape
            )
            corrs.append(_aligned_speckle_correlation(sim))
        corr[a] = np.mean(corrs)
    assert corr[0.0] > 0.95
    assert corr[1.0] < 0.25
    assert corr[1.0] < corr[0.5] < corr[0.0]


@pytest.mark.parametrize("key", sorted(SHAPES) + sorted(NEW_CONFIGS))
def test_decorrelation_leaves_more_after_subtraction(key):
    """Subtracting the best-fitting reference leaves much more with independent wavefronts.

    MIRI images hold mostly the deterministic diffraction pattern (small wavefront error at
    15-23 um), so even independent wavefronts subtract to ~3-12 %; NIRCam to ~60-70 %.
    """
    shape = (160, 160) if key == "nircam-sw" else None
    sims = {
        a: simulate.simulate_exposures(
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
    sim = simulate.simulate_exposures(
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
    setup = simulate._SETUPS["nircam"]
    optics = simulate._make_optics(setup, (96, 96))
    rng = np.random.default_rng(1)
    static = simulate._phase_screens(rng, optics, 1, setup.static_wfe, setup.wavelength, 2.5)[0]
    inside = optics.pupil_box > 0
    for a in (0.0, 0.3, 0.5, 1.0):
        screen = simulate._reference_static_screen(rng, optics, setup, static, a)
        assert np.sqrt(np.mean(screen[inside] ** 2)) == pytest.approx(
            np.sqrt(np.mean(static[inside] ** 2)), rel=1e-12
        )
        corr = screen[inside] @ static[inside] / (static[inside] @ static[inside])
        assert corr == pytest.approx(np.cos(a * np.pi / 2), abs=1e-12)
        assert not screen[~inside].any()


# ---------------------------------------------------------------- pointing metadata


def _header_prior(sci_meta, member, scale):
    return (
        (member["x_offset"] - sci_meta.dither.x_offset) / scale,
        (member["y_offset"] - sci_meta.dither.y_offset) / scale,
    )


def test_pointing_metadata_round_trip(tmp_path):
    """(x_offset_psf - x_offset_sci) / scale from the files ~ xshift_geometric (small errors)."""
    sim = simulate.simulate_exposures(
        "nircam", nints=2, npsfs=5, seed=2, offset_scale=0.0, psf_dither="9-point-grid",
        shape=(96, 96),
    )  # fmt: skip
    paths = simulate.write_simulation(sim, tmp_path)
    with datamodels.open(paths["science"]) as model:
        sci_meta = model.meta
        scale = np.sqrt(model.meta.photometry.pixelarea_arcsecsq)
        assert model.meta.dither.x_offset == 0.0
        assert model.meta.dither.y_offset == 0.0
        assert model.meta.wcsinfo.cdelt1 == pytest.approx(0.063 / 3600)
        assert model.meta.wcsinfo.cdelt2 == pytest.approx(0.063 / 3600)
        # the reference point is the coronagraph centre (1-based)
        cx, cy = sim.truth["mask_center"]
        assert (model.meta.wcsinfo.crpix1, model.meta.wcsinfo.crpix2) == (cx + 1, cy + 1)
        with datamodels.open(paths["psfstack"]) as stack:
            stack.validate()
            members = stack.meta.coronalign.instance["psf_members"]
            assert stack.meta.dither.x_offset == members[0]["x_offset"]  # the first member's
            assert stack.meta.dither.small_grid_pattern == "9-POINT-GRID"
            assert stack.meta.dither.position_number == 1
        assert len(members) == 5
        assert [m["nints"] for m in members] == [1] * 5
        assert all(m["filename"].endswith("_calints.fits") for m in members)
        assert len({m["filename"] for m in members}) == 5
        prior = np.array([_header_prior(sci_meta, m, scale) for m in members])  # (npsfs, 2)
    geometric = np.stack([sim.truth["xshift_geometric"], sim.truth["yshift_geometric"]], -1)
    assert np.abs(prior[None] - geometric).max() < 0.1  # jitter only
    assert np.ptp(prior, axis=0).min() > 0.3  # the dithers themselves: 20 mas = 0.32 px
    assert np.allclose(sim.truth["xshift_header"], np.tile(prior[:, 0], (2, 1)))
    assert np.allclose(sim.truth["yshift_header"], np.tile(prior[:, 1], (2, 1)))
    truth = json.loads(paths["truth"].read_text())
    assert truth["pointing"]["psf_x_offset"] == [m["x_offset"] for m in members]
    assert truth["pointing"]["psf_dither"] == "9-point-grid"
    header = fits.getheader(paths["science"], 0)
    assert header["XOFFSET"] == 0.0
    assert header["YOFFSET"] == 0.0


def test_default_pointing_records_no_offsets(sims):
    sim = sims["miri"]
    assert sim.sci_meta["dither"] == {"x_offset": 0.0, "y_offset": 0.0}
    members = sim.psf_meta["coronalign"]["psf_members"]
    assert [(m["x_offset"], m["y_offset"]) for m in members] == [(0.0, 0.0)] * 3
    assert not np.any(sim.truth["xshift_header"])
    pointing = sim.truth["pointing"]
    assert pointing["psf_dither"] == "none"
    assert pointing["large_offset"] is None
    assert pointing["pixel_scale"] == 0.11


@pytest.mark.parametrize("record", [False, True])
def test_large_offset_recorded_or_not(record, tmp_path):
    sim = simulate.simulate_exposures(
        "nircam", nints=1, npsfs=2, seed=11, large_offset=(7.3, 5.1), offset_scale=0.0,
        record_large_offset=record, shape=(96, 96), noise=False, garbage=False,
    )  # fmt: skip
    geometric = np.array([sim.truth["xshift_geometric"][0], sim.truth["yshift_geometric"][0]])
    assert np.abs(geometric - np.array([[7.3], [5.1]])).max() < 0.1
    paths = simulate.write_simulation(sim, tmp_path)
    with datamodels.open(paths["psfstack"]) as stack:
        members = stack.meta.coronalign.instance["psf_members"]
        scale = np.sqrt(stack.meta.photometry.pixelarea_arcsecsq)
    prior = np.array(
        [[m["x_offset"] / scale for m in members], [m["y_offset"] / scale for m in members]]
    )
    if record:
        assert np.abs(prior - geometric).max() < 0.1
        assert members[0]["x_offset"] == pytest.approx(7.3 * 0.063)
    else:  # the offset is real but nobody wrote it down
        assert not prior.any()
    pointing = json.loads(paths["truth"].read_text())["pointing"]
    assert pointing["large_offset"] == [7.3, 5.1]
    assert pointing["large_offset_recorded"] is record


def test_association_pointing(tmp_path):
    paths = simulate.write_association(
        tmp_path, "miri-lyot", n_science=2, n_psf=3, nints=1, psf_nints=2, seed=5,
        shape=(96, 96), psf_dither="5-point-box", large_offset=(1.5, -2.0),
        record_large_offset=True, offset_scale=0.0, noise=False, garbage=False,
    )  # fmt: skip
    truth = json.loads(paths["truth"].read_text())
    pointing = truth["psf_pointing"]
    assert [p["filename"] for p in pointing] == truth["psf_members"]
    for path, record in zip(paths["psf"], pointing, strict=True):
        with datamodels.open(path) as model:
            model.validate()
            assert model.meta.dither.x_offset == record["x_offset"]
            assert model.meta.dither.y_offset == record["y_offset"]
            assert model.meta.dither.small_grid_pattern == "5-POINT-BOX"
            assert record["nints"] == model.meta.exposure.nints == 2
    scale = 0.11
    for name, entry in truth["science"].items():
        with datamodels.open(tmp_path / name) as model:
            assert model.meta.dither.x_offset == 0.0
        # per stack plane: each PSF exposure's offsets hold for all its integrations
        expected_x = [(p["x_offset"]) / scale for p in pointing for _ in range(2)]
        assert np.allclose(entry["xshift_header"][0], expected_x)
        geometric = np.asarray(entry["xshift_geometric"])
        assert np.abs(np.asarray(entry["xshift_header"]) - geometric).max() < 0.1
        assert np.abs(np.asarray(entry["yshift_header"]) - entry["yshift_geometric"]).max() < 0.1
    # 10 mas MIRI steps on a box, plus the recorded large offset
    xs = sorted({round(p["x_offset"] - 1.5 * scale, 6) for p in pointing})
    assert xs == [0.0, 0.01]


def test_option_errors():
    for kwargs, name in (
        ({"decorrelation": 1.5}, "decorrelation"),
        ({"decorrelation": float("nan")}, "decorrelation"),
        ({"mask_style": "fancy"}, "mask_style"),
        ({"mask_style": "crds", "taper": 2.0}, "taper"),
        ({"psf_dither": "spiral"}, "psf_dither"),
    ):
        with pytest.raises(ParameterError) as info:
            simulate.simulate_exposures("nircam", 1, 1, shape=(48, 48), **kwargs)
        assert info.value.name == name
    with pytest.raises(ParameterError) as info:
        simulate.write_association("/nonexistent", "nircam", colour="red")
    assert info.value.name == "colour"


# ---------------------------------------------------------------- command line


def test_cli_choices_match_the_simulator():
    from coronalign import cli

    assert tuple(simulate._SETUPS) == cli._SIMULATE_INSTRUMENTS
    assert cli._SIMULATE_MASK_STYLES == simulate.MASK_STYLES
    assert cli._SIMULATE_DITHERS == simulate.DITHER_PATTERNS


def test_cli_simulate_new_options(tmp_path, capsys):
    from coronalign.cli import main

    args = [
        "simulate", "--instrument", "nircam-sw", "--nints", "1", "--npsfs", "2",
        "--shape", "96", "96", "--decorrelation", "1", "--mask-style", "crds",
        "--psf-dither", "5-point-diamond", "--large-offset", "3", "2", "--record-large-offset",
        "--offset-scale", "0.05", "--seed", "4", "-o", str(tmp_path),
    ]  # fmt: skip
    assert main(["-q", *args]) == 0
    assert "psfstack:" in capsys.readouterr().out
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["instrument"] == "nircam-sw"
    assert truth["shape"] == [96, 96]
    assert truth["decorrelation"] == 1.0
    assert truth["mask_style"] == "crds"
    assert truth["pointing"]["psf_dither"] == "5-point-diamond"
    assert truth["pointing"]["large_offset_recorded"] is True
    with datamodels.open(tmp_path / truth["psfmask"]) as model:
        assert not model.data[-1].any()
        assert 0 < model.data.min(where=model.data > 0, initial=1) < 2e-5
    stack = next(tmp_path.glob("*_psfstack.fits"))
    with datamodels.open(stack) as model:
        members = model.meta.coronalign.instance["psf_members"]
    assert members[1]["x_offset"] == pytest.approx(0.020 + 3 * 0.031)  # dither + large offset
    expected = simulate.simulate_exposures(
        "nircam-sw", 1, 2, seed=4, shape=(96, 96), decorrelation=1.0, mask_style="crds",
        psf_dither="5-point-diamond", large_offset=(3, 2), record_large_offset=True,
        offset_scale=0.05,
    )  # fmt: skip
    assert truth["xshift"] == expected.truth["xshift"]


def test_cli_simulate_rejects_bad_values(tmp_path, capsys):
    from coronalign.cli import main

    with pytest.raises(SystemExit) as info:
        main(["simulate", "--decorrelation", "2", "-o", str(tmp_path)])
    assert info.value.code == 2
    assert "between 0 and 1" in capsys.readouterr().err
    status = main(["simulate", "--mask-style", "crds", "--taper", "2", "-o", str(tmp_path)])
    assert status == 2
    assert "taper" in capsys.readouterr().err
