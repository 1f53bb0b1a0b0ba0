"""``coronalign download`` (and ``--check``) as users run it, against a local MAST."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from coronalign.cli import main
from coronalign.io.inputs_lock import read_inputs_lock
from tests.helpers.fake_mast import FakeMast

ASN = "jw01386-c1020_20220909t073458_coron3_002a_asn.json"
SCIENCE = "jw01386002001_03108_00001_nrcalong_calints.fits"
PSF = "jw01386001001_0310a_00001_nrcalong_calints.fits"
TOKEN = "cli-token-SECRET-42"


@pytest.fixture
def mast_files(tmp_path):
    root = tmp_path / "mast"
    root.mkdir()
    members = [{"expname": SCIENCE, "exptype": "science"}, {"expname": PSF, "exptype": "psf"}]
    asn = {"asn_id": "c1020", "products": [{"name": "jw01386-c1020_t001", "members": members}]}
    (root / ASN).write_text(json.dumps(asn))
    for name in (SCIENCE, PSF):
        (root / name).write_bytes(os.urandom(50_000))
    return root


def test_download_then_check(mast_files, tmp_path, capsys):
    folder = tmp_path / "inputs"
    with FakeMast(mast_files) as mast:
        assert main(["download", ASN, "--to", str(folder), "--base-url", mast.download_url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [str(folder / name) for name in (ASN, SCIENCE, PSF)]
    assert out[3] == (
        f"3 file(s) in {folder}: 3 downloaded, 0 already there; pinned by "
        f"{folder / 'inputs.lock.json'} (3 new)"
    )
    assert set(read_inputs_lock(folder / "inputs.lock.json").files) == {ASN, SCIENCE, PSF}
    assert main(["download", "--check", "--to", str(folder)]) == 0  # no server needed
    assert capsys.readouterr().out.startswith(f"3 file(s) match {folder / 'inputs.lock.json'}")
    (folder / PSF).write_bytes(b"other bytes")
    assert main(["-q", "download", "--check", "--to", str(folder)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("coronalign: error: ")
    assert f"{PSF}: SHA-256 " in error
    assert "the lock pins" in error


def test_download_reads_the_mast_section_of_a_configuration(mast_files, tmp_path, capsys):
    config = tmp_path / "config" / "program.yaml"
    config.parent.mkdir()
    folder, lock = tmp_path / "inputs", tmp_path / "config" / "program.lock.json"
    with FakeMast(mast_files) as mast:
        section = {"associations": [ASN], "folder": str(folder), "lock": str(lock)}
        config.write_text(yaml.safe_dump({"mast": {**section, "base_url": mast.download_url}}))
        assert main(["-q", "download", "--config", str(config)]) == 0
    assert sorted(read_inputs_lock(lock).files) == sorted([ASN, SCIENCE, PSF])
    assert main(["-q", "download", "--check", "--config", str(config)]) == 0
    capsys.readouterr()


def test_an_error_is_one_line_without_the_token(mast_files, tmp_path):
    env = {**os.environ, "MAST_API_TOKEN": TOKEN}
    missing = "jw01386002001_03108_00009_nrcalong_calints.fits"
    with FakeMast(mast_files, token=TOKEN) as mast:
        command = [sys.executable, "-m", "coronalign.cli", "download", SCIENCE, missing]
        command += ["--to", str(tmp_path / "inputs"), "--base-url", mast.download_url]
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        assert [r["headers"]["Authorization"] for r in mast.requests] == [f"token {TOKEN}"] * 2
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith(f"coronalign: error: {missing}: not at MAST")
    assert "Traceback" not in done.stderr
    assert TOKEN not in done.stderr + done.stdout
    assert "downloaded, 50000 bytes" in done.stderr  # the log, at INFO


def test_download_without_names_says_what_to_give(capsys):
    assert main(["download"]) == 2
    assert "give MAST file names, or --config" in capsys.readouterr().err
