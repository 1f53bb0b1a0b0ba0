"""The record of a PSFMASK choice: what the workflow's ``psfmask`` rule writes and ``align`` reads.

:class:`PsfmaskSelection` is the outcome of :func:`coronalign.references.crds.select_psfmask`
(an override, a CRDS best reference, or "not applicable");
:func:`write_psfmask_selection` and :func:`read_psfmask_selection` keep it as a small JSON
file between the two jobs.
"""

from dataclasses import dataclass
from pathlib import Path

from coronalign.errors import InputFileError
from coronalign.io.reports import read_json_report, write_json_report

__all__ = [
    "SELECTION_STATUSES",
    "PsfmaskSelection",
    "read_psfmask_selection",
    "write_psfmask_selection",
]

#: What a selection can say: CRDS chose a file, the user gave one, or no mask applies.
SELECTION_STATUSES = ("selected", "override", "not_applicable")


@dataclass(frozen=True)
class PsfmaskSelection:
    """The outcome of choosing a PSFMASK.

    Attributes
    ----------
    status : str
        ``"selected"`` (CRDS chose a file), ``"not_applicable"`` (CRDS says N/A: the step is
        skipped) or ``"override"`` (the user gave a file).
    path : pathlib.Path or None
        The local file; None when not applicable.
    reference : str
        What the product records as ``R_PSFMAS``: ``crds://<basename>`` or the override path.
    context : str or None
        CRDS context (``.pmap``) used; None for an override.
    crds_version : str or None
        Version of the crds client; None for an override.
    reason : str
        One sentence for the log (what was selected, or why nothing applies).
    """

    status: str
    path: Path | None
    reference: str
    context: str | None
    crds_version: str | None
    reason: str


def write_psfmask_selection(selection, path, science=None):
    """Write a :class:`PsfmaskSelection` as a JSON file (atomically).

    Parameters
    ----------
    selection : PsfmaskSelection
        The outcome of :func:`coronalign.references.crds.select_psfmask`.
    path : path-like
        The JSON file to write.
    science : path-like, optional
        The science exposure the selection was made for (recorded for the reader).
    """
    write_json_report(
        path,
        {
            "status": selection.status,
            "path": None if selection.path is None else str(selection.path),
            "reference": selection.reference,
            "context": selection.context,
            "crds_version": selection.crds_version,
            "reason": selection.reason,
            "science": None if science is None else str(science),
        },
    )


def read_psfmask_selection(path):
    """Read a selection written by :func:`write_psfmask_selection`.

    Parameters
    ----------
    path : path-like
        The JSON file.

    Returns
    -------
    PsfmaskSelection

    Raises
    ------
    InputFileError
        The file is missing, not JSON, or lacks a valid status or (for a selected mask) a path.
    """
    content = read_json_report(path, "PSFMASK selection")
    status = content.get("status")
    if status not in SELECTION_STATUSES:
        raise InputFileError(
            path,
            f"PSFMASK selection status {status!r} is not one of {', '.join(SELECTION_STATUSES)}; "
            "write the file with `coronalign psfmask`",
        )
    if status != "not_applicable" and not content.get("path"):
        raise InputFileError(path, f"PSFMASK selection with status {status!r} names no file")
    return PsfmaskSelection(
        status=status,
        path=Path(content["path"]) if content.get("path") else None,
        reference=str(content.get("reference") or content.get("path") or "N/A"),
        context=content.get("context"),
        crds_version=content.get("crds_version"),
        reason=str(content.get("reason") or ""),
    )
