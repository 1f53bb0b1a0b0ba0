"""stack_refs and the PSF-stack input check."""

import json
import logging

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels

from coronalign.cli import main
from coronalign.errors import InputFileError
from coronalign.io.provenance import file_sha256
from coronalign.steps.stack_refs import check_psfstack, stack_refs

META = {"name": "NIRCAM", "filter": "F335M", "coronagraph": "MASKA335R", "subarray": "SUB320A335R"}


def _cube(path, nplanes, value, shape=(16, 20), **meta):
    values = {**META, **meta}
    data = np.full((nplanes, *shape), value, dtype=np.float32)
    data += np.arange(nplanes, dtype=np.float32)[:, None, None] / 10
    model = datamodels.CubeModel(
        data=data,
        err=np.full(data.shape, value / 100, np.float32),
        dq=np.full(data.shape, 0 if np.isnan(value) else int(value), np.uint32),
    )
    model.meta.instrument.name = values["name"]
    model.meta.instrument.filter = values["filter"]
    model.meta.instrument.coronagraph = values["coronagraph"]
    model.meta.subarray.name = values["subarray"]
    model.meta.observation.program_number = "0" if np.isnan(value) else str(int(value))
    model.save(path)
    return path


def test_stack_refs_concatenates_all_integrations_in_member_order(tmp_path):
    first = _cube(tmp_path / "b_calints.fits", 2, 5.0)
    second = _cube(tmp_path / "a_calints.fits", 3, 7.0)
    out = tmp_path / "x_psfstack.fits"
    assert stack_refs([first, second], out) == (5, 16, 20)
    with datamodels.open(out) as stack:
        assert isinstance(stack, datamodels.CubeModel)
        np.testing.assert_array_equal(stack.data[:2, 0, 0], np.float32([5.0, 5.1]))
        np.testing.assert_array_equal(stack.data[2:, 0, 0], np.float32([7.0, 7.1, 7.2]))
        assert stack.data.dtype.kind == "f"
        assert stack.data.dtype.itemsize == 4
        assert stack.err.dtype.itemsize == 4
        assert stack.dq.dtype.kind == "u"
        assert stack.dq.dtype.itemsize == 4
        np.testing.assert_array_equal(stack.dq[:, 0, 0], [5, 5, 7, 7, 7])
        assert stack.meta.observation.program_number == "5"  # metadata of the first member
        assert stack.meta.cal_step.stack_psfs == "COMPLETE"
    assert list(tmp_path.glob(".*partial*")) == []


def test_stack_refs_refuses_different_frames_and_names_them(tmp_path):
    first = _cube(tmp_path / "one_calints.fits", 1, 1.0)
    second = _cube(tmp_path / "two_calints.fits", 1, 1.0, shape=(16, 24))
    out = tmp_path / "x_psfstack.fits"
    with pytest.raises(InputFileError, match="same frame size") as error:
        stack_refs([first, second], out)
    assert "one_calints.fits: 1 x 16x20" in str(error.value)
    assert "two_calints.fits: 1 x 16x24" in str(error.value)
    assert not out.exists()


def test_check_passes_and_writes_a_report(tmp_path):
    stack = _cube(tmp_path / "s_psfstack.fits", 2, 3.0)
    science = [_cube(tmp_path / f"sci{i}_calints.fits", 3, 4.0) for i in range(2)]
    report = tmp_path / "check.json"
    result = check_psfstack(stack, science, report)
    assert result["status"] == "passed"
    written = json.loads(report.read_text())
    assert written["shape"] == [2, 16, 20]
    assert written["metadata"]["filter"] == "F335M"
    assert len(written["science"]) == 2


@pytest.mark.parametrize(
    ("label", "keyword", "change"),
    [
        ("filter", "FILTER", {"filter": "F444W"}),
        ("coronagraph", "CORONMSK", {"coronagraph": "MASKA430R"}),
        ("instrument", "INSTRUME", {"name": "MIRI"}),
        ("subarray", "SUBARRAY", {"subarray": "SUB640A210R"}),
    ],
)
def test_check_shows_both_values_of_a_mismatch(tmp_path, label, keyword, change):
    stack = _cube(tmp_path / "s_psfstack.fits", 2, 3.0, **change)
    science = _cube(tmp_path / "sci_calints.fits", 3, 4.0)
    with pytest.raises(InputFileError, match=f"{label} \\({keyword}\\)") as error:
        check_psfstack(stack, [science], tmp_path / "check.json")
    message = str(error.value)
    assert repr(next(iter(change.values()))) in message
    assert repr(META["name" if label == "instrument" else label]) in message
    assert "s_psfstack.fits" in message
    assert "sci_calints.fits" in message
    assert not (tmp_path / "check.json").exists()


