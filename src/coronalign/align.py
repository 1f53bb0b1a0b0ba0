"""Align every reference PSF to every science integration (arrays in, planes out).

This is the step's loop: clean both stacks, fit every (integration, PSF) pair, shift
each PSF by minus its fitted shift, and hand the aligned planes of one integration at a
time to a *sink* (a callable), so a 4D product never has to be held in memory. No file
names and no I/O here; see :mod:`coronalign.products` for that.

Output DQ of plane ``[k, m]``: the PSF's DQ moved with the data (for a fractional shift
the union of the two neighbouring integer shifts), plus

* ``FLUX_ESTIMATED`` (2**28) where the value comes from a pixel that was replaced by
  the median filter (a neighbour of the source position was replaced), and
* ``DO_NOT_USE | OTHER_BAD_PIXEL`` where the value comes from data that wrapped around
  the frame edge (the source position ``x + xshift`` lies outside the frame): the
  Fourier shift is circular.

An integration whose cleaned data carry no weighted signal (for example an all-NaN
integration) cannot be fitted: its shifts are NaN, its fit status is ``no_data``, and
its planes are the unshifted PSFs with every pixel flagged ``DO_NOT_USE``.
"""

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from . import register
from .badpix import clean_plane_stack
from .fourier import pair_spectrum, shift_pair_spectrum

__all__ = [
    "DQ_DO_NOT_USE",
    "DQ_REPLACED",
    "DQ_WRAPPED",
    "AlignmentResult",
    "Stack",
    "align_stacks",
]

log = logging.getLogger(__name__)

DQ_DO_NOT_USE = np.uint32(1)
#: Output pixels whose value comes from median-replaced input pixels.
DQ_REPLACED = np.uint32(2**28)  # FLUX_ESTIMATED
#: Output pixels whose value comes from data wrapped around the frame edge.
DQ_WRAPPED = np.uint32(1 | 2**30)  # DO_NOT_USE | OTHER_BAD_PIXEL

FIT_STATUS = ("converged", "not_converged", "no_data")


@dataclass(frozen=True)
class Stack:
    """A stack of images with their uncertainties and data-quality flags.

    Attributes
    ----------
    data, err : ndarray, shape (nplanes, ny, nx)
        Values and 1-sigma uncertainties (any float dtype).
    dq : ndarray of unsigned int, shape (nplanes, ny, nx)
        JWST DQ flags.
    """

    data: np.ndarray
    err: np.ndarray
    dq: np.ndarray

    @property
    def nplanes(self):
        """Number of planes (integrations or PSFs)."""
        return self.data.shape[0]


@dataclass
class AlignmentResult:
    """Fitted parameters, one row per fitted integration and one column per PSF."""

    integrations: list
    xshift: np.ndarray
    yshift: np.ndarray
    beta: np.ndarray
    rms: np.ndarray
    iterations: np.ndarray
    status: np.ndarray = field(repr=False)

    @property
    def converged(self):
        """True where the fit converged."""
        return self.status == "converged"


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


#: A warm start is trusted only if the fit converges within this distance of it (pixels).
WARM_START_RADIUS = 1.0
#: PSFs fitted and shifted together; bounds the memory of the stacked transforms.
PSF_CHUNK = 16


def _fit_with_warm_starts(science_terms, references, weight_total, warm_starts, workers):
    """Fit PSFs, starting each from the previous integration's result when there is one.

    Integrations of one exposure share the pointing, so the previous integration's shift
    is within a small fraction of a pixel of the new one and Newton converges in fewer
    steps, without the cross-correlation start. A fit that does not converge, or ends
    farther than ``WARM_START_RADIUS`` from its start, is made again from the
    cross-correlation start, which is what every first integration uses.
    """
    fits = register.fit_many(
        science_terms, references, weight_total, starts=warm_starts, workers=workers
    )
    redo = [
        i
        for i, (fit, start) in enumerate(zip(fits, warm_starts, strict=True))
        if start is not None
        and not (
            fit.converged
            and math.hypot(fit.xshift - start[0], fit.yshift - start[1]) <= WARM_START_RADIUS
        )
    ]
    if redo:
        again = register.fit_many(
            science_terms, [references[i] for i in redo], weight_total, workers=workers
        )
        for i, fit in zip(redo, again, strict=True):
            fits[i] = fit
    return fits


