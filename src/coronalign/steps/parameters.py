"""The step's parameters: parsed and validated once, then passed whole.

:class:`StepParameters` holds ``mode``, ``median_box_length``, ``bad_bits`` (the text as
given and its value), ``weighting``, ``max_shift``, ``edges``, ``reference``, ``blur_fwhm``,
``err_shift`` and ``threads``. Making one checks every
value, in this order, and a bad value is a :class:`~coronalign.errors.ParameterError` that
names the parameter and says which values are accepted. The same object goes to the step
(:mod:`coronalign.steps.align_refs`), into the product's provenance record
(:meth:`StepParameters.record`), into the manifest, and back out of it for
``coronalign verify`` (:meth:`StepParameters.from_record`).

``bad_bits`` is read as the official step reads it: each part is interpreted by astropy's
:func:`~astropy.nddata.bitmask.interpret_bit_flags` with the JWST pixel flag map
(``stdatamodels.jwst.datamodels.dqflags.pixel``, through
:func:`coronalign.io.models.pixel_flags`). The parts are split here, because the
accepted text is wider than what ``interpret_bit_flags`` takes in one call: names in any
case, numbers and names mixed, and ``,`` ``+`` ``|`` mixed (``" 1 | 2 , 16 + OUTLIER "``),
with a repeated flag harmless; astropy alone refuses mixed separators and mixed names and
numbers, and warns on a repeated flag.
"""

import math
import re
from dataclasses import asdict, dataclass, field
from numbers import Integral

import numpy as np

from coronalign import dq
from coronalign.core.choices import DEFAULT_MAX_SHIFT, EDGES, ERR_SHIFTS, REFERENCES, WEIGHTINGS
from coronalign.errors import ParameterError

__all__ = [
    "MODES",
    "StepParameters",
    "parse_bad_bits",
    "parse_blur_fwhm",
    "parse_box_length",
    "parse_max_shift",
    "parse_offset_tolerance",
]

#: Products: ``quad`` (nints, npsfs, ny, nx), every integration fitted (jwst <= 1.15);
#: ``cube`` (npsfs, ny, nx) aligned to integration 0 (jwst >= 1.16).
MODES = ("quad", "cube")

#: Largest value a JWST DQ word (uint32) can hold.
_MAX_BITS = 2**32 - 1
_SEPARATORS = re.compile(r"[,+|]")
#: One part of a ``bad_bits`` text: a whole number (maybe negative) or a flag name.
_PART = re.compile(r"-?[0-9]+|[A-Za-z_][A-Za-z0-9_]*")
_SIGNED_DECIMAL = re.compile(r"-?[0-9]+")


def _pixel_flags():
    """The JWST DQ flag map (:func:`coronalign.io.models.pixel_flags`), imported only when a
    ``bad_bits`` text needs it: the workflow checks the parameters in Snakemake's own process
    before any job, where the I/O layer's imports (asdf, stdatamodels) cost about 0.4 s."""
    from coronalign.io.models import pixel_flags

    return pixel_flags()


def _accepted_bad_bits_text():
    names = ", ".join(_pixel_flags())
    return (
        "use a non-negative integer below 2**32, a JWST DQ flag name (any case) or a "
        "combination joined by ',', '+' or '|' (e.g. 'OUTLIER, SATURATED' or '16+2'), "
        f"or '' / 'none' for no DQ-based replacement. Accepted flag names: {names}"
    )


def _check_bits_range(number, shown):
    if number < 0:
        raise ParameterError(
            "bad_bits", f"negative value {shown!r} is not a bit mask; {_accepted_bad_bits_text()}"
        )
    if number > _MAX_BITS:
        raise ParameterError(
            "bad_bits",
            f"value {shown!r} sets bits above bit 31 (DQ words are 32 bits); "
            f"{_accepted_bad_bits_text()}",
        )
    return int(number)


