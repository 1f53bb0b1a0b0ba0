"""Align every reference PSF to every science integration (arrays in, planes out).

This is the step's loop: clean both stacks, fit every (integration, PSF) pair, shift
each PSF by minus its fitted shift, and hand the aligned planes of one integration at a
time to a *sink* (a callable), so a 4D product never has to be held in memory. No file
names and no I/O here; see :mod:`coronalign.io.product` for that.

Output DQ of plane ``[k, m]``: the PSF's DQ moved with the data (for a fractional shift
the union of the two neighbouring integer shifts), plus

* ``FLUX_ESTIMATED`` (2**28) where the value comes from a pixel that was replaced by
  the median filter (a neighbour of the source position was replaced), and
* ``DO_NOT_USE | OTHER_BAD_PIXEL`` where the value comes from data that wrapped around
  the frame edge (the source position ``x + xshift`` lies outside the frame): the
  Fourier shift is circular. With ``edges="pad"`` (:mod:`coronalign.core.edges`) nothing
  wraps, and those pixels, which have no source, are NaN in SCI and ERR.

Output ERR: by default ERR² convolved with the squared kernel of the shift
(:mod:`coronalign.core.variance`); ``err_shift="official"`` shifts ERR as signal.
``reference`` chooses the science image fitted (each integration, the first, their mean)
and ``blur_fwhm`` blurs both images for the fit only (:mod:`coronalign.core.blur`).

An integration whose cleaned data carry no weighted signal (for example an all-NaN
integration) cannot be fitted: its shifts are NaN, its fit status is ``no_data``, and
its planes are the unshifted PSFs with every pixel flagged ``DO_NOT_USE``.

Fit statuses (:class:`coronalign.dq.FitStatus`): ``converged``, ``not_converged``,
``no_data``, ``out_of_window`` (see :mod:`coronalign.core.register`) and ``outlier``: a
converged fit far from the same PSF's other fits (:mod:`coronalign.core.outliers`).
"""

import functools
import logging
import math
import time

import numpy as np

from coronalign import dq
from coronalign.core import register
from coronalign.core.badpix import clean_data_planes, clean_plane_stack
from coronalign.core.blur import gaussian_blur
from coronalign.core.edges import pad_frames, pad_widths
from coronalign.core.fourier import shift_single, single_phases, single_spectra
from coronalign.core.objective import (
    Objectives,
    prepare_reference,
    prepare_science,
    prepare_weight,
)
from coronalign.core.outliers import mark_outliers
from coronalign.core.pool import can_fork, map_in_processes
from coronalign.core.results import RESULT_COLUMNS, STATUS_DTYPE, AlignmentResult, Stack
from coronalign.core.scratch import Scratch
from coronalign.core.variance import VarianceShifter, clean_variances, variance_phases
from coronalign.dq import FitStatus

__all__ = [
    "DQ_DO_NOT_USE",
    "DQ_REPLACED",
    "DQ_WRAPPED",
    "RESULT_COLUMNS",
    "STATUS_DTYPE",
    "AlignmentResult",
    "Stack",
    "align_stacks",
    "mean_integration",
]

log = logging.getLogger(__name__)

DQ_DO_NOT_USE = np.uint32(dq.DO_NOT_USE)
#: Output pixels whose value comes from median-replaced input pixels.
DQ_REPLACED = np.uint32(dq.FLUX_ESTIMATED)
#: Output pixels whose value comes from data wrapped around the frame edge.
DQ_WRAPPED = np.uint32(dq.DO_NOT_USE | dq.OTHER_BAD_PIXEL)


def _median_or_nan(values):
    """Median of the finite values (NaN if there are none), without a warning."""
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else math.nan


def _moved(mask, dx, dy):
    """Where a per-pixel property ends up after shifting the image by ``-(dx, dy)``.

    Output pixel ``x`` takes its value from around ``x + d``; its neighbours there are
    at ``x + floor(d)`` and ``x + ceil(d)``, so the property is the union of the two
    integer shifts along each axis.
    """
    out = np.zeros_like(mask)
    for sy in {math.floor(dy), math.ceil(dy)}:
        for sx in {math.floor(dx), math.ceil(dx)}:
            out |= np.roll(mask, (-sy, -sx), axis=(0, 1))
    return out


