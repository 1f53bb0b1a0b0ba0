"""Does the OFFICIAL ``klip`` step accept the ``_psfalign`` product coronalign writes?

``coronalign align`` writes the fitted shift table (one row per (integration, PSF)) inside the
product, as a ``PSFSHIFTS`` binary-table extension that stdatamodels lays out
(``model.extra_fits``; the ASDF tree points at the HDU) and that is filled when the product is
committed. This script checks that products made by the CURRENT code are read correctly and do
not change what the official ``klip`` computes. Three files per mode:

``product``
    the product exactly as ``coronalign align`` wrote it;
``plain``
    the same product without the table (re-opened with stdatamodels, ``extra_fits`` removed,
    saved): the yardstick for ``klip``'s output;
``resaved``
    ``product`` re-opened with stdatamodels and written again with ``model.save()``.

The script has two halves.

* Run with the project's environment (the default, it imports coronalign)::

      PYTHONPATH=src .venv/bin/python benchmarks/official/check_klip.py \
          [--work benchmarks/work/klip] [--venv-root /work/venvs] [--json OUT] [--cross]

  It simulates one noise-only NIRCam data set (``simulate_exposures(..., garbage=False)``,
  so KLIP's output is finite and a comparison means something), aligns it with
  ``coronalign align`` (default options) in both modes (``quad``: QuadModel (nints, npsfs,
  ny, nx); ``cube``: CubeModel (npsfs, ny, nx)) with ``--shifts`` (the ECSV table, written by
  astropy, is the expected content), makes ``plain`` and ``resaved``, checks every file with
  the project's own stdatamodels (warnings while opening, ``validate()``, the FITS hash
  stdatamodels stored, the table read back both with ``astropy.table.Table.read(path,
  hdu="PSFSHIFTS")`` and as ``model.extra_fits.PSFSHIFTS.data``, data and metadata equal to
  the product's), then runs the second half in every official environment
  ``<venv-root>/jwst-<version>`` that exists and prints a summary. The 4D product goes to
  jwst 1.15.1, the 3D one to >= 1.16; ``--cross`` also gives each the other one (it must fail).

* ``--official`` (run by the first half, with an official environment's python; it never
  imports coronalign): opens every file with that environment's stdatamodels (warnings,
  ``validate()``, the table via ``extra_fits`` and via astropy), and runs
  ``jwst.coron.KlipStep`` on (science, file) in two ways:

  - ``pipeline``: as calwebb_coron3 calls it: an instance's ``run`` with open models,
    ``KlipStep().run(datamodels.open(sci), datamodels.open(product))`` (the pipeline calls
    ``self.klip(target, psf_aligned)`` (<= 1.x) or ``self.klip.run(target, psf_aligned)``
    (3.x) with the science model it opened and the in-memory align_refs product);
  - ``call``: ``KlipStep.call(sci_path, product_path)``, what ``strun klip`` does with files.

  Each output (SCI, ERR, DQ) is compared exactly with the output for ``plain``. It runs
  offline like ``run_official.py`` (whose CRDS set-up it reuses).

Standard output of ``--official`` is one JSON line; the first half prints a readable summary
and, with ``--json``, writes everything it measured. Earlier ways of carrying the table (an HDU
appended with astropy after stdatamodels wrote the file, or ``meta.coronalign.shifts``) were
checked by this script's first version (commit c779b02).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

__all__ = ["main"]

HERE = Path(__file__).resolve().parent
EXTNAME = "PSFSHIFTS"
FILES = ("plain", "product", "resaved")
#: Which product each official version is meant to read (every other version, >= 1.16: cube).
PRODUCT_FOR = {"1.15.1": "quad"}


# --------------------------------------------------------------------------------------------
# shared helpers (both environments)


def _table_equal(expected: dict, got) -> tuple[bool, str]:
    """Compare the expected columns (dict of lists) with a structured array, FITS_rec or Table."""
    try:
        names = list(got.dtype.names) if hasattr(got, "dtype") else list(got.colnames)
    except Exception as error:
        return False, f"unreadable: {error}"
    if sorted(names) != sorted(expected):
        return False, f"columns {names} != {list(expected)}"
    for name, want in expected.items():
        have = got[name]
        if name == "status":
            have = [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(have)]
            if have != list(want):
                return False, f"{name}: {have} != {want}"
            continue
        have = np.asarray(have)
        want_arr = np.asarray(want, dtype=float if have.dtype.kind == "f" else None)
        if not np.array_equal(have, want_arr, equal_nan=have.dtype.kind == "f"):
            return False, f"{name}: {have.tolist()} != {list(want)}"
    return True, "equal" if names == list(expected) else "equal (column order changed)"


def _warnings_summary(caught) -> list[str]:
    seen = []
    for w in caught:
        text = f"{w.category.__name__}: {str(w.message)[:160]}"
        if text not in seen:
            seen.append(text)
    return seen


class _LogRecords(logging.Handler):
    """Collects the WARNING-or-worse log records emitted while it is installed."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records: list[str] = []

    def emit(self, record):
        text = f"{record.name}: {record.getMessage()[:160]}"
        if text not in self.records:
            self.records.append(text)


