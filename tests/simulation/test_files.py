"""Simulations written as JWST files and associations; the pinned digests of old outputs."""

import hashlib
import json

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from coronalign import simulation
from tests.helpers.paths import DATA
from tests.helpers.reference_fit import scipy_fit, truth_of

DO_NOT_USE = 1
SATURATED = 2
JUMP_DET = 4
NON_SCIENCE = 512

SHAPES = {"nircam": (320, 320), "miri": (224, 288)}


# ---------------------------------------------------------------- files


def test_write_simulation_files_validate(sims, tmp_path):
    sim = sims["nircam"]
    paths = simulation.write_simulation(sim, tmp_path)
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
    paths = simulation.write_simulation(sims["miri"], tmp_path, root="case")
    assert paths["science"].name == "case_calints.fits"
    assert paths["psfstack"].name == "case_psfstack.fits"
    assert paths["psfmask"].name == "case_psfmask.fits"
    with datamodels.open(paths["science"]) as model:
        model.validate()
        assert model.meta.subarray.ystart == 467
        assert model.meta.instrument.name == "MIRI"


def test_association(tmp_path):
    paths = simulation.write_association(
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
    paths = simulation.write_association(
        tmp_path, "miri", n_science=1, n_psf=1, nints=1, psf_nints=2
    )
    for path in [*paths["science"], *paths["psf"], paths["psfmask"]]:
        with datamodels.open(path) as model:
            model.validate()
            assert model.data.shape[-2:] == (224, 288)
    with datamodels.open(paths["psf"][0]) as model:
        assert model.meta.exposure.nints == 2
        assert np.any(np.isnan(model.data))


# ---------------------------------------------------------------- reproducibility of old outputs
#
# New options (decorrelation, mask styles, configurations, dithers) must leave every output
# made with their defaults bit-identical. Two independent pins:
#
# * the committed golden inputs under tests/data/official*/ (made by
#   benchmarks/official/make_golden.py from the simulator before these options existed) must be
#   reproduced exactly;
# * SHA-256 digests of every array (and of the truth entries that existed then) of a few small
#   simulations, pasted here. First computed with the unmodified simulator at commit 3674045
#   (before any of the new code was written); re-pinned once, when the simulator's float64
#   arithmetic was made independent of the BLAS kernel, numpy's SIMD dispatch and libm (issue
#   21): the float32 arrays (everything written to files) kept their bits -- the old golden
#   digests below still hold for them -- while the float64 noiseless images and the truth moved
#   by at most 7e-15 (relative). They are exact only for the same numpy / scipy FFT and
#   random-number code; the golden-file test fails too if those change. That the same bits come
#   out under other BLAS kernels and dispatch settings is tests/simulation/test_reproducible.py.

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
#: (arrays, truth) digests, computed with the reproducible simulator (issue 21; see above).
PINNED_DIGESTS = {
    "nircam": (
        "09bdfa4d28ab9f9a13bee9fa618694a07f9d1701fc0adc41b2660ae32d20f2cc",
        "44ee9f1c54904c8ca2ba35720cbd42b465a2b4b3adc3221e819b686234062989",
    ),
    "miri": (
        "74064ba4d5f10eb8a26ef5fb605582527b751eed922fd49259837d536fe3e868",
        "9b4030b535cd8871e1dc2fa23c6d8cfcb448d9e01bede7fd507e145accd0a1f7",
    ),
    "large_taper": (
        "eadc3642b1a373949e9959e9c35dd16ed8ffe87e4ee74f4fcb8bd8e76560a5ef",
        "af46a246b448995e9174b5cc59765db43175a3240036b8b74712e8935d7deec2",
    ),
}
#: The files' arrays (float32) as at commit 3674045; the truth as re-pinned for issue 21.
PINNED_ASSOCIATION = (
    "b787b40876e49a2a0c319c2327f0099648f128eed414f5d18ab25cbf0b2b378a",
    "cf7644a2a8721916b2e95c4653395db472022bf91b699d862df150bd73ef1a39",
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
    sim = simulation.simulate_exposures(**options)
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
    paths = simulation.write_association(
        tmp_path, "nircam", n_science=2, n_psf=2, nints=2, psf_nints=2, seed=3, shape=(64, 64)
    )
    assert _association_digests(paths) == PINNED_ASSOCIATION
    again = simulation.write_association(
        tmp_path / "explicit", "nircam", n_science=2, n_psf=2, nints=2, psf_nints=2, seed=3,
        shape=(64, 64), **NEW_OPTION_DEFAULTS,
    )  # fmt: skip
    assert _association_digests(again) == PINNED_ASSOCIATION


def _golden_inputs(folder, inst, **options):
    """The golden inputs as make_golden.py makes them (seed 2024, 96 x 96, 2 x 3)."""
    sim = simulation.simulate_exposures(
        inst, nints=2, npsfs=3, seed=2024, shape=(96, 96), garbage=folder == "official", **options
    )
    for data, dq in ((sim.sci, sim.sci_dq), (sim.psf, sim.psf_dq)):
        data[np.isinf(data) & ((dq & DO_NOT_USE) == 0)] = np.nan  # as make_golden.py does
    return sim


def _nan_canonical(array):
    """A copy with every NaN the same NaN (FITS files need not keep NaN payloads)."""
    array = np.array(array, copy=True)
    if array.dtype.kind == "f":
        array[np.isnan(array)] = np.nan
    return array


#: (arrays, truth) digests of the golden inputs committed until 4c6e228 (default options):
#: SCI, ERR, DQ, VAR_POISSON of the calints, SCI, ERR, DQ of the psfstack, the mask (NaNs made
#: canonical), computed from those files; and the truth entries below, re-pinned for issue 21
#: (the float64 truth moved by at most 7e-15 when the simulator became reproducible).
OLD_GOLDEN_DIGESTS = {
    ("official", "nircam"): (
        "2550896039cad3abf77a58d6938312adaa96ff266c74086e8eeffe73473e0358",
        "8ce804f7dc6d1e4017da9ed98791e3d5b59e9878f3f271744ada466e41c221af",
    ),
    ("official", "miri"): (
        "5a290a5daa09568f57c916d9559addf9bd75fa77b52c1d96723c58870647c57d",
        "0d927d66e5e4b15704bf5a64dcc9cfb8860eb22b41ef4f1c2b978a45af756484",
    ),
    ("official_clean", "nircam"): (
        "1389d29392b09870e17b3f98294baa4e778172c3d7585a9f0a9c34042bdc5926",
        "8ce804f7dc6d1e4017da9ed98791e3d5b59e9878f3f271744ada466e41c221af",
    ),
    ("official_clean", "miri"): (
        "abd5896578e90611f66301d4bdd2e1d53914019553f853a68503e375b4cf0712",
        "0d927d66e5e4b15704bf5a64dcc9cfb8860eb22b41ef4f1c2b978a45af756484",
    ),
}
GOLDEN_TRUTH_KEYS = ("xshift", "yshift", "beta", "xshift_geometric", "yshift_geometric")


@pytest.mark.parametrize(("folder", "inst"), sorted(OLD_GOLDEN_DIGESTS))
def test_defaults_reproduce_the_old_golden_inputs(folder, inst):
    """The golden inputs made before the new options existed are made again, bit for bit."""
    sim = _golden_inputs(folder, inst)
    arrays = (
        sim.sci, sim.sci_err, sim.sci_dq, sim.sci_var_poisson, sim.psf, sim.psf_err, sim.psf_dq,
        sim.mask,
    )  # fmt: skip
    assert (
        _digest(*map(_nan_canonical, arrays)),
        _truth_digest(sim.truth, GOLDEN_TRUTH_KEYS),
    ) == OLD_GOLDEN_DIGESTS[folder, inst]


@pytest.mark.parametrize(
    ("folder", "inst"), [(f, i) for f in ("official", "official_clean") for i in SHAPES]
)
def test_the_golden_inputs_are_made_again(folder, inst):
    """The committed golden inputs (README there: seed 2024, 96 x 96, 2 x 3, CRDS-like masks,
    decorrelation 0.3) are made again."""
    sim = _golden_inputs(folder, inst, mask_style="crds", decorrelation=0.3)
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
    for key in GOLDEN_TRUTH_KEYS:
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
