"""Make the small golden data set that pins coronalign to the official ``align_refs`` results.

Runs in the project's environment (``.venv``); the official step runs in a separate virtual
environment (``make-venvs.sh``) through ``run_official.py``, so ``jwst`` is never imported here.

For each instrument (NIRCam, MIRI) it

1. simulates a small data set with :func:`coronalign.simulation.simulate_exposures` (default 2
   science integrations x 3 PSFs, 96 x 96 frames, noise and bad pixels on, PSFMASK
   ``mask_style="crds"``: shaped like the released CRDS files, i.e. fractional for NIRCam, about
   1e-5 at the occulter centre rising smoothly to 0.99, last row and last column exactly 0, and
   0/1 for MIRI as the real MIRI files; ``--mask-style geometric`` gives the older 0/1 masks;
   ``decorrelation=0.3``: the references' wavefront differs a little from the science target's);
2. makes the inputs safe for the official step: a ``+/-inf`` pixel WITHOUT the DO_NOT_USE flag
   is set to NaN (the official step treats NaN as bad but not inf, and one inf turns its whole
   Fourier transform into NaN); DQ-flagged inf pixels are kept;
3. writes them with :func:`coronalign.simulation.write_simulation` (root ``golden``) to
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
        [--clean] [--mask-style crds|geometric] [--decorrelation 0.3]
        [--instruments nircam miri]

Frame size: 96 x 96 is enough for the fractional NIRCam mask. Its profile follows the simulated
occulter (intensity transmission 0.5 at the 9.2 px HWHM of MASKA335R) and reaches 0.98 at about
19 px from the centre, which sits about 45 px from the nearest edge: the whole profile and a flat
0.99 plateau around it are in the frame (the README lists the profile of each mask).

Decorrelation 0.3 (the reference wavefront correlates with the science target's by
cos(0.15 pi) = 0.89): on the sky the references' speckles never match the target's exactly, and
that mismatch is what separates the official weighting (``mask**2``) from ``mask``. With matched
speckles (0) the two weightings' fits differ by only 6e-4 to 1e-3 px on this 96 x 96 NIRCam set
(4 seeds); with 0.3 by 5e-3 to 1e-2 px, the size measured on real NIRCam data (0.007 to 0.012
px), so the golden set tells them apart.
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


def _mask_profile(mask: np.ndarray, center) -> dict:
    """What the PSFMASK looks like: range, distinct values, edges, radial profile."""
    mask = np.asarray(mask, dtype=np.float64)
    ny, nx = mask.shape
    cx, cy = center
    y, x = np.mgrid[:ny, :nx]
    r = np.hypot(y - cy, x - cx)
    # nearest pixel to the coronagraph centre whose weight reaches each level
    reach = {
        str(level): float(np.min(r[mask >= level])) if np.any(mask >= level) else None
        for level in (0.01, 0.5, 0.98)
    }
    return {
        "min": float(mask.min()),
        "max": float(mask.max()),
        "distinct": int(np.unique(mask).size),
        "binary": bool(np.all((mask == 0) | (mask == 1))),
        "last_row_zero": bool(np.all(mask[-1] == 0)),
        "last_column_zero": bool(np.all(mask[:, -1] == 0)),
        "at_center": float(mask[round(cy), round(cx)]),
        "radius_reaching": reach,
        "center_to_edge": float(min(cx, cy, nx - 1 - cx, ny - 1 - cy)),
    }


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
    mask_style: str = "crds",
    decorrelation: float = 0.0,
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
    garbage : bool
        Bad pixels on (the ``official`` set) or noise only (``official_clean``).
    mask_style : {"crds", "geometric"}
        The simulator's PSFMASK style (``crds``: NIRCam fractional, MIRI 0/1).
    decorrelation : float
        How far the reference stars' wavefront differs from the science target's (0..1).

    Returns
    -------
    dict
        Summary for the README: file names, sizes, checksums, counts, official timings.
    """
    sim = simulate_exposures(
        instrument,
        nints=nints,
        npsfs=npsfs,
        seed=seed,
        shape=(size, size),
        garbage=garbage,
        mask_style=mask_style,
        decorrelation=decorrelation,
    )
    n_inf = 0
    for data, dq in ((sim.sci, sim.sci_dq), (sim.psf, sim.psf_dq)):
        unsafe = np.isinf(data) & ((dq & DO_NOT_USE) == 0)
        n_inf += int(unsafe.sum())
        data[unsafe] = np.nan
    if out.exists():
        shutil.rmtree(out)
    paths = write_simulation(sim, out, root="golden")
    summary = {
        "instrument": instrument,
        "unflagged_inf_to_nan": n_inf,
        "mask": _mask_profile(sim.mask, sim.truth["mask_center"]),
        "official": {},
    }
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


