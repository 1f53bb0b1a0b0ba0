"""Does the OFFICIAL ``klip`` step accept a ``_psfalign`` product that carries its shift table?

Two ways of storing the fitted shift table (one row per (integration, PSF)) inside the
product are checked:

``a``
    an extra FITS binary-table extension ``PSFSHIFTS`` appended with astropy AFTER
    stdatamodels wrote the file (``fits.open(path, mode="append")``);
``b_struct``
    ``meta.coronalign.shifts`` = a structured numpy array, written by stdatamodels into its
    ASDF extension (``model.save``);
``b_dict``
    ``meta.coronalign.shifts`` = a dict of lists (one list per column), likewise.

The script has two halves.

* Run with the project's environment (the default, it imports coronalign)::

      PYTHONPATH=src .venv/bin/python benchmarks/official/check_klip.py \
          [--work benchmarks/work/klip] [--venv-root /work/venvs] [--json OUT]

  It simulates one noise-only NIRCam data set (``simulate_exposures(..., garbage=False)``,
  so KLIP's output is finite and a comparison means something), aligns it with
  ``coronalign align`` in both modes (``quad``: QuadModel (nints, npsfs, ny, nx); ``cube``:
  CubeModel (npsfs, ny, nx)), writes the three variants of each product, checks them with
  the project's own stdatamodels (open, ``validate()``, round trip of the table, what
  ``save()`` of a re-opened product does), then runs the second half in every official
  environment ``<venv-root>/jwst-<version>`` that exists and prints a summary.

* ``--official`` (run by the first half, with an official environment's python; it never
  imports coronalign): opens every product with that environment's stdatamodels, reads the
  table back, and runs ``jwst.coron.KlipStep`` on (science, product) in two ways:

  - ``pipeline``: as calwebb_coron3 calls it: an instance's ``run`` with open models,
    ``KlipStep().run(datamodels.open(sci), datamodels.open(product))`` (the pipeline calls
    ``self.klip(target, psf_aligned)`` (<= 1.x) or ``self.klip.run(target, psf_aligned)``
    (3.x) with the science model it opened and the in-memory align_refs product);
  - ``call``: ``KlipStep.call(sci_path, product_path)``, what ``strun klip`` does with files.

  Each output (SCI, ERR, DQ) is compared exactly with the output for the plain product.
  It runs offline like ``run_official.py`` (whose CRDS set-up it reuses).

The table's columns are integration, psf, xshift, yshift, beta, rms, xshift_err, yshift_err,
beta_err, iterations, status (string), xprior, yprior. Columns that ``--shifts`` does not
write yet (the errors and priors) are filled with placeholders (errors 1e-3 * (row + 1),
priors NaN) so that NaN and strings go through the round trip too.

Standard output of ``--official`` is one JSON line; the first half prints a readable summary
and, with ``--json``, writes everything it measured.
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
VARIANTS = ("plain", "a", "b_struct", "b_dict")
#: Which product each official version is meant to read, and the cross checks.
PRODUCT_FOR = {"1.15.1": "quad"}  # every other version (>= 1.16): "cube"
COLUMNS = [
    ("integration", "i8"),
    ("psf", "i8"),
    ("xshift", "f8"),
    ("yshift", "f8"),
    ("beta", "f8"),
    ("rms", "f8"),
    ("xshift_err", "f8"),
    ("yshift_err", "f8"),
    ("beta_err", "f8"),
    ("iterations", "i8"),
    ("status", "U16"),
    ("xprior", "f8"),
    ("yprior", "f8"),
]


# --------------------------------------------------------------------------------------------
# shared helpers (both environments)


def _table_equal(expected: dict, got) -> tuple[bool, str]:
    """Compare the expected columns (dict of lists) with a structured array, FITS_rec or dict."""
    try:
        names = list(got.dtype.names) if hasattr(got, "dtype") else list(got)
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


def _describe(value) -> str:
    if value is None:
        return "absent"
    if hasattr(value, "dtype"):
        return f"{type(value).__name__} {value.dtype.descr if value.dtype.names else value.dtype}"
    return type(value).__name__


def _warnings_summary(caught) -> list[str]:
    seen = []
    for w in caught:
        text = f"{w.category.__name__}: {str(w.message)[:160]}"
        if text not in seen:
            seen.append(text)
    return seen


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
            import jwst
            import stdatamodels
            from jwst.coron import KlipStep
            from stdatamodels.jwst import datamodels

            report.update(
                jwst_version=jwst.__version__,
                stdatamodels_version=stdatamodels.__version__,
                numpy_version=np.__version__,
            )
            outputs = {}
            for variant, path in products.items():
                entry = report["products"][variant] = {}
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
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
                                entry["extension_table"] = _table_equal(
                                    expected, extra[EXTNAME]["data"]
                                )[1]
                            shifts = model.meta.instance.get("coronalign", {}).get("shifts")
                            entry["meta_shifts"] = _describe(shifts)
                            if shifts is not None:
                                entry["meta_shifts_table"] = _table_equal(expected, shifts)[1]
                    except Exception as error:
                        entry["open_error"] = f"{type(error).__name__}: {error}"
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
                            outputs[(variant, style)] = arrays
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
                entry["warnings"] = _warnings_summary(caught)
            for variant in products:
                for style in ("pipeline", "call"):
                    mine, base = outputs.get((variant, style)), outputs.get(("plain", style))
                    if mine is None or base is None:
                        continue
                    report["products"][variant][f"klip_{style}"]["same_as_plain"] = all(
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


def _shift_array(ecsv: Path) -> np.ndarray:
    """The table in the requested layout, from coronalign's ECSV shift table."""
    from astropy.table import Table

    table = Table.read(ecsv, format="ascii.ecsv")
    out = np.zeros(len(table), dtype=COLUMNS)
    for name, _ in COLUMNS:
        if name in table.colnames:
            out[name] = table[name]
    rows = np.arange(len(table))
    out["xshift_err"] = 1e-3 * (rows + 1)
    out["yshift_err"] = 2e-3 * (rows + 1)
    out["beta_err"] = 1e-4 * (rows + 1)
    out["xprior"] = np.nan
    out["yprior"] = np.nan
    return out


