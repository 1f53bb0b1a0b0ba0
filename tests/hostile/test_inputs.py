"""The catalogue of hostile inputs: one line per case, each refused cleanly.

A case is a ``coronalign`` command line and the words its one error line must hold. Names in
braces are files of the run folder: the inputs (``{science}``, ``{psfstack}``, ``{psfmask}``,
``{psf1}``, ``{psf2}``, ``{product}``, ``{shifts}``, ``{selection}``), outputs not yet
written (``{out}``, ``{table}``, ``{report}``, ``{stack}``), and hostile files made on
demand by ``MAKERS`` (``{fifo}``, ``{link_to_science}``...). Every case must end with exit
status 2, exactly one line ``coronalign: error: ...`` naming the file, no traceback, the
run folder exactly as before (no output, no leftover, no input changed) and nothing
written outside it (tests/helpers/hostile.py). Add the next hostile input as one line.
"""

import os
import shutil
import urllib.parse

import numpy as np
import pytest
from astropy.io import fits
from stdatamodels.jwst import datamodels

from tests.helpers.hostile import HostileRun


def _fifo(folder, name):
    os.mkfifo(folder / name)
    return name


def _folder(folder, name):
    (folder / name).mkdir()
    return name


def _symlink(folder, name, target):
    os.symlink(target, folder / name)
    return name


def _hard_link(folder, name, target):
    os.link(folder / target, folder / name)
    return name


def _header(folder, names, source, name, **keywords):
    """A copy of ``source`` with primary-header keywords changed."""
    shutil.copy(folder / names[source], folder / name)
    for key, value in keywords.items():
        fits.setval(folder / name, key, value=value)
    return name


def _extension(folder, names, source, name, extension, shape):
    """A copy of ``source`` whose ``extension`` (DQ or ERR) has another shape."""
    with fits.open(folder / names[source]) as hdulist:
        dtype = hdulist[extension].data.dtype
        hdulist[extension].data = np.zeros(shape, dtype=dtype)
        hdulist.writeto(folder / name)
    return name


def _stack_with_member(folder, names, name, members=(1,), **changes):
    """A copy of the PSF stack whose record says other values for some members."""
    with datamodels.open(folder / names["psfstack"]) as model:
        record = model.meta.coronalign.instance
        for index in members:
            record["psf_members"][index].update(changes)
        model.meta.coronalign = record
        model.save(folder / name)
    return name


