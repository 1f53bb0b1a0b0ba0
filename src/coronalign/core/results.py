"""The core's containers: a stack of images and the fitted parameters of a stack.

Kept apart from :mod:`coronalign.core.align` so that what reads and writes them (the
``io`` layer, the validation, the plots) does not import the fitting code and its
transforms (scipy.fft alone takes about 0.15 s to import).
"""

from dataclasses import dataclass, field

import numpy as np

from coronalign.dq import FitStatus

__all__ = ["RESULT_COLUMNS", "STATUS_DTYPE", "VARIANCE_NAMES", "AlignmentResult", "Stack"]

#: The variance arrays of a JWST exposure, as data-model attributes, in the order written.
VARIANCE_NAMES = ("var_poisson", "var_rnoise", "var_flat")

#: The numpy type of a status array: room for the longest status.
STATUS_DTYPE = f"<U{max(len(status) for status in FitStatus)}"


@dataclass(frozen=True)
class Stack:
    """A stack of images with their uncertainties and data-quality flags.

    Attributes
    ----------
    data, err : ndarray, shape (nplanes, ny, nx)
        Values and 1-sigma uncertainties (any float dtype).
    dq : ndarray of unsigned int, shape (nplanes, ny, nx)
        JWST DQ flags.
    noise_variance : ndarray, shape (nplanes, ny, nx), optional
        The variance of the pixel noise, ``VAR_POISSON + VAR_RNOISE``, where the file has
        both; None otherwise (then ``ERR²`` stands for it). ``ERR²`` also holds
        ``VAR_FLAT``, the flat field's error, which is the same in every integration of a
        pixel and does not scatter a fit.
    variance_arrays : dict, optional
        The variance arrays themselves, by data-model attribute (``"var_poisson"``,
        ``"var_rnoise"``, ``"var_flat"``), each of shape (nplanes, ny, nx), where they are to
        be moved with the data (a PSF stack's, into the aligned product); None otherwise.
    """

    data: np.ndarray
    err: np.ndarray
    dq: np.ndarray
    noise_variance: np.ndarray = None
    variance_arrays: dict = None

    def variance(self, plane):
        """The noise variance of one plane (float64): ``VAR_POISSON + VAR_RNOISE``, else ``ERR²``.

        Parameters
        ----------
        plane : int

        Returns
        -------
        ndarray, shape (ny, nx)
        """
        if self.noise_variance is not None:
            return np.asarray(self.noise_variance[plane], dtype=np.float64)
        return np.square(np.asarray(self.err[plane], dtype=np.float64))

    @property
    def nplanes(self):
        """Number of planes (integrations or PSFs)."""
        return self.data.shape[0]


#: The per-fit columns of an :class:`AlignmentResult` (float arrays), in table order.
RESULT_COLUMNS = (
    "xshift",
    "yshift",
    "beta",
    "rms",
    "xshift_err",
    "yshift_err",
    "beta_err",
    "xshift_err_stat",
    "yshift_err_stat",
    "beta_err_stat",
    "xprior",
    "yprior",
)


@dataclass
class AlignmentResult:
    """Fitted parameters, one row per fitted integration and one column per PSF.

    ``xshift_err``, ``yshift_err``, ``beta_err`` are the total 1σ errors (pixel noise and
    the residual's structure), ``xshift_err_stat``, ``yshift_err_stat``, ``beta_err_stat``
    the statistical ones (pixel noise alone; see :mod:`coronalign.core.uncertainty`); ``xprior``,
    ``yprior`` the centre of each fit's search window; ``status`` the
    :class:`~coronalign.dq.FitStatus` of each fit (as strings).
    """

    integrations: list
    xshift: np.ndarray
    yshift: np.ndarray
    beta: np.ndarray
    rms: np.ndarray
    iterations: np.ndarray
    status: np.ndarray = field(repr=False)
    xshift_err: np.ndarray = None
    yshift_err: np.ndarray = None
    beta_err: np.ndarray = None
    xshift_err_stat: np.ndarray = None
    yshift_err_stat: np.ndarray = None
    beta_err_stat: np.ndarray = None
    xprior: np.ndarray = None
    yprior: np.ndarray = None

    def __post_init__(self):
        for name in RESULT_COLUMNS:
            if getattr(self, name) is None:
                setattr(self, name, np.full(self.xshift.shape, np.nan))

    @property
    def converged(self):
        """True where the fit converged (``outlier`` fits converged too)."""
        return (self.status == FitStatus.CONVERGED) | (self.status == FitStatus.OUTLIER)
