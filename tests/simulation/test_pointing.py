"""The pointing metadata: offsets written to the headers and the prior a reader derives."""

import json

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels

from coronalign import simulation
from coronalign.errors import ParameterError

DO_NOT_USE = 1
SATURATED = 2
JUMP_DET = 4
NON_SCIENCE = 512

SHAPES = {"nircam": (320, 320), "miri": (224, 288)}


# ---------------------------------------------------------------- pointing metadata


def _header_prior(sci_meta, member, scale):
    return (
        (member["x_offset"] - sci_meta.dither.x_offset) / scale,
        (member["y_offset"] - sci_meta.dither.y_offset) / scale,
    )


def test_pointing_metadata_round_trip(tmp_path):
    """(x_offset_psf - x_offset_sci) / scale from the files ~ xshift_geometric (small errors)."""
    sim = simulation.simulate_exposures(
        "nircam", nints=2, npsfs=5, seed=2, offset_scale=0.0, psf_dither="9-point-grid",
        shape=(96, 96),
    )  # fmt: skip
    paths = simulation.write_simulation(sim, tmp_path)
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
    sim = simulation.simulate_exposures(
        "nircam", nints=1, npsfs=2, seed=11, large_offset=(7.3, 5.1), offset_scale=0.0,
        record_large_offset=record, shape=(96, 96), noise=False, garbage=False,
    )  # fmt: skip
    geometric = np.array([sim.truth["xshift_geometric"][0], sim.truth["yshift_geometric"][0]])
    assert np.abs(geometric - np.array([[7.3], [5.1]])).max() < 0.1
    paths = simulation.write_simulation(sim, tmp_path)
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
    paths = simulation.write_association(
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
            simulation.simulate_exposures("nircam", 1, 1, shape=(48, 48), **kwargs)
        assert info.value.name == name
    with pytest.raises(ParameterError) as info:
        simulation.write_association("/nonexistent", "nircam", colour="red")
    assert info.value.name == "colour"