def _plain_part(part):
    """The bits of a part that is a whole number or a flag name :mod:`coronalign.dq` lists
    (e.g. the default ``DO_NOT_USE``), else None.

    The same value astropy's parser gives (the tests compare them), without importing
    astropy.nddata (about 0.25 s in every align job) and the JWST flag map.
    """
    if _SIGNED_DECIMAL.fullmatch(part):
        return int(part)
    name = part.upper()
    if name in dq.__all__ and isinstance(getattr(dq, name), int):
        return getattr(dq, name)
    return None


def _interpret_part(part, value):
    """One part (a number or a flag name, any case) as bits, by astropy with the JWST map."""
    plain = _plain_part(part)
    if plain is not None:
        return _check_bits_range(plain, part)
    from astropy.nddata.bitmask import interpret_bit_flags

    try:
        bits = interpret_bit_flags(part.upper(), flag_name_map=_pixel_flags())
    except (KeyError, ValueError):
        bits = None
    if bits is None:  # an unknown name (or astropy's own "INDEF")
        raise ParameterError(
            "bad_bits",
            f"unknown DQ flag name or malformed token {part!r} in {value!r}; "
            f"{_accepted_bad_bits_text()}",
        )
    return _check_bits_range(bits, part)


def parse_bad_bits(value):
    """Turn a ``bad_bits`` parameter into an integer bit mask.

    Parameters
    ----------
    value : str, int, numpy integer or None
        JWST DQ flag names (case-insensitive, from
        ``stdatamodels.jwst.datamodels.dqflags.pixel``), non-negative integers
        (or decimal strings of them), or a combination of these separated by
        ``,``, ``+`` or ``|`` with optional spaces. ``None``, ``""`` and
        ``"none"`` (any case) mean no DQ-based replacement.

    Returns
    -------
    int
        The bitwise OR of all the parts, between 0 and ``2**32 - 1``. For
        example ``"OUTLIER, SATURATED"``, ``"16, 2"``, ``"18"`` and ``18`` all
        give 18, and ``"DO_NOT_USE+SATURATED"`` gives 3.

    Raises
    ------
    coronalign.errors.ParameterError
        For a bool, a negative number, a number above ``2**32 - 1``, an empty
        part (``"16,,2"``), an unknown flag name or any other token. The
        message names the offending token and lists the accepted flag names.
    """
    if value is None:
        return 0
    if isinstance(value, (bool, np.bool_)):
        raise ParameterError(
            "bad_bits", f"a boolean ({value!r}) is not a bit mask; {_accepted_bad_bits_text()}"
        )
    if isinstance(value, (Integral, np.integer)):
        return _check_bits_range(int(value), value)
    if not isinstance(value, str):
        raise ParameterError(
            "bad_bits",
            f"unsupported value {value!r} of type {type(value).__name__}; "
            f"{_accepted_bad_bits_text()}",
        )
    text = value.strip()
    if text == "" or text.lower() == "none":
        return 0
    mask = 0
    for raw in _SEPARATORS.split(text):
        part = raw.strip()
        if part == "":
            raise ParameterError(
                "bad_bits",
                f"empty part in {value!r} (doubled or trailing separator); "
                f"{_accepted_bad_bits_text()}",
            )
        if not _PART.fullmatch(part):  # "~4", "0x10", "1.5", "DO NOT USE"...
            raise ParameterError(
                "bad_bits",
                f"unknown DQ flag name or malformed token {part!r} in {value!r}; "
                f"{_accepted_bad_bits_text()}",
            )
        mask |= _interpret_part(part, value)
    return mask


