"""Fourier optics of a coronagraph: pupil, phase screens, occulter, Lyot stop, and the
exact, band-limited image spectra they give (see :mod:`coronalign.simulation`).

Every transcendental function, complex product and sum of products here comes from
:mod:`coronalign.core.reproducible` (or :func:`numpy.sum`), not from numpy's dispatched
ufuncs, libm or BLAS: the same options give the same arrays, bit for bit, on every CPU and
BLAS kernel (the pocketfft transforms of :mod:`scipy.fft` have no run-time dispatch).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import scipy.fft as sfft

from coronalign.core import reproducible as rep
from coronalign.simulation.instruments import ARCSEC, TELESCOPE_DIAMETER

__all__ = [
    "Optics",
    "coronagraphic_spectra",
    "make_optics",
    "mixing_weights",
    "occulter_sigma",
    "offaxis_spectrum",
    "phase_screens",
    "real_scale",
    "reference_static_screen",
    "shift_ramp",
    "signed_indices",
]


@dataclasses.dataclass
class Optics:
    """Precomputed planes for one instrument and frame shape (float64/complex128)."""

    shape: tuple[int, int]
    box_y: np.ndarray  # indices of the pupil box rows in the unshifted (2ny, 2nx) grid
    box_x: np.ndarray
    pupil_box: np.ndarray  # entrance pupil amplitude on the box
    occulter: np.ndarray  # (2ny, 2nx) real focal-plane amplitude mask, unshifted layout
    crop_y: np.ndarray  # rows / columns of the 2x pupil grid kept for the final plane
    crop_x: np.ndarray
    lyot: np.ndarray  # (ny, nx) Lyot stop on the final pupil grid, unshifted layout
    lyot_box: np.ndarray  # Lyot stop on the pupil box (for the off-axis PSF)
    mtf: np.ndarray  # (ny, nx//2+1) pixel transfer function, with the band edge zeroed
    fy: np.ndarray  # (ny, 1) cycles / px
    fx: np.ndarray  # (1, nx//2+1)
    box_u: tuple[np.ndarray, np.ndarray]  # (uy, ux) pupil coordinates (m) of the box


def signed_indices(n):
    """Signed integer frequency indices in FFT order: 0, 1, ..., -2, -1.

    Parameters
    ----------
    n : int
        Length of the axis.

    Returns
    -------
    ndarray of int
    """
    i = np.arange(n)
    return np.where(i < (n + 1) // 2, i, i - n)


def _spiders(uy, ux, width, angles_deg):
    out = np.zeros(np.broadcast(uy, ux).shape, dtype=bool)
    cos, sin = rep.sincos_2pi(np.asarray(angles_deg, dtype=np.float64) / 360.0)
    for c, s in zip(cos, sin, strict=True):
        along = ux * c + uy * s
        across = -ux * s + uy * c
        out |= (along > 0) & (np.abs(across) < 0.5 * width)
    return out


def _radius(y, x):
    """``sqrt(y**2 + x**2)`` with IEEE-rounded operations only (``np.hypot`` calls libm)."""
    return np.sqrt(y * y + x * x)


def real_scale(spectrum, factor):
    """``spectrum * factor`` in place for a complex ``spectrum`` and a real ``factor``.

    Real and imaginary parts are scaled separately: numpy would make ``factor`` complex
    and use its dispatched complex product.

    Parameters
    ----------
    spectrum : ndarray of complex128
        Scaled in place.
    factor : array_like of float
        Broadcasts against ``spectrum``.

    Returns
    -------
    ndarray
        ``spectrum``.
    """
    spectrum.real *= factor
    spectrum.imag *= factor
    return spectrum


def _pupil_field(amplitude, phase):
    """``amplitude * exp(1j * phase)`` (phase in radians), the same bits on every CPU."""
    field = rep.expi_2pi(np.asarray(phase) * (1.0 / (2.0 * math.pi)))
    return real_scale(field, amplitude)


def occulter_sigma(setup):
    """Gaussian width (px) of the round occulter's amplitude profile ``1 - exp(-r**2/2s**2)``.

    Its intensity transmission ``(1 - exp(-r**2 / 2 s**2))**2`` is 0.5 at ``occulter_hwhm``.

    Parameters
    ----------
    setup : Setup
        A configuration with a round occulter.

    Returns
    -------
    float
    """
    return setup.occulter_hwhm / math.sqrt(-2.0 * float(rep.log(1.0 - math.sqrt(0.5))))


def _spot_and_bar(setup, dy, dx):
    """True where the opaque spot (and its bar, towards +y) of a "spot" occulter is."""
    opaque = dy**2 + dx**2 <= setup.occulter_radius**2
    if setup.bar_halfwidth > 0:
        opaque = opaque | ((np.abs(dx) <= setup.bar_halfwidth) & (dy >= 0))
    return opaque


def make_optics(setup, shape):
    """The planes of one configuration and frame: pupil, occulter, Lyot stop, pixel MTF.

    Parameters
    ----------
    setup : Setup
        The configuration.
    shape : tuple of int
        ``(ny, nx)`` of the detector frame.

    Returns
    -------
    Optics
    """
    ny, nx = shape
    p = setup.pixel_scale * ARCSEC
    lam = setup.wavelength
    D = TELESCOPE_DIAMETER
    du_y = lam / (ny * p)  # pupil sampling (m) of both the 2x and the final grids
    du_x = lam / (nx * p)
    Ny, Nx = 2 * ny, 2 * nx
    # pupil box: smallest centred block that holds the telescope pupil
    hy = math.ceil(0.5 * D / du_y) + 2
    hx = math.ceil(0.5 * D / du_x) + 2
    iy = np.arange(-hy, hy + 1)
    ix = np.arange(-hx, hx + 1)
    uy = (iy * du_y)[:, None]
    ux = (ix * du_x)[None, :]
    r = _radius(uy, ux)
    spider_angles = (90.0, 210.0, 330.0)
    pupil = (r <= 0.5 * D) & (r >= 0.5 * 0.11 * D) & ~_spiders(uy, ux, 0.02 * D, spider_angles)
    lyot_box = (
        (r <= 0.5 * setup.lyot_outer * D)
        & (r >= 0.5 * setup.lyot_inner * D)
        & ~_spiders(uy, ux, 0.06 * D, spider_angles)
    )
    # focal plane at 2x sampling: coordinates in detector pixels, origin at index 0
    yy = (signed_indices(Ny) / 2.0)[:, None] - setup.occulter_offset[0]
    xx = (signed_indices(Nx) / 2.0)[None, :] - setup.occulter_offset[1]
    if setup.occulter == "round":
        sigma = occulter_sigma(setup)
        occ = 1.0 - rep.exp(-(yy**2 + xx**2) / (2.0 * sigma**2))
    elif setup.occulter == "spot":
        occ = (~_spot_and_bar(setup, yy, xx)).astype(np.float64)
    else:  # four-quadrant phase mask: pi phase in two opposite quadrants
        occ = np.sign(yy + 0.25) * np.sign(xx + 0.25)
    crop_y = np.r_[0 : (ny + 1) // 2, Ny - ny // 2 : Ny]
    crop_x = np.r_[0 : (nx + 1) // 2, Nx - nx // 2 : Nx]
    # Lyot stop on the final (ny, nx) pupil grid, unshifted layout
    ky = signed_indices(ny)[:, None] * du_y
    kx = signed_indices(nx)[None, :] * du_x
    rk = _radius(ky, kx)
    lyot = (
        (rk <= 0.5 * setup.lyot_outer * D)
        & (rk >= 0.5 * setup.lyot_inner * D)
        & ~_spiders(ky, kx, 0.06 * D, spider_angles)
    )
    # band limit of the intensity (autocorrelation of the Lyot stop), in cycles / px
    band_y = setup.lyot_outer * D / du_y / ny
    band_x = setup.lyot_outer * D / du_x / nx
    if max(band_y, band_x) >= 0.5 - 1.0 / min(ny, nx):
        raise AssertionError("Lyot stop too large: the image would not be band-limited")
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.rfftfreq(nx)[None, :]
    mtf = rep.sinc(fy) * rep.sinc(fx)
    # zero everything beyond the band (it is zero analytically; this makes it exact)
    margin_y = band_y + 1.5 / ny
    margin_x = band_x + 1.5 / nx
    mtf = np.where((np.abs(fy) < margin_y) & (fx < margin_x), mtf, 0.0)
    return Optics(
        shape=(ny, nx),
        box_y=iy % Ny,
        box_x=ix % Nx,
        pupil_box=pupil.astype(np.float64),
        occulter=occ,
        crop_y=crop_y,
        crop_x=crop_x,
        lyot=lyot.astype(np.float64),
        lyot_box=lyot_box.astype(np.float64),
        mtf=mtf,
        fy=fy,
        fx=fx,
        box_u=(uy, ux),
    )


def phase_screens(rng, optics, count, rms_nm, wavelength, slope):
    """``count`` random wavefront screens (radians) on the pupil box.

    Power-law spectrum ``f**-slope``; piston, tip and tilt are removed over the pupil
    (tip/tilt would move the star, which the simulation sets explicitly) and the RMS over
    the pupil is scaled to ``rms_nm``.

    Parameters
    ----------
    rng : numpy.random.Generator
        The stream to draw from.
    optics : Optics
        The pupil box.
    count : int
        Screens to draw.
    rms_nm : float
        RMS wavefront error over the pupil.
    wavelength : float
        Metres.
    slope : float
        Power-law index of the spectrum.

    Returns
    -------
    ndarray, shape (count, by, bx)
    """
    uy, ux = optics.box_u
    by, bx = uy.shape[0], ux.shape[1]
    shape = (count, by, bx)
    if count == 0 or rms_nm == 0:
        return np.zeros(shape)
    fy = np.fft.fftfreq(by)[:, None]
    fx = np.fft.fftfreq(bx)[None, :]
    f2 = fy**2 + fx**2
    f2[0, 0] = np.inf
    filt = rep.power(f2, -slope / 4.0)
    noise = rng.standard_normal(shape)
    screens = sfft.ifft2(real_scale(sfft.fft2(noise, axes=(1, 2)), filt), axes=(1, 2)).real
    inside = optics.pupil_box > 0
    basis = np.stack([np.ones(inside.sum()), uy.repeat(bx, 1)[inside], ux.repeat(by, 0)[inside]])
    values = screens[:, inside]
    # least squares by the normal equations (3 unknowns), with sums of numpy's fixed order
    gram = rep.exact_small_matmul(basis, basis.T)
    coef = rep.solve_3x3(gram[None], rep.exact_small_matmul(values, basis.T))  # (count, 3)
    values = values - (coef[:, 0:1] * basis[0] + coef[:, 1:2] * basis[1] + coef[:, 2:3] * basis[2])
    values *= (rms_nm / np.sqrt(np.mean(values**2, axis=1)))[:, None]
    screens[:] = 0.0
    screens[:, inside] = values
    return screens * (2.0 * math.pi * 1e-9 / wavelength)


def mixing_weights(decorrelation):
    """How much of the science and of an independent screen the references get.

    Parameters
    ----------
    decorrelation : float
        ``a``, between 0 and 1.

    Returns
    -------
    tuple of float
        ``(cos(a pi/2), sin(a pi/2))``, exactly (1, 0) at a = 0 and (0, 1) at a = 1.
    """
    if decorrelation >= 1.0:
        return 0.0, 1.0
    cos, sin = rep.sincos_2pi(0.25 * decorrelation)
    return float(cos), float(sin)


def reference_static_screen(rng, optics, setup, static, decorrelation):
    """The references' static phase screen: ``static`` partly replaced by an independent one.

    A second screen of the same statistics is drawn, made orthogonal to ``static`` over the
    pupil and scaled to the same RMS; the result ``cos(a pi/2) static + sin(a pi/2) other``
    then has exactly the RMS of ``static`` and a correlation of exactly ``cos(a pi/2)`` with
    it over the pupil (a = ``decorrelation``).

    Parameters
    ----------
    rng : numpy.random.Generator
        The ``reference_wavefront`` stream.
    optics : Optics
        The pupil box.
    setup : Setup
        The configuration (static wavefront error, wavelength).
    static : ndarray
        The science target's static screen.
    decorrelation : float
        ``a``, between 0 and 1.

    Returns
    -------
    ndarray
        The references' static screen.
    """
    other = phase_screens(rng, optics, 1, setup.static_wfe, setup.wavelength, slope=2.5)[0]
    inside = optics.pupil_box > 0
    a, b = static[inside], other[inside]

    def dot(u, v):  # numpy's pairwise sum, not BLAS
        return float(np.sum(u * v))

    b = b - dot(a, b) / dot(a, a) * a
    b *= math.sqrt(dot(a, a) / dot(b, b))
    c, s = mixing_weights(decorrelation)
    out = np.zeros_like(static)
    out[inside] = c * a + s * b
    return out


def coronagraphic_spectra(optics, phases, chunk=4):
    """Spectra of the coronagraphic images of stars at the origin, one per phase screen.

    Parameters
    ----------
    optics : Optics
        The planes.
    phases : ndarray, shape (n, by, bx)
        Wavefront phase of each star (radians) on the pupil box.
    chunk : int, optional
        Stars propagated together (bounds the memory).

    Returns
    -------
    ndarray, shape (n, ny, nx // 2 + 1)
        rfft2 layout, pixel MTF applied.
    """
    ny, nx = optics.shape
    n = phases.shape[0]
    out = np.empty((n, ny, nx // 2 + 1), dtype=np.complex128)
    field = np.zeros((min(chunk, n), 2 * ny, 2 * nx), dtype=np.complex128)
    sel = np.ix_(optics.box_y, optics.box_x)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        c = stop - start
        field[:] = 0.0
        for j in range(c):  # one assignment per star, not per pixel
            field[j][sel] = _pupil_field(optics.pupil_box, phases[start + j])
        e1 = real_scale(sfft.fft2(field[:c], axes=(1, 2)), optics.occulter)
        lyot_plane = sfft.ifft2(e1, axes=(1, 2), overwrite_x=True)
        final = real_scale(lyot_plane[:, optics.crop_y][:, :, optics.crop_x], optics.lyot)
        e2 = sfft.fft2(final, axes=(1, 2), overwrite_x=True)
        intensity = e2.real**2 + e2.imag**2
        out[start:stop] = real_scale(sfft.rfft2(intensity, axes=(1, 2)), optics.mtf)
    return out


def offaxis_spectrum(optics, phase):
    """Spectrum of the non-coronagraphic PSF (no occulter, same Lyot stop): the companion.

    Parameters
    ----------
    optics : Optics
        The planes.
    phase : ndarray
        Wavefront phase (radians) on the pupil box.

    Returns
    -------
    ndarray, shape (ny, nx // 2 + 1)
    """
    ny, nx = optics.shape
    pupil = np.zeros((2 * ny, 2 * nx), dtype=np.complex128)
    pupil[np.ix_(optics.box_y, optics.box_x)] = _pupil_field(
        optics.pupil_box * optics.lyot_box, phase
    )
    final = pupil[optics.crop_y][:, optics.crop_x]
    e2 = sfft.fft2(final)
    return real_scale(sfft.rfft2(e2.real**2 + e2.imag**2), optics.mtf)


def shift_ramp(optics, y, x):
    """Fourier factors translating images by (y, x) pixels.

    Parameters
    ----------
    optics : Optics
        The frequencies.
    y, x : array_like, shape (n,)
        Translations in pixels.

    Returns
    -------
    ndarray, shape (n, ny, nx // 2 + 1)
    """
    ey = rep.expi_2pi(-optics.fy[None] * np.asarray(y, dtype=np.float64)[:, None, None])
    ex = rep.expi_2pi(-optics.fx[None] * np.asarray(x, dtype=np.float64)[:, None, None])
    return rep.complex_multiply(ey, ex)
