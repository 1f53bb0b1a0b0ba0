"""``blur_fwhm``: a periodic Gaussian blur of both images, for the fit only."""

import numpy as np
import pytest

from coronalign.core.align import Stack, align_stacks
from coronalign.core.blur import FWHM_PER_SIGMA, gaussian_blur
from coronalign.core.fourier import fourier_shift
from coronalign.simulation import simulate_exposures
from tests.helpers.images import blob_image, border_weight, shifted


def test_blur_has_the_asked_width_and_keeps_the_flux():
    image = np.zeros((2, 64, 64))
    image[:, 32, 32] = 1.0
    blurred = gaussian_blur(image, 3.0)
    x = np.mgrid[:64, :64][1]
    variance = np.sum(blurred[0] * (x - 32) ** 2)
    assert np.sqrt(variance) == pytest.approx(3.0 / FWHM_PER_SIGMA, rel=1e-3)
    assert blurred.sum(axis=(1, 2)) == pytest.approx([1.0, 1.0])


def test_blur_commutes_with_the_fourier_shift():
    image = blob_image((40, 48), seed=2)
    np.testing.assert_allclose(
        gaussian_blur(fourier_shift(image, 0.3, -1.7), 2.0),
        fourier_shift(gaussian_blur(image, 2.0), 0.3, -1.7),
        atol=1e-12,
    )


def _run(science, psfs, mask, **options):
    blocks = {}
    result = align_stacks(science, psfs, mask, lambda row, *b: blocks.update({row: b}), **options)
    return result, blocks[0]


def _stack(planes, err=0.1):
    planes = np.asarray(planes, dtype=np.float64)
    return Stack(planes, np.full(planes.shape, err), np.zeros(planes.shape, np.uint32))


def test_blurred_fit_of_exact_copies_finds_the_same_shift_and_shifts_unblurred():
    base = blob_image((64, 64), seed=4)
    science = _stack([base])
    psfs = _stack([shifted(base, 0.42, -0.31, 1.5)])
    mask = border_weight((64, 64))
    plain, _ = _run(science, psfs, mask)
    blurred, (sci, _, _) = _run(science, psfs, mask, blur_fwhm=2.5)
    np.testing.assert_allclose(blurred.xshift, plain.xshift, atol=1e-6)
    np.testing.assert_allclose(blurred.yshift, plain.yshift, atol=1e-6)
    np.testing.assert_allclose(blurred.beta, plain.beta, rtol=1e-6)
    # The product is the unblurred PSF, shifted by the fitted shift.
    expected = fourier_shift(psfs.data[0], -blurred.xshift[0, 0], -blurred.yshift[0, 0])
    np.testing.assert_allclose(sci[0], expected, atol=2e-6 * np.abs(expected).max())
    assert np.abs(sci[0] - gaussian_blur(expected, 2.5)).max() > 0.01


def test_blurred_fit_on_short_wave_data_is_close_to_the_truth():
    sim = simulate_exposures("nircam-sw", nints=1, npsfs=2, seed=1)
    result, _ = _run(
        Stack(sim.sci, sim.sci_err, sim.sci_dq),
        Stack(sim.psf, sim.psf_err, sim.psf_dq),
        sim.mask,
        blur_fwhm=2.0,
    )
    x, y = np.asarray(sim.truth["xshift"]), np.asarray(sim.truth["yshift"])
    assert np.max(np.abs(result.xshift - x)) < 0.01
    assert np.max(np.abs(result.yshift - y)) < 0.01
    # The errors come from the residual (the blurred pixels' noise is correlated).
    assert np.isfinite(result.xshift_err).all()


def _binned(images):
    """Sums of 2 x 2 pixel blocks: the same scene on pixels twice as large."""
    *lead, ny, nx = images.shape
    return images.reshape(*lead, ny // 2, 2, nx // 2, 2).sum(axis=(-3, -1))


def test_blur_helps_on_undersampled_short_wave_data():
    # NIRCam SW images binned 2 x 2: 62 mas pixels at 2.1 um, twice coarser than Nyquist
    # (33 mas), so truly aliased. The truth is the simulator's (well-sampled) one, halved.
    sim = simulate_exposures("nircam-sw", nints=1, npsfs=2, seed=2, garbage=False)
    rng = np.random.default_rng(2)
    stacks = []
    for noiseless, err in ((sim.sci_noiseless, sim.sci_err), (sim.psf_noiseless, sim.psf_err)):
        sigma = np.sqrt(_binned(np.square(err.astype(np.float64))))
        data = _binned(noiseless) + sigma * rng.standard_normal(sigma.shape)
        stacks.append(Stack(data, sigma, np.zeros(data.shape, np.uint32)))
    ny, nx = sim.mask.shape
    mask = sim.mask.reshape(ny // 2, 2, nx // 2, 2).min(axis=(1, 3))
    truth = np.concatenate([np.ravel(sim.truth["xshift"]) / 2, np.ravel(sim.truth["yshift"]) / 2])

    def rms_error(fwhm):
        result = align_stacks(*stacks, mask, lambda *_: None, blur_fwhm=fwhm)
        fitted = np.concatenate([result.xshift.ravel(), result.yshift.ravel()])
        return float(np.sqrt(np.mean((fitted - truth) ** 2)))

    # Measured (benchmarks/options.py, 3 seeds): 0.054 px unblurred, 0.0019 px at 2 px FWHM.
    plain, blurred = rms_error(None), rms_error(2.0)
    assert blurred < 0.01
    assert blurred < 0.3 * plain
