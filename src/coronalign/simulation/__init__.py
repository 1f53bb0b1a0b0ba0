"""Synthetic JWST coronagraphic exposures whose alignment truth is known exactly.

The simulator makes ``_calints`` cubes for a science target and a stack of reference PSFs, a
PSFMASK, and the true registration parameters of every (science integration, PSF) pair, in
one of four instrument configurations (``instrument=``):

==============  ===========  ========  ===========  ==========  =========  ============
configuration   subarray     frame     detector     filter      mask       pixel scale
==============  ===========  ========  ===========  ==========  =========  ============
``nircam``      SUB320A335R  320x320   NRCALONG     F335M       MASKA335R  0.063"
``miri``        MASK1550     224x288   MIRIMAGE     F1550C      4QPM_1550  0.11"
``nircam-sw``   SUB640A210R  640x640   NRCA2        F210M       MASKA210R  0.031"
``miri-lyot``   MASKLYOT     304x320   MIRIMAGE     F2300C      LYOT_2300  0.11"
==============  ===========  ========  ===========  ==========  =========  ============

``nircam`` is the long-wave channel with a round occulter, ``nircam-sw`` the short-wave channel
with a round occulter, ``miri`` the four-quadrant phase mask (exposure type ``MIR_4QPM``) and
``miri-lyot`` the Lyot coronagraph (``MIR_LYOT``: an opaque 2.16" spot with a bar from it
towards +y). The MIRI frames have a NON_SCIENCE band of columns on the left. Subarray
positions (``SUBSTRT1/2``) are the real ones for SUB640A210R (392, 1186) and MASKLYOT (1, 717)
and illustrative for the first two configurations; occulter geometry, throughput, noise and
the mask centre within the frame are illustrative.

How the images are made
-----------------------
Each star is imaged through a coronagraph by Fourier optics: an entrance pupil (circular,
central obstruction, three spiders) with a random phase screen -> focal plane at 2x the
detector sampling, multiplied by the occulter (a Gaussian-profile round mask, a
four-quadrant phase mask or an opaque spot with a bar) -> Lyot plane, multiplied by an
undersized Lyot stop -> final focal plane at detector sampling. The Lyot stop is small
enough that the final intensity is band-limited below the detector Nyquist frequency, so the
image is known exactly as a continuous (periodic) function; detector pixel integration (a
sinc transfer function) and the star's sub-pixel position (a phase ramp) are then applied
*exactly* in the Fourier domain. A translated star is therefore exactly a Fourier shift of
the same image, with no power at the Nyquist frequency (so every Fourier-shift convention
agrees).

Each star gets its own wavefront error: a common static screen, a small science /
reference difference and a per-integration drift, so science and reference PSFs never
match perfectly. The science exposures also hold a faint companion.

``decorrelation`` (0 to 1, default 0) gives the reference stars a static screen of their
own: ``cos(a pi/2) S1 + sin(a pi/2) S2``, with ``S1`` the science target's screen and ``S2``
an independent screen of the same statistics made orthogonal to ``S1`` over the pupil and
scaled to its RMS. The RMS wavefront error is therefore exactly preserved and the two
screens correlate by exactly ``cos(a pi/2)``: at 1 the speckles do not match at all. (MIRI
images are dominated by the deterministic diffraction pattern, so they still subtract to
~10 %; NIRCam halos are speckle-dominated.)

The truth
---------
For a science integration ``k`` and a reference PSF ``m`` the truth is the exact minimiser
of ``sum(mask**2 * (psf_m - beta * shift(sci_k, xshift, yshift))**2)`` over the NOISELESS
float64 images, where ``shift`` is the circular Fourier shift (``+xshift`` moves the image
towards larger column index). It is found by a Newton iteration on that objective,
evaluated in closed form in the Fourier domain, converged to ~1e-10 px, started at the
geometric shift. With the default binary mask ``mask**2 == mask``; fractional masks (a taper
or ``mask_style="crds"``) are weighted by ``mask**2``, as the official objective does. The
"geometric" offsets (star position differences) are reported too; they differ from the truth
by the small bias that the wavefront drift causes. With ``decorrelation > 0`` the objective
has many local minima and the truth may lie far from the geometric shift: it is then the
local minimum downhill from the geometric shift (a damped, monotone Newton iteration), and
is reported as it is.

PSFMASK styles
--------------
``mask_style="geometric"`` (default): 1, with 0 in a disc around the coronagraph centre,
within 10 px of the frame edges and on the MIRI NON_SCIENCE columns; ``taper`` (px) smooths
the steps with a raised cosine. ``mask_style="crds"``: shaped like the released CRDS files.
NIRCam files are fractional weights, ``1e-5 + (0.99 - 1e-5) * T(r)`` here, with ``T`` the
intensity transmission of the simulated occulter (about 1e-5 at the centre rising smoothly
to 0.99; median 0.99), and the whole last row and last column exactly 0. MIRI files are 0/1:
the geometric binary mask, and for the Lyot also 0 on the occulting bar.

Pointing
--------
A star sits at the coronagraph centre + deliberate offset + pointing error + jitter. The
deliberate offsets are written to each exposure's header as ``meta.dither.x_offset`` /
``y_offset`` (FITS ``XOFFSET`` / ``YOFFSET``, arcsec along the detector columns (x) and rows
(y); star position = reference point + offset / pixel scale, the pixel scale being
``sqrt(meta.photometry.pixelarea_arcsecsq)``; ``meta.wcsinfo.crpix1/2`` is the reference
point, the coronagraph centre, and ``cdelt1/2`` the pixel size in degrees). They are 0 for
the science target, the small-grid dither of the references (``psf_dither``: 20 mas steps
for NIRCam, 10 mas for MIRI) and, only with ``record_large_offset=True``, ``large_offset``.
The pointing error (``offset_scale`` RMS, per exposure) and the 0.02 px jitter (per
integration) are not recorded, so the prior ``(x_offset_psf - x_offset_sci) / scale`` a
reader derives from the headers (``xshift_header`` in the truth) is close to, but not
exactly, ``xshift_geometric``. A ``_psfstack``'s metadata are those of its first member, so
the stack written by :func:`write_simulation` also lists every member's offsets, in stack
order, in ``meta.coronalign.psf_members`` (``filename``, ``nints``, ``x_offset``,
``y_offset``).

Noise and defects
-----------------
Photon noise (Poisson, including a background that is subtracted again, as in
background-subtracted stage 2 products) and Gaussian read noise; ERR, VAR_POISSON and
VAR_RNOISE consistent with it. Then a few hundred DQ-flagged pixels per plane holding
garbage (hot, dead, saturated, a cluster of adjacent bad pixels, defects on row 0,
column 0 and in the corners), NaN pixels with and without DO_NOT_USE, +/-inf pixels,
SATURATED-only and JUMP_DET-only pixels with valid values, and for MIRI a NON_SCIENCE band
of columns. Data are written as float32 in MJy/sr as real ``_calints`` are.
``noise_seed`` draws the pixel noise from a seed of its own, leaving the scene (and the
truth) that of ``seed``: realisations of one scene that differ in their noise alone.

:func:`simulate_exposures` is pure (no I/O); :func:`write_simulation` and
:func:`write_association` write files that validate with ``stdatamodels``.

Where each part lives
---------------------
:mod:`~coronalign.simulation.instruments` (the configurations and their frames),
:mod:`~coronalign.simulation.options`, :mod:`~coronalign.simulation.psfmask`,
:mod:`~coronalign.simulation.pointing`, :mod:`~coronalign.simulation.optics`,
:mod:`~coronalign.simulation.truth`, :mod:`~coronalign.simulation.detector`,
:mod:`~coronalign.simulation.metadata`, :mod:`~coronalign.simulation.observation` (one
seed: images, truth and exposures), :mod:`~coronalign.simulation.exposures` (the pure
public function) and :mod:`~coronalign.simulation.files` (the writers).

The simulator never imports :mod:`coronalign.core`: its truth is computed by its own
method, so a mistake in the package's fit cannot hide in the truth it is tested against.
"""

from coronalign.simulation.exposures import Simulation, simulate_exposures
from coronalign.simulation.files import (
    add_celestial_wcs,
    add_gwcs_wcs,
    write_association,
    write_simulation,
)
from coronalign.simulation.pointing import DITHER_PATTERNS
from coronalign.simulation.psfmask import MASK_STYLES, psfmask_array

__all__ = [
    "DITHER_PATTERNS",
    "MASK_STYLES",
    "Simulation",
    "add_celestial_wcs",
    "add_gwcs_wcs",
    "psfmask_array",
    "simulate_exposures",
    "write_association",
    "write_simulation",
]