class _PreparedPsfs:
    """The cleaned PSF stack with the transforms every fit and shift needs."""

    def __init__(self, psfs, weight_terms, bad_bits, box_length, zero_flags, workers=1):
        data, err, replaced = clean_plane_stack(
            psfs.data, psfs.err, psfs.dq, bad_bits, box_length, zero_flags=zero_flags
        )
        self.shape = data.shape[-2:]
        self.spectra = pair_spectrum(data, err, workers)  # SCI and ERR shifted together
        self.terms = [register.prepare_reference(plane, weight_terms) for plane in data]
        self.dq = np.asarray(psfs.dq, dtype=np.uint32)
        self.replaced = replaced
        self.unshifted = (data, err)

    def aligned(self, m, dx, dy):
        """PSF ``m`` shifted by ``-(dx, dy)``: SCI, ERR and DQ planes."""
        sci, err = shift_pair_spectrum(self.spectra[m], -dx, -dy)
        dq = _moved(self.dq[m], dx, dy)
        dq[_moved(self.replaced[m], dx, dy)] |= DQ_REPLACED
        dq[_wrapped(self.shape, dx, dy)] |= DQ_WRAPPED
        return sci, err, dq


def align_stacks(
    science,
    psfs,
    weight,
    sink,
    *,
    bad_bits=1,
    median_box_length=3,
    zero_flags=0,
    integrations=None,
    threads=1,
):
    """Fit and align every PSF of a stack to every science integration.

    Parameters
    ----------
    science : Stack
        Science integrations, shape (nints, ny, nx).
    psfs : Stack
        Reference PSF stack, shape (npsfs, ny, nx).
    weight : ndarray, shape (ny, nx)
        Fit weight (the PSFMASK): 1 use, 0 ignore, fractions allowed.
    sink : callable
        Called once per fitted integration, in order, as
        ``sink(index, sci, err, dq)`` with float64 ``sci``/``err`` and uint32 ``dq``
        blocks of shape (npsfs, ny, nx): the PSFs aligned to that integration.
    bad_bits : int, optional
        DQ bits marking pixels to replace (see :func:`coronalign.badpix.parse_bad_bits`).
    median_box_length : int, optional
        Median box length for bad-pixel replacement.
    zero_flags : int, optional
        Bad pixels with any of these DQ bits become 0 instead of a median (MIRI passes
        ``NON_SCIENCE``).
    integrations : sequence of int, optional
        Science integrations to fit (default: all). ``[0]`` gives the jwst ≥ 1.16
        3D product.
    threads : int, optional
        With 2 or more, the next integration is prepared and the previous one's PSFs are
        shifted on worker threads while this thread fits; the batched transforms of the
        PSF stack and of the cross-correlation starts also use them. Results do not depend
        on the number of threads.

    Returns
    -------
    AlignmentResult
    """
    nints, npsfs = science.nplanes, psfs.nplanes
    integrations = list(range(nints)) if integrations is None else list(integrations)
    weight_terms = register.prepare_weight(weight)
    started = time.perf_counter()
    prepared = _PreparedPsfs(psfs, weight_terms, bad_bits, median_box_length, zero_flags, threads)
    shape = prepared.shape
    table = {
        name: np.full((len(integrations), npsfs), np.nan)
        for name in ("xshift", "yshift", "beta", "rms")
    }
    iterations = np.zeros((len(integrations), npsfs), dtype=np.int64)
    status = np.empty((len(integrations), npsfs), dtype="<U13")
    log.info(
        "aligning %d PSF(s) to %d integration(s) of %dx%d pixels (%d thread(s))",
        npsfs,
        len(integrations),
        shape[0],
        shape[1],
        threads,
    )
    warm_starts = [None] * npsfs  # each PSF's last converged shift, a start for the next

    def prepare(k):
        """Clean science integration ``k`` and precompute its terms."""
        clean, _, _ = clean_plane_stack(
            science.data[k : k + 1],
            science.err[k : k + 1],
            science.dq[k : k + 1],
            bad_bits,
            median_box_length,
            zero_flags=zero_flags,
        )
        return register.prepare_science(clean[0], weight_terms)

    def planes_for(fits):
        """The PSFs aligned to one integration, from its fits (SCI, ERR, DQ blocks)."""
        sci_block = np.empty((npsfs, *shape))
        err_block = np.empty((npsfs, *shape))
        dq_block = np.empty((npsfs, *shape), dtype=np.uint32)
        for m, fit in enumerate(fits):
            if math.isfinite(fit.xshift):
                sci_block[m], err_block[m], dq_block[m] = prepared.aligned(
                    m, fit.xshift, fit.yshift
                )
            else:  # no usable data: the unshifted PSF, flagged
                sci_block[m] = prepared.unshifted[0][m]
                err_block[m] = prepared.unshifted[1][m]
                dq_block[m] = prepared.dq[m] | DQ_DO_NOT_USE
        return sci_block, err_block, dq_block

    def deliver(row, k, planes):
        """Hand one integration's planes to the sink, in order, and report progress."""
        if (status[row] == "no_data").any():
            log.warning(
                "integration %d has no usable data under the mask: its planes are the "
                "unshifted PSFs flagged DO_NOT_USE",
                k,
            )
        sink(row, *planes)
        log.info(
            "integration %d/%d: %d fits, median shift (%.3f, %.3f) px, %.2f s elapsed",
            row + 1,
            len(integrations),
            npsfs,
            _median_or_nan(table["xshift"][row]),
            _median_or_nan(table["yshift"][row]),
            time.perf_counter() - started,
        )

    # With threads, the fits run on this thread while the next integration is prepared and
    # the previous one's PSFs are shifted on the others (both mostly FFTs, which release
    # the GIL). The order of the work on each integration does not change.
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        upcoming = pool.submit(prepare, integrations[0]) if threads > 1 and integrations else None
        in_flight = None  # (row, k, future planes) of the integration being shifted
        for row, k in enumerate(integrations):
            if upcoming is not None:
                science_terms = upcoming.result()
                following = integrations[row + 1] if row + 1 < len(integrations) else None
                upcoming = pool.submit(prepare, following) if following is not None else None
            else:
                science_terms = prepare(k)
            fits = []
            for first in range(0, npsfs, PSF_CHUNK):
                chunk = list(range(first, min(first + PSF_CHUNK, npsfs)))
                fits += _fit_with_warm_starts(
                    science_terms,
                    [prepared.terms[m] for m in chunk],
                    weight_terms.total,
                    [warm_starts[m] for m in chunk],
                    threads,
                )
            for m, fit in enumerate(fits):
                table["xshift"][row, m] = fit.xshift
                table["yshift"][row, m] = fit.yshift
                table["beta"][row, m] = fit.beta
                table["rms"][row, m] = fit.rms
                iterations[row, m] = fit.iterations
                if fit.converged:
                    warm_starts[m] = (fit.xshift, fit.yshift)
                if math.isfinite(fit.xshift):
                    status[row, m] = "converged" if fit.converged else "not_converged"
                else:
                    status[row, m] = "no_data"
            if threads > 1:
                job = pool.submit(planes_for, fits)
            else:
                job = None
                deliver(row, k, planes_for(fits))
            if in_flight is not None:
                deliver(in_flight[0], in_flight[1], in_flight[2].result())
            in_flight = (row, k, job) if job is not None else None
        if in_flight is not None:
            deliver(in_flight[0], in_flight[1], in_flight[2].result())
    return AlignmentResult(integrations=integrations, iterations=iterations, status=status, **table)