def test_check_refuses_frame_mismatch_and_all_nan(tmp_path):
    stack = _cube(tmp_path / "s_psfstack.fits", 2, 3.0)
    science = _cube(tmp_path / "sci_calints.fits", 3, 4.0, shape=(16, 16))
    with pytest.raises(InputFileError, match=r"16x20 .* are 16x16"):
        check_psfstack(stack, [science])
    nan = _cube(tmp_path / "nan_psfstack.fits", 2, np.nan)
    with pytest.raises(InputFileError, match="no finite pixel"):
        check_psfstack(nan, [_cube(tmp_path / "ok_calints.fits", 1, 1.0)])


def test_check_refuses_a_stack_that_is_not_a_cube(tmp_path):
    image = tmp_path / "image.fits"
    datamodels.ImageModel(data=np.ones((16, 20), np.float32)).save(image)
    science = _cube(tmp_path / "sci_calints.fits", 1, 1.0)
    with pytest.raises(InputFileError, match="3D CubeModel"):
        check_psfstack(image, [science])


def test_stack_and_check_commands(tmp_path, capsys):
    psf = [_cube(tmp_path / f"psf{i}_calints.fits", 2, 2.0 + i) for i in range(2)]
    science = _cube(tmp_path / "sci_calints.fits", 1, 1.0, filter="F250M")
    stack = tmp_path / "s_psfstack.fits"
    assert main(["-q", "stack", *map(str, psf), "-o", str(stack)]) == 0
    report = tmp_path / "r.json"
    args = ["-q", "check-psfstack", str(stack), str(science), "--report", str(report)]
    assert main(args) == 2
    assert "'F335M'" in capsys.readouterr().err
    assert not report.exists()


def test_stacking_the_same_files_twice_writes_the_same_bytes(tmp_path):
    """FILENAME is the stack's own name (not its temporary one), DATE its newest member's."""
    first = _cube(tmp_path / "one_calints.fits", 2, 5.0)
    second = _cube(tmp_path / "two_calints.fits", 1, 7.0)
    outputs = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        outputs.append(tmp_path / folder / "jw01-a3001_psfstack.fits")
        stack_refs([first, second], outputs[-1])
    assert file_sha256(outputs[0]) == file_sha256(outputs[1])
    header = fits.getheader(outputs[0])
    assert header["FILENAME"] == "jw01-a3001_psfstack.fits"
    dates = [fits.getheader(path)["DATE"] for path in (first, second)]
    assert header["DATE"] == max(dates)


def test_each_members_configuration_is_recorded(tmp_path):
    first = _cube(tmp_path / "one_calints.fits", 1, 5.0)
    second = _cube(tmp_path / "two_calints.fits", 1, 7.0, coronagraph="MASK335R")
    out = tmp_path / "x_psfstack.fits"
    stack_refs([first, second], out)  # MASK335R is MASKA335R's older name: no error
    with datamodels.open(out) as stack:
        members = stack.meta.coronalign.instance["psf_members"]
    assert [m["coronagraph"] for m in members] == ["MASKA335R", "MASK335R"]
    assert {m["filter"] for m in members} == {"F335M"}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"filter": "F410M"}, ["filter (FILTER) is 'F335M' in one_calints.fits, two_calints"]),
        ({"name": "MIRI"}, ["instrument (INSTRUME) is 'NIRCAM'", "but 'MIRI' in odd_calints"]),
        ({"subarray": "FULL"}, ["subarray (SUBARRAY)", "'FULL' in odd_calints.fits"]),
        ({"coronagraph": "MASKA430R"}, ["coronagraph (CORONMSK)", "'MASKA430R' in odd"]),
    ],
)
def test_members_that_disagree_are_one_error_naming_the_odd_one(change, words, tmp_path):
    members = [_cube(tmp_path / f"{name}_calints.fits", 1, 5.0) for name in ("one", "two")]
    members.append(_cube(tmp_path / "odd_calints.fits", 1, 5.0, **change))
    with pytest.raises(InputFileError) as error:
        stack_refs(members, tmp_path / "x_psfstack.fits")
    message = str(error.value)
    assert message.startswith(f"{members[2]}: the PSF exposures do not agree")
    for word in words:
        assert word in message
    assert not list(tmp_path.glob("*psfstack*"))


def test_a_member_with_a_keyword_unset_is_one_warning(tmp_path, caplog):
    first = _cube(tmp_path / "one_calints.fits", 1, 5.0)
    second = _cube(tmp_path / "two_calints.fits", 1, 5.0)
    with datamodels.open(second) as model:
        del model.meta.instrument.filter
        model.save(second)
    with caplog.at_level(logging.WARNING):
        stack_refs([first, second], tmp_path / "x_psfstack.fits")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "not set, so not compared between the PSF exposures: FILTER (filter) in two_calints.fits"
    ]
