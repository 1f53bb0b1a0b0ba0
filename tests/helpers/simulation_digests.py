"""Digests of a few simulations: every array and the whole truth, printed as JSON.

Run as ``python -m tests.helpers.simulation_digests`` (from the repository root) in a child
process whose environment makes BLAS, numpy or libm compute as another machine would.
"""

import hashlib
import json

import numpy as np

__all__ = ["CASES", "digests"]

#: Small simulations that reach every computation of the simulator: both instruments, a large
#: offset with a tapered mask, decorrelated references (the damped truth fit), CRDS-like masks,
#: dithered references, garbage, the spot-and-bar Lyot and the short-wave channel.
CASES = {
    "nircam": {"instrument": "nircam", "nints": 2, "npsfs": 2, "seed": 5, "shape": (64, 80)},
    "miri": {"instrument": "miri", "nints": 2, "npsfs": 2, "seed": 5, "shape": (64, 80)},
    "large_taper": {
        "instrument": "nircam", "nints": 1, "npsfs": 2, "seed": 11, "large_offset": (7.3, 5.1),
        "taper": 3.0, "shape": (96, 112),
    },
    "decorrelated_crds_dithered": {
        "instrument": "nircam", "nints": 2, "npsfs": 3, "seed": 2024, "shape": (96, 96),
        "mask_style": "crds", "decorrelation": 0.3, "psf_dither": "9-point-grid",
    },
    "miri_lyot": {"instrument": "miri-lyot", "nints": 1, "npsfs": 2, "seed": 3, "shape": (80, 76)},
    "nircam_sw": {"instrument": "nircam-sw", "nints": 1, "npsfs": 2, "seed": 4, "shape": (64, 64)},
}  # fmt: skip


def _array_digest(array):
    array = np.ascontiguousarray(array)
    return hashlib.sha256(array.dtype.str.encode() + array.tobytes()).hexdigest()


def digests(names=None):
    """``{case: {array name or "truth": sha256}}`` of the simulations in :data:`CASES`.

    Parameters
    ----------
    names : iterable of str, optional
        Cases to simulate (all by default).

    Returns
    -------
    dict
    """
    from coronalign.simulation import simulate_exposures

    out = {}
    for name in names or CASES:
        sim = simulate_exposures(**CASES[name])
        arrays = {
            key: _array_digest(value)
            for key, value in vars(sim).items()
            if isinstance(value, np.ndarray)
        }
        truth = json.dumps(sim.truth, sort_keys=True, default=repr).encode()
        out[name] = {**arrays, "truth": hashlib.sha256(truth).hexdigest()}
    return out


if __name__ == "__main__":
    print(json.dumps(digests()))