def _wrapped(shape, dx, dy):
    """Output pixels whose source position ``x + d`` lies outside the frame."""
    ny, nx = shape
    x = np.arange(nx)
    y = np.arange(ny)
    out_x = (x + math.floor(dx) < 0) | (x + math.ceil(dx) > nx - 1)
    out_y = (y + math.floor(dy) < 0) | (y + math.ceil(dy) > ny - 1)
    return out_y[:, None] | out_x[None, :]


def _has_noise(variance):
    """Whether an ERR² array carries a usable noise: finite and positive somewhere."""
    return bool(np.any(np.isfinite(variance) & (variance > 0)))


#: PSFs fitted and shifted together; bounds the memory of the stacked transforms.
PSF_CHUNK = 16
#: Output DQ planes kept per PSF stack: one per PSF and integer-shift neighbourhood seen.
DQ_CACHE_SIZE = 256


class _Aligner:
    """What every integration's fits and shifts share: the cleaned PSFs and the weight."""

    def __init__(self, science, psfs, mask, options, workers):
        self.science = science
        self.bad_bits = options["bad_bits"]
        self.box_length = options["median_box_length"]
        self.zero_flags = options["zero_flags"]
        self.max_shift = options["max_shift"]
        self.priors = options["priors"]
        self.blur_fwhm = options["blur_fwhm"]
        self.propagate = options["err_shift"] == "propagated"
        self.weight_terms = prepare_weight(mask, options["weighting"])
        data, err, replaced = clean_plane_stack(
            psfs.data,
            psfs.err,
            psfs.dq,
            self.bad_bits,
            self.box_length,
            zero_flags=self.zero_flags,
        )
        self.npsfs = psfs.nplanes
        self.shape = data.shape[-2:]
        self.pad = None
        if options["edges"] == "pad":
            self.pad = pad_widths(self.shape, self.priors, self.max_shift)
        # SCI and ERR (or ERR², to propagate) of each PSF side by side, shifted together (in
        # single precision), in the padded frame when the edges are padded.
        second = np.square(err) if self.propagate else err
        self.frame = self.shape
        pair = np.stack((data, second), axis=1)
        if self.pad is not None:
            pair = pad_frames(pair, self.pad)
            self.frame = pair.shape[-2:]
        self.spectra = single_spectra(pair, workers)
        del pair
        fitted = data if self.blur_fwhm is None else gaussian_blur(data, self.blur_fwhm)
        self.terms = [prepare_reference(plane, self.weight_terms) for plane in fitted]
        self.dq = np.asarray(psfs.dq, dtype=np.uint32)
        self.replaced = replaced
        self.unshifted = (data, err)
        # The fit errors are propagated from the noise variances (VAR_POISSON + VAR_RNOISE,
        # else ERR²) when both carry a noise (coronalign.core.uncertainty); without one, or
        # when the images are blurred (the pixels' noise is then correlated), the
        # residual-variance estimate.
        if psfs.noise_variance is None:  # ERR² of the cleaned ERR (no NaN)
            variances = np.square(np.asarray(err, dtype=np.float64))
        else:
            variances = np.stack([psfs.variance(m) for m in range(psfs.nplanes)])
        usable = _has_noise(variances) and self.blur_fwhm is None
        self.variances = variances if usable else None
        self._dq_cache = {}
        # The PSFs' VAR_* arrays, where the stack has them, go to the product with the PSFs.
        self.variance_shifter = None
        if psfs.variance_arrays:
            cleaned = clean_variances(
                psfs.variance_arrays, psfs.data, psfs.dq, self.bad_bits, self.box_length,
                zero_flags=self.zero_flags,
            )  # fmt: skip
            self.variance_shifter = VarianceShifter(cleaned, self.pad, self.propagate, workers)
        # The PSFs moved by the last fits, made for their errors in the SCI block of the
        # product (allocated by the first fit that needs it), and the shift of each plane.
        self._shifted_block = None
        self._shifted = {}
        self._scratch = Scratch(np.float64)  # the fits' cross terms

    def fit(self, k, starts):
        """Fit every PSF to science integration ``k`` (cleaned here), from ``starts``."""
        self._shifted_block = None
        self._shifted = {}
        clean, _ = clean_data_planes(  # the fit needs no ERR
            self.science.data[k : k + 1],
            self.science.dq[k : k + 1],
            self.bad_bits,
            self.box_length,
            zero_flags=self.zero_flags,
        )
        plane = clean[0] if self.blur_fwhm is None else gaussian_blur(clean[0], self.blur_fwhm)
        science_terms = prepare_science(plane, self.weight_terms)
        science_variance = self.science.variance(k)
        if self.variances is None or not _has_noise(science_variance):
            science_variance = None
        fits = []
        for first in range(0, self.npsfs, PSF_CHUNK):
            chunk = range(first, min(first + PSF_CHUNK, self.npsfs))
            fits += register.fit_many(
                science_terms,
                [self.terms[m] for m in chunk],
                self.weight_terms,
                priors=[self.priors[m] for m in chunk],
                max_shift=self.max_shift,
                starts=[starts[m] for m in chunk],
                science_variance=science_variance,
                reference_variances=(
                    None if science_variance is None else [self.variances[m] for m in chunk]
                ),
                reference_spectra=self._fitted_spectra(chunk),
                shifted_references=self._shifter(chunk),
                # the same memory for every integration (core/scratch.py)
                cross_buffer=self._scratch.array(Objectives.cross_shape(self.shape, len(chunk))),
            )
        return fits

    def _shifter(self, chunk):
        """What moves the PSFs of ``chunk`` by minus their fitted shifts for the errors,
        keeping the planes for :meth:`planes` (the same operation and bits as the product's
        SCI); None where the fitted images are not the product's (padding, blur)."""
        if self.pad is not None or self.blur_fwhm is not None:
            return None

        def shift(d):
            if self._shifted_block is None:
                self._shifted_block = np.empty((self.npsfs, *self.shape), dtype=np.float32)
            out = self._shifted_block[chunk.start : chunk.stop]
            phases = single_phases(self.frame, -d[:, 0], -d[:, 1])
            for i, m in enumerate(chunk):
                one = tuple(phase[i] for phase in phases)
                shift_single((self.spectra[0][m, :1], self.spectra[1][m, :1]), one, out[i : i + 1])
                self._shifted[m] = (float(d[i, 0]), float(d[i, 1]))
            return out

        return shift

    def _fitted_spectra(self, chunk):
        """The spectra of the PSFs of ``chunk`` as fitted, for the errors: those kept for the
        shift when they are of the same images (no padding, no blur); else None (the fit
        then computes them from the images it fitted)."""
        if self.pad is not None or self.blur_fwhm is not None:
            return None
        return self.spectra[0][chunk, 0], self.spectra[1][chunk, 0]

    def moved_dq(self, m, dx, dy):
        """Output DQ of PSF ``m`` shifted by ``-(dx, dy)`` (the same for every shift
        between the same integer neighbours, so kept for the next integrations)."""
        key = (m, math.floor(dx), math.ceil(dx), math.floor(dy), math.ceil(dy))
        dq = self._dq_cache.get(key)
        if dq is None:
            dq = _moved(self.dq[m], dx, dy)
            dq[_moved(self.replaced[m], dx, dy)] |= DQ_REPLACED
            dq[_wrapped(self.shape, dx, dy)] |= DQ_WRAPPED
            if len(self._dq_cache) >= DQ_CACHE_SIZE:
                self._dq_cache.pop(next(iter(self._dq_cache)))
            self._dq_cache[key] = dq
        return dq

    def planes(self, fits):
        """The PSFs aligned to one integration, from its fits: SCI, ERR and DQ blocks."""
        # The SCI planes shifted for the fits' errors already (see _shifter), if these are
        # those fits: the same bits.
        made = {m for m, fit in enumerate(fits) if self._shifted.get(m) == (fit.xshift, fit.yshift)}
        sci_block = self._shifted_block if made else None
        self._shifted_block, self._shifted = None, {}
        if sci_block is None:
            sci_block = np.empty((self.npsfs, *self.shape), dtype=np.float32)
        err_block = np.empty((self.npsfs, *self.shape), dtype=np.float32)
        dq_block = np.empty((self.npsfs, *self.shape), dtype=np.uint32)
        shifts = np.array([(fit.xshift, fit.yshift) for fit in fits])
        finite = np.isfinite(shifts[:, 0])
        phases = single_phases(self.frame, -shifts[finite, 0], -shifts[finite, 1])
        if self.propagate:
            variance = variance_phases(self.frame, -shifts[finite, 0], -shifts[finite, 1])
        together = not self.propagate and self.pad is None  # SCI and ERR, one operator
        if not together:
            frames = np.empty((2, *self.frame), dtype=np.float32)
        done = 0
        for m, fit in enumerate(fits):
            if not finite[m]:  # no usable data: the unshifted PSF, flagged
                sci_block[m] = self.unshifted[0][m]
                err_block[m] = self.unshifted[1][m]
                dq_block[m] = self.dq[m] | DQ_DO_NOT_USE
                continue
            real, imag = self.spectra[0][m], self.spectra[1][m]
            one = tuple(phase[done] for phase in phases)
            shifted = sci_block[m] if m in made else None
            if together and shifted is not None:
                shift_single((real[1:], imag[1:]), one, err_block[m : m + 1])
            elif together:
                shift_single((real, imag), one, (sci_block[m], err_block[m]))
            else:
                if shifted is None:
                    shift_single((real[:1], imag[:1]), one, frames[:1])
                if self.propagate:
                    one = tuple(phase[done] for phase in variance)
                shift_single((real[1:], imag[1:]), one, frames[1:])
                self._store(frames, sci_block[m], err_block[m], fit, shifted is None)
            done += 1
            dq_block[m] = self.moved_dq(m, fit.xshift, fit.yshift)
        return sci_block, err_block, dq_block

    def delivered(self, fits):
        """What the sink gets for one set of fits: the SCI, ERR and DQ blocks, and the
        keyword ``variances`` (name to block) when the PSF stack has variance arrays."""
        blocks = self.planes(fits)
        if self.variance_shifter is None:
            return blocks, {}
        shifts = np.array([(fit.xshift, fit.yshift) for fit in fits])
        return blocks, {"variances": self.variance_shifter.planes(shifts, blocks[1])}

    def _store(self, frames, sci, err, fit, with_sci=True):
        """One shifted (SCI, ERR or ERR²) frame pair into its product planes (the ERR one
        alone without ``with_sci``: the SCI plane is there already)."""
        ny, nx = self.shape
        top, left = (0, 0) if self.pad is None else (self.pad[0][0], self.pad[1][0])
        if with_sci:
            sci[...] = frames[0, top : top + ny, left : left + nx]
        second = frames[1, top : top + ny, left : left + nx]
        if self.propagate:
            # Rounding can leave a variance a hair below 0 where it is 0.
            np.sqrt(np.maximum(second, 0, out=second), out=err)
        else:
            err[...] = second
        if self.pad is not None:  # no source in the frame: not invented, NaN (and flagged)
            outside = _wrapped(self.shape, fit.xshift, fit.yshift)
            sci[outside] = np.nan
            err[outside] = np.nan


