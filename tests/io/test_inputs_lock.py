"""The inputs lock: its format, its records (those of a product's inputs), reading a manifest."""

import hashlib
import json

import pytest

from coronalign.errors import InputFileError, InputsLockError
from coronalign.io.inputs_lock import (
    LOCK_FORMAT,
    FileRecord,
    compare,
    lock_document,
    read_inputs_lock,
    write_inputs_lock,
)
from coronalign.io.provenance import provenance_record


def _records(tmp_path):
    records = []
    for name, payload in (("b_calints.fits", b"bbbb"), ("a_asn.json", b"{}")):
        (tmp_path / name).write_bytes(payload)
        records.append(FileRecord.of(tmp_path / name))
    return records


def test_a_record_is_name_size_and_sha256(tmp_path):
    (tmp_path / "x.fits").write_bytes(b"12345")
    record = FileRecord.of(tmp_path / "x.fits")
    assert record == FileRecord("x.fits", 5, hashlib.sha256(b"12345").hexdigest())
    assert record.as_dict() == {"name": "x.fits", "size": 5, "sha256": record.sha256}


def test_the_lock_is_sorted_json_that_reads_back(tmp_path):
    records = _records(tmp_path)
    lock = tmp_path / "locks" / "inputs.lock.json"
    write_inputs_lock(lock, records, "results/inputs")
    document = json.loads(lock.read_text())
    assert document["format"] == LOCK_FORMAT
    assert document["folder"] == "results/inputs"
    assert [item["name"] for item in document["files"]] == ["a_asn.json", "b_calints.fits"]
    assert set(document["files"][0]) == {"name", "size", "sha256"}
    pinned = read_inputs_lock(lock)
    assert pinned.files == {record.name: record for record in records}
    assert pinned.folder == "results/inputs"
    assert not pinned.in_manifest
    assert sorted(p.name for p in lock.parent.iterdir()) == ["inputs.lock.json"]  # no temp


def test_the_lock_records_are_those_of_a_product_s_inputs(tmp_path):
    """One record format: a product's input record is a lock record plus its path."""
    (record,) = [r for r in _records(tmp_path) if r.name == "b_calints.fits"]
    kept = provenance_record({"science": tmp_path / "b_calints.fits"}, {})["inputs"]["science"]
    assert {key: kept[key] for key in ("name", "size", "sha256")} == record.as_dict()
    assert set(kept) == {"path", *record.as_dict()}


def test_a_manifest_with_an_embedded_lock_reads_as_the_lock(tmp_path):
    records = _records(tmp_path)
    manifest = tmp_path / "manifest.json"
    embedded = lock_document(records, "results/inputs")
    manifest.write_text(json.dumps({"format": "coronalign-manifest-1", "products": []}))
    with pytest.raises(InputFileError, match="a manifest without an inputs lock"):
        read_inputs_lock(manifest)
    manifest.write_text(
        json.dumps({"format": "coronalign-manifest-1", "inputs_lock": embedded, "products": []})
    )
    pinned = read_inputs_lock(manifest)
    assert pinned.in_manifest
    assert pinned.files == {record.name: record for record in records}


def test_compare_names_the_file_and_both_checksums():
    pinned = FileRecord("x.fits", 10, "a" * 64)
    assert compare(pinned, pinned) is None
    message = compare(pinned, FileRecord("x.fits", 11, "b" * 64))
    assert message == f"x.fits: SHA-256 {'b' * 64} (11 bytes), the lock pins {'a' * 64} (10 bytes)"
    error = InputsLockError("inputs.lock.json", [message])
    assert str(error).startswith("inputs.lock.json: 1 input file(s) differ from the lock")
    assert "stops before alignment" in str(error)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("not json", "not a readable JSON"),
        ("[]", "not an inputs lock"),
        ('{"format": "other", "files": []}', "not an inputs lock"),
        (f'{{"format": "{LOCK_FORMAT}"}}', "no list of files"),
        (f'{{"format": "{LOCK_FORMAT}", "files": [{{"name": "x"}}]}}', "needs name, size"),
        (
            f'{{"format": "{LOCK_FORMAT}", "files": [{{"name": "x", "size": 1, "sha256": "z"}}]}}',
            "is not a SHA-256",
        ),
    ],
)
def test_what_is_not_a_lock_is_refused_naming_the_file(tmp_path, content, match):
    path = tmp_path / "inputs.lock.json"
    path.write_text(content)
    with pytest.raises(InputFileError, match=match):
        read_inputs_lock(path)
    with pytest.raises(InputFileError, match="inputs lock not found"):
        read_inputs_lock(tmp_path / "absent.json")
