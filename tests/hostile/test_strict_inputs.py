"""Hostile inputs, second round: a key given twice (configuration, association, lock), a
YAML alias bomb in the configuration, a corrupt FITS header card, and the log or results
folder being a regular file. Each stops with one line naming the file, a non-zero exit,
no traceback and nothing written.
"""

import json
from pathlib import Path

import pytest

from coronalign import simulation
from coronalign.cli import main
from coronalign.errors import InputFileError
from coronalign.io.association import read_association
from coronalign.io.config import read_config_section
from tests.helpers.workflow import BIN, REPOSITORY, _run


@pytest.fixture(scope="module")
def association(tmp_path_factory):
    folder = tmp_path_factory.mktemp("asn-strict")
    return simulation.write_association(
        folder, n_science=1, n_psf=1, nints=1, psf_nints=1, shape=(48, 48)
    )


def _snakemake(environment, workdir, config_text, *args, timeout=120):
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "config.yaml"
    configfile.write_text(config_text)
    command = [BIN / "snakemake", "--snakefile", REPOSITORY / "Snakefile", "--directory"]
    command += [workdir, "--configfile", configfile, "--cores", "1", *args]
    run = _run(command, environment, timeout)
    run.stderr = run.stdout + run.stderr  # Snakemake prints its errors on either
    return run


def _base(association):
    return f"asn: {association['asn']}\npsfmask: {association['psfmask']}\n"


def test_a_configuration_key_given_twice_is_refused_naming_both_lines(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("mast:\n  associations: []\nmedian_box_length: 3\nmedian_box_length: 7\n")
    with pytest.raises(InputFileError, match=r"'median_box_length' is given twice \(lines 3 and 4"):
        read_config_section(path, "mast")


@pytest.mark.slow
def test_the_workflow_refuses_a_configuration_key_given_twice(environment, association, tmp_path):
    text = _base(association) + "median_box_length: 3\nmedian_box_length: 7\n"
    run = _snakemake(environment, tmp_path / "run", text, "-n")
    assert run.returncode != 0
    assert "'median_box_length' is given twice (lines 3 and 4)" in run.stderr, run.stderr[-2000:]
    assert "config.yaml" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "run" / "results").exists()


BOMB = "lol0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
)


@pytest.mark.slow
def test_a_yaml_alias_bomb_in_the_configuration_is_refused_quickly(
    environment, association, tmp_path
):
    text = _base(association) + "bomb:\n" + "".join(f"  {line}\n" for line in BOMB.splitlines())
    run = _snakemake(environment, tmp_path / "run", text, "-n", timeout=90)
    assert run.returncode != 0
    assert "aliases" in run.stderr, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert len(run.stderr) < 5000


def test_an_association_key_given_twice_is_refused(association, tmp_path):
    text = Path(association["asn"]).read_text()
    asn = json.loads(text)
    body = json.dumps(asn, indent=1)[1:-1]
    path = Path(association["asn"]).parent / "twice_asn.json"
    path.write_text("{" + body + "," + body + "}")
    with pytest.raises(InputFileError, match=r"twice_asn.json: .*is given twice"):
        read_association(path)


def test_an_inputs_lock_key_given_twice_is_refused(tmp_path):
    from coronalign.io.inputs_lock import read_inputs_lock

    path = tmp_path / "inputs.lock.json"
    path.write_text('{"format": "x",\n "files": [],\n "files": []}')
    with pytest.raises(InputFileError, match=r"'files' is given twice \(lines 2 and 3\)"):
        read_inputs_lock(path)


def test_a_corrupt_fits_header_card_is_named(association, tmp_path, capsys):
    source = Path(association["science"][0])
    data = bytearray(source.read_bytes())
    start = data.index(b"NAXIS3  =")
    data[start : start + 80] = b"NAXIS3  = 12x#!garbage".ljust(80)
    corrupt = tmp_path / source.name
    corrupt.write_bytes(bytes(data))
    code = main(
        [
            "-q",
            "align",
            str(corrupt),
            str(association["psf"][0]),
            "--psfmask",
            str(association["psfmask"]),
            "-o",
            str(tmp_path / "o.fits"),
        ]
    )
    err = capsys.readouterr().err
    assert code != 0
    assert "corrupt FITS header card" in err, err
    assert "NAXIS3" in err
    assert source.name in err
    assert "0D CubeModel" not in err
    assert not (tmp_path / "o.fits").exists()


@pytest.mark.slow
@pytest.mark.parametrize("folder", ["logs", "results/stack"])
def test_a_log_or_results_folder_that_is_a_file_stops_before_any_job(
    environment, association, tmp_path, folder
):
    workdir = tmp_path / "run"
    blocker = workdir / folder
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder\n")
    run = _snakemake(environment, workdir, _base(association), timeout=300)
    assert run.returncode != 0
    assert f"{folder} " in run.stderr or f"{folder}:" in run.stderr, run.stderr[-2000:]
    assert "is not a folder" in run.stderr
    assert "Traceback" not in run.stderr
    assert blocker.read_text() == "not a folder\n"
    written = [p for p in workdir.rglob("*") if p.is_file() and ".snakemake" not in p.parts]
    assert sorted(written) == sorted([workdir / "config.yaml", blocker])
