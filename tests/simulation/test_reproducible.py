"""The simulator makes the same bits whatever the BLAS kernel, BLAS threads, numpy's SIMD
dispatch or glibc's FMA variants (issue 21), as the engine does (tests/core/test_reproducible.py).

Before its arithmetic went through :mod:`coronalign.core.reproducible`, OPENBLAS_CORETYPE alone
changed the truth (LAPACK's 3 x 3 solves, BLAS's complex products in the truth fit), and
NPY_DISABLE_CPU_FEATURES or GLIBC_TUNABLES changed the float64 images (complex exponentials and
products), so digests pinned on one machine failed on another.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.machines import SETTINGS, environment_for
from tests.helpers.simulation_digests import CASES, digests

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def here():
    """The digests computed in this process, under the machine's own environment."""
    return digests()


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_simulations_are_identical_under_any_blas_kernel_or_dispatch(here, setting):
    done = subprocess.run(
        [sys.executable, "-m", "tests.helpers.simulation_digests"],
        cwd=ROOT,
        env=environment_for(SETTINGS[setting]),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    there = json.loads(done.stdout)
    assert set(there) == set(CASES)
    differing = {
        case: sorted(key for key in here[case] if there[case][key] != here[case][key])
        for case in CASES
    }
    assert not any(differing.values()), f"differ under {setting}: {differing}"