#: Hostile files, made in the run folder when a case names them: name -> maker(folder, names).
MAKERS = {
    "out": lambda d, n: "out_psfalign.fits",
    "table": lambda d, n: "out_psfshifts.ecsv",
    "report": lambda d, n: "report.json",
    "stack": lambda d, n: "new_psfstack.fits",
    "fifo": lambda d, n: _fifo(d, "pipe.fits"),
    "folder": lambda d, n: _folder(d, "folder.fits"),
    "link_to_science": lambda d, n: _symlink(d, "link_calints.fits", n["science"]),
    "link_to_psfstack": lambda d, n: _symlink(d, "link_psfstack.fits", n["psfstack"]),
    "link_to_dev_zero": lambda d, n: _symlink(d, "zero_psfmask.fits", "/dev/zero"),
    "link_to_dev_null": lambda d, n: _symlink(d, "null_psfalign.fits", "/dev/null"),
    "link_to_fifo": lambda d, n: _symlink(d, "pipe_link.fits", _fifo(d, "pipe2.fits")),
    "hard_link_to_science": lambda d, n: _hard_link(d, "hard_calints.fits", n["science"]),
    "absolute_science": lambda d, n: str(d / n["science"]),
    "dot_science": lambda d, n: f"./{n['science']}",
    "dotdot_science": lambda d, n: f"{_folder(d, 'sub')}/../{n['science']}",
    "dot_out": lambda d, n: "./out_psfalign.fits",
    "non_ascii_out": lambda d, n: "café_psfalign.fits",
    "non_ascii_stack": lambda d, n: "naïve_psfstack.fits",
    "newline_out": lambda d, n: "out\n_psfalign.fits",
    "dq_2d_science": lambda d, n: _extension(d, n, "science", "dq2d_calints.fits", "DQ", (64, 64)),
    "dq_1plane_psfstack": lambda d, n: _extension(
        d, n, "psfstack", "dq1_psfstack.fits", "DQ", (1, 64, 64)
    ),
    "err_2d_science": lambda d, n: _extension(d, n, "science", "err_calints.fits", "ERR", (64, 64)),
    "psf_f410m": lambda d, n: _header(d, n, "psf2", "f410m_calints.fits", FILTER="F410M"),
    "psf_maska430r": lambda d, n: _header(d, n, "psf2", "m430_calints.fits", CORONMSK="MASKA430R"),
    "psf_sub320a430r": lambda d, n: _header(
        d, n, "psf2", "s430_calints.fits", SUBARRAY="SUB320A430R"
    ),
    "psf_miri": lambda d, n: _header(d, n, "psf2", "miri_calints.fits", INSTRUME="MIRI"),
    "psf_f410m_maska430r": lambda d, n: _header(
        d, n, "psf2", "f4m4_calints.fits", FILTER="F410M", CORONMSK="MASKA430R"
    ),
    "stack_members_disagree": lambda d, n: _stack_with_member(
        d, n, "odd_psfstack.fits", filter="F410M"
    ),
    "empty_selection_dir": lambda d, n: _folder(d, "selection.json"),
}

ALIGN = "align {science} {psfstack} --psfmask {psfmask}"

