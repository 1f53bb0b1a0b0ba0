"""Small analytic images for the engine tests (the simulator makes realistic ones)."""

import numpy as np

from coronalign.core.fourier import fourier_shift

__all__ = ["blob_image", "border_weight", "shifted"]


def blob_image(shape=(64, 64), seed=0):
    """A band-limited, asymmetric PSF-like image: a few Gaussians of different widths."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    y, x = np.mgrid[:ny, :nx].astype(float)
    image = np.zeros(shape)
    for _ in range(6):
        cy, cx = ny / 2 + rng.uniform(-ny / 6, ny / 6), nx / 2 + rng.uniform(-nx / 6, nx / 6)
        width = rng.uniform(1.5, 4.0)
        image += rng.uniform(0.2, 1.0) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * width**2))
    return image


def border_weight(shape, border=6):
    """Weight 1 inside, 0 in a border (so wrap-around does not matter)."""
    weight = np.zeros(shape)
    weight[border:-border, border:-border] = 1.0
    return weight


def shifted(image, dx, dy, beta=1.0):
    """``beta`` times ``image`` shifted by ``(dx, dy)``, the fit's own model."""
    return beta * fourier_shift(image, dx, dy)
