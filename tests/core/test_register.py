import numpy as np
import pytest

from coronalign.core import objective, register
from coronalign.core.fourier import fourier_shift
from coronalign.errors import ParameterError
from tests.helpers.images import blob_image, border_weight, shifted


@pytest.mark.parametrize("shape", [(64, 64), (63, 70)])
@pytest.mark.parametrize(("dx", "dy", "beta"), [(0.4321, -0.2345, 1.7), (-1.26, 0.91, 0.35)])
def test_noiseless_subpixel_shift_recovered(shape, dx, dy, beta):
    science = blob_image(shape)
    psf = shifted(science, dx, dy, beta)
    fit = register.fit_shift(psf, science, border_weight(shape))
    assert fit.converged
    assert abs(fit.xshift - dx) <= 1e-4
    assert abs(fit.yshift - dy) <= 1e-4
    assert abs(fit.beta / beta - 1) <= 1e-6
    assert fit.rms < 1e-8


def test_sign_convention_matches_positions():
    """xshift = x_psf - x_sci along columns, yshift = y_psf - y_sci along rows."""
    shape = (64, 64)
    y, x = np.mgrid[:64, :64]
    science = np.exp(-((x - 30.0) ** 2 + (y - 34.0) ** 2) / 8)
    psf = 2 * np.exp(-((x - 31.5) ** 2 + (y - 33.0) ** 2) / 8)
    fit = register.fit_shift(psf, science, np.ones(shape))
    assert fit.xshift == pytest.approx(1.5, abs=1e-3)
    assert fit.yshift == pytest.approx(-1.0, abs=1e-3)
    assert fit.beta == pytest.approx(2.0, rel=1e-3)


def test_large_offset_found_from_cross_correlation_start():
    """Started at zero the official fit ends 3-6 px off for (7.3, 5.1); we must not."""
    science = blob_image((96, 96), seed=3)
    psf = shifted(science, 7.3, 5.1, 0.8)
    fit = register.fit_shift(psf, science, border_weight((96, 96), 10))
    assert fit.converged
    assert fit.xshift == pytest.approx(7.3, abs=1e-6)
    assert fit.yshift == pytest.approx(5.1, abs=1e-6)


def test_integer_start_is_the_nearest_integer():
    science = blob_image((64, 64), seed=5)
    weight = objective.prepare_weight(border_weight((64, 64)))
    terms = objective.prepare_science(science, weight)
    reference = objective.prepare_reference(shifted(science, -3.2, 4.4), weight)
    assert register.integer_start(terms, reference) == (-3.0, 4.0)


def test_zero_weight_hides_a_bright_blob():
    shape = (64, 64)
    science = blob_image(shape, seed=1)
    psf = shifted(science, 0.3, -0.4, 1.2)
    weight = border_weight(shape)
    y, x = np.mgrid[:64, :64]
    blob = 50 * np.exp(-((x - 45) ** 2 + (y - 20) ** 2) / 6)
    weight[(x - 45) ** 2 + (y - 20) ** 2 < 8**2] = 0
    fit_masked = register.fit_shift(psf + blob, science, weight)
    assert fit_masked.xshift == pytest.approx(0.3, abs=1e-3)
    assert fit_masked.yshift == pytest.approx(-0.4, abs=1e-3)
    # The same blob with full weight does move the fit: the mask is what protects it.
    fit_unmasked = register.fit_shift(psf + blob, science, border_weight(shape))
    assert abs(fit_unmasked.xshift - 0.3) + abs(fit_unmasked.yshift + 0.4) > 0.05


@pytest.mark.parametrize(("weighting", "power"), [("official", 2), ("linear", 1)])
def test_fractional_mask_weighs_the_residual_as_asked(weighting, power):
    """official: sum (m (p - beta T s))^2, as the official step; linear: sum m (...)^2.

    Checked against a direct evaluation of each objective: the fit is its minimum, and
    not the other's.
    """
    shape = (48, 48)
    rng = np.random.default_rng(7)
    science = blob_image(shape, seed=2)
    psf = shifted(science, 0.2, 0.1, 1.1) + rng.normal(0, 0.01, shape)
    mask = border_weight(shape) * rng.uniform(0.2, 1.0, shape)
    fit = register.fit_shift(psf, science, mask, weighting=weighting)

    def objective(dx, dy, weight):
        t = fourier_shift(science, dx, dy)
        beta = np.sum(weight * psf * t) / np.sum(weight * t * t)
        return np.sum(weight * (psf - beta * t) ** 2)

    weight = mask**power
    best = objective(fit.xshift, fit.yshift, weight)
    for ddx, ddy in [(1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)]:
        assert objective(fit.xshift + ddx, fit.yshift + ddy, weight) > best
    assert fit.rms == pytest.approx(np.sqrt(best / weight.sum()), rel=1e-6)
    other = register.fit_shift(
        psf, science, mask, weighting="linear" if weighting == "official" else "official"
    )
    assert objective(other.xshift, other.yshift, weight) > best
    assert np.hypot(other.xshift - fit.xshift, other.yshift - fit.yshift) > 1e-4