#: id: (command, words the error line must hold). Words are formatted like the command.
CASES = {
    # Special files as inputs: refused before they are opened (no hang, no wrong message).
    "science is /dev/zero": (
        "align /dev/zero {psfstack} --psfmask {psfmask} -o {out}",
        ["/dev/zero", "science exposure is a character device, not a regular file"],
    ),
    "PSF stack is /dev/zero": (
        "align {science} /dev/zero --psfmask {psfmask} -o {out}",
        ["/dev/zero", "PSF stack is a character device"],
    ),
    "mask is /dev/zero": (
        "align {science} {psfstack} --psfmask /dev/zero -o {out}",
        ["/dev/zero", "PSFMASK is a character device"],
    ),
    "mask is a link to /dev/zero": (
        ALIGN.replace("{psfmask}", "{link_to_dev_zero}") + " -o {out}",
        ["{link_to_dev_zero}", "PSFMASK is a character device"],
    ),
    "science is a FIFO": (
        "align {fifo} {psfstack} --psfmask {psfmask} -o {out}",
        ["{fifo}", "science exposure is a FIFO (named pipe), not a regular file"],
    ),
    "PSF stack is a FIFO": (
        "align {science} {fifo} --psfmask {psfmask} -o {out}",
        ["{fifo}", "PSF stack is a FIFO"],
    ),
    "mask is a FIFO": (
        "align {science} {psfstack} --psfmask {fifo} -o {out}",
        ["{fifo}", "PSFMASK is a FIFO"],
    ),
    "mask is a link to a FIFO": (
        "align {science} {psfstack} --psfmask {link_to_fifo} -o {out}",
        ["{link_to_fifo}", "PSFMASK is a FIFO"],
    ),
    "science is a folder": (
        "align {folder} {psfstack} --psfmask {psfmask} -o {out}",
        ["{folder}", "science exposure is a folder, not a regular file"],
    ),
    "PSF stack is a folder": (
        "align {science} {folder} --psfmask {psfmask} -o {out}",
        ["{folder}", "PSF stack is a folder"],
    ),
    "mask is a folder": (
        "align {science} {psfstack} --psfmask {folder} -o {out}",
        ["{folder}", "PSFMASK is a folder"],
    ),
    "selection is a FIFO": (
        "align {science} {psfstack} --psfmask-selection {fifo} -o {out}",
        ["{fifo}", "PSFMASK selection is a FIFO"],
    ),
    "selection is a folder": (
        "align {science} {psfstack} --psfmask-selection {empty_selection_dir} -o {out}",
        ["{empty_selection_dir}", "PSFMASK selection is a folder"],
    ),
    "stack member is a FIFO": (
        "stack {psf1} {fifo} -o {stack}",
        ["{fifo}", "PSF exposure is a FIFO"],
    ),
    "stack member is /dev/zero": (
        "stack {psf1} /dev/zero -o {stack}",
        ["/dev/zero", "PSF exposure is a character device"],
    ),
    "check-psfstack science is /dev/zero": (
        "check-psfstack {psfstack} /dev/zero --report {report}",
        ["/dev/zero", "science exposure is a character device"],
    ),
    "psfmask override is a FIFO": (
        "psfmask {science} --override {fifo} -o {report}",
        ["{fifo}", "PSFMASK override is a FIFO"],
    ),
    "validate product is a FIFO": (
        "validate {fifo} --shifts {shifts} --report {report}",
        ["{fifo}", "product is a FIFO"],
    ),
    "validate shift table is /dev/zero": (
        "validate {product} --shifts /dev/zero --report {report}",
        ["/dev/zero", "shift table is a character device"],
    ),
    "plot science is a FIFO": (
        "plot {product} --science {fifo} --shifts {shifts} -o plot.png",
        ["{fifo}", "science exposure is a FIFO"],
    ),
    "summarize report is a FIFO": (
        "summarize {fifo} --shifts {shifts} -o summary.tsv",
        ["{fifo}", "validation report is a FIFO"],
    ),
    "manifest product is a FIFO": (
        "manifest {fifo} -o manifest.json",
        ["{fifo}", "product is a FIFO"],
    ),
    # An output that is an input, however spelled: refused before any work.
    "output is the science": (
        ALIGN + " -o {science}",
        ["{science}", "the product to write is the science exposure", "replace an input"],
    ),
    "output is ./science": (
        ALIGN + " -o {dot_science}",
        ["{science}", "the product to write is the science exposure"],
    ),
    "output is sub/../science": (
        ALIGN + " -o {dotdot_science}",
        ["{dotdot_science}", "the product to write is the science exposure"],
    ),
    "output is the science, absolute": (
        ALIGN + " -o {absolute_science}",
        ["{absolute_science}", "the product to write is the science exposure ({science})"],
    ),
    "output is a symlink to the science": (
        ALIGN + " -o {link_to_science}",
        ["{link_to_science}", "the product to write is the science exposure ({science})"],
    ),
    "output is a hard link to the science": (
        ALIGN + " -o {hard_link_to_science}",
        ["{hard_link_to_science}", "the product to write is the science exposure"],
    ),
    "output is the PSF stack": (ALIGN + " -o {psfstack}", ["{psfstack}", "the PSF stack"]),
    "output is a link to the PSF stack": (
        ALIGN + " -o {link_to_psfstack}",
        ["{link_to_psfstack}", "is the PSF stack ({psfstack})"],
    ),
    "output is the mask": (ALIGN + " -o {psfmask}", ["{psfmask}", "is the PSFMASK"]),
    "shift table is the science": (
        ALIGN + " -o {out} --shifts {science}",
        ["{science}", "the shift table to write is the science exposure"],
    ),
    "shift table is the product": (
        ALIGN + " -o {out} --shifts {out}",
        ["{out}", "the shift table and the product would be the same file"],
    ),
    "shift table is ./product": (
        ALIGN + " -o {out} --shifts {dot_out}",
        ["{out}", "the shift table and the product would be the same file"],
    ),
    "output is the selection file": (
        "align {science} {psfstack} --psfmask-selection {selection} -o {selection}",
        ["{selection}", "the product to write is the PSFMASK selection"],
    ),
    "stack output is a member": (
        "stack {psf1} {psf2} -o {psf2}",
        ["{psf2}", "the PSF stack to write is the PSF exposure"],
    ),
    "check-psfstack report is the stack": (
        "check-psfstack {psfstack} {science} --report {psfstack}",
        ["{psfstack}", "the report to write is the PSF stack"],
    ),
    "psfmask selection output is the science": (
        "psfmask {science} --override {psfmask} -o {science}",
        ["{science}", "the PSFMASK selection to write is the science exposure"],
    ),
    "validation report is the product": (
        "validate {product} --shifts {shifts} --report {product}",
        ["{product}", "the validation report to write is the product"],
    ),
    "summary is a shift table": (
        "summarize report.json --shifts {shifts} -o {shifts}",
        ["{shifts}", "the summary to write is the shift table"],
    ),
    "plot output is the product": (
        "plot {product} --science {science} --shifts {shifts} -o {product}",
        ["{product}", "the figure to write is the product"],
    ),
    "manifest output is the product": (
        "manifest {product} -o {product}",
        ["{product}", "the manifest to write is the product"],
    ),
    # An output that is not a file: the rename would replace a folder, a FIFO, a device.
    "output is a folder": (ALIGN + " -o {folder}", ["{folder}", "to write is a folder"]),
    "output is a FIFO": (ALIGN + " -o {fifo}", ["{fifo}", "to write is a FIFO"]),
    "output is a link to /dev/null": (
        ALIGN + " -o {link_to_dev_null}",
        ["{link_to_dev_null}", "to write is a character device"],
    ),
    "stack output is a folder": ("stack {psf1} -o {folder}", ["{folder}", "is a folder"]),
    # FITS headers are ASCII, and FILENAME records the output's name.
    "non-ASCII product name": (
        ALIGN + " -o {non_ascii_out}",
        ["{non_ascii_out}", "file name must be printable ASCII"],
    ),
    "control character in the product name": (
        ALIGN + " -o {newline_out}",
        ["file name must be printable ASCII"],
    ),
    "non-ASCII stack name": (
        "stack {psf1} {psf2} -o {non_ascii_stack}",
        ["{non_ascii_stack}", "file name must be printable ASCII"],
    ),
    # DQ and ERR of another shape than SCI.
    "science DQ is 2D": (
        "align {dq_2d_science} {psfstack} --psfmask {psfmask} -o {out}",
        ["{dq_2d_science}", "DQ array", "(64, 64)", "(2, 64, 64)"],
    ),
    "PSF stack DQ has one plane": (
        "align {science} {dq_1plane_psfstack} --psfmask {psfmask} -o {out}",
        ["{dq_1plane_psfstack}", "DQ array of the PSF stack", "(1, 64, 64)", "(2, 64, 64)"],
    ),
    "science ERR is 2D": (
        "align {err_2d_science} {psfstack} --psfmask {psfmask} -o {out}",
        ["{err_2d_science}", "ERR array", "(64, 64)"],
    ),
    "stack member DQ is 2D": (
        "stack {psf1} {dq_2d_science} -o {stack}",
        ["{dq_2d_science}", "DQ array of the PSF exposure"],
    ),
    # PSF members that disagree: every member is checked, not the first one's copy.
    "stack members of two filters": (
        "stack {psf1} {psf_f410m} -o {stack}",
        ["{psf_f410m}", "filter (FILTER) is 'F335M' in {psf1} but 'F410M' in {psf_f410m}"],
    ),
    "stack members of two coronagraphs": (
        "stack {psf1} {psf_maska430r} -o {stack}",
        ["{psf_maska430r}", "coronagraph (CORONMSK)", "'MASKA430R' in {psf_maska430r}"],
    ),
    "stack members of two subarrays": (
        "stack {psf1} {psf_sub320a430r} -o {stack}",
        ["{psf_sub320a430r}", "subarray (SUBARRAY)", "'SUB320A430R'"],
    ),
    "stack members of two instruments": (
        "stack {psf1} {psf_miri} -o {stack}",
        ["{psf_miri}", "instrument (INSTRUME) is 'NIRCAM' in {psf1} but 'MIRI' in {psf_miri}"],
    ),
    "stack member differs twice (one message)": (
        "stack {psf1} {psf2} {psf_f410m_maska430r} -o {stack}",
        ["{psf_f410m_maska430r}", "'F335M' in {psf1}, {psf2} but 'F410M'", "; coronagraph"],
    ),
    "check-psfstack members disagree": (
        "check-psfstack {stack_members_disagree} {science} --report {report}",
        ["{stack_members_disagree}", "member exposures do not agree", "'F410M' in {psf2}"],
    ),
}