@contextlib.contextmanager
def _recorded():
    """Record Python warnings and WARNING log records; yields ``{"warnings", "log"}``."""
    found = {"warnings": [], "log": []}
    handler = _LogRecords()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield found
    finally:
        root.removeHandler(handler)
        found["warnings"] = _warnings_summary(caught)
        found["log"] = handler.records


def _read_back(path: str, expected: dict) -> dict:
    """Open ``path`` with stdatamodels (recording warnings) and read the table back two ways."""
    from astropy.io import fits
    from astropy.table import Table
    from stdatamodels.jwst import datamodels

    entry = {}
    with _recorded() as found:
        try:
            with datamodels.open(path) as model:
                entry["opened_as"] = type(model).__name__
                entry["shape"] = list(model.data.shape)
                try:
                    model.validate()
                    entry["validate"] = "passed"
                except Exception as error:
                    entry["validate"] = f"{type(error).__name__}: {error}"
                extra = model.instance.get("extra_fits", {})
                entry["extra_fits"] = sorted(extra)
                if EXTNAME in extra and "data" in extra[EXTNAME]:
                    entry["table_extra_fits"] = _table_equal(expected, extra[EXTNAME]["data"])[1]
        except Exception as error:
            entry["open_error"] = f"{type(error).__name__}: {error}"
    entry["open_warnings"] = found["warnings"] + [f"log {r}" for r in found["log"]]
    with fits.open(path) as hdulist:
        present = EXTNAME in hdulist
    try:
        entry["table_astropy"] = (
            _table_equal(expected, Table.read(path, hdu=EXTNAME))[1] if present else "absent"
        )
    except Exception as error:
        entry["table_astropy"] = f"{type(error).__name__}: {str(error)[:160]}"
    return entry


# --------------------------------------------------------------------------------------------
# second half: inside an official environment


def _official(args) -> int:
    sys.path.insert(0, str(HERE))
    import run_official  # the offline CRDS set-up, same folder

    real_stdout = sys.stdout
    expected = json.loads(Path(args.expected).read_text())
    products = dict(item.split("=", 1) for item in args.products)
    report = {"products": {}}
    with tempfile.TemporaryDirectory(prefix="crds-offline-") as cache:
        run_official._offline_crds(Path(cache))
        with contextlib.redirect_stdout(sys.stderr):
            import astropy
            import jwst
            import stdatamodels
            from jwst.coron import KlipStep
            from stdatamodels.jwst import datamodels

            report.update(
                jwst_version=jwst.__version__,
                stdatamodels_version=stdatamodels.__version__,
                astropy_version=astropy.__version__,
                numpy_version=np.__version__,
            )
            outputs = {}
            for name, path in products.items():
                entry = report["products"][name] = _read_back(path, expected)
                with _recorded() as found:
                    for style in ("pipeline", "call"):
                        try:
                            if style == "pipeline":
                                with datamodels.open(args.sci) as sci, datamodels.open(path) as ref:
                                    result = KlipStep().run(sci, ref)
                            else:
                                result = KlipStep.call(args.sci, path)
                            arrays = {
                                k: np.array(getattr(result, k)) for k in ("data", "err", "dq")
                            }
                            outputs[(name, style)] = arrays
                            entry[f"klip_{style}"] = {
                                "status": "ran",
                                "output": type(result).__name__,
                                "shape": list(arrays["data"].shape),
                                "finite_fraction": float(np.isfinite(arrays["data"]).mean()),
                                "s_klip": result.meta.cal_step.klip,
                            }
                            result.close()
                        except Exception as error:
                            entry[f"klip_{style}"] = {
                                "status": "failed",
                                "error": f"{type(error).__name__}: {str(error)[:300]}",
                            }
                entry["klip_warnings"] = found["warnings"] + [f"log {r}" for r in found["log"]]
            for name in products:
                for style in ("pipeline", "call"):
                    mine, base = outputs.get((name, style)), outputs.get(("plain", style))
                    if mine is None or base is None:
                        continue
                    report["products"][name][f"klip_{style}"]["same_as_plain"] = all(
                        np.array_equal(mine[k], base[k], equal_nan=True) for k in mine
                    )
    print(json.dumps(report), file=real_stdout)
    return 0


