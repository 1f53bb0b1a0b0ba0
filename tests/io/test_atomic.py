"""Outputs written under a temporary name: nothing half-written, clear errors."""

import os
from pathlib import Path

from coronalign import simulation
from coronalign.cli import main
from tests.helpers.commands import align_command


def test_unwritable_output_folder_is_a_clear_error(tmp_path, capsys):
    sim = simulation.simulate_exposures("nircam", nints=1, npsfs=1, seed=5)
    paths = simulation.write_simulation(sim, tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: use a read-only path
            target = Path("/proc/coronalign_psfalign.fits")
        else:
            target = locked / "out_psfalign.fits"
        status = main(align_command(paths["science"], paths["psfstack"], paths["psfmask"], target))
    finally:
        locked.chmod(0o700)
    assert status == 2
    message = capsys.readouterr().err
    assert "output folder is not writable" in message or "cannot" in message
    assert str(target.parent) in message
