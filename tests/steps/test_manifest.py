"""Run manifests (coronalign manifest) and re-running them bit for bit (coronalign verify)."""

import json

import pytest

from coronalign.errors import InputFileError
from coronalign.io.provenance import data_sha256, environment_lock_record, software_versions
from coronalign.steps.align_refs import skip_alignment
from coronalign.steps.manifest import (
    MANIFEST_FORMAT,
    build_manifest,
    verify_manifest,
    write_manifest,
)
from coronalign.steps.parameters import StepParameters


def test_the_manifest_records_inputs_parameters_and_value_digests(aligned):
    manifest = build_manifest([aligned["product"]])
    assert manifest["format"] == MANIFEST_FORMAT
    assert manifest["software"] == {
        **software_versions(),
        "environment_lock": environment_lock_record(),
    }
    assert manifest["software"]["environment_lock"]["path"] == "requirements/lock.txt"
    assert len(manifest["software"]["environment_lock"]["sha256"]) == 64
    assert "inputs_lock" not in manifest  # written without one
    (entry,) = manifest["products"]
    assert entry["product"] == str(aligned["product"])
    assert entry["status"] == "COMPLETE"
    assert entry["skipped"] is None
    assert set(entry["inputs"]) == {"science", "psfstack", "psfmask"}
    assert entry["inputs"]["science"]["path"] == str(aligned["science"])
    assert entry["parameters"] == StepParameters().record()
    assert entry["crds"] == {}  # an override, not CRDS
    assert entry["data_sha256"] == data_sha256(aligned["product"])


def test_verify_reproduces_the_product_bit_for_bit(aligned, tmp_path):
    manifest = tmp_path / "manifest.json"
    write_manifest([aligned["product"]], manifest)
    assert json.loads(manifest.read_text())["products"][0]["product"] == str(aligned["product"])
    (result,) = verify_manifest(manifest)
    assert result.identical, result.problems
    assert result.problems == ()


def _edited(aligned, tmp_path, edit):
    manifest = build_manifest([aligned["product"]])
    edit(manifest)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


def test_verify_names_a_changed_or_missing_input_without_rerunning(aligned, tmp_path):
    def change(manifest):
        inputs = manifest["products"][0]["inputs"]
        inputs["psfstack"]["sha256"] = "0" * 64
        inputs["psfmask"]["path"] = str(tmp_path / "gone.fits")

    (result,) = verify_manifest(_edited(aligned, tmp_path, change))
    assert not result.identical
    assert any(
        "psfstack input" in p
        and "has changed: SHA-256 " in p
        and p.endswith(f"the manifest records {'0' * 64}")
        for p in result.problems
    )
    assert any("psfmask input" in p and "gone.fits is missing" in p for p in result.problems)


def test_different_values_name_other_package_versions_as_the_likely_cause(aligned, tmp_path):
    def change(manifest):
        manifest["software"]["numpy"] = "0.0.1"
        manifest["products"][0]["data_sha256"]["SCI"] = "0" * 64

    (result,) = verify_manifest(_edited(aligned, tmp_path, change))
    assert not result.identical
    (problem,) = result.problems
    assert problem.startswith("SCI values differ from the recorded run")
    assert "likely cause" in problem
    assert "numpy 0.0.1 ->" in problem


def test_a_skipped_product_is_verified_too(aligned, tmp_path):
    product = tmp_path / "na_psfalign.fits"
    parameters = StepParameters(mode="cube")
    skip_alignment(aligned["science"], aligned["psfstack"], product, "N/A here", parameters)
    (entry,) = build_manifest([product])["products"]
    assert entry["status"] == "SKIPPED"
    assert entry["skipped"] == "N/A here"
    assert entry["parameters"] == parameters.record()
    manifest = tmp_path / "manifest.json"
    write_manifest([product], manifest)
    (result,) = verify_manifest(manifest, base=tmp_path)
    assert result.identical, result.problems


def test_what_is_not_a_manifest_or_not_a_coronalign_product(aligned, tmp_path):
    with pytest.raises(InputFileError, match="was not written by coronalign"):
        build_manifest([aligned["psfstack"]])
    with pytest.raises(InputFileError, match="manifest not found"):
        verify_manifest(tmp_path / "absent.json")
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something-else", "products": []}))
    with pytest.raises(InputFileError, match="is not a coronalign manifest"):
        verify_manifest(other)


def test_the_manifest_embeds_the_inputs_lock_and_verify_checks_it_first(aligned, tmp_path):
    from coronalign.errors import InputsLockError
    from coronalign.io.inputs_lock import FileRecord, read_inputs_lock, write_inputs_lock

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "a_asn.json").write_text("{}")
    lock = tmp_path / "inputs.lock.json"
    write_inputs_lock(lock, [FileRecord.of(inputs / "a_asn.json")], "inputs")
    manifest = tmp_path / "manifest.json"
    write_manifest([aligned["product"]], manifest, inputs_lock=lock)
    written = json.loads(manifest.read_text())
    assert written["inputs_lock"] == json.loads(lock.read_text())  # the lock, whole
    assert read_inputs_lock(manifest).files == read_inputs_lock(lock).files
    (result,) = verify_manifest(manifest, base=tmp_path)  # inputs/ relative to base
    assert result.identical, result.problems
    (inputs / "a_asn.json").write_text('{"edited": 1}')
    with pytest.raises(InputsLockError, match=r"a_asn\.json: SHA-256 .*, the lock pins"):
        verify_manifest(manifest, base=tmp_path)


def test_verify_names_another_environment_lock(aligned, tmp_path, caplog):
    def change(manifest):
        manifest["software"]["environment_lock"]["sha256"] = "1" * 64
        manifest["software"]["scipy"] = "0.0.2"
        manifest["products"][0]["data_sha256"]["DQ"] = "0" * 64

    (result,) = verify_manifest(_edited(aligned, tmp_path, change))
    (problem,) = result.problems
    assert "scipy 0.0.2 ->" in problem
    assert f"environment lock requirements/lock.txt {'1' * 64} ->" in problem
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(m.startswith("scipy was 0.0.2 for the recorded run") for m in warnings)
    assert any(
        m.startswith("the environment lock requirements/lock.txt differs") and "1" * 64 in m
        for m in warnings
    )
    assert not any("environment_lock was" in m for m in warnings)  # not taken for a package