# --------------------------------------------------------------------------------------------
# first half: the project's environment


def _default_venv_root() -> Path:
    if os.environ.get("VENV_ROOT"):
        return Path(os.environ["VENV_ROOT"])
    if Path("/work/venvs").is_dir():
        return Path("/work/venvs")
    return Path.home() / ".cache" / "coronalign-official"


def _expected(ecsv: Path) -> dict:
    """The table ``--shifts`` wrote (astropy ECSV), as a dict of lists."""
    from astropy.table import Table

    table = Table.read(ecsv, format="ascii.ecsv")
    return {name: table[name].tolist() for name in table.colnames}


def _derived_files(product: Path) -> dict[str, Path]:
    """``plain`` (the table removed) and ``resaved`` (re-opened and saved), by stdatamodels."""
    from stdatamodels.jwst import datamodels

    stem = product.name.removesuffix("_psfalign.fits")
    paths = {
        "plain": product.with_name(f"{stem}-plain_psfalign.fits"),
        "product": product,
        "resaved": product.with_name(f"{stem}-resaved_psfalign.fits"),
    }
    with datamodels.open(product) as model:
        model.save(paths["resaved"])
    with datamodels.open(product) as model:
        del model.instance["extra_fits"]
        model.save(paths["plain"])
    return paths


def _hdus(path: Path) -> dict:
    from astropy.io import fits
    from stdatamodels import fits_support

    with fits.open(path) as hdulist:
        info = {"hdus": [hdu.name for hdu in hdulist]}
        tree = bytes(hdulist["ASDF"].data[0][0]).decode("latin1")
        stored = tree.split("_fits_hash: ", 1)[1].split()[0] if "_fits_hash: " in tree else None
        info["fits_hash_matches"] = stored == fits_support.fits_hash(hdulist)
        info["extra_fits_in_asdf_tree"] = "extra_fits:" in tree
        if EXTNAME in hdulist:
            cols = hdulist[EXTNAME].columns
            info["columns"] = {c.name: c.format for c in cols}
            info["units"] = {c.name: c.unit for c in cols if c.unit}
    return info


def _arrays_and_meta(path: Path):
    from stdatamodels.jwst import datamodels

    with datamodels.open(path) as model:
        arrays = {k: np.array(getattr(model, k)) for k in ("data", "err", "dq")}
        meta = {
            k: v
            for k, v in model.to_flat_dict().items()
            if k.startswith("meta.") and k != "meta.filename"
        }
    return arrays, meta


def _same(a, b) -> bool:
    try:
        return bool(np.all(np.asarray(a) == np.asarray(b)))
    except Exception:
        return False


def _own_checks(paths: dict[str, Path], expected: dict) -> dict:
    """Open, validate and read back every file with the project's stdatamodels."""
    base_arrays, base_meta = _arrays_and_meta(paths["product"])
    base_columns = _hdus(paths["product"]).get("columns")
    out = {}
    for name, path in paths.items():
        entry = out[name] = {**_hdus(path), **_read_back(str(path), expected)}
        arrays, meta = _arrays_and_meta(path)
        entry["columns_as_product"] = entry.get("columns") == base_columns
        entry["arrays_equal_product"] = all(
            np.array_equal(arrays[k], base_arrays[k], equal_nan=True) for k in arrays
        )
        entry["meta_differs_from_product"] = sorted(
            k for k in set(meta) | set(base_meta) if not _same(meta.get(k), base_meta.get(k))
        )
    return out


