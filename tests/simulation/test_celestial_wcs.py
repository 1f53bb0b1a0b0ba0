"""``coronalign simulate --celestial-wcs``: a sky WCS and footprint, as MAST's exposures have."""

import numpy as np
import pytest
from stdatamodels.jwst import datamodels

from coronalign import simulation
from coronalign.cli import main
from coronalign.simulation.instruments import setup_for


@pytest.mark.parametrize("instrument", ["nircam", "miri"])
def test_the_wcs_has_the_instruments_scale_and_the_footprint_is_its_frame(instrument, tmp_path):
    sim = simulation.simulate_exposures(instrument, 1, 1, 0)
    paths = simulation.write_simulation(sim, tmp_path)
    science = paths["science"]
    scale = setup_for(instrument).pixel_scale
    simulation.add_celestial_wcs(science, scale)
    with datamodels.open(science) as model:
        ny, nx = model.data.shape[-2:]
        wcs = model.meta.wcs
        ra0, dec0 = wcs((nx - 1) / 2, (ny - 1) / 2)
        assert (ra0, dec0) == pytest.approx(simulation.files.SKY_POSITION)
        _, dec1 = wcs((nx - 1) / 2, (ny - 1) / 2 + 1)  # one pixel north
        assert (dec1 - dec0) * 3600 == pytest.approx(scale, rel=1e-6)
        ra2, _ = wcs((nx - 1) / 2 + 1, (ny - 1) / 2)  # one pixel west (east is left)
        assert ra2 < ra0
        words = model.meta.wcsinfo.s_region.split()
        assert words[:2] == ["POLYGON", "ICRS"]
        corners = np.array(words[2:], dtype=float).reshape(4, 2)
        expected = np.array(
            wcs([-0.5, nx - 0.5, nx - 0.5, -0.5], [-0.5, -0.5, ny - 0.5, ny - 0.5])
        ).T
        np.testing.assert_allclose(corners, expected, atol=1e-9)
        assert model.meta.wcsinfo.ctype1 == "RA---TAN"


def test_the_command_gives_every_calints_of_an_association_a_footprint(tmp_path):
    small = ["simulate", "--association", "--nscience", "1", "--npsf-exposures", "1",
             "--nints", "2", "--npsfs", "2"]  # fmt: skip
    assert main([*small, "--celestial-wcs", "-o", str(tmp_path)]) in (0, None)
    calints = sorted(tmp_path.glob("*_calints.fits"))
    assert len(calints) == 2
    for path in calints:
        with datamodels.open(path) as model:
            assert model.meta.wcsinfo.s_region.startswith("POLYGON ICRS ")
    main([*small, "-o", str(tmp_path / "plain")])
    with datamodels.open(next((tmp_path / "plain").glob("*_calints.fits"))) as model:
        assert model.meta.wcsinfo.s_region is None  # the default keeps a pixel frame