def test_unknown_weighting_is_a_parameter_error():
    with pytest.raises(ParameterError, match="weighting"):
        objective.prepare_weight(np.ones((8, 8)), "squared")


def test_float32_input_gives_the_float64_fit():
    shape = (64, 64)
    science = blob_image(shape, seed=4)
    psf = shifted(science, 0.61, -0.27, 2.5)
    weight = border_weight(shape)
    fit64 = register.fit_shift(psf, science, weight)
    fit32 = register.fit_shift(psf.astype(np.float32), science.astype(np.float32), weight)
    assert fit32.xshift == pytest.approx(fit64.xshift, abs=1e-5)
    assert fit32.yshift == pytest.approx(fit64.yshift, abs=1e-5)
    assert abs(fit32.xshift) > 0.5  # not the near-zero shifts of the float32 official fit


def test_no_signal_gives_nan_and_not_converged():
    shape = (32, 32)
    fit = register.fit_shift(blob_image(shape), np.zeros(shape), np.ones(shape))
    assert np.isnan(fit.xshift)
    assert not fit.converged


def test_predicted_convergence_ends_where_one_more_evaluation_would(monkeypatch):
    """A fit that stops on a predicted (quadratically converging) step matches the fit
    that evaluates once more, and saves that evaluation."""
    from coronalign.core import newton

    rng = np.random.default_rng(7)
    shape = (64, 64)
    science = blob_image(shape, seed=4)
    psf = shifted(science, 0.37, -0.21, 1.3) + 1e-3 * rng.normal(size=shape)
    weight = border_weight(shape)
    warm = register.fit_shift(psf, science, weight, start=(0.3, -0.15))
    monkeypatch.setattr(newton, "PREDICTED_FRACTION", 0.0)
    full = register.fit_shift(psf, science, weight, start=(0.3, -0.15))
    assert warm.converged
    assert full.converged
    assert warm.iterations < full.iterations
    assert abs(warm.xshift - full.xshift) <= 1e-7
    assert abs(warm.yshift - full.yshift) <= 1e-7
    assert warm.beta == pytest.approx(full.beta, rel=1e-9)
    assert warm.rms == pytest.approx(full.rms, rel=1e-6)
    assert warm.xshift_err == pytest.approx(full.xshift_err, rel=1e-4)


def test_a_reused_cross_buffer_gives_the_same_bits():
    """Fits of one science image after another into the same scratch array (as the
    alignment does) give the bits of fits with arrays of their own; a wrong one is refused."""
    shape = (48, 52)
    weight = border_weight(shape)
    weight_terms = objective.prepare_weight(weight)
    references = [
        objective.prepare_reference(
            shifted(blob_image(shape, seed=seed), 0.3, -0.2, 1.1), weight_terms
        )
        for seed in (1, 2)
    ]
    buffer = np.full(objective.Objectives.cross_shape(shape, len(references)), np.nan)
    for seed, start in ((3, None), (5, (0.2, -0.1))):
        science = objective.prepare_science(blob_image(shape, seed=seed), weight_terms)
        starts = [start] * len(references)
        alone = register.fit_many(science, references, weight_terms, starts=starts)
        reused = register.fit_many(
            science, references, weight_terms, starts=starts, cross_buffer=buffer
        )
        assert [fit.xshift for fit in alone] == [fit.xshift for fit in reused]
        assert [fit.yshift_err for fit in alone] == [fit.yshift_err for fit in reused]
        assert [fit.beta for fit in alone] == [fit.beta for fit in reused]
    science = objective.prepare_science(blob_image(shape, seed=3), weight_terms)
    with pytest.raises(ValueError, match="shape"):
        register.fit_many(science, references, weight_terms, cross_buffer=buffer[:1])
