"""Each fit's distance from the commanded offsets, against the simulator's truth."""

import json
import math

import numpy as np
import pytest

from coronalign.cli import main
from coronalign.core.commanded import commanded_offset_distances, commanded_offset_summary
from coronalign.simulation import simulate_exposures
from coronalign.simulation.files import write_simulation
from tests.helpers.commands import align_command


def test_distances_are_in_mas_at_the_pixel_scale():
    distances = commanded_offset_distances([1.0, 0.3, np.nan], [0.0, 0.4, 0.0], 0, 0, 0.063)
    np.testing.assert_allclose(distances[:2], [63.0, 31.5])
    summary = commanded_offset_summary(distances, tolerance=40)
    assert summary["over"] == [0]
    assert summary["max_mas"] == pytest.approx(63.0)
    assert summary["distances_mas"][2] is None


def _validated(tmp_path, offset_scale, *extra):
    sim = simulate_exposures(
        "nircam", nints=2, npsfs=5, seed=21, offset_scale=offset_scale, psf_dither="5-point-box"
    )
    paths = write_simulation(sim, tmp_path / "in")
    product = tmp_path / "x_psfalign.fits"
    shifts = tmp_path / "x_psfshifts.ecsv"
    report = tmp_path / "report.json"
    args = align_command(paths["science"], paths["psfstack"], paths["psfmask"], product)
    assert main(["-q", *args, "--shifts", str(shifts)]) == 0
    assert main(["-q", "validate", str(product), "--shifts", str(shifts), "--report",
                 str(report), *extra]) == 0  # fmt: skip
    return sim, json.loads(report.read_text())


def _true_distances(sim):
    truth = sim.truth
    scale = math.sqrt(sim.sci_meta["photometry"]["pixelarea_arcsecsq"])
    dx = np.subtract(truth["xshift"], truth["xshift_header"])
    dy = np.subtract(truth["yshift"], truth["yshift_header"])
    return np.hypot(dx, dy).ravel() * 1000 * scale


def test_validation_gives_the_distance_from_the_commanded_offsets(tmp_path):
    # A pointing error of 0.3 px RMS per exposure (19 mas): the fits are far from the
    # commanded offsets, by what the truth says, and the report warns.
    sim, report = _validated(tmp_path, 0.3)
    offsets = report["commanded_offsets"]
    truth = _true_distances(sim)
    # The fits' error (<= 0.02 px, 1.3 mas) is all that separates them.
    np.testing.assert_allclose(offsets["distances_mas"], truth, atol=1.5)
    assert offsets["tolerance_mas"] == 5.0
    assert sorted(offsets["over"]) == [int(i) for i in np.flatnonzero(truth > 5)]
    assert any("commanded offset" in warning for warning in report["warnings"])


def test_no_warning_when_the_pointing_follows_the_commands(tmp_path):
    sim, report = _validated(tmp_path, 0.0, "--offset-tolerance", "4")
    offsets = report["commanded_offsets"]
    # Only the 0.02 px jitter (about 1.3 mas) and the wavefront drift are left.
    assert offsets["max_mas"] < 4
    np.testing.assert_allclose(offsets["distances_mas"], _true_distances(sim), atol=1.5)
    assert offsets["over"] == []
    assert not any("commanded offset" in warning for warning in report["warnings"])
