"""Bit-for-bit results whatever the CPU kernel, BLAS threads, processes or numpy dispatch.

The unit tests check the reproducible arithmetic against numpy's own (accuracy); the
subprocess test aligns realistic 10 x 9 data sets under settings that change what BLAS,
numpy and libm do on this machine, as another machine would, and requires identical
products. On the code before coronalign.core.reproducible existed, OPENBLAS_CORETYPE and
OPENBLAS_NUM_THREADS alone changed the SCI values (and disabling numpy's FMA dispatch
changed SCI and ERR).
"""

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from coronalign.core.reproducible import (
    ExactLeft,
    complex_multiply,
    exact_matmul,
    expi_2pi,
    sincos_2pi,
)


def test_sincos_agrees_with_libm_to_a_few_ulp(rng):
    turns = np.concatenate([rng.uniform(-50, 50, 20000), np.arange(-16, 17) / 8])
    cos, sin = sincos_2pi(turns)
    angle = 2 * np.pi * (turns - np.rint(turns))  # libm's reference, without 2π·t's rounding
    np.testing.assert_allclose(cos, np.cos(angle), rtol=0, atol=4.5e-16)
    np.testing.assert_allclose(sin, np.sin(angle), rtol=0, atol=4.5e-16)
    exact = np.arange(-8, 9) / 4  # quarter turns: exact values
    cos, sin = sincos_2pi(exact)
    np.testing.assert_array_equal(np.abs(cos) + np.abs(sin), 1.0)
    assert np.allclose(expi_2pi(0.125), np.exp(0.25j * np.pi), rtol=0, atol=1e-16)


def test_complex_multiply_is_the_complex_product(rng):
    a = rng.normal(size=(5, 7)) + 1j * rng.normal(size=(5, 7))
    b = rng.normal(size=(1, 7)) + 1j * rng.normal(size=(1, 7))
    np.testing.assert_allclose(complex_multiply(a, b), a * b, rtol=1e-15, atol=0)
    out = a.copy()
    complex_multiply(out, b, out=out)
    np.testing.assert_allclose(out, a * b, rtol=1e-15, atol=0)


@pytest.mark.parametrize("shape", [((641, 321), (321, 27)), ((4, 3, 1281), (4, 1281, 3))])
def test_exact_matmul_matches_blas_to_its_stated_accuracy(rng, shape):
    left_shape, right_shape = shape
    left = rng.normal(size=left_shape) + 1j * rng.normal(size=left_shape)
    left *= np.exp(rng.uniform(-20, 20, left_shape[:-1]))[..., None]  # rows of any scale
    right = rng.normal(size=right_shape) + 1j * rng.normal(size=right_shape)
    expected = np.matmul(left, right)
    scale = np.matmul(np.abs(left), np.abs(right))
    for product in (exact_matmul(left, right), exact_matmul(ExactLeft(left), right)):
        assert np.all(np.abs(product - expected) <= 2.0**-38 * scale)


def test_exact_matmul_slices_sum_exactly_in_any_order(rng):
    """The BLAS products of the slices are exact: the same sums in another order (terms
    permuted, as another BLAS kernel would group them) give the same bits."""
    left = rng.normal(size=(64, 300)) + 1j * rng.normal(size=(64, 300))
    right = rng.normal(size=(300, 6)) + 1j * rng.normal(size=(300, 6))
    reference = exact_matmul(left, right)
    for seed in range(3):
        order = np.random.default_rng(seed).permutation(300)
        np.testing.assert_array_equal(exact_matmul(left[:, order], right[order]), reference)
    assert not np.array_equal(np.matmul(left[:, order], right[order]), np.matmul(left, right))


# ---------------------------------------------------------------------------------------
# Whole products under settings that change BLAS, numpy and libm on this machine

#: numpy's run-time dispatch targets above the x86-64-v2 baseline (AVX2/FMA, AVX-512).
NO_SIMD_DISPATCH = "AVX512_ICL AVX512_SPR X86_V4 X86_V3"
#: glibc's libm then picks its non-FMA exp/sin/cos, as on a CPU without AVX2 and FMA.
NO_FMA_LIBM = "glibc.cpu.hwcaps=-AVX2,-FMA,-AVX512F"

SETTINGS = {
    "default": {"OPENBLAS_NUM_THREADS": "1"},
    "haswell-2-blas-threads-2-processes": {
        "OPENBLAS_CORETYPE": "Haswell",
        "OPENBLAS_NUM_THREADS": "2",
        "OMP_NUM_THREADS": "2",
        "--threads": "2",
    },
    "sandybridge-2-processes": {"OPENBLAS_CORETYPE": "Sandybridge", "--threads": "2"},
    "prescott-2-blas-threads": {"OPENBLAS_CORETYPE": "Prescott", "OPENBLAS_NUM_THREADS": "2"},
    "skylakex-no-fma-anywhere": {
        "OPENBLAS_CORETYPE": "SkylakeX",
        "NPY_DISABLE_CPU_FEATURES": NO_SIMD_DISPATCH,
        "GLIBC_TUNABLES": NO_FMA_LIBM,
    },
}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """NIRCam and MIRI, 10 integrations x 9 PSFs, with noise and garbage."""
    from coronalign.simulation import simulate_exposures, write_simulation

    folder = tmp_path_factory.mktemp("reproducible")
    return {
        instrument: write_simulation(
            simulate_exposures(instrument, nints=10, npsfs=9, seed=17), folder / instrument
        )
        for instrument in ("nircam", "miri")
    }


def _digests(path):
    from astropy.io import fits

    with fits.open(path) as hdus:
        return {
            name: hashlib.sha256(np.ascontiguousarray(hdus[name].data).tobytes()).hexdigest()
            for name in ("SCI", "ERR", "DQ", "PSFSHIFTS")
        }


@pytest.mark.parametrize("instrument", ["nircam", "miri"])
def test_products_are_identical_under_any_blas_kernel_threads_processes_or_dispatch(
    datasets, instrument, tmp_path
):
    paths = datasets[instrument]
    digests = {}
    for name, setting in SETTINGS.items():
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS", "OMP_"))}
        env.update({k: v for k, v in setting.items() if not k.startswith("--")})
        output = tmp_path / f"{name}_psfalign.fits"
        command = [
            sys.executable,
            "-m",
            "coronalign.cli",
            "-q",
            "align",
            str(paths["science"]),
            str(paths["psfstack"]),
            "--psfmask",
            str(paths["psfmask"]),
            "-o",
            str(output),
            "--threads",
            setting.get("--threads", "1"),
        ]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        digests[name] = _digests(output)
    reference = digests["default"]
    differing = {name: d for name, d in digests.items() if d != reference}
    assert not differing, f"products differ from the default run: {sorted(differing)}"
