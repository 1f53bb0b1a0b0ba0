"""Inputs from MAST pinned by the inputs lock (steps.download), against a local MAST."""

import json
import logging
import os

import pytest
import yaml

from coronalign.errors import ConfigurationError, DownloadError, InputsLockError
from coronalign.io.inputs_lock import FileRecord, lock_document, read_inputs_lock
from coronalign.io.mast import MAST_DOWNLOAD_URL, NotAtMastError
from coronalign.steps.download import (
    MAST_SETTINGS,
    calibration_contexts,
    download_inputs,
    mast_settings,
    verify_inputs_lock,
)
from tests.helpers.fake_mast import FakeMast
from tests.helpers.paths import REPOSITORY

ASN = "jw01386-c1020_20220909t073458_coron3_002a_asn.json"
SCIENCE = [f"jw01386{obs}001_03108_00001_nrcalong_calints.fits" for obs in ("002", "003")]
PSF = [f"jw01386001001_0310a_0000{n}_nrcalong_calints.fits" for n in (1, 2, 3, 4)]
TA = "jw01386002001_02102_00001_nrcalong_cal.fits"
TOKEN = "mast-token-0123456789-SECRET"


def _association():
    members = [{"expname": TA, "exptype": "target_acquisition"}]
    members += [{"expname": name, "exptype": "science"} for name in SCIENCE]
    members += [{"expname": name, "exptype": "psf"} for name in PSF]
    product = {"name": "jw01386-c1020_t001_nircam_f410m-maskrnd-sub320a335r", "members": members}
    return {"asn_type": "coron3", "asn_id": "c1020", "products": [product]}


@pytest.fixture
def mast_files(tmp_path):
    """What the local MAST serves: the association, its members (random bytes) and the TA."""
    root = tmp_path / "mast"
    root.mkdir()
    (root / ASN).write_text(json.dumps(_association(), indent=2))
    for name in (*SCIENCE, *PSF, TA):
        (root / name).write_bytes(os.urandom(200_000))
    return root


def _download(mast, folder, **options):
    options.setdefault("sleep", lambda seconds: None)
    return download_inputs(folder=folder, base_url=mast.download_url, **options)


def test_an_association_brings_its_science_and_psf_members_and_is_pinned(mast_files, tmp_path):
    folder = tmp_path / "inputs"
    with FakeMast(mast_files, drop={SCIENCE[1]: 1}) as mast:  # one dropped connection
        paths = _download(mast, folder, associations=[ASN])
        assert mast.count(TA) == 0  # target acquisition: not needed
        assert mast.count(SCIENCE[1]) == 2  # retried
    assert [p.name for p in paths] == [ASN, *SCIENCE, *PSF]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [ASN, *SCIENCE, *PSF, "inputs.lock.json"]
    )
    assert paths.downloaded == [ASN, *SCIENCE, *PSF]
    pinned = read_inputs_lock(folder / "inputs.lock.json")
    assert pinned.folder == str(folder)
    assert pinned.files == {p.name: FileRecord.of(mast_files / p.name) for p in paths}


def test_files_already_there_are_not_downloaded_again(mast_files, tmp_path):
    folder = tmp_path / "inputs"
    with FakeMast(mast_files) as mast:
        _download(mast, folder, associations=[ASN])
        lock = (folder / "inputs.lock.json").read_bytes()
        before = len(mast.requests)
        again = _download(mast, folder, associations=[ASN], exposures=[SCIENCE[0]])
        assert len(mast.requests) == before  # nothing fetched: works offline
    assert again.present == [ASN, *SCIENCE, *PSF]
    assert again.downloaded == []
    assert [p.name for p in again] == [ASN, *SCIENCE, *PSF]  # each file once
    assert (folder / "inputs.lock.json").read_bytes() == lock


