"""The registration's choices offered to the layers above, without the fitting code.

The step's parameters (:mod:`coronalign.steps.parameters`) check and record these; keeping
them here spares every command that only reads or checks files the import of the fit and
its transforms.
"""

__all__ = [
    "DEFAULT_MAX_SHIFT",
    "EDGES",
    "ERR_SHIFTS",
    "REFERENCES",
    "WEIGHTINGS",
]

#: How the PSFMASK weighs the residual: "official" (residual × mask, the official step's
#: objective, Σ (m r)²) or "linear" (Σ m r²).
WEIGHTINGS = ("official", "linear")

#: Default search radius around the prior, in pixels (see docs/registration.md): ten
#: times the largest expected science/reference offset (TA errors of a few mas, small-grid
#: dither steps of 20 mas: under 1 px even for NIRCam's 31 mas short-wave pixels), and
#: enough for a reference 8.9 px away, (7.3, 5.1), with no pointing metadata.
DEFAULT_MAX_SHIFT = 10.0

#: How a PSF is shifted at the frame's edges: "wrap" (the circular Fourier shift, as the
#: official step; what leaves one edge re-enters at the other, flagged in DQ) or "pad" (shifted
#: inside a reflect-padded frame; the pixels with no source in the frame are NaN, flagged).
EDGES = ("wrap", "pad")

#: Which science image the PSFs are fitted to: "each" integration (every integration its own
#: fits), the "first" integration only (jwst >= 1.16; every integration gets its shifts) or the
#: "mean" of the integrations (every integration gets its shifts).
REFERENCES = ("each", "first", "mean")

#: How ERR goes through the shift: "propagated" (the variance convolved with the squared
#: kernel of the shift, see coronalign.core.variance) or "official" (ERR shifted as if it were
#: signal, as the official step does).
ERR_SHIFTS = ("propagated", "official")
