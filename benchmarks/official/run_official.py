"""Run the OFFICIAL ``jwst`` align_refs step on one data set, offline, and time it.

This script runs INSIDE a throw-away virtual environment that holds a released ``jwst``
(see ``make-venvs.sh``); it is never imported by coronalign, and ``jwst`` is never a
dependency of the project.  It only calls the installed package, it contains none of its code.

Usage::

    python run_official.py SCI PSFSTACK PSFMASK -o OUTDIR
        [--shifts-json FILE] [--median-box-length 3] [--bad-bits DO_NOT_USE] [--also SCI ...]

What it does
------------
1. Makes CRDS work with no server and no network: ``CRDS_PATH`` is a temporary cache holding only
   ``config/jwst/server_config`` (an empty cache), ``CRDS_MODE=local``,
   ``CRDS_SERVER_URL`` set to the serverless placeholder, ``CRDS_READONLY_CACHE=1``,
   ``STPIPE_DISABLE_CRDS_STEPPARS=1``, and every ``socket.connect`` in this process raises.  The PSF
   mask is given to the step as ``override_psfmask``, so no reference is ever looked up.
2. Runs ``jwst.coron.AlignRefsStep(override_psfmask=PSFMASK, median_box_length=...,
   bad_bits=...).run(SCI, PSFSTACK)``.  ``step_wall_s`` is the wall time of that call only
   (imports, start-up and saving excluded).  ``peak_rss_mib_step`` is the process's peak RSS
   (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) right after the step, imports included.
3. Saves the product as ``OUTDIR/<SCI root>_psfalign.fits`` (``<root>`` is the science file name
   without ``_calints.fits``; in calwebb_coron3 the association candidate id is added too:
   ``<root>_<acid>_psfalign.fits``).
   With ``--also SCI2 SCI3 ...`` the same step object then aligns each further science
   exposure to the same stack and saves it (``also_step_and_save_s``: their times), as
   ``calwebb_coron3`` does for an association's science members in one process.
4. With ``--shifts-json`` it also computes the official float64 fit of ``(xshift, yshift, beta)``
   for every science integration ``k`` and PSF ``m`` and writes
   ``{"xshift": [[...]], "yshift": [[...]], "beta": [[...]], ...}`` indexed ``[k][m]``.

Official functions called for the shift table (mimicking the step's own sequence):

* the bit-flag parser the installed step module imported, ``jwst.coron.align_refs_step.
  interpret_bit_flags`` with ``jwst.coron.align_refs_step.pixel`` as the name map (1.15.x: the
  stdatamodels parser, keyword ``mnemonic_map``; >= 1.16: astropy's, keyword ``flag_name_map``);
  ``None`` is turned into 0 as the step does;
* ``jwst.coron.median_replace_img.median_replace_img(model, box, bits)`` on the PSF stack, then on
  the science cube (both opened with ``stdatamodels.jwst.datamodels.open``), as in the step;
* ``jwst.coron.imageregistration.align_fourierLSQ`` (1.15.x) or ``align_fourier_lsq`` (>= 1.16)
  called as ``f(sci[k].astype(float64), psf[m].astype(float64), mask=psfmask.data)``: the science
  plane is the function's ``reference`` (the image that is shifted and scaled), the PSF plane is its
  ``target``.  This is exactly the call jwst 1.15.1's ``align_models`` makes.  jwst >= 1.16 fits
  only ``k = 0`` and without the float64 cast; that native call, ``align_array(sci[0], psf,
  mask=mask, return_aligned=False)`` on the float32 arrays, is recorded under ``"step_native"``
  (its shifts are what the 3D product was made with).

Sign convention (verified on synthetic Gaussians with known positions): the official model is
``psf_m ~ beta * shift(sci_k, xshift, yshift)`` with ``scipy.ndimage.fourier_shift`` (a positive
shift moves content towards larger indices), so ``xshift = x_psf - x_sci`` along columns,
``yshift = y_psf - y_sci`` along rows, and ``beta = flux_psf / flux_sci``.  The step then shifts
each PSF by ``-(xshift, yshift)`` to lay it on the science integration; beta is not applied.

Standard output is one JSON line (everything the step logs goes to standard error).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

SERVERLESS_URL = "https://jwst-serverless-mode.stsci.edu"


def _offline_crds(cache: Path) -> None:
    """Point CRDS at an empty local cache and forbid every network connection."""
    cfg = cache / "config" / "jwst"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "server_config").write_text(
        repr(
            {
                "observatory": "jwst",
                "operational_context": "jwst_0000.pmap",
                "bad_files_list": [],
                "force_remote_mode": False,
                "last_synced": "never (offline placeholder written by run_official.py)",
            }
        )
    )
    (cfg / "ref_cache_subdir_mode").write_text("instrument")
    os.environ.update(
        {
            "CRDS_PATH": str(cache),
            "CRDS_MODE": "local",
            "CRDS_SERVER_URL": SERVERLESS_URL,
            "CRDS_READONLY_CACHE": "1",
            "STPIPE_DISABLE_CRDS_STEPPARS": "1",
        }
    )

    def _no_network(self, address, *args, **kwargs):
        raise OSError(
            f"run_official.py: network access attempted ({address!r}); it must run offline"
        )

    socket.socket.connect = _no_network
    socket.socket.connect_ex = _no_network


def _rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _parse_bits(bad_bits: str) -> int:
    """Parse ``bad_bits`` with the very parser the installed official step uses."""
    from jwst.coron import align_refs_step as ars

    kw = (
        "mnemonic_map"
        if "mnemonic_map" in inspect.signature(ars.interpret_bit_flags).parameters
        else "flag_name_map"
    )
    value = ars.interpret_bit_flags(bad_bits, **{kw: ars.pixel})
    return 0 if value is None else int(value)


def _official_shifts(sci_path, psf_path, mask_path, box, bad_bits):
    """Official fit of (xshift, yshift, beta) for every (k, m), plus the step's native fit."""
    import numpy as np
    from jwst.coron import imageregistration as ir
    from jwst.coron.median_replace_img import median_replace_img
    from stdatamodels.jwst import datamodels

    fit = getattr(ir, "align_fourier_lsq", None) or ir.align_fourierLSQ
    bits = _parse_bits(bad_bits)
    with (
        datamodels.open(sci_path) as sci,
        datamodels.open(psf_path) as psf,
        datamodels.ImageModel(mask_path) as mask,
    ):
        psf = median_replace_img(psf, box, bits)
        sci = median_replace_img(sci, box, bits)
        nints, npsfs = sci.data.shape[0], psf.data.shape[0]
        table = np.empty((nints, npsfs, 3))
        for k in range(nints):
            ref = sci.data[k].astype(np.float64)
            for m in range(npsfs):
                table[k, m] = fit(ref, psf.data[m].astype(np.float64), mask=mask.data)
        out = {
            "xshift": table[..., 0].tolist(),
            "yshift": table[..., 1].tolist(),
            "beta": table[..., 2].tolist(),
            "fit_function": f"jwst.coron.imageregistration.{fit.__name__}",
            "input_dtype": {"sci": str(sci.data.dtype), "psf": str(psf.data.dtype)},
        }
        if "return_aligned" in inspect.signature(ir.align_array).parameters:
            native = ir.align_array(sci.data[0], psf.data, mask=mask.data, return_aligned=False)
            out["step_native"] = {
                "k": 0,
                "xshift": native[:, 0].tolist(),
                "yshift": native[:, 1].tolist(),
                "beta": native[:, 2].tolist(),
                "call": "align_array(sci.data[0], psf.data, mask=mask.data, return_aligned=False)",
            }
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sci", type=Path, help="science _calints file (CubeModel)")
    ap.add_argument("psfstack", type=Path, help="_psfstack file (CubeModel)")
    ap.add_argument("psfmask", type=Path, help="PSFMASK file, used as override_psfmask")
    ap.add_argument("-o", "--outdir", type=Path, required=True)
    ap.add_argument("--shifts-json", type=Path, default=None)
    ap.add_argument("--median-box-length", type=int, default=3)
    ap.add_argument("--bad-bits", default="DO_NOT_USE")
    ap.add_argument(
        "--also",
        type=Path,
        nargs="*",
        default=[],
        help="more science exposures aligned to the same stack in this process, in order "
        "(as calwebb_coron3 loops over an association's science members)",
    )
    ap.add_argument(
        "--stack-psfs",
        type=Path,
        nargs="*",
        default=[],
        help="PSF exposures to stack into PSFSTACK first with the official StackRefsStep "
        "(PSFSTACK is then written, not read)",
    )
    args = ap.parse_args(argv)

    for p in (args.sci, args.psfmask, *args.also, *args.stack_psfs):
        if not p.is_file():
            ap.error(f"input file {p} does not exist")
    if not args.stack_psfs and not args.psfstack.is_file():
        ap.error(f"input file {args.psfstack} does not exist")
    args.outdir.mkdir(parents=True, exist_ok=True)
    report: dict = {}
    real_stdout = sys.stdout
    with tempfile.TemporaryDirectory(prefix="crds-offline-") as cache:
        _offline_crds(Path(cache))
        with contextlib.redirect_stdout(sys.stderr):
            t0 = time.perf_counter()
            import jwst
            import numpy as np
            from jwst.coron import AlignRefsStep

            report["import_s"] = time.perf_counter() - t0
            report["rss_after_import_mib"] = _rss_mib()
            if args.stack_psfs:
                from jwst.coron import StackRefsStep
                from jwst.datamodels import ModelContainer

                t0 = time.perf_counter()
                psfs = ModelContainer([str(path) for path in args.stack_psfs])
                stacked = StackRefsStep().run(psfs)
                args.psfstack.parent.mkdir(parents=True, exist_ok=True)
                stacked.save(args.psfstack)
                stacked.close()
                report["stack_wall_s"] = time.perf_counter() - t0
            step = AlignRefsStep(
                override_psfmask=str(args.psfmask.resolve()),
                median_box_length=args.median_box_length,
                bad_bits=args.bad_bits,
            )
            t0 = time.perf_counter()
            result = step.run(str(args.sci), str(args.psfstack))
            report["step_wall_s"] = time.perf_counter() - t0
            report["peak_rss_mib_step"] = _rss_mib()

            root = args.sci.name.removesuffix(".fits").removesuffix("_calints")
            product = args.outdir / f"{root}_psfalign.fits"
            t0 = time.perf_counter()
            result.save(product)
            report["save_wall_s"] = time.perf_counter() - t0
            report.update(
                product=str(product),
                product_model=type(result).__name__,
                product_shape=list(result.data.shape),
                product_dtype=str(result.data.dtype),
                s_psfali=result.meta.cal_step.align_psfs,
            )
            result.close()
            more = []
            for science in args.also:
                t0 = time.perf_counter()
                result = step.run(str(science), str(args.psfstack))
                root = science.name.removesuffix(".fits").removesuffix("_calints")
                result.save(args.outdir / f"{root}_psfalign.fits")
                result.close()
                more.append(time.perf_counter() - t0)
            if more:
                report["also_step_and_save_s"] = more

            if args.shifts_json is not None:
                t0 = time.perf_counter()
                shifts = _official_shifts(
                    args.sci, args.psfstack, args.psfmask, args.median_box_length, args.bad_bits
                )
                report["shifts_wall_s"] = time.perf_counter() - t0
                shifts.update(
                    jwst_version=jwst.__version__,
                    numpy_version=np.__version__,
                    median_box_length=args.median_box_length,
                    bad_bits=args.bad_bits,
                    convention="xshift = x_psf - x_sci (columns), yshift = y_psf - y_sci (rows), "
                    "beta = flux_psf / flux_sci; model psf ~ beta * shift(sci, xshift, yshift)",
                )
                args.shifts_json.parent.mkdir(parents=True, exist_ok=True)
                args.shifts_json.write_text(json.dumps(shifts, indent=1) + "\n")
                report["shifts_json"] = str(args.shifts_json)

            report.update(
                jwst_version=jwst.__version__,
                numpy_version=np.__version__,
                peak_rss_mib=_rss_mib(),
                median_box_length=args.median_box_length,
                bad_bits=args.bad_bits,
            )
    print(json.dumps(report), file=real_stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