class _Files(dict):
    """Names for a command template: inputs by role, hostile files made when first named."""

    def __init__(self, folder, names):
        super().__init__(names)
        self.folder = folder
        self.names = names

    def __missing__(self, key):
        self[key] = MAKERS[key](self.folder, self.names)
        return self[key]


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_is_refused_cleanly(case, hostile_data, tmp_path):
    data, names = hostile_data
    command, words = CASES[case]
    run = HostileRun(tmp_path, data)
    files = _Files(run.folder, names)
    args = [part.format_map(files) for part in command.split()]
    words = [word.format_map(files) for word in words]
    run.snapshot()
    result = run.run(*args)
    run.assert_refused(result, words)


# ---------------------------------------------------------------- accepted, not refused


def test_old_and_new_spellings_of_one_nircam_mask_stack_together(hostile_data, tmp_path):
    """CORONMSK MASK335R is the older name of MASKA335R: the same mask, no error."""
    data, names = hostile_data
    run = HostileRun(tmp_path, data)
    old = _header(run.folder, names, "psf2", "old_calints.fits", CORONMSK="MASK335R")
    status, stderr = run.run("stack", names["psf1"], old, "-o", "both_psfstack.fits")
    assert status == 0, stderr
    args = ["check-psfstack", "both_psfstack.fits", names["science"], "--report", "r.json"]
    status, stderr = run.run(*args)
    assert status == 0, stderr