def parse_box_length(value):
    """Validate the ``median_box_length`` parameter.

    Parameters
    ----------
    value : int, numpy integer or str
        An integer ``>= 0`` or a decimal string of one. Floats (even ``3.0``)
        and booleans are refused.

    Returns
    -------
    int
        The validated box length ``L``; the box is ``2 * (L // 2) + 1`` wide.

    Raises
    ------
    coronalign.errors.ParameterError
        If the value is not a non-negative integer.
    """
    accepted = "use an integer >= 0 (the box is 2*(L//2)+1 pixels wide, default 3)"
    if isinstance(value, (bool, np.bool_)):
        raise ParameterError(
            "median_box_length", f"a boolean ({value!r}) is not allowed; {accepted}"
        )
    if isinstance(value, (Integral, np.integer)):
        number = int(value)
    elif isinstance(value, str) and _SIGNED_DECIMAL.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise ParameterError(
            "median_box_length",
            f"{value!r} (type {type(value).__name__}) is not an integer; {accepted}",
        )
    if number < 0:
        raise ParameterError("median_box_length", f"{value!r} is negative; {accepted}")
    return number


def parse_max_shift(value):
    """Validate the search radius ``max_shift``.

    Parameters
    ----------
    value : float, int or str
        A number of pixels.

    Returns
    -------
    float
        The radius, finite and > 0.

    Raises
    ------
    coronalign.errors.ParameterError
        If the value is not a finite number > 0 (or is a boolean).
    """
    return _positive_number(value, "max_shift", "pixels")


def parse_offset_tolerance(value):
    """Validate the commanded-offset tolerance of the validation (milliarcseconds).

    Parameters
    ----------
    value : float, int or str
        Milliarcseconds.

    Returns
    -------
    float
        The tolerance, finite and > 0.

    Raises
    ------
    coronalign.errors.ParameterError
        If the value is not a finite number > 0 (or is a boolean).
    """
    return _positive_number(value, "offset_tolerance", "mas")


def _positive_number(value, name, unit):
    """``value`` as a float, finite and > 0 (not a boolean), else a ParameterError on ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not (math.isfinite(number) and number > 0):
        raise ParameterError(name, f"{value!r} is not a number of {unit} > 0")
    return number


def parse_blur_fwhm(value):
    """Validate ``blur_fwhm``: the FWHM of the fit's Gaussian blur, or none.

    Parameters
    ----------
    value : float, int, str or None
        Pixels; ``None``, ``""``, ``"none"`` (any case) and 0 mean no blur.

    Returns
    -------
    float or None
        The FWHM (finite, > 0), or None for no blur.

    Raises
    ------
    coronalign.errors.ParameterError
        If the value is not a finite number >= 0 (or is a boolean).
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not (math.isfinite(number) and number >= 0):
        raise ParameterError(
            "blur_fwhm", f"{value!r} is not a number of pixels >= 0 (or none: no blur)"
        )
    return number if number > 0 else None


def _check_choice(name, value, choices):
    if value not in choices:
        raise ParameterError(name, f"{value!r} is not one of {', '.join(choices)}")


