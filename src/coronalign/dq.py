"""The quality vocabulary every layer shares: JWST pixel DQ bits and the status of a fit.

The DQ bits are the values of ``stdatamodels.jwst.datamodels.dqflags.pixel`` (the test
suite checks that they agree), written out here so that the numerical core and the
simulator use them without importing stdatamodels. Only the bits this package reads or
writes are listed.

A fit's status is one :class:`FitStatus`; it is a :class:`str`, so the shift tables, JSON
reports and comparisons with plain strings see the same words as always.
"""

import enum

__all__ = [
    "DEAD",
    "DO_NOT_USE",
    "FLUX_ESTIMATED",
    "HOT",
    "JUMP_DET",
    "NON_SCIENCE",
    "OTHER_BAD_PIXEL",
    "SATURATED",
    "FitStatus",
]

#: Bad pixel: do not use (the default ``bad_bits``).
DO_NOT_USE = 2**0
#: Saturated during the exposure.
SATURATED = 2**1
#: A jump (cosmic ray) detected during the exposure.
JUMP_DET = 2**2
#: Not on the science part of the detector (MIRI's columns outside the coronagraph).
NON_SCIENCE = 2**9
#: Dead pixel.
DEAD = 2**10
#: Hot pixel.
HOT = 2**11
#: The value was estimated from other pixels (the step's median replacement).
FLUX_ESTIMATED = 2**28
#: Any other reason not to trust the pixel (the step: data wrapped around the frame edge).
OTHER_BAD_PIXEL = 2**30


class FitStatus(enum.StrEnum):
    """The outcome of one (integration, PSF) fit, as written in the shift table."""

    #: A minimum inside the search window.
    CONVERGED = "converged"
    #: No convergence within the allowed Newton steps.
    NOT_CONVERGED = "not_converged"
    #: No usable pixel under the mask: nothing to fit.
    NO_DATA = "no_data"
    #: The minimum lies on the window's edge, farther than ``max_shift`` from the prior.
    OUT_OF_WINDOW = "out_of_window"
    #: Converged, but far from the same PSF's fits in the other integrations.
    OUTLIER = "outlier"
