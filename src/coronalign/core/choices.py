"""The registration's choices offered to the layers above, without the fitting code.

The step's parameters (:mod:`coronalign.steps.parameters`) check and record these; keeping
them here spares every command that only reads or checks files the import of the fit and
its transforms.
"""

__all__ = ["DEFAULT_MAX_SHIFT", "WEIGHTINGS"]

#: How the PSFMASK weighs the residual: "official" (residual × mask, the official step's
#: objective, Σ (m r)²) or "linear" (Σ m r²).
WEIGHTINGS = ("official", "linear")

#: Default search radius around the prior, in pixels (see docs/registration.md): ten
#: times the largest expected science/reference offset (TA errors of a few mas, small-grid
#: dither steps of 20 mas: under 1 px even for NIRCam's 31 mas short-wave pixels), and
#: enough for a reference 8.9 px away, (7.3, 5.1), with no pointing metadata.
DEFAULT_MAX_SHIFT = 10.0
