"""What a command may be given: regular inputs, outputs that are not inputs or each other."""

import os
import re

import pytest

from coronalign.errors import InputFileError
from coronalign.io.paths import check_fits_name, check_input, check_outputs, open_input


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda p: p.mkdir(), "a folder"),
        (lambda p: os.mkfifo(p), "a FIFO (named pipe)"),
        (lambda p: p.symlink_to("/dev/zero"), "a character device"),
    ],
)
def test_only_regular_files_are_inputs(make, kind, tmp_path):
    path = tmp_path / "x.fits"
    make(path)
    for check in (check_input, open_input):
        message = rf"x\.fits: mask is {re.escape(kind)}, not a regular file"
        with pytest.raises(InputFileError, match=message):
            check(path, "mask")


def test_a_missing_input_and_a_link_loop_are_named(tmp_path):
    with pytest.raises(InputFileError, match="science exposure file not found"):
        check_input(tmp_path / "absent.fits", "science exposure")
    loop = tmp_path / "loop.fits"
    loop.symlink_to(loop)
    with pytest.raises(InputFileError, match=r"loop\.fits: science exposure cannot be read"):
        check_input(loop, "science exposure")


def test_outputs_that_are_inputs_or_each_other_however_spelled(tmp_path, monkeypatch):
    science = tmp_path / "s.fits"
    science.write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.fits").symlink_to("s.fits")
    os.link(science, tmp_path / "hard.fits")
    (tmp_path / "dangling.fits").symlink_to("new.fits")
    for spelling in ("s.fits", "./s.fits", "sub/../s.fits", str(science), "link.fits", "hard.fits"):
        with pytest.raises(InputFileError, match="to write is the science exposure"):
            check_outputs({"product": spelling}, {"science exposure": "s.fits"})
    for first, second in [("new.fits", "./new.fits"), ("dangling.fits", "new.fits")]:
        with pytest.raises(InputFileError, match=r"the table and the product .*same file"):
            check_outputs([("product", first), ("table", second)])
    check_outputs({"product": "new.fits", "table": None}, {"science exposure": "s.fits"})


def test_fits_names_must_be_printable_ascii(tmp_path):
    check_fits_name(tmp_path / "é" / "x_psfalign.fits", "product")  # folders: any name
    for name in ("é_psfalign.fits", "x\t.fits", "x\x7f.fits"):
        with pytest.raises(InputFileError, match="printable ASCII"):
            check_fits_name(tmp_path / name, "product")
