"""The PSFMASK selection record: written by the psfmask job, read by the align job."""

import json

import pytest

from coronalign.errors import InputFileError
from coronalign.references.selection import (
    PsfmaskSelection,
    read_psfmask_selection,
    write_psfmask_selection,
)


def test_selection_file_round_trip(tmp_path):
    selection = PsfmaskSelection(
        "selected", tmp_path / "m.fits", "crds://m.fits", "jwst_0001.pmap", "14.0", "chosen"
    )
    write_psfmask_selection(selection, tmp_path / "s.json", science="sci.fits")
    assert read_psfmask_selection(tmp_path / "s.json") == selection
    (tmp_path / "bad.json").write_text(json.dumps({"status": "maybe"}))
    with pytest.raises(InputFileError, match="'maybe' is not one of"):
        read_psfmask_selection(tmp_path / "bad.json")