@dataclass(frozen=True)
class StepParameters:
    """The parameters of the ``align_refs`` step, validated when made.

    Every field may be given as the command line or a configuration gives it (text or
    number); the object holds the parsed values. The fields' order is the order of the
    provenance record.

    Parameters
    ----------
    mode : {"quad", "cube"}, optional
        The product (see :data:`MODES`).
    median_box_length : int or str, optional
        Box length of the median that replaces bad pixels (``>= 0``).
    bad_bits : str or int, optional
        DQ flags of bad pixels (:func:`parse_bad_bits`); kept as given, as text.
    weighting : {"official", "linear"}, optional
        Fit weight ``mask²`` (the official objective) or ``mask``.
    max_shift : float or str, optional
        Radius in pixels of each fit's search window around its prior.
    edges : {"wrap", "pad"}, optional
        Circular shift (official) or shift in a reflect-padded frame, the pixels with no
        source NaN and flagged (:mod:`coronalign.core.edges`).
    reference : {"each", "first", "mean"}, optional
        Fit every integration, only the first, or the integrations' mean; with ``first`` and
        ``mean`` every integration gets the same shifts.
    blur_fwhm : float, str or None, optional
        FWHM (pixels) of a Gaussian blur of both images for the fit only; none by default.
    err_shift : {"propagated", "official"}, optional
        ERR through the shift: the variance convolved with the squared kernel
        (:mod:`coronalign.core.variance`), or shifted as signal as the official step does.
    threads : int, optional
        Cores to use (processes sharing the integrations); results do not depend on it.

    Attributes
    ----------
    bad_bits_value : int
        The bit mask ``bad_bits`` means.

    Raises
    ------
    coronalign.errors.ParameterError
        The first invalid value, in the order mode, median_box_length, bad_bits, threads,
        weighting, max_shift, edges, reference, blur_fwhm, err_shift.
    """

    mode: str = "quad"
    median_box_length: int = 3
    bad_bits: str = "DO_NOT_USE"
    bad_bits_value: int = field(init=False)
    weighting: str = "official"
    max_shift: float = DEFAULT_MAX_SHIFT
    edges: str = "wrap"
    reference: str = "each"
    blur_fwhm: float | None = None
    err_shift: str = "propagated"
    threads: int = 1

    def __post_init__(self):
        parsed = object.__setattr__
        if self.mode not in MODES:
            raise ParameterError("mode", f"{self.mode!r} is not one of {', '.join(MODES)}")
        parsed(self, "median_box_length", parse_box_length(self.median_box_length))
        parsed(self, "bad_bits_value", parse_bad_bits(self.bad_bits))
        if not isinstance(self.bad_bits, str):
            parsed(self, "bad_bits", str(self.bad_bits))
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ParameterError("threads", f"{self.threads!r} is not a whole number >= 1")
        if self.weighting not in WEIGHTINGS:
            raise ParameterError(
                "weighting", f"{self.weighting!r} is not one of {', '.join(WEIGHTINGS)}"
            )
        parsed(self, "max_shift", parse_max_shift(self.max_shift))
        _check_choice("edges", self.edges, EDGES)
        _check_choice("reference", self.reference, REFERENCES)
        parsed(self, "blur_fwhm", parse_blur_fwhm(self.blur_fwhm))
        _check_choice("err_shift", self.err_shift, ERR_SHIFTS)

    def record(self):
        """The parameters as the provenance record, the manifest and the shift table keep them.

        Returns
        -------
        dict
            ``mode``, ``median_box_length``, ``bad_bits`` (text), ``bad_bits_value``,
            ``weighting``, ``max_shift``, ``edges``, ``reference``, ``blur_fwhm``
            (``"none"`` for no blur), ``err_shift``, ``threads``.
        """
        record = asdict(self)
        # "none" rather than None: the product's ASDF metadata drop keys whose value is None.
        if record["blur_fwhm"] is None:
            record["blur_fwhm"] = "none"
        return record

    @classmethod
    def from_record(cls, record):
        """The parameters a product was made with, from its provenance record.

        Parameters
        ----------
        record : dict
            :meth:`record` as stored in a product (``meta.coronalign.parameters``) or a
            manifest. Records made before ``weighting``, ``max_shift`` and ``threads``
            existed lack them: the objective was then linear, the window the default one,
            and one process was used. Records made before ``edges``, ``reference``,
            ``blur_fwhm`` and ``err_shift`` existed lack them: the shift was then circular,
            every integration fitted unblurred, and ERR shifted as signal (``official``).

        Returns
        -------
        StepParameters
        """
        return cls(
            mode=record.get("mode", "quad"),
            median_box_length=record.get("median_box_length", 3),
            bad_bits=record.get("bad_bits", "DO_NOT_USE"),
            weighting=record.get("weighting", "linear"),
            max_shift=record.get("max_shift", DEFAULT_MAX_SHIFT),
            edges=record.get("edges", "wrap"),
            reference=record.get("reference", "each"),
            blur_fwhm=record.get("blur_fwhm"),
            err_shift=record.get("err_shift", "official"),
            threads=record.get("threads", 1),
        )