def align_stacks(
    science,
    psfs,
    mask,
    sink,
    *,
    bad_bits=1,
    median_box_length=3,
    zero_flags=0,
    weighting="official",
    max_shift=register.DEFAULT_MAX_SHIFT,
    priors=None,
    integrations=None,
    edges="wrap",
    reference="each",
    blur_fwhm=None,
    err_shift="propagated",
    threads=1,
    processes=1,
):
    """Fit and align every PSF of a stack to every science integration.

    The first integration's fits make a cold start (the prior and the cross-correlation
    peaks in the window, see :mod:`coronalign.core.register`); every other
    integration's start from the first one's (see ``register.WARM_START_RADIUS``), so each
    integration's result depends on the data alone, never on which process computed it.
    Each worker process fits the first integration for itself (identically) rather than
    wait for another to do it.

    Parameters
    ----------
    science : Stack
        Science integrations, shape (nints, ny, nx).
    psfs : Stack
        Reference PSF stack, shape (npsfs, ny, nx).
    mask : ndarray, shape (ny, nx)
        The PSFMASK: 1 use, 0 ignore, fractions allowed.
    sink : callable
        Called once per fitted integration as ``sink(row, sci, err, dq)`` with float32
        ``sci``/``err`` and uint32 ``dq`` blocks of shape (npsfs, ny, nx): the PSFs
        aligned to that integration. Rows come in order when ``processes`` is 1; with
        more, the sink is also called from forked worker processes and must deliver what
        it is given from there (as :class:`coronalign.io.product.ProductWriter` does, by
        writing to its file). When ``psfs`` has ``variance_arrays``, the call also has the
        keyword ``variances``: name to float32 block, each moved as ERR² is
        (:class:`coronalign.core.variance.VarianceShifter`).
    bad_bits : int, optional
        DQ bits marking pixels to replace (see
        :func:`coronalign.steps.parameters.parse_bad_bits`).
    median_box_length : int, optional
        Median box length for bad-pixel replacement.
    zero_flags : int, optional
        Bad pixels with any of these DQ bits become 0 instead of a median (MIRI passes
        ``NON_SCIENCE``).
    weighting : {"official", "linear"}, optional
        The fit weight is ``mask²`` (official: the residual times the mask) or ``mask``.
    max_shift : float, optional
        No fit ends farther than this (pixels) from its prior.
    priors : array_like, shape (npsfs, 2), optional
        Expected ``(xshift, yshift)`` of each PSF (from pointing metadata); default zero.
    integrations : sequence of int, optional
        Science integrations to align to (default: all). ``[0]`` gives the jwst ≥ 1.16
        3D product.
    edges : {"wrap", "pad"}, optional
        ``wrap``: the circular shift (official); ``pad``: each PSF shifted inside a
        reflect-padded frame (:mod:`coronalign.core.edges`), the output pixels with no
        source in the frame NaN in SCI and ERR. Both flag those pixels
        ``DO_NOT_USE | OTHER_BAD_PIXEL``.
    reference : {"each", "first", "mean"}, optional
        ``each``: fit every integration; ``first``: fit ``integrations[0]`` only, every row
        gets its fits and planes (jwst ≥ 1.16); ``mean``: fit the mean of all the cleaned
        integrations (:func:`mean_integration`), every row gets its fits and planes. With
        ``first`` and ``mean`` the sink is called from this process only.
    blur_fwhm : float, optional
        FWHM in pixels of a Gaussian blur of both images for the fit only
        (:mod:`coronalign.core.blur`); the products are shifted unblurred. The fit errors are
        then the residual-variance estimate.
    err_shift : {"propagated", "official"}, optional
        ``propagated``: ERR² convolved with the squared kernel of the shift
        (:mod:`coronalign.core.variance`); ``official``: ERR shifted as signal.
    threads : int, optional
        Threads of the PSF stack's Fourier transforms. Results do not depend on it.
    processes : int, optional
        Processes to share the integrations among, this one included (forked, Linux only;
        see :mod:`coronalign.core.pool`); the caller decides, knowing whether its ``sink``
        can be called from forked processes. Results do not depend on it. Keep BLAS
        single-threaded (``OPENBLAS_NUM_THREADS=1``, as the command line does), or the
        processes' BLAS threads oversubscribe the cores.

    Returns
    -------
    AlignmentResult
    """
    nints, npsfs = science.nplanes, psfs.nplanes
    integrations = list(range(nints)) if integrations is None else list(integrations)
    started = time.perf_counter()
    options = {
        "bad_bits": bad_bits,
        "median_box_length": median_box_length,
        "zero_flags": zero_flags,
        "weighting": weighting,
        "max_shift": max_shift,
        "priors": np.zeros((npsfs, 2)) if priors is None else np.asarray(priors, dtype=float),
        "edges": edges,
        "blur_fwhm": blur_fwhm,
        "err_shift": err_shift,
    }
    aligner = _Aligner(science, psfs, mask, options, threads)
    log.info(
        "aligning %d PSF(s) to %d integration(s) of %dx%d pixels (%d process(es))",
        npsfs,
        len(integrations),
        *aligner.shape,
        min(processes if can_fork() else 1, max(1, len(integrations))),
    )

    @functools.cache
    def first_fits():
        """The first row's fits, from the cross-correlation start: computed once in each
        process that needs them (identically), never passed between processes."""
        return aligner.fit(integrations[0], [None] * npsfs)

    @functools.cache
    def anchors():
        """Warm starts for the other rows: the first row's converged shifts."""
        return [
            (fit.xshift, fit.yshift) if fit.status == FitStatus.CONVERGED else None
            for fit in first_fits()
        ]

    def fits_for(row):
        """The fits of one row."""
        return first_fits() if row == 0 else aligner.fit(integrations[row], anchors())

    def align_row(row):
        """Fit, shift and deliver the PSFs of one integration; return its fits."""
        fits = fits_for(row)
        if not any(math.isfinite(fit.xshift) for fit in fits):
            log.warning(
                "integration %d has no usable data under the mask: its planes are the "
                "unshifted PSFs flagged DO_NOT_USE",
                integrations[row],
            )
        blocks, variances = aligner.delivered(fits)
        sink(row, *blocks, **variances)
        log.info(
            "integration %d/%d: %d fits, median shift (%.3f, %.3f) px, %.2f s elapsed",
            row + 1,
            len(integrations),
            npsfs,
            _median_or_nan(np.array([fit.xshift for fit in fits])),
            _median_or_nan(np.array([fit.yshift for fit in fits])),
            time.perf_counter() - started,
        )
        return fits

    if reference != "each":
        return _align_once(aligner, science, integrations, sink, reference, started)
    rows = map_in_processes(align_row, range(len(integrations)), processes, name="rows")
    return _result_table(integrations, rows, npsfs)


