"""The coronalign command: align on simulated data (accuracy, products, bad input), simulate."""

import json
import subprocess
import sys

import numpy as np
import pytest
from astropy.table import Table
from stdatamodels.jwst import datamodels

from coronalign import simulation
from coronalign.cli import main
from coronalign.io.provenance import file_sha256
from coronalign.simulation import instruments
from tests.helpers.commands import align_command


@pytest.fixture(scope="module", params=["nircam", "miri"])
def dataset(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    sim = simulation.simulate_exposures(request.param, nints=4, npsfs=3, seed=1)
    paths = simulation.write_simulation(sim, folder)
    return request.param, folder, paths


def _align(paths, folder, *extra):
    out = folder / "out_psfalign.fits"
    table = folder / "out_psfshifts.ecsv"
    command = align_command(
        paths["science"], paths["psfstack"], paths["psfmask"], out, "--shifts", table, *extra
    )
    assert main(["-q", *command]) == 0
    return out, table


def test_recovers_the_true_shifts(dataset):
    _, folder, paths = dataset
    before = {role: file_sha256(path) for role, path in paths.items()}
    _, table_path = _align(paths, folder)
    assert {role: file_sha256(path) for role, path in paths.items()} == before  # inputs untouched
    truth = json.loads(paths["truth"].read_text())
    table = Table.read(table_path)
    nints, npsfs = np.shape(truth["xshift"])
    assert len(table) == nints * npsfs
    x = np.reshape(table["xshift"], (nints, npsfs))
    y = np.reshape(table["yshift"], (nints, npsfs))
    errors = np.concatenate([(x - truth["xshift"]).ravel(), (y - truth["yshift"]).ravel()])
    assert np.sqrt(np.mean(errors**2)) <= 0.02  # per-component RMS error
    beta = np.reshape(table["beta"], (nints, npsfs))
    np.testing.assert_allclose(beta, truth["beta"], rtol=0.05)
    assert table["converged"].all()
    assert set(table["status"]) == {"converged"}
    assert table.meta["parameters"]["median_box_length"] == 3


def test_quad_product_opens_validates_and_is_finite(dataset):
    instrument, folder, paths = dataset
    out, _ = _align(paths, folder)
    with datamodels.open(out) as model:
        assert isinstance(model, datamodels.QuadModel)
        model.validate()
        science = datamodels.open(paths["science"])
        psfs = datamodels.open(paths["psfstack"])
        assert model.data.shape == (science.data.shape[0], *psfs.data.shape)
        assert model.meta.cal_step.align_psfs == "COMPLETE"
        assert model.meta.ref_file.psfmask.name == str(paths["psfmask"])
        assert model.meta.instrument.name == psfs.meta.instrument.name
        assert model.meta.exposure.psf_reference == psfs.meta.exposure.psf_reference
        assert np.isfinite(model.data).all()
        assert np.isfinite(model.err).all()
        record = model.meta.coronalign.instance
        assert record["parameters"]["bad_bits"] == "DO_NOT_USE"
        assert set(record["inputs"]) == {"science", "psfstack", "psfmask"}
        assert len(record["inputs"]["science"]["sha256"]) == 64
        assert instrument.upper() in model.meta.instrument.name


def test_cube_mode_writes_the_jwst_116_product(dataset):
    _, folder, paths = dataset
    out, table_path = _align(paths, folder, "--mode", "cube")
    with datamodels.open(out) as model:
        assert isinstance(model, datamodels.CubeModel)
        model.validate()
        psfs = datamodels.open(paths["psfstack"])
        assert model.data.shape == psfs.data.shape
    assert set(Table.read(table_path)["integration"]) == {0}


def test_threads_give_identical_products(dataset):
    _, folder, paths = dataset
    one, _ = _align(paths, folder)
    first = datamodels.open(one)
    sci, err, dq = first.data.copy(), first.err.copy(), first.dq.copy()
    first.close()
    two, _ = _align(paths, folder, "--threads", "2")
    with datamodels.open(two) as second:
        assert np.array_equal(second.data, sci)
        assert np.array_equal(second.err, err)
        assert np.array_equal(second.dq, dq)


def _run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "coronalign.cli", *args], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"science": "missing.fits"}, "missing.fits: science exposure file not found"),
        (
            {"--bad-bits": "DO_NOT_USE,BOGUS"},
            "bad_bits: unknown DQ flag name or malformed token 'BOGUS'",
        ),
        ({"--median-box-length": "-1"}, "median_box_length"),
        ({"--median-box-length": "2.5"}, "median_box_length"),
        ({"psfstack": "science"}, "PSF"),
    ],
)
def test_bad_input_one_clear_message_no_traceback_no_output(tmp_path, change, expected):
    sim = simulation.simulate_exposures("nircam", nints=2, npsfs=2, seed=3)
    paths = simulation.write_simulation(sim, tmp_path)
    values = {
        "science": str(paths["science"]),
        "psfstack": str(paths["psfstack"]),
        "--psfmask": str(paths["psfmask"]),
        "--bad-bits": "DO_NOT_USE",
        "--median-box-length": "3",
    }
    for key, value in change.items():
        values[key] = str(tmp_path / value) if value.endswith(".fits") else value
        if value in values:
            values[key] = values[value]
    if "psfstack" in change:  # a science cube of another frame size as the PSF stack
        other = simulation.write_simulation(
            simulation.simulate_exposures("miri", nints=1, npsfs=1, seed=1), tmp_path / "miri"
        )
        values["psfstack"] = str(other["psfstack"])
    out = tmp_path / "out_psfalign.fits"
    result = _run_cli(
        "align",
        values["science"],
        values["psfstack"],
        "--psfmask",
        values["--psfmask"],
        "--bad-bits",
        values["--bad-bits"],
        "--median-box-length",
        values["--median-box-length"],
        "-o",
        str(out),
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "coronalign: error:" in line]
    assert len(errors) == 1
    assert expected in errors[0]
    assert not out.exists()
    assert not list(tmp_path.glob(".*partial*"))


