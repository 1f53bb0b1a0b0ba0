"""Tests of coronalign.references: the CRDS lookup, the mask, the selection record."""
