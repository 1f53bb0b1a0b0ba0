"""Small JSON reports (input check, PSFMASK selection, validation), written atomically."""

import json
import logging
from pathlib import Path

import numpy as np

from coronalign.errors import InputFileError
from coronalign.io.atomic import atomic_output
from coronalign.io.paths import check_input
from coronalign.io.strict_load import DuplicateKeyError, load_json

__all__ = ["read_json_report", "write_json_report"]

log = logging.getLogger(__name__)


def _jsonable(value):
    """Turn numpy scalars/arrays and paths into JSON types (``json.dumps`` default hook)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _finite(value):
    """Recursively replace NaN/inf floats by None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(key): _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, (np.ndarray, np.generic)):
        return _finite(value.tolist())
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_json_report(path, report):
    """Write a report as indented JSON, atomically (temporary name, then rename).

    Parameters
    ----------
    path : str or os.PathLike
        Output file.
    report : dict
        JSON-compatible content; numpy scalars and paths are converted, NaN becomes null.
    """
    text = json.dumps(_finite(report), indent=2, default=_jsonable, allow_nan=False)
    with atomic_output(path) as temporary:
        temporary.write_text(text + "\n")
    log.info("wrote report %s", path)


def read_json_report(path, role="report"):
    """Read a JSON report written by :func:`write_json_report`.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    role : str, optional
        What the file is, for messages.

    Returns
    -------
    dict

    Raises
    ------
    InputFileError
        The file is missing or not a JSON object.
    """
    path = check_input(path, role, f"{role} not found")
    try:
        content = load_json(path.read_text())
    except DuplicateKeyError as error:
        raise InputFileError(path, f"{role}: {error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputFileError(path, f"{role} is not valid JSON ({error})") from None
    if not isinstance(content, dict):
        raise InputFileError(path, f"{role} must hold a JSON object")
    return content
