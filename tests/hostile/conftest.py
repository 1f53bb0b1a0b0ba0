"""The inputs every hostile case starts from: a small association, its stack and product."""

import pytest

from coronalign import simulation
from coronalign.cli import main
from tests.helpers.hostile import stop_zygote


@pytest.fixture(scope="package", autouse=True)
def _no_fork_server_afterwards():
    """The process the cases are forked from does not outlive this folder's tests."""
    yield
    stop_zygote()


def _dataset(folder, nints):
    """Science, two PSF exposures, PSFMASK, their stack, a product, its table, a selection."""
    paths = simulation.write_association(
        folder, "nircam", n_science=1, n_psf=2, nints=nints, psf_nints=1, shape=(64, 64), seed=14
    )
    names = {
        "science": paths["science"][0].name,
        "psf1": paths["psf"][0].name,
        "psf2": paths["psf"][1].name,
        "psfmask": paths["psfmask"].name,
        "asn": paths["asn"].name,
        "psfstack": "jw01234-a3001_psfstack.fits",
        "product": "jw01234001001_03106_00001_nrcalong_a3001_psfalign.fits",
        "shifts": "jw01234001001_03106_00001_nrcalong_a3001_psfshifts.ecsv",
        "selection": "psfmask_selection.json",
    }
    at = {key: str(folder / name) for key, name in names.items()}
    assert main(["-q", "stack", at["psf1"], at["psf2"], "-o", at["psfstack"]]) == 0
    command = ["-q", "psfmask", at["science"], "--override", at["psfmask"]]
    assert main([*command, "-o", at["selection"]]) == 0
    command = ["-q", "align", at["science"], at["psfstack"], "--psfmask", at["psfmask"]]
    assert main([*command, "-o", at["product"], "--shifts", at["shifts"]]) == 0
    return folder, names


@pytest.fixture(scope="package")
def hostile_data(tmp_path_factory):
    """``(folder, names)``: the inputs, by role (``science``, ``psfstack``, ``product``...)."""
    return _dataset(tmp_path_factory.mktemp("hostile-data"), nints=2)


@pytest.fixture(scope="package")
def long_data(tmp_path_factory):
    """As ``hostile_data`` with 12 integrations: a product long enough to interrupt."""
    return _dataset(tmp_path_factory.mktemp("hostile-long"), nints=12)