def test_stack_member_of_another_filter_than_the_science_is_named(hostile_data, tmp_path):
    """The per-member record lets check-psfstack name the member that differs."""
    data, names = hostile_data
    run = HostileRun(tmp_path, data)
    stack = _stack_with_member(run.folder, names, "x_psfstack.fits", (0, 1), filter="F410M")
    run.snapshot()
    result = run.run("check-psfstack", stack, names["science"], "--report", "r.json")
    words = [f"PSF exposure {names['psf1']} of the PSF stack is 'F410M'", "'F335M'"]
    run.assert_refused(result, words)


def test_non_ascii_folders_and_input_names_are_supported(hostile_data, tmp_path):
    """Folders and inputs may have any name: R_PSFMAS escapes what FITS cannot hold."""
    data, names = hostile_data
    run = HostileRun(tmp_path, data)
    folder = run.folder / "données été"
    folder.mkdir()
    mask = folder / "masque_é.fits"
    shutil.copy(run.folder / names["psfmask"], mask)
    out = folder / "x_psfalign.fits"
    status, stderr = run.run(
        "align", names["science"], names["psfstack"], "--psfmask", mask, "-o", out, "--shifts",
        folder / "x_psfshifts.ecsv",
    )  # fmt: skip
    assert status == 0, stderr
    header = fits.getheader(out)
    assert header["FILENAME"] == "x_psfalign.fits"
    printable = "".join(map(chr, range(32, 127)))
    assert header["R_PSFMAS"] == urllib.parse.quote(str(mask), safe=printable)
    assert "%C3%A9" in header["R_PSFMAS"]
    with datamodels.open(out) as model:
        assert model.meta.coronalign.instance["inputs"]["psfmask"]["path"] == str(mask)