#: Integrations cleaned at a time for their mean (bounds the memory of ``reference: mean``).
MEAN_CHUNK = 8


def mean_integration(science, bad_bits, box_length, zero_flags):
    """The mean of the cleaned science integrations, as a one-plane :class:`Stack`.

    Each integration is cleaned as for its own fit (bad pixels replaced by the box median),
    then averaged; the ERR is that of a mean of independent integrations,
    ``sqrt(Σ ERR²) / n`` (non-finite ERR values count as 0). The DQ is 0: the mean has no
    bad pixel left.

    Parameters
    ----------
    science : Stack
        The science integrations.
    bad_bits, box_length, zero_flags : int
        As for :func:`coronalign.core.badpix.clean_data_planes`.

    Returns
    -------
    Stack
        Shape (1, ny, nx), float64.
    """
    n = science.nplanes
    total = np.zeros(science.data.shape[-2:], dtype=np.float64)
    variance = np.zeros_like(total)
    for first in range(0, n, MEAN_CHUNK):
        part = slice(first, min(first + MEAN_CHUNK, n))
        clean, _ = clean_data_planes(
            science.data[part], science.dq[part], bad_bits, box_length, zero_flags=zero_flags
        )
        total += clean.sum(axis=0)
        err = np.asarray(science.err[part], dtype=np.float64)
        variance += np.where(np.isfinite(err), err * err, 0.0).sum(axis=0)
    return Stack(
        data=(total / n)[None],
        err=(np.sqrt(variance) / n)[None],
        dq=np.zeros((1, *total.shape), dtype=np.uint32),
    )


