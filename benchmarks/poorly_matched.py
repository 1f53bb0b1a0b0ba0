"""Where the official step and coronalign end on poorly matched references.

With ``decorrelation=1`` the simulated reference stars' static wavefront is independent of the
science target's: their speckles do not match at all, and the official objective
(``sum((mask * (psf - beta * shift(sci)))**2)``) has minima away from the geometric shift (the
star position difference). This script measures, on such data, how far each implementation's
fits end from

* the geometric shift (``truth["xshift_geometric"]``, ``["yshift_geometric"]``), and
* the simulator's truth (``truth["xshift"]``, ``["yshift"]``): the official objective's local
  minimum downhill from the geometric shift, on the noiseless images,

and from each other. Distances are Euclidean, ``hypot(dx, dy)`` in px, one per (integration,
PSF) pair.

* official: jwst 1.15.1's float64 fit of every pair, from ``official/run_official.py
  --shifts-json`` (offline, in the throw-away environment; the fit jwst 1.15.1's step itself
  makes: ``scipy.optimize.leastsq`` started at (0, 0, 1));
* coronalign: ``coronalign align`` with default options (the official weighting, the prior
  from the pointing metadata, ``--max-shift 10``), fits and statuses from ``--shifts``.

Data: ``simulate_exposures(instrument, nints, npsfs, seed, decorrelation=1)`` with every other
option at its default (noise and bad pixels on, ``mask_style="geometric"``); NIRCam 320 x 320, 2
integrations x 5 PSFs; MIRI 224 x 288, 2 x 3; seeds 0..N-1. As in ``make_golden.py``, each
``+/-inf`` pixel without the DO_NOT_USE flag is set to NaN first (the official step cannot
handle it).

Usage (project environment; the official one from ``official/make-venvs.sh``)::

    PYTHONPATH=src .venv/bin/python benchmarks/poorly_matched.py [--seeds 10]
        [--instruments nircam miri] [--venv-root /work/venvs]
        [--work benchmarks/work/poorly_matched] [--out benchmarks/POORLY_MATCHED.md]
        [--json benchmarks/poorly_matched.json]

Writes the markdown table ``--out`` and every pair's numbers to ``--json``. About 8 minutes for
10 seeds of each instrument on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main"]

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "official" / "run_official.py"
#: (frame shape, nints, npsfs) per instrument.
CONFIGS = {"nircam": ((320, 320), 2, 5), "miri": ((224, 288), 2, 3)}
OFFICIAL_VERSION = "1.15.1"


def _default_venv_root() -> Path:
    if os.environ.get("VENV_ROOT"):
        return Path(os.environ["VENV_ROOT"])
    if Path("/work/venvs").is_dir():
        return Path("/work/venvs")
    return Path.home() / ".cache" / "coronalign-official"


def _simulate(instrument: str, seed: int, decorrelation: float, folder: Path) -> tuple[dict, dict]:
    from coronalign.dq import DO_NOT_USE
    from coronalign.simulation import simulate_exposures, write_simulation

    shape, nints, npsfs = CONFIGS[instrument]
    sim = simulate_exposures(
        instrument, nints=nints, npsfs=npsfs, seed=seed, shape=shape, decorrelation=decorrelation
    )
    for data, dq in ((sim.sci, sim.sci_dq), (sim.psf, sim.psf_dq)):
        data[np.isinf(data) & ((dq & DO_NOT_USE) == 0)] = np.nan
    return write_simulation(sim, folder), sim.truth


def _official(python: Path, paths: dict, folder: Path) -> dict:
    shifts = folder / f"official_shifts_jwst-{OFFICIAL_VERSION}.json"
    cmd = [str(python), str(RUNNER), str(paths["science"]), str(paths["psfstack"])]
    cmd += [str(paths["psfmask"]), "-o", str(folder / "official"), "--shifts-json", str(shifts)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
        raise RuntimeError(f"official run failed: exit {proc.returncode}")
    table = json.loads(shifts.read_text())
    return {key: np.asarray(table[key], dtype=float) for key in ("xshift", "yshift", "beta")}


def _ours(paths: dict, folder: Path, shape: tuple[int, int]) -> dict:
    from astropy.table import Table

    from coronalign import cli

    table = folder / "coronalign_psfshifts.ecsv"
    args = ["-q", "align", str(paths["science"]), str(paths["psfstack"])]
    args += ["--psfmask", str(paths["psfmask"]), "-o", str(folder / "coronalign_psfalign.fits")]
    args += ["--shifts", str(table)]
    if cli.main(args) != 0:
        raise RuntimeError(f"coronalign align failed on {paths['science']}")
    rows = Table.read(table, format="ascii.ecsv")
    out = {
        key: np.reshape(np.asarray(rows[key], dtype=float), shape)
        for key in ("xshift", "yshift", "beta")
    }
    out["status"] = np.reshape(np.asarray(rows["status"], dtype=str), shape)
    return out


def _distance(a: dict, b: dict) -> np.ndarray:
    return np.hypot(np.asarray(a["xshift"]) - b["xshift"], np.asarray(a["yshift"]) - b["yshift"])


def _measure(instrument: str, seed: int, args, python: Path) -> list[dict]:
    folder = args.work / f"{instrument}-{seed}"
    if folder.exists():
        shutil.rmtree(folder)
    paths, truth = _simulate(instrument, seed, args.decorrelation, folder)
    _, nints, npsfs = CONFIGS[instrument]
    official = _official(python, paths, folder)
    ours = _ours(paths, folder, (nints, npsfs))
    geometric = {
        "xshift": np.asarray(truth["xshift_geometric"], dtype=float),
        "yshift": np.asarray(truth["yshift_geometric"], dtype=float),
    }
    exact = {key: np.asarray(truth[key], dtype=float) for key in ("xshift", "yshift")}
    distances = {
        "truth_from_geometric": _distance(exact, geometric),
        "official_from_geometric": _distance(official, geometric),
        "ours_from_geometric": _distance(ours, geometric),
        "official_from_truth": _distance(official, exact),
        "ours_from_truth": _distance(ours, exact),
        "ours_from_official": _distance(ours, official),
    }
    rows = []
    for k in range(nints):
        for m in range(npsfs):
            row = {"instrument": instrument, "seed": seed, "integration": k, "psf": m}
            row.update({name: float(value[k, m]) for name, value in distances.items()})
            row.update(
                geometric=[float(geometric["xshift"][k, m]), float(geometric["yshift"][k, m])],
                truth=[float(exact["xshift"][k, m]), float(exact["yshift"][k, m])],
                official=[float(official["xshift"][k, m]), float(official["yshift"][k, m])],
                ours=[float(ours["xshift"][k, m]), float(ours["yshift"][k, m])],
                ours_status=str(ours["status"][k, m]),
            )
            rows.append(row)
    shutil.rmtree(folder / "official", ignore_errors=True)  # the 4D products are large
    for product in folder.glob("*_psfalign.fits"):
        product.unlink()
    return rows


def _stats(values) -> dict:
    values = list(values)
    return {
        "median": statistics.median(values),
        "worst": max(values),
        "within_0.1": sum(v <= 0.1 for v in values),
        "within_0.01": sum(v <= 0.01 for v in values),
    }


def _summary(rows: list[dict]) -> dict:
    out = {}
    for instrument in dict.fromkeys(r["instrument"] for r in rows):
        mine = [r for r in rows if r["instrument"] == instrument]
        out[instrument] = {
            "pairs": len(mine),
            "seeds": sorted({r["seed"] for r in mine}),
            "statuses": {
                s: sum(r["ours_status"] == s for r in mine)
                for s in sorted({r["ours_status"] for r in mine})
            },
            **{
                name: _stats(r[name] for r in mine)
                for name in (
                    "truth_from_geometric",
                    "official_from_geometric",
                    "ours_from_geometric",
                    "official_from_truth",
                    "ours_from_truth",
                    "ours_from_official",
                )
            },
        }
    return out


def _markdown(summary: dict, rows: list[dict], args, versions: dict) -> str:
    today = datetime.date.today().isoformat()
    cmd = " ".join(["benchmarks/poorly_matched.py", *sys.argv[1:]])
    lines = [
        "# The official step and coronalign on poorly matched references",
        "",
        f"Made on {today} by `{cmd}` (Python {platform.python_version()}, numpy"
        f" {np.__version__}, coronalign {versions['coronalign']} at commit"
        f" {versions['commit']}; official: jwst {OFFICIAL_VERSION}, numpy"
        f" {versions['official_numpy']}). Do not edit by hand; see the script's docstring.",
        "",
        f"Data: `simulate_exposures(instrument, nints, npsfs, seed, shape,"
        f" decorrelation={args.decorrelation:g})`, every other option at its default (noise and"
        " bad pixels, geometric 0/1 PSFMASK): the references' wavefront is independent of the"
        " science target's, their speckles do not match. NIRCam 320 x 320, 2 integrations x 5"
        " PSFs; MIRI 224 x 288, 2 x 3. Distances: `hypot(dx, dy)` in px per (integration, PSF)"
        " pair, over all pairs of all seeds.",
        "",
        "- *geometric*: the star position difference (`truth['xshift_geometric']`, ...);",
        "- *truth*: the official objective's local minimum downhill from the geometric shift on"
        " the noiseless images (`truth['xshift']`, ...);",
        f"- *official*: jwst {OFFICIAL_VERSION}'s float64 fit (`leastsq` from (0, 0, 1)), via"
        " `official/run_official.py --shifts-json`, offline;",
        "- *coronalign*: `coronalign align`, default options (official weighting, prior from"
        " the pointing metadata, `--max-shift 10`).",
        "",
        "| instrument | pairs (seeds) | distance | median px | worst px | ≤ 0.1 px | ≤ 0.01 px |",
        "|---|---|---|---|---|---|---|",
    ]
    labels = {
        "truth_from_geometric": "truth from geometric",
        "official_from_geometric": "official from geometric",
        "ours_from_geometric": "coronalign from geometric",
        "official_from_truth": "official from truth",
        "ours_from_truth": "coronalign from truth",
        "ours_from_official": "coronalign from official",
    }
    for instrument, s in summary.items():
        first = True
        for name, label in labels.items():
            st = s[name]
            head = f"{instrument} | {s['pairs']} ({len(s['seeds'])})" if first else " | "
            lines.append(
                f"| {head} | {label} | {st['median']:.3g} | {st['worst']:.3g} |"
                f" {st['within_0.1']} | {st['within_0.01']} |"
            )
            first = False
    lines += ["", "coronalign fit statuses:"]
    lines += [
        f"- {instrument}: "
        + ", ".join(f"{status} {count}" for status, count in s["statuses"].items())
        for instrument, s in summary.items()
    ]
    lines += [
        "",
        "Per seed (worst pair of the seed, px):",
        "",
        "| instrument | seed | truth from geometric | official from geometric |"
        " coronalign from geometric | official from truth | coronalign from truth |"
        " coronalign from official |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for instrument, s in summary.items():
        for seed in s["seeds"]:
            mine = [r for r in rows if r["instrument"] == instrument and r["seed"] == seed]
            cells = " | ".join(f"{max(r[name] for r in mine):.3g}" for name in labels)
            lines.append(f"| {instrument} | {seed} | {cells} |")
    lines.append("")
    return "\n".join(lines)


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    ap.add_argument("--instruments", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--decorrelation", type=float, default=1.0)
    ap.add_argument("--venv-root", type=Path, default=_default_venv_root())
    ap.add_argument("--work", type=Path, default=HERE / "work" / "poorly_matched")
    ap.add_argument("--out", type=Path, default=HERE / "POORLY_MATCHED.md")
    ap.add_argument("--json", type=Path, default=HERE / "poorly_matched.json")
    args = ap.parse_args(argv)

    import coronalign

    python = args.venv_root / f"jwst-{OFFICIAL_VERSION}" / "bin" / "python"
    if not python.exists():
        ap.error(f"no jwst {OFFICIAL_VERSION} environment under {args.venv_root}")
    official_numpy = subprocess.run(
        [str(python), "-c", "import numpy; print(numpy.__version__)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    rows = []
    for instrument in args.instruments:
        for seed in range(args.seeds):
            started = time.perf_counter()
            new = _measure(instrument, seed, args, python)
            rows += new
            print(
                f"{instrument} seed {seed}: official from truth <= "
                f"{max(r['official_from_truth'] for r in new):.3g} px, coronalign from truth <= "
                f"{max(r['ours_from_truth'] for r in new):.3g} px "
                f"({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    summary = _summary(rows)
    versions = {
        "coronalign": coronalign.__version__,
        "commit": _commit(),
        "official_numpy": official_numpy,
    }
    args.out.write_text(_markdown(summary, rows, args, versions))
    args.json.write_text(
        json.dumps({"versions": versions, "summary": summary, "pairs": rows}, indent=1) + "\n"
    )
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