def test_a_local_file_that_differs_from_the_lock_stops_the_run(mast_files, tmp_path):
    folder = tmp_path / "inputs"
    with FakeMast(mast_files) as mast:
        _download(mast, folder, exposures=SCIENCE)
        pinned = FileRecord.of(folder / SCIENCE[0])
        (folder / SCIENCE[0]).write_bytes(b"edited")
        with pytest.raises(InputsLockError) as error:
            _download(mast, folder, exposures=SCIENCE)
    message = str(error.value)
    assert message.startswith(f"{folder / 'inputs.lock.json'}: 1 input file(s) differ")
    assert f"{SCIENCE[0]}: SHA-256 {FileRecord.of(folder / SCIENCE[0]).sha256} (6 bytes)" in message
    assert f"the lock pins {pinned.sha256} (200000 bytes)" in message
    assert "delete it to download it again" in message
    with pytest.raises(InputsLockError, match=SCIENCE[0]):
        verify_inputs_lock(folder / "inputs.lock.json")  # the check without the network


def test_a_file_mast_reprocessed_since_the_lock_is_refused(mast_files, tmp_path):
    folder = tmp_path / "inputs"
    with FakeMast(mast_files) as mast:
        _download(mast, folder, associations=[ASN])
        pinned = FileRecord.of(folder / PSF[2])
        (folder / PSF[2]).unlink()
        (mast_files / PSF[2]).write_bytes(os.urandom(200_000))  # MAST reprocessed it
        with pytest.raises(InputsLockError) as error:
            _download(mast, folder, associations=[ASN])
    message = str(error.value)
    assert f"{PSF[2]}: SHA-256 {FileRecord.of(mast_files / PSF[2]).sha256}" in message
    assert f"the lock pins {pinned.sha256}" in message
    assert "MAST reprocesses its data" in message
    assert not (folder / PSF[2]).exists()
    assert not list(folder.glob(".*.part"))


def test_a_missing_member_is_one_error_and_what_came_before_stays_pinned(mast_files, tmp_path):
    folder = tmp_path / "inputs"
    (mast_files / PSF[3]).unlink()
    with FakeMast(mast_files) as mast:
        with pytest.raises(NotAtMastError, match=rf"^{PSF[3]}: not at MAST"):
            _download(mast, folder, associations=[ASN])
        assert set(read_inputs_lock(folder / "inputs.lock.json").files) == {ASN, *SCIENCE, *PSF[:3]}
        (mast_files / PSF[3]).write_bytes(b"now there")
        again = _download(mast, folder, associations=[ASN])
    assert again.downloaded == [PSF[3]]
    assert again.added == [PSF[3]]


