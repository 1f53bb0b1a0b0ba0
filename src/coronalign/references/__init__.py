"""The PSFMASK reference: the CRDS lookup, loading and cut-out, and the selection record."""
