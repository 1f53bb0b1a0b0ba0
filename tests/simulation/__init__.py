"""Tests of coronalign.simulation: the synthetic data and their exact truth."""
