"""The passes over a product's arrays that validation makes: non-finite pixels, VAR_* arrays.

They go through the arrays one block of the first axis at a time (one integration of a 4D
product), so their temporaries stay a few MB however large the product is.
"""

import numpy as np

from coronalign.core.results import VARIANCE_NAMES

__all__ = ["BLOCK_ELEMENTS", "blocks", "check_variances", "count_nonfinite", "product_variances"]

#: Elements per block of the passes over a product's arrays (about 4 MB of float32): the
#: temporaries of a block are reused from one block to the next, where whole-array ones
#: (a 4D product is 37 MB an array) were fresh pages for the kernel to clear every time, most
#: of a validation's time.
BLOCK_ELEMENTS = 1 << 20


def blocks(shape):
    """Slices of the first axis of an array, about ``BLOCK_ELEMENTS`` elements each.

    Parameters
    ----------
    shape : tuple of int
        The array's shape.

    Returns
    -------
    list of slice
        Covering ``range(shape[0])`` in order (at least one index each).
    """
    per_index = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    step = max(1, BLOCK_ELEMENTS // max(per_index, 1))
    return [slice(start, start + step) for start in range(0, shape[0] if shape else 0, step)]


def count_nonfinite(values, usable):
    """Non-finite pixels of an array, where usable and where not.

    Parameters
    ----------
    values : ndarray
        The array (any shape).
    usable : ndarray of bool
        Where its pixels are usable (not ``DO_NOT_USE``), of the same shape.

    Returns
    -------
    unflagged, flagged : int
        Non-finite pixels where ``usable``, and where not.
    """
    unflagged = flagged = 0
    for block in blocks(values.shape):
        bad = ~np.isfinite(values[block])
        found = int(np.count_nonzero(bad))
        if found:
            in_usable = int(np.count_nonzero(bad & usable[block]))
            unflagged += in_usable
            flagged += found - in_usable
    return unflagged, flagged


def product_variances(model):
    """The product's variance arrays by extension name.

    Parameters
    ----------
    model : stdatamodels.DataModel
        The open product.

    Returns
    -------
    dict
        ``VAR_POISSON``... to array: a CubeModel's schema arrays, or a QuadModel's
        extensions of those names outside its schema.
    """
    found = {}
    extra = getattr(model, "extra_fits", None) if model.hasattr("extra_fits") else None
    for name in VARIANCE_NAMES:
        if model.hasattr(name):
            found[name.upper()] = np.asarray(getattr(model, name))
        elif extra is not None and hasattr(extra, name.upper()):
            found[name.upper()] = np.asarray(getattr(extra, name.upper()).data)
    return found


def check_variances(model, checks, shape, usable, err_shift):
    """The ``variances`` check of an aligned product that has variance arrays.

    Fails where an array's shape is not SCI's, a usable pixel is not finite, or (with the
    propagated ERR shift) a pixel is negative; warns when ERR² and the arrays' sum differ by
    more than 1 % in the median usable pixel. A product without variance arrays adds nothing.

    Parameters
    ----------
    model : stdatamodels.DataModel
        The open product.
    checks : object
        The validation's record of checks (``add(name, passed, detail)``, ``warn(text)``).
    shape : tuple of int
        SCI's shape.
    usable : ndarray of bool
        Where the product's pixels are not ``DO_NOT_USE``.
    err_shift : str
        How the alignment shifted ERR (``propagated`` or ``official``), from the shift table.
    """
    arrays = product_variances(model)
    if not arrays:
        return
    problems = []
    for name, values in arrays.items():
        if values.shape != shape:
            problems.append(f"{name} has shape {values.shape}, not {shape}")
            continue
        unflagged, _ = count_nonfinite(values, usable)
        negative = sum(int(np.count_nonzero(values[block] < 0)) for block in blocks(shape))
        if unflagged:
            problems.append(f"{name} has {unflagged} NaN/inf pixels not flagged DO_NOT_USE")
        if negative and err_shift == "propagated":
            problems.append(f"{name} has {negative} negative pixels")
        elif negative:
            checks.warn(f"{name} has {negative} negative pixels (shifted as signal: official)")
    names = ", ".join(arrays)
    checks.add(
        "variances",
        not problems,
        "; ".join(problems) if problems else f"{names}: SCI's shape, finite where usable",
    )
    if problems or err_shift != "propagated":
        return
    err = np.asarray(model.err)
    # |(sum of the VAR_* arrays) / ERR² - 1| of every usable pixel with an ERR, block by block
    # (the sum in float64, the ratios kept in float32 for the median: a 1 % threshold).
    ratios = []
    for block in blocks(shape):
        err_part = np.asarray(err[block], dtype=np.float64)
        good = usable[block] & np.isfinite(err_part) & (err_part > 0)
        if not good.any():
            continue
        total = sum(np.asarray(values[block][good], dtype=np.float64) for values in arrays.values())
        ratios.append(np.abs(total / np.square(err_part[good]) - 1).astype(np.float32))
    if ratios:
        median = float(np.median(np.concatenate(ratios)))
        if median > 0.01:
            checks.warn(
                f"ERR² and {' + '.join(arrays)} differ by {100 * median:.1f} % in the median "
                "usable pixel (the PSF stack's own arrays do not add up to its ERR², or lack a "
                "component)"
            )
