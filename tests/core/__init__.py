"""Tests of coronalign.core: arrays in, arrays out."""
