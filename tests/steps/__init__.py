"""Tests of coronalign.steps: one module per command, the parameters, the input plan."""