def _mask_sentence(mask: dict) -> str:
    """One README sentence describing a PSFMASK summary made by :func:`_mask_profile`."""
    reach = mask["radius_reaching"]
    if mask["binary"]:
        kind = "binary (0/1)"
    else:
        kind = (
            f"fractional ({mask['distinct']} distinct values"
            f" from {mask['min']:g} to {mask['max']:g})"
        )
    edges = []
    if mask["last_row_zero"]:
        edges.append("last row")
    if mask["last_column_zero"]:
        edges.append("last column")
    radii = ", ".join(
        f"{level} at {value:.1f} px" for level, value in reach.items() if value is not None
    )
    return (
        f"PSFMASK: {kind}; {mask['at_center']:.2g} at the pixel nearest the coronagraph centre;"
        f" {' and '.join(edges) or 'no edge'} exactly 0;"
        f" nearest pixel to the centre reaching {radii};"
        f" centre {mask['center_to_edge']:.1f} px from the nearest frame edge."
    )


def _simulator_revision() -> str:
    """Commit of the repository and whether simulate.py differs from it."""
    repo = HERE.parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(repo), "diff", "--quiet", "HEAD", "--", "src/coronalign/simulation"],
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
        "Inputs: `coronalign.simulation.simulate_exposures(instrument, nints="
        f"{args.nints}, npsfs={args.npsfs}, seed={args.seed}, shape=({args.size}, {args.size})"
        f"{', garbage=False' if args.clean else ''}, mask_style={args.mask_style!r},"
        f" decorrelation={args.decorrelation:g})`"
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
        "| `golden_psfmask.fits` | PsfMaskModel (ny, nx), float32 weights, 1 = use, 0 = ignore"
        " (fractions allowed; see each instrument's section) |",
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
        "The official fit minimises `sum((mask * (psf - beta * shift(sci)))**2)`: each pixel is"
        " weighted by `mask**2`, which differs from `mask` on a fractional mask (NIRCam here);"
        " coronalign's default weighting is the official one, `--weighting linear` is not."
        f" The references' wavefront is decorrelated ({args.decorrelation:g}) from the science"
        " target's, so their speckles match imperfectly, as on the sky: that mismatch is what"
        " makes the two weightings' fits differ (see `make_golden.py`).",
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
        lines.append(_mask_sentence(s["mask"]))
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
    ap.add_argument(
        "--mask-style",
        choices=("crds", "geometric"),
        default="crds",
        help="the simulator's PSFMASK style: crds (default; NIRCam fractional, about 1e-5 at the "
        "occulter rising to 0.99, last row and column 0; MIRI 0/1 like the real MIRI files) or "
        "geometric (0/1 for both, with a 10 px zero border)",
    )
    ap.add_argument(
        "--decorrelation",
        type=float,
        default=0.3,
        help="the simulator's decorrelation of the reference wavefront (0..1, default 0.3: the "
        "speckles of science and references match imperfectly, as on the sky)",
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
                mask_style=args.mask_style,
                decorrelation=args.decorrelation,
            )
        )
    (args.out / "README.md").write_text(_readme(args, summaries, venvs))
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
