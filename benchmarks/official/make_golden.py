"""Make the small golden data set that pins coronalign to the official ``align_refs`` results.

Runs in the project's environment (``.venv``); the official step runs in a separate virtual
environment (``make-venvs.sh``) through ``run_official.py``, so ``jwst`` is never imported here.

For each instrument (NIRCam, MIRI) it

1. simulates a small data set with :func:`coronalign.simulate.simulate_exposures` (default 2
   science integrations x 3 PSFs, 96 x 96 frames, noise and bad pixels on);
2. makes the inputs safe for the official step: a ``+/-inf`` pixel WITHOUT the DO_NOT_USE flag
   is set to NaN (the official step treats NaN as bad but not inf, and one inf turns its whole
   Fourier transform into NaN); DQ-flagged inf pixels are kept;
3. writes them with :func:`coronalign.simulate.write_simulation` (root ``golden``) to
   ``OUT/<instrument>/``;
4. runs ``run_official.py`` in the jwst 1.15.1 environment and keeps its shift table
   (``official_shifts_jwst-1.15.1.json``, indexed ``[k][m]``), its timing line
   (``official_run_jwst-1.15.1.json``) and one aligned SCI plane
   (``official_aligned_sci_k<K>_m<M>_jwst-1.15.1.npy``, float32, from the 4D product);
5. if a jwst 3.0.0 environment exists, also keeps its shift table (float64 fit for every pair,
   plus the step's own float32 fit of integration 0 under ``"step_native"``);
6. writes ``OUT/README.md`` saying how the files were made.

Usage::

    .venv/bin/python benchmarks/official/make_golden.py [--out tests/data/official]
        [--venv-root /work/venvs] [--seed 2024] [--nints 2] [--npsfs 3] [--size 96]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits

from coronalign.dq import DO_NOT_USE
from coronalign.simulation import simulate_exposures, write_simulation

__all__ = ["main", "make_instrument"]

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "run_official.py"
INSTRUMENTS = ("nircam", "miri")


def _default_venv_root() -> Path:
    if os.environ.get("VENV_ROOT"):
        return Path(os.environ["VENV_ROOT"])
    if Path("/work/venvs").is_dir():
        return Path("/work/venvs")
    return Path.home() / ".cache" / "coronalign-official"


def _run_official(python: Path, paths: dict, outdir: Path, shifts: Path) -> dict:
    """Run ``run_official.py`` with ``python`` and return its JSON line."""
    cmd = [
        str(python),
        str(RUNNER),
        str(paths["science"]),
        str(paths["psfstack"]),
        str(paths["psfmask"]),
        "-o",
        str(outdir),
        "--shifts-json",
        str(shifts),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise RuntimeError(f"official run failed ({python}): exit {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_instrument(
    instrument: str,
    out: Path,
    venvs: dict[str, Path],
    *,
    seed: int,
    nints: int,
    npsfs: int,
    size: int,
    pair: tuple[int, int],
    garbage: bool = True,
) -> dict:
    """Simulate, run the official step(s) and write the golden files of one instrument.

    Parameters
    ----------
    instrument : {"nircam", "miri"}
        Simulated configuration.
    out : pathlib.Path
        Folder for this instrument's files (replaced).
    venvs : dict
        ``{"1.15.1": python, "3.0.0": python}``; the 1.15.1 entry is required.
    seed, nints, npsfs, size : int
        Simulation parameters (square frame ``size`` x ``size``).
    pair : tuple of int
        ``(k, m)`` of the aligned SCI plane kept as ``.npy``.

    Returns
    -------
    dict
        Summary for the README: file names, sizes, checksums, counts, official timings.
    """
    sim = simulate_exposures(
        instrument, nints=nints, npsfs=npsfs, seed=seed, shape=(size, size), garbage=garbage
    )
    n_inf = 0
    for data, dq in ((sim.sci, sim.sci_dq), (sim.psf, sim.psf_dq)):
        unsafe = np.isinf(data) & ((dq & DO_NOT_USE) == 0)
        n_inf += int(unsafe.sum())
        data[unsafe] = np.nan
    if out.exists():
        shutil.rmtree(out)
    paths = write_simulation(sim, out, root="golden")
    summary = {"instrument": instrument, "unflagged_inf_to_nan": n_inf, "official": {}}
    with tempfile.TemporaryDirectory(prefix=f"golden-{instrument}-") as tmp:
        for version, python in venvs.items():
            shifts = out / f"official_shifts_jwst-{version}.json"
            line = _run_official(python, paths, Path(tmp) / version, shifts)
            product = Path(line.pop("product"))
            line["product"] = product.name
            line.pop("shifts_json", None)
            (out / f"official_run_jwst-{version}.json").write_text(
                json.dumps(line, indent=1) + "\n"
            )
            summary["official"][version] = line
            if version == "1.15.1":
                k, m = pair
                plane = fits.getdata(product, "SCI")[k, m].astype(np.float32)
                np.save(out / f"official_aligned_sci_k{k}_m{m}_jwst-{version}.npy", plane)
    summary["files"] = {
        p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(out.iterdir())
    }
    return summary


def _simulator_revision() -> str:
    """Commit of the repository and whether simulate.py differs from it."""
    repo = HERE.parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(repo), "diff", "--quiet", "HEAD", "--", "src/coronalign/simulate.py"],
            check=False,
        ).returncode  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (simulate.py with uncommitted changes)" if dirty else "")


def _readme(args, summaries: list[dict], venvs: dict[str, Path]) -> str:
    today = datetime.date.today().isoformat()
    cmd = " ".join(["benchmarks/official/make_golden.py", *sys.argv[1:]])
    total = sum(f["bytes"] for s in summaries for f in s["files"].values())
    lines = [
        "# Golden data from the official `align_refs` step",
        "",
        f"Made on {today} with `.venv/bin/python {cmd}` (Python {platform.python_version()},"
        f" numpy {np.__version__}, coronalign at commit {_simulator_revision()})."
        " Do not edit by hand; re-run the command instead.",
        "",
        "Inputs: `coronalign.simulate.simulate_exposures(instrument, nints="
        f"{args.nints}, npsfs={args.npsfs}, seed={args.seed}, shape=({args.size}, {args.size})"
        f"{', garbage=False' if args.clean else ''})`"
        f" ({'noise only' if args.clean else 'noise and bad pixels on'}), written by"
        " `write_simulation(sim, <instrument>/,"
        ' root="golden")`. Before writing, each `+/-inf` pixel without the DO_NOT_USE flag was set'
        " to NaN: the official step treats NaN as bad but not inf, and a single inf turns its whole"
        " Fourier transform into NaN. DQ-flagged inf pixels were kept.",
        "",
        "Official results: `benchmarks/official/run_official.py` (run in throw-away virtual"
        " environments made by `benchmarks/official/make-venvs.sh`; offline, the mask given as"
        " `override_psfmask`, `median_box_length=3`, `bad_bits=DO_NOT_USE`):",
        "",
    ]
    for version in venvs:
        info = summaries[0]["official"][version]
        run_file, shifts_file = (
            f"official_run_jwst-{version}.json",
            f"official_shifts_jwst-{version}.json",
        )
        lines.append(
            f"- jwst {version} (numpy {info['numpy_version']}): `{run_file}` (timing line),"
            f" `{shifts_file}`."
        )
    k, m = args.pair
    lines += [
        "",
        "Files in each `<instrument>/` folder:",
        "",
        "| file | what |",
        "|---|---|",
        "| `golden_calints.fits` | science CubeModel (nints, ny, nx), float32, with DQ, ERR |",
        "| `golden_psfstack.fits` | PSF stack CubeModel (npsfs, ny, nx) |",
        "| `golden_psfmask.fits` | PsfMaskModel (ny, nx), 1 = use, 0 = ignore |",
        "| `truth.json` | the simulator's exact truth (noiseless float64 fit), `[k][m]` |",
        "| `official_shifts_jwst-1.15.1.json` | official float64 fit `xshift`, `yshift`, `beta`"
        " `[k][m]` (the fit jwst 1.15.1's step itself makes) |",
        "| `official_shifts_jwst-3.0.0.json` | the same official function at float64 with 3.0.0's"
        " tolerances, plus `step_native`: 3.0.0's own fit (integration 0, float32) |",
        f"| `official_aligned_sci_k{k}_m{m}_jwst-1.15.1.npy` | SCI plane `[k={k}, m={m}]` of the"
        " official 1.15.1 `_psfalign` QuadModel (PSF m aligned to science integration k),"
        " float32 |",
        "| `official_run_jwst-*.json` | the runner's JSON line (timings, product model/shape) |",
        "",
        "Convention: `xshift = x_psf - x_sci` (columns), `yshift = y_psf - y_sci` (rows),"
        " `beta = flux_psf / flux_sci`; model `psf ~ beta * shift(sci, xshift, yshift)`.",
        "",
        "The official versions do not agree exactly on these data (1.15.1 sets some bad pixels"
        " to 0 that 3.0.0 fills with a median): see `benchmarks/README.md`.",
        "",
        f"Total size: {total / 1e6:.2f} MB.",
        "",
    ]
    for s in summaries:
        lines.append(f"## {s['instrument']}")
        lines.append("")
        lines.append(f"Unflagged inf pixels set to NaN: {s['unflagged_inf_to_nan']}.")
        lines.append("")
        lines.append("| file | bytes | sha256 |")
        lines.append("|---|---|---|")
        for name, f in s["files"].items():
            lines.append(f"| `{name}` | {f['bytes']} | `{f['sha256'][:16]}…` |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("tests/data/official"))
    ap.add_argument("--venv-root", type=Path, default=_default_venv_root())
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--nints", type=int, default=2)
    ap.add_argument("--npsfs", type=int, default=3)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument(
        "--clean",
        action="store_true",
        help="no garbage pixels (noise only): both tools' bad-pixel cleaning then agree, so the "
        "fits can be compared on identical arrays",
    )
    ap.add_argument("--pair", type=int, nargs=2, default=(1, 2), metavar=("K", "M"))
    ap.add_argument("--instruments", nargs="+", default=list(INSTRUMENTS), choices=INSTRUMENTS)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    venvs = {}
    for version in ("1.15.1", "3.0.0"):
        python = args.venv_root / f"jwst-{version}" / "bin" / "python"
        if python.exists():
            venvs[version] = python
    if "1.15.1" not in venvs:
        ap.error(f"no jwst 1.15.1 environment under {args.venv_root}: run make-venvs.sh first")
    summaries = []
    for instrument in args.instruments:
        log.info("%s: simulating and running the official step(s) %s", instrument, list(venvs))
        summaries.append(
            make_instrument(
                instrument,
                args.out / instrument,
                venvs,
                seed=args.seed,
                nints=args.nints,
                npsfs=args.npsfs,
                size=args.size,
                pair=tuple(args.pair),
                garbage=not args.clean,
            )
        )
    (args.out / "README.md").write_text(_readme(args, summaries, venvs))
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
