"""The default simulations most simulator tests look at, made once for the folder."""

import pytest

from coronalign import simulation

SHAPES = {"nircam": (320, 320), "miri": (224, 288)}


@pytest.fixture(scope="package")
def sims():
    """One default-size simulation per instrument (2 integrations x 3 PSFs), made once."""
    return {inst: simulation.simulate_exposures(inst, nints=2, npsfs=3, seed=7) for inst in SHAPES}
