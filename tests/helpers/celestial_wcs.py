"""Give simulated _calints a celestial gwcs (TAN, 0.063"/px) so that resample can run.

Run with the jwst environment's Python (it uses jwst.assign_wcs): python celestial_wcs.py FILE...
The simulator's WCS is a pixel frame; resample needs sky coordinates and wcsinfo references.
"""

import sys

from astropy import coordinates as coord
from astropy import units as u
from astropy.modeling import models
from gwcs import coordinate_frames as cf
from gwcs import wcs
from jwst.assign_wcs.util import update_s_region_imaging
from stdatamodels.jwst import datamodels

RA, DEC, SCALE = 80.0, -69.5, 0.063 / 3600
for f in sys.argv[1:]:
    with datamodels.open(f) as m:
        ny, nx = m.data.shape[-2:]
        cx, cy = (nx - 1) / 2, (ny - 1) / 2
        transform = (
            (models.Shift(-cx) & models.Shift(-cy))
            | (models.Scale(SCALE) & models.Scale(SCALE))
            | models.Pix2Sky_TAN()
            | models.RotateNative2Celestial(RA, DEC, 180)
        )
        det = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
        sky = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world", unit=(u.deg, u.deg))
        m.meta.wcs = wcs.WCS([(det, transform), (sky, None)])
        w = m.meta.wcsinfo
        w.ra_ref, w.dec_ref, w.roll_ref, w.v2_ref, w.v3_ref, w.v3yangle, w.vparity = (
            RA,
            DEC,
            0.0,
            0.0,
            0.0,
            0.0,
            -1,
        )
        w.crpix1, w.crpix2 = cx + 1, cy + 1
        w.crval1, w.crval2 = RA, DEC
        w.cdelt1 = w.cdelt2 = SCALE
        w.pc1_1, w.pc1_2, w.pc2_1, w.pc2_2 = -1.0, 0.0, 0.0, 1.0
        w.ctype1, w.ctype2 = "RA---TAN", "DEC--TAN"
        m.meta.pointing.ra_v1, m.meta.pointing.dec_v1, m.meta.pointing.pa_v3 = RA, DEC, 0.0
        update_s_region_imaging(m)
        m.save(f)
