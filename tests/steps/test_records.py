"""coronalign.steps.records on selection files alone (fast): a new record, the same choice,
another choice with a cause (said, history kept), another choice without one (refused)."""

import json

import pytest

from coronalign.steps.records import RecordChangedError, keep_selection_record


def _selection(path, reference, context):
    path.write_text(
        json.dumps(
            {
                "status": "selected",
                "path": None,
                "reference": reference,
                "context": context,
                "crds_version": "13.0.0",
                "reason": "",
            }
        )
    )
    return path


def test_a_record_is_written_once_and_its_bytes_stay_for_the_same_choice(tmp_path):
    selection = _selection(tmp_path / "s.json", "crds://a.fits", "jwst_0001.pmap")
    record = tmp_path / "records" / "x.json"
    assert keep_selection_record(selection, record, subject="x").status == "new"
    written = record.read_bytes()
    assert keep_selection_record(selection, record, subject="x").status == "identical"
    assert record.read_bytes() == written


def test_another_choice_from_a_moved_context_is_said_and_kept_in_the_history(tmp_path):
    record = tmp_path / "x.json"
    keep_selection_record(
        _selection(tmp_path / "1", "crds://a.fits", "jwst_0001.pmap"), record, subject="x"
    )
    outcome = keep_selection_record(
        _selection(tmp_path / "2", "crds://b.fits", "jwst_0002.pmap"), record, subject="x"
    )
    assert outcome.status == "changed"
    (message,) = outcome.messages
    assert "PSFMASK was crds://a.fits (context jwst_0001.pmap), now crds://b.fits" in message
    assert "crds.context is not pinned and the context in use moved" in message
    history = json.loads(record.read_text())["history"]
    assert [entry["was"]["reference"] for entry in history] == ["crds://a.fits"]


def test_another_choice_from_the_same_context_is_refused_and_the_record_kept(tmp_path):
    record = tmp_path / "x.json"
    keep_selection_record(
        _selection(tmp_path / "1", "crds://a.fits", "jwst_0001.pmap"),
        record,
        subject="x",
        pinned_context="jwst_0001.pmap",
    )
    before = record.read_bytes()
    with pytest.raises(RecordChangedError, match="neither the configuration"):
        keep_selection_record(
            _selection(tmp_path / "2", "crds://b.fits", "jwst_0001.pmap"),
            record,
            subject="x",
            pinned_context="jwst_0001.pmap",
        )
    assert record.read_bytes() == before
