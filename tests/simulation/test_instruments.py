"""The configurations added after NIRCam and MIRI 4QPM: NIRCam SW and MIRI Lyot."""

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
    return {
        key: simulation.simulate_exposures(key, nints=2, npsfs=2, seed=3) for key in NEW_CONFIGS
    }


@pytest.mark.parametrize("key", sorted(NEW_CONFIGS))
def test_new_configuration_files_validate(new_sims, key, tmp_path):
    shape, detector, filt, coronagraph, subarray, exp_type, start, scale = NEW_CONFIGS[key]
    sim = new_sims[key]
    assert sim.instrument == key
    assert sim.sci.shape == (2, *shape)
    assert sim.psf.shape == (2, *shape)
    assert sim.mask.shape == shape
    paths = simulation.write_simulation(sim, tmp_path)
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
    full = simulation.psfmask_array(key, full_frame=True)
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
    sim = simulation.simulate_exposures(
        "miri-lyot", nints=1, npsfs=1, seed=1, noise=False, garbage=False, offset_scale=0.0
    )
    setup = instruments.SETUPS["miri-lyot"]
    image = sim.psf_noiseless[0]
    x, y = sim.truth["psf_x"][0], sim.truth["psf_y"][0]
    r = 4.0 * setup.occulter_radius  # well away from the spot, along the bar and beside it
    on_bar = image[round(y + r), round(x)]
    beside = 0.5 * (image[round(y + r), round(x - r)] + image[round(y + r), round(x + r)])
    assert on_bar < beside
    assert simulation.psfmask_array("miri-lyot").shape == (304, 320)
