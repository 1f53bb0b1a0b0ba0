"""Rewrite the golden sets' ``truth.json`` after a change of the simulator's float64 arithmetic.

The golden inputs (``tests/data/official*/<instrument>/golden_*.fits``, float32) and the official
results made from them stay as they are; only the simulator's exact truth (float64) is written
again. The script refuses to write anything unless the simulator still makes every committed
FITS array bit for bit, so the official results keep belonging to the inputs beside them. It then
updates the ``truth.json`` rows of each folder's README and appends a line saying when and why.

Usage::

    .venv/bin/python benchmarks/official/refresh_truth.py --why "the reason, for the README"
"""

import argparse
import datetime
import hashlib
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
from stdatamodels.jwst import datamodels

from coronalign.dq import DO_NOT_USE
from coronalign.simulation import simulate_exposures, write_simulation

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"
FOLDERS = {"official": True, "official_clean": False}  # folder -> garbage
INSTRUMENTS = ("nircam", "miri")


def _simulate(instrument, garbage):
    """The golden inputs exactly as make_golden.py makes them (its defaults)."""
    sim = simulate_exposures(
        instrument, nints=2, npsfs=3, seed=2024, shape=(96, 96), garbage=garbage,
        mask_style="crds", decorrelation=0.3,
    )  # fmt: skip
    for data, dq in ((sim.sci, sim.sci_dq), (sim.psf, sim.psf_dq)):
        data[np.isinf(data) & ((dq & DO_NOT_USE) == 0)] = np.nan
    return sim


def _same_inputs(where, sim):
    """True when the committed golden FITS arrays are exactly what the simulator makes now."""
    checks = (
        ("golden_calints.fits", ("data", sim.sci), ("err", sim.sci_err), ("dq", sim.sci_dq)),
        ("golden_psfstack.fits", ("data", sim.psf), ("err", sim.psf_err), ("dq", sim.psf_dq)),
        ("golden_psfmask.fits", ("data", sim.mask)),
    )
    for name, *arrays in checks:
        with datamodels.open(where / name) as model:
            for attribute, expected in arrays:
                if not np.array_equal(getattr(model, attribute), expected, equal_nan=True):
                    print(f"{where / name}: {attribute} is not made again", file=sys.stderr)
                    return False
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--why", required=True, help="why the truth changed (for the READMEs)")
    args = ap.parse_args(argv)
    plans = []
    for folder, garbage in FOLDERS.items():
        for instrument in INSTRUMENTS:
            where = DATA / folder / instrument
            sim = _simulate(instrument, garbage)
            if not _same_inputs(where, sim):
                return 1
            plans.append((where, sim))
    for where, sim in plans:
        with tempfile.TemporaryDirectory() as tmp:
            paths = write_simulation(sim, Path(tmp), root="golden")
            text = paths["truth"].read_text()
        (where / "truth.json").write_text(text)
        readme = where.parent / "README.md"
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        size = len(text.encode())
        # the truth.json row of this instrument's section
        section = re.compile(rf"(## {where.name}\n.*?\| `truth.json` \| )\d+ \| `[0-9a-f]+…`", re.S)
        readme.write_text(section.sub(rf"\g<1>{size} | `{digest}…`", readme.read_text()))
    today = datetime.date.today().isoformat()
    for folder in FOLDERS:
        readme = DATA / folder / "README.md"
        note = (
            f"\n`truth.json` rewritten on {today} by `benchmarks/official/refresh_truth.py`"
            f" ({args.why}); the golden FITS inputs, checked to be made again bit for bit, and"
            " the official results are unchanged.\n"
        )
        readme.write_text(readme.read_text() + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