def _align_once(aligner, science, integrations, sink, reference, started):
    """``reference: first | mean``: one fit of every PSF, the same planes for every row."""
    if reference == "mean":
        aligner.science = mean_integration(
            science, aligner.bad_bits, aligner.box_length, aligner.zero_flags
        )
        fits = aligner.fit(0, [None] * aligner.npsfs)
    else:
        fits = aligner.fit(integrations[0], [None] * aligner.npsfs)
    if not any(math.isfinite(fit.xshift) for fit in fits):
        log.warning(
            "the %s integration has no usable data under the mask: the planes are the "
            "unshifted PSFs flagged DO_NOT_USE",
            reference,
        )
    blocks, variances = aligner.delivered(fits)
    for row in range(len(integrations)):
        sink(row, *blocks, **variances)
    log.info(
        "%d fits to the %s integration, median shift (%.3f, %.3f) px, given to %d "
        "integration(s), %.2f s elapsed",
        aligner.npsfs,
        reference,
        _median_or_nan(np.array([fit.xshift for fit in fits])),
        _median_or_nan(np.array([fit.yshift for fit in fits])),
        len(integrations),
        time.perf_counter() - started,
    )
    return _result_table(integrations, [fits] * len(integrations), aligner.npsfs)


def _result_table(integrations, rows, npsfs):
    """The fits of every row gathered into an :class:`AlignmentResult`."""
    fields = dict.fromkeys(("xprior", "yprior"), "prior")
    table = {name: np.full((len(integrations), npsfs), np.nan) for name in RESULT_COLUMNS}
    iterations = np.zeros((len(integrations), npsfs), dtype=np.int64)
    status = np.empty((len(integrations), npsfs), dtype=STATUS_DTYPE)
    for row, fits in enumerate(rows):
        for m, fit in enumerate(fits):
            for name in RESULT_COLUMNS:
                if name in fields:
                    table[name][row, m] = fit.prior[name == "yprior"]
                else:
                    table[name][row, m] = getattr(fit, name)
            iterations[row, m] = fit.iterations
            status[row, m] = fit.status
    mark_outliers(
        table["xshift"], table["yshift"], status, table["xshift_err"], table["yshift_err"]
    )
    return AlignmentResult(integrations=integrations, iterations=iterations, status=status, **table)