def _write_variants(plain: Path, shifts: np.ndarray) -> dict[str, Path]:
    """Write the a / b_struct / b_dict products beside ``plain``."""
    from astropy.io import fits
    from astropy.table import Table
    from stdatamodels.jwst import datamodels

    stem = plain.name.removesuffix("_psfalign.fits")
    paths = {"plain": plain}
    paths["a"] = plain.with_name(f"{stem}-a_psfalign.fits")
    shutil.copyfile(plain, paths["a"])
    table = Table(shifts)
    for name in ("xshift", "yshift", "xshift_err", "yshift_err", "xprior", "yprior"):
        table[name].unit = "pix"
    hdu = fits.table_to_hdu(table)
    hdu.name = EXTNAME
    with fits.open(paths["a"], mode="append") as hdulist:
        hdulist.append(hdu)
    for variant, value in (
        ("b_struct", shifts),
        ("b_dict", {name: shifts[name].tolist() for name in shifts.dtype.names}),
    ):
        paths[variant] = plain.with_name(f"{stem}-{variant}_psfalign.fits")
        with datamodels.open(plain) as model:
            model.meta.coronalign.shifts = value
            model.save(paths[variant])
    return paths


def _hdu_names(path: Path) -> list[str]:
    from astropy.io import fits

    with fits.open(path) as hdulist:
        return [hdu.name for hdu in hdulist]