def _run_in_venv(python: Path, sci: Path, paths: dict, expected_json: Path) -> dict:
    cmd = [str(python), str(Path(__file__).resolve()), "--official", "--sci", str(sci)]
    cmd += ["--expected", str(expected_json), "--products"]
    cmd += [f"{name}={path}" for name, path in paths.items()]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
        return {"error": f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _prepare(work: Path, seed: int) -> dict:
    from coronalign import cli
    from coronalign.simulation import simulate_exposures, write_simulation

    if work.exists():
        shutil.rmtree(work)
    sim = simulate_exposures("nircam", nints=2, npsfs=3, seed=seed, garbage=False)
    inputs = write_simulation(sim, work / "sim")
    prepared = {"science": inputs["science"]}
    for mode in ("quad", "cube"):
        product = work / f"{mode}_psfalign.fits"
        ecsv = work / f"{mode}_shifts.ecsv"
        status = cli.main(
            [
                "-q",
                "align",
                str(inputs["science"]),
                str(inputs["psfstack"]),
                "--psfmask",
                str(inputs["psfmask"]),
                "-o",
                str(product),
                "--mode",
                mode,
                "--shifts",
                str(ecsv),
            ]
        )
        if status != 0:
            raise RuntimeError(f"coronalign align --mode {mode} failed ({status})")
        expected = _expected(ecsv)
        expected_json = work / f"{mode}_expected_shifts.json"
        expected_json.write_text(json.dumps(expected))
        prepared[mode] = {
            "paths": _derived_files(product),
            "expected": expected,
            "expected_json": expected_json,
        }
    return prepared


def _summary(results: dict) -> str:
    lines = [
        f"## project environment (coronalign {results['coronalign']}, stdatamodels "
        f"{results['own_stdatamodels']}, astropy {results['own_astropy']})",
        "",
    ]
    for mode in ("quad", "cube"):
        for name, e in results["own"][mode].items():
            lines.append(
                f"- {mode} {name}: opened_as={e.get('opened_as', e.get('open_error'))} "
                f"hdus={e['hdus']} hash_ok={e['fits_hash_matches']} "
                f"validate={e.get('validate')} extra_fits={e.get('extra_fits')} "
                f"table(extra_fits)={e.get('table_extra_fits', '-')} "
                f"table(astropy)={e['table_astropy']} units={e.get('units', '-')} "
                f"column formats as product's={e['columns_as_product']} "
                f"arrays_equal_product={e['arrays_equal_product']} "
                f"meta differs={e['meta_differs_from_product']} "
                f"open warnings={e['open_warnings']}"
            )
    for version, runs in results["official"].items():
        for mode, rep in runs.items():
            lines += ["", f"## jwst {version} with the {mode} product"]
            if "error" in rep:
                lines.append(f"- {rep['error']}")
                continue
            lines.append(
                f"(stdatamodels {rep['stdatamodels_version']}, astropy {rep['astropy_version']},"
                f" numpy {rep['numpy_version']})"
            )
            plain = rep["products"].get("plain", {})
            for name, e in rep["products"].items():
                new_warnings = [
                    w
                    for w in e.get("open_warnings", []) + e.get("klip_warnings", [])
                    if w not in plain.get("open_warnings", []) + plain.get("klip_warnings", [])
                ]
                klip = {
                    s: (
                        f"{e[f'klip_{s}']['status']}"
                        + (
                            f", same_as_plain={e[f'klip_{s}'].get('same_as_plain')}"
                            f", finite={e[f'klip_{s}'].get('finite_fraction'):.3f}"
                            if e[f"klip_{s}"]["status"] == "ran"
                            else f": {e[f'klip_{s}']['error']}"
                        )
                    )
                    for s in ("pipeline", "call")
                }
                lines.append(
                    f"- {name}: opened_as={e.get('opened_as', e.get('open_error'))} "
                    f"validate={e.get('validate')} extra_fits={e.get('extra_fits')} "
                    f"table(extra_fits)={e.get('table_extra_fits', '-')} "
                    f"table(astropy)={e.get('table_astropy')} "
                    f"klip pipeline: {klip['pipeline']}; call: {klip['call']}; "
                    f"warnings beyond plain's: {new_warnings}"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sci", help=argparse.SUPPRESS)
    ap.add_argument("--expected", help=argparse.SUPPRESS)
    ap.add_argument("--products", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, default=Path("benchmarks/work/klip"))
    ap.add_argument("--venv-root", type=Path, default=_default_venv_root())
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="write all results here")
    ap.add_argument(
        "--cross",
        action="store_true",
        help="also give 1.15.1 the cube product and the newer versions the quad product",
    )
    args = ap.parse_args(argv)
    if args.official:
        return _official(args)

    logging.basicConfig(level=logging.WARNING)
    import astropy
    import stdatamodels

    import coronalign

    prepared = _prepare(args.work, args.seed)
    results = {
        "coronalign": coronalign.__version__,
        "own_stdatamodels": stdatamodels.__version__,
        "own_astropy": astropy.__version__,
        "own": {},
        "official": {},
    }
    for mode in ("quad", "cube"):
        results["own"][mode] = _own_checks(prepared[mode]["paths"], prepared[mode]["expected"])
    venvs = sorted(
        (p for p in args.venv_root.glob("jwst-*") if (p / "bin" / "python").exists()),
        key=lambda p: tuple(int(x) for x in p.name.removeprefix("jwst-").split(".")),
    )
    for venv in venvs:
        version = venv.name.removeprefix("jwst-")
        native = PRODUCT_FOR.get(version, "cube")
        modes = [native] + ([m for m in ("quad", "cube") if m != native] if args.cross else [])
        results["official"][version] = {}
        for mode in modes:
            results["official"][version][mode] = _run_in_venv(
                venv / "bin" / "python",
                prepared["science"],
                prepared[mode]["paths"],
                prepared[mode]["expected_json"],
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(_summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