def test_unknown_bad_bits_lists_the_accepted_names(tmp_path):
    result = _run_cli(
        "align", "a.fits", "b.fits", "--psfmask", "m.fits", "-o", "o.fits", "--bad-bits", "NOPE"
    )
    assert result.returncode == 2
    assert "SATURATED" in result.stderr
    assert "DO_NOT_USE" in result.stderr


def test_simulate_command_writes_a_dataset(tmp_path):
    assert (
        main(
            [
                "simulate",
                "--instrument",
                "miri",
                "--nints",
                "2",
                "--npsfs",
                "2",
                "-o",
                str(tmp_path),
            ]
        )
        == 0
    )
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert np.shape(truth["xshift"]) == (2, 2)
    assert len(list(tmp_path.glob("*_calints.fits"))) == 1


# ---------------------------------------------------------------- simulate: the new options


def test_cli_choices_match_the_simulator():
    from coronalign.cli import simulate as cli

    assert tuple(instruments.SETUPS) == cli._SIMULATE_INSTRUMENTS
    assert cli._SIMULATE_MASK_STYLES == simulation.MASK_STYLES
    assert cli._SIMULATE_DITHERS == simulation.DITHER_PATTERNS


def test_cli_simulate_new_options(tmp_path, capsys):
    from coronalign.cli import main

    args = [
        "simulate", "--instrument", "nircam-sw", "--nints", "1", "--npsfs", "2",
        "--shape", "96", "96", "--decorrelation", "1", "--mask-style", "crds",
        "--psf-dither", "5-point-diamond", "--large-offset", "3", "2", "--record-large-offset",
        "--offset-scale", "0.05", "--seed", "4", "-o", str(tmp_path),
    ]  # fmt: skip
    assert main(["-q", *args]) == 0
    assert "psfstack:" in capsys.readouterr().out
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["instrument"] == "nircam-sw"
    assert truth["shape"] == [96, 96]
    assert truth["decorrelation"] == 1.0
    assert truth["mask_style"] == "crds"
    assert truth["pointing"]["psf_dither"] == "5-point-diamond"
    assert truth["pointing"]["large_offset_recorded"] is True
    with datamodels.open(tmp_path / truth["psfmask"]) as model:
        assert not model.data[-1].any()
        assert 0 < model.data.min(where=model.data > 0, initial=1) < 2e-5
    stack = next(tmp_path.glob("*_psfstack.fits"))
    with datamodels.open(stack) as model:
        members = model.meta.coronalign.instance["psf_members"]
    assert members[1]["x_offset"] == pytest.approx(0.020 + 3 * 0.031)  # dither + large offset
    expected = simulation.simulate_exposures(
        "nircam-sw", 1, 2, seed=4, shape=(96, 96), decorrelation=1.0, mask_style="crds",
        psf_dither="5-point-diamond", large_offset=(3, 2), record_large_offset=True,
        offset_scale=0.05,
    )  # fmt: skip
    assert truth["xshift"] == expected.truth["xshift"]


def test_cli_simulate_rejects_bad_values(tmp_path, capsys):
    from coronalign.cli import main

    with pytest.raises(SystemExit) as info:
        main(["simulate", "--decorrelation", "2", "-o", str(tmp_path)])
    assert info.value.code == 2
    assert "between 0 and 1" in capsys.readouterr().err
    status = main(["simulate", "--mask-style", "crds", "--taper", "2", "-o", str(tmp_path)])
    assert status == 2
    assert "taper" in capsys.readouterr().err


def test_version_is_read_only_when_asked_for():
    from importlib.metadata import version

    probe = "import sys, coronalign.cli; print('importlib.metadata' in sys.modules)"
    imported = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert imported == "False"
    shown = subprocess.run(
        [sys.executable, "-m", "coronalign.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown == f"coronalign {version('coronalign')}\n"
    import coronalign

    assert coronalign.__version__ == version("coronalign")
    with pytest.raises(AttributeError):
        _ = coronalign.no_such_attribute