def _own_checks(paths: dict[str, Path], expected: dict) -> dict:
    """Open, validate, read back and re-save each variant with the project's stdatamodels."""
    from astropy.io import fits
    from stdatamodels import fits_support
    from stdatamodels.jwst import datamodels

    def flat_meta(path):
        with datamodels.open(path) as model:
            return {k: v for k, v in model.to_flat_dict().items() if k.startswith("meta.")}

    plain_meta = flat_meta(paths["plain"])
    out = {}
    for variant, path in paths.items():
        entry = out[variant] = {"hdus": _hdu_names(path)}
        with fits.open(path) as hdulist:
            tree = bytes(hdulist["ASDF"].data[0][0]).decode("latin1")
            stored = tree.split("_fits_hash: ", 1)[1].split()[0]
            entry["fits_hash_matches"] = stored == fits_support.fits_hash(hdulist)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with datamodels.open(path) as model:
                entry["opened_as"] = type(model).__name__
                try:
                    model.validate()
                    entry["validate"] = "passed"
                except Exception as error:
                    entry["validate"] = f"{type(error).__name__}: {error}"
                extra = model.instance.get("extra_fits", {})
                entry["extra_fits"] = sorted(extra)
                if EXTNAME in extra:
                    entry["extension_table"] = _table_equal(expected, extra[EXTNAME]["data"])[1]
                shifts = model.meta.instance.get("coronalign", {}).get("shifts")
                entry["meta_shifts"] = _describe(shifts)
                if shifts is not None:
                    entry["meta_shifts_table"] = _table_equal(expected, shifts)[1]
                resaved = path.with_name(path.name.replace("_psfalign", "-resaved_psfalign"))
                model.save(resaved)
            meta = flat_meta(path)
            entry["meta_differs_from_plain"] = sorted(
                k
                for k in set(meta) | set(plain_meta)
                if not k.startswith(("meta.coronalign.shifts", "meta.filename"))
                and not _same(meta.get(k), plain_meta.get(k))
            )
        entry["warnings"] = _warnings_summary(caught)
        # What save() of the re-opened product wrote.
        saved = entry["resave"] = {"hdus": _hdu_names(resaved)}
        with fits.open(resaved) as hdulist:
            tree = bytes(hdulist["ASDF"].data[0][0]).decode("latin1")
            saved["extra_fits_in_asdf_tree"] = "extra_fits:" in tree
            saved[f"{EXTNAME}_in_asdf_tree"] = EXTNAME in tree
            if EXTNAME in hdulist:
                cols = hdulist[EXTNAME].columns
                saved["extension_units"] = {c.name: c.unit for c in cols if c.unit}
                saved["extension_formats"] = {c.name: c.format for c in cols}
        with datamodels.open(resaved) as model:
            extra = model.instance.get("extra_fits", {})
            if EXTNAME in extra:
                saved["extension_table"] = _table_equal(expected, extra[EXTNAME]["data"])[1]
            shifts = model.meta.instance.get("coronalign", {}).get("shifts")
            saved["meta_shifts"] = _describe(shifts)
            if shifts is not None:
                saved["meta_shifts_table"] = _table_equal(expected, shifts)[1]
        resaved.unlink()
    return out


def _same(a, b) -> bool:
    try:
        return bool(np.all(np.asarray(a) == np.asarray(b)))
    except Exception:
        return False


def _run_in_venv(python: Path, sci: Path, paths: dict, expected_json: Path) -> dict:
    cmd = [str(python), str(Path(__file__).resolve()), "--official", "--sci", str(sci)]
    cmd += ["--expected", str(expected_json), "--products"]
    cmd += [f"{variant}={path}" for variant, path in paths.items()]
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
        shifts = _shift_array(ecsv)
        expected = {name: shifts[name].tolist() for name in shifts.dtype.names}
        expected_json = work / f"{mode}_expected_shifts.json"
        expected_json.write_text(json.dumps(expected))
        prepared[mode] = {
            "paths": _write_variants(product, shifts),
            "expected": expected,
            "expected_json": expected_json,
        }
    return prepared


def _summary(results: dict) -> str:
    lines = [f"## project environment (stdatamodels {results['own_stdatamodels']})", ""]
    for mode in ("quad", "cube"):
        for variant, e in results["own"][mode].items():
            lines.append(
                f"- {mode} {variant}: hdus={e['hdus']} hash_ok={e['fits_hash_matches']} "
                f"validate={e['validate']} extra_fits={e['extra_fits']} "
                f"table(ext)={e.get('extension_table', '-')} "
                f"meta.shifts={e['meta_shifts']} ({e.get('meta_shifts_table', '-')}) "
                f"meta differs={e['meta_differs_from_plain']} warnings={e['warnings']}"
            )
            lines.append(f"    resave: {json.dumps(e['resave'])}")
    for version, runs in results["official"].items():
        for mode, rep in runs.items():
            lines += ["", f"## jwst {version} with the {mode} product"]
            if "error" in rep:
                lines.append(f"- {rep['error']}")
                continue
            lines.append(
                f"(stdatamodels {rep['stdatamodels_version']}, numpy {rep['numpy_version']})"
            )
            plain_warnings = rep["products"].get("plain", {}).get("warnings", [])
            for variant, e in rep["products"].items():
                new_warnings = [w for w in e.get("warnings", []) if w not in plain_warnings]
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
                    f"- {variant}: opened_as={e.get('opened_as', e.get('open_error'))} "
                    f"validate={e.get('validate')} extra_fits={e.get('extra_fits')} "
                    f"table(ext)={e.get('extension_table', '-')} "
                    f"meta.shifts={e.get('meta_shifts')} ({e.get('meta_shifts_table', '-')}) "
                    f"klip pipeline: {klip['pipeline']}; call: {klip['call']}; "
                    f"warnings beyond the plain product's: {new_warnings}"
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
    import stdatamodels

    prepared = _prepare(args.work, args.seed)
    results = {"own_stdatamodels": stdatamodels.__version__, "own": {}, "official": {}}
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
