"""The propagated (sandwich) errors against a brute-force Monte Carlo of one scene."""

import numpy as np
import pytest

from coronalign.core import register
from coronalign.core.fourier import fourier_shift
from coronalign.core.objective import prepare_reference, prepare_science, prepare_weight
from coronalign.core.uncertainty import inverse_3x3

REALISATIONS = 64
SIZE = 64


def _scene(rng):
    """A coronagraph-like PSF: a dark core, a bright ring and smooth speckles."""
    y, x = np.mgrid[:SIZE, :SIZE] - SIZE / 2
    r = np.hypot(x, y)
    ring = 2000.0 * np.exp(-0.5 * ((r - 8) / 2.5) ** 2) * (1 - np.exp(-0.5 * (r / 3) ** 2))
    speckles = np.fft.irfft2(
        np.fft.rfft2(rng.normal(size=(SIZE, SIZE)))
        * np.exp(
            -(np.hypot(*np.meshgrid(np.fft.rfftfreq(SIZE), np.fft.fftfreq(SIZE))) ** 2) / 0.01
        ),
        s=(SIZE, SIZE),
    )
    truth = ring + 300.0 * speckles * np.exp(-0.5 * (r / 14) ** 2)
    return np.maximum(truth, 0.0) + 5.0


def _mask():
    y, x = np.mgrid[:SIZE, :SIZE] - SIZE / 2
    r = np.hypot(x, y)
    return np.clip((r - 2.0) / 3.0, 0.0, 1.0) * (r < 26)


@pytest.mark.parametrize("regime", ["photon", "read"])
@pytest.mark.parametrize("weighting", ["official", "linear"])
def test_propagated_errors_match_the_monte_carlo_scatter(regime, weighting):
    rng = np.random.default_rng(23)
    psf_truth = _scene(rng)
    shift = (0.37, -0.21)
    science_truth = 0.8 * fourier_shift(psf_truth, -shift[0], -shift[1])
    read = 2.0 if regime == "photon" else 40.0
    v_p = psf_truth + read**2
    v_s = np.maximum(science_truth, 0.0) + read**2
    weight_terms = prepare_weight(_mask(), weighting)
    fits, sigmas, totals, old = [], [], [], []
    for _ in range(REALISATIONS):
        psf = psf_truth + rng.normal(size=v_p.shape) * np.sqrt(v_p)
        science = science_truth + rng.normal(size=v_s.shape) * np.sqrt(v_s)
        terms = prepare_science(science, weight_terms)
        reference = prepare_reference(psf, weight_terms)
        (fit,) = register.fit_many(
            terms, [reference], weight_terms, science_variance=v_s, reference_variances=[v_p]
        )
        (plain,) = register.fit_many(terms, [reference], weight_terms)
        fits.append((fit.xshift, fit.yshift, fit.beta))
        sigmas.append((fit.xshift_err_stat, fit.yshift_err_stat, fit.beta_err_stat))
        totals.append((fit.xshift_err, fit.yshift_err, fit.beta_err))
        old.append((plain.xshift_err_stat, plain.yshift_err_stat, plain.beta_err_stat))
    scatter = np.std(np.array(fits), axis=0, ddof=1)
    ratio = scatter / np.median(np.array(sigmas), axis=0)
    assert np.all((ratio > 0.7) & (ratio < 1.4)), ratio
    # a residual of pixel noise alone: the total (from the residual's blocks) agrees
    total_ratio = scatter / np.median(np.array(totals), axis=0)
    assert np.all((total_ratio > 0.7) & (total_ratio < 1.4)), total_ratio
    if regime == "photon":  # the residual-variance formula is far off where photons dominate
        old_ratio = scatter / np.median(np.array(old), axis=0)
        assert np.any((old_ratio[:2] < 0.7) | (old_ratio[:2] > 1.4)), old_ratio


def test_inverse_3x3_inverts():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(5, 3, 3))
    h = np.einsum("kij,klj->kil", a, a) + 3 * np.eye(3)
    inverse, definite = inverse_3x3(h)
    assert definite.all()
    assert np.allclose(np.einsum("kij,kjl->kil", h, inverse), np.eye(3), atol=1e-12)
    inverse, definite = inverse_3x3(-h)
    assert not definite.any()
    assert np.isnan(inverse).all()


def test_errors_from_the_shifted_planes_given_are_those_made_here():
    """The alignment hands the errors the PSFs it shifted for its product (one transform
    per fit instead of two); the errors are the same bits, and the given planes are not
    changed (they are the product's SCI)."""
    from coronalign.core.fourier import shift_single, single_phases, single_spectra

    rng = np.random.default_rng(5)
    psf = _scene(rng)
    science = 0.9 * fourier_shift(psf, 0.3, -0.4) + rng.normal(size=psf.shape)
    psf = psf + rng.normal(size=psf.shape)
    weight_terms = prepare_weight(_mask())
    terms = prepare_science(science, weight_terms)
    references = [prepare_reference(psf, weight_terms), prepare_reference(psf[::-1], weight_terms)]
    spectra = single_spectra(np.stack([reference.image for reference in references]))
    variances = {"science_variance": np.abs(science) + 1, "reference_variances": [psf + 1] * 2}
    given = []

    def shifted(d):
        phases = single_phases(psf.shape, -d[:, 0], -d[:, 1])
        out = np.empty((len(d), *psf.shape), dtype=np.float32)
        for i in range(len(d)):
            one = (spectra[0][i : i + 1], spectra[1][i : i + 1])
            shift_single(one, tuple(phase[i] for phase in phases), out[i : i + 1])
        given.append(out.copy())
        given.append(out)
        return out

    made = register.fit_many(terms, references, weight_terms, **variances)
    reused = register.fit_many(
        terms, references, weight_terms, shifted_references=shifted, **variances
    )
    assert made == reused
    assert np.isfinite(reused[0].xshift_err)
    np.testing.assert_array_equal(given[0], given[1])