def test_the_token_from_the_environment_is_sent_and_written_nowhere(
    mast_files, tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    folder = tmp_path / "inputs"
    monkeypatch.setenv("MAST_API_TOKEN", TOKEN)
    with FakeMast(mast_files, token=TOKEN, drop={PSF[0]: 1}) as mast:
        _download(mast, folder, associations=[ASN])
        assert {r["headers"]["Authorization"] for r in mast.requests} == {f"token {TOKEN}"}
    assert TOKEN not in caplog.text
    for path in folder.iterdir():
        assert TOKEN.encode() not in path.read_bytes(), path
    monkeypatch.delenv("MAST_API_TOKEN")
    with FakeMast(mast_files, token=TOKEN) as mast, pytest.raises(DownloadError, match="401"):
        _download(mast, tmp_path / "other", associations=[ASN])


def test_a_manifest_is_a_read_only_lock(mast_files, tmp_path):
    folder = tmp_path / "inputs"
    manifest = tmp_path / "manifest.json"
    pins = [FileRecord.of(mast_files / name) for name in SCIENCE]
    embedded = lock_document(pins, str(folder))
    manifest.write_text(json.dumps({"format": "m", "inputs_lock": embedded, "products": []}))
    before = manifest.read_bytes()
    with FakeMast(mast_files) as mast:
        paths = _download(mast, folder, exposures=SCIENCE, lock=manifest)
        assert [p.name for p in paths] == SCIENCE
        with pytest.raises(InputsLockError, match=f"{PSF[0]}: not pinned by the manifest"):
            _download(mast, folder, exposures=[PSF[0]], lock=manifest)
        assert mast.count(PSF[0]) == 0
    assert manifest.read_bytes() == before
    assert verify_inputs_lock(manifest) == [folder / name for name in sorted(SCIENCE)]


def test_verify_names_a_missing_file(mast_files, tmp_path):
    folder = tmp_path / "inputs"
    with FakeMast(mast_files) as mast:
        _download(mast, folder, exposures=SCIENCE)
    (folder / SCIENCE[1]).unlink()
    with pytest.raises(InputsLockError, match=rf"{SCIENCE[1]}: missing from {folder}"):
        verify_inputs_lock(folder / "inputs.lock.json", folder)


def test_the_settings_are_the_mast_section_of_the_workflow_schema(tmp_path):
    schema = yaml.safe_load((REPOSITORY / "workflow/schemas/config.schema.yaml").read_text())
    section = schema["properties"]["mast"]
    assert section["additionalProperties"] is False
    assert set(section["properties"]) == set(MAST_SETTINGS)
    defaults = {key: value.get("default") for key, value in section["properties"].items()}
    assert defaults == MAST_SETTINGS
    assert MAST_SETTINGS["base_url"] == MAST_DOWNLOAD_URL
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"asn": None, "mast": {"exposures": SCIENCE}}))
    assert mast_settings(config=config) == {**MAST_SETTINGS, "exposures": SCIENCE}
    with pytest.raises(ConfigurationError, match="unknown key"):
        mast_settings({"associatons": [ASN]})
    with pytest.raises(ConfigurationError, match="a list of MAST file names"):
        mast_settings({"exposures": SCIENCE[0]})


def test_the_calibration_context_is_read_from_the_headers(tmp_path):
    from astropy.io import fits

    header = fits.Header({"CRDS_CTX": "jwst_1322.pmap"})
    fits.PrimaryHDU(header=header).writeto(tmp_path / "a_calints.fits")
    (tmp_path / "b_asn.json").write_text("{}")
    paths = [tmp_path / "a_calints.fits", tmp_path / "b_asn.json"]
    assert calibration_contexts(paths) == {"jwst_1322.pmap": ["a_calints.fits"]}


def test_the_example_reprocesses_the_files_it_downloads():
    """config/examples/jw01386_nircam_coron.yaml: valid, and its inputs are its downloads."""
    from snakemake.utils import validate

    config = yaml.safe_load((REPOSITORY / "config/examples/jw01386_nircam_coron.yaml").read_text())
    validate(config, str(REPOSITORY / "workflow/schemas/config.schema.yaml"))
    settings = mast_settings(config["mast"])
    assert settings["lock"] == "config/examples/jw01386_nircam_coron.lock.json"  # publishable
    inputs = [*config["science"], *config["psf"]]
    assert inputs == [f"{settings['folder']}/{name}" for name in settings["exposures"]]
    assert "PLACEHOLDER" in (REPOSITORY / "config/examples/jw01386_nircam_coron.yaml").read_text()


def test_repin_replaces_only_the_named_entry_and_says_old_and_new(mast_files, tmp_path):
    folder = tmp_path / "inputs"
    with FakeMast(mast_files) as mast:
        _download(mast, folder, associations=[ASN])
        lock = folder / "inputs.lock.json"
        old = read_inputs_lock(lock).files
        (mast_files / PSF[2]).write_bytes(os.urandom(200_000))  # MAST reprocessed it
        summary = _download(mast, folder, associations=[ASN], repin=[PSF[2]])
    new = read_inputs_lock(lock).files
    assert summary.repinned == {PSF[2]: (old[PSF[2]].sha256, new[PSF[2]].sha256)}
    assert new[PSF[2]].sha256 == FileRecord.of(mast_files / PSF[2]).sha256
    assert {k: v for k, v in new.items() if k != PSF[2]} == {
        k: v for k, v in old.items() if k != PSF[2]
    }
