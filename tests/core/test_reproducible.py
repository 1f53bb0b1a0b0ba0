"""Bit-for-bit results whatever the CPU kernel, BLAS threads, processes or numpy dispatch.

The unit tests check the reproducible arithmetic against numpy's own (accuracy); the
subprocess test aligns realistic 10 x 9 data sets under settings that change what BLAS,
numpy and libm do on this machine, as another machine would, and requires identical
products. On the code before coronalign.core.reproducible existed, OPENBLAS_CORETYPE and
OPENBLAS_NUM_THREADS alone changed the SCI values (and disabling numpy's FMA dispatch
changed SCI and ERR).
"""

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from coronalign.core import reproducible
from coronalign.core.reproducible import (
    ExactLeft,
    complex_multiply,
    exact_matmul,
    expi_2pi,
    sincos_2pi,
)
from tests.helpers.machines import SETTINGS, environment_for


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


def test_exp_log_power_sinc_agree_with_libm_to_a_few_ulp(rng):
    x = np.concatenate([rng.uniform(-740, 709, 20000), rng.uniform(-1, 1, 20000)])
    np.testing.assert_allclose(reproducible.exp(x), np.exp(x), rtol=4.5e-16, atol=0)
    special = reproducible.exp([0.0, 709.79, 1e308, -746.0, -np.inf, np.inf, np.nan])
    np.testing.assert_array_equal(special, [1.0, np.inf, np.inf, 0.0, 0.0, np.inf, np.nan])
    assert reproducible.exp(-745.1) == np.exp(-745.1) > 0  # subnormal results
    y = np.exp(rng.uniform(-700, 700, 20000))
    np.testing.assert_allclose(reproducible.log(y), np.log(y), rtol=4.5e-16, atol=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        edges = [0.0, 1.0, np.inf, -1.0, np.nan, 5e-324]
        np.testing.assert_array_equal(reproducible.log(edges), np.log(edges))
    f = rng.uniform(1e-6, 0.5, 2000)
    np.testing.assert_allclose(reproducible.power(f, -0.625), f**-0.625, rtol=1e-15, atol=0)
    assert reproducible.power(np.inf, -0.625) == 0.0
    assert reproducible.power(0.0, 0.0) == 1.0
    s = rng.uniform(-3, 3, 2000)
    np.testing.assert_allclose(reproducible.sinc(s), np.sinc(s), rtol=0, atol=5e-16)
    assert reproducible.sinc(0.0) == 1.0


def test_small_symmetric_systems_are_solved_and_classified(rng):
    a = rng.normal(size=(200, 3, 3))
    spd = a @ np.swapaxes(a, 1, 2) + 0.05 * np.eye(3)
    b = rng.normal(size=(200, 3))
    x = reproducible.solve_3x3(spd, b)
    np.testing.assert_allclose(np.einsum("nij,nj->ni", spd, x), b, rtol=0, atol=1e-10)
    assert reproducible.positive_definite_3x3(spd).all()
    indefinite = spd - 2.0 * np.linalg.eigvalsh(spd)[:, 1, None, None] * np.eye(3)
    assert not reproducible.positive_definite_3x3(indefinite).any()
    assert not reproducible.positive_definite_3x3(-spd).any()
    assert np.all(~np.isfinite(reproducible.solve_3x3(np.zeros((1, 3, 3)), np.ones((1, 3)))))


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
        env = environment_for(setting)
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
