"""The ``coronalign`` command line.

Argument parsing and error reporting only: every command calls one function of the
package. A problem the user can fix is printed as one line, ``coronalign: error: ...``,
with exit status 2 and no traceback; no partial output is left behind.
"""

import argparse
import logging
import os
import sys

__all__ = ["build_parser", "main"]

log = logging.getLogger("coronalign")

# Our own threads parallelise the fits; keep BLAS/OpenMP single-threaded so results are
# identical for any thread count and the machine is not oversubscribed. Must be set
# before numpy is imported.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _add_align(subparsers):
    parser = subparsers.add_parser(
        "align",
        help="align a PSF stack to every integration of a science exposure",
        description=(
            "Fit, for every science integration and every PSF, the shift and flux scale that "
            "minimise sum(w * (psf - beta * shift(sci))**2) under the PSFMASK weight w, then "
            "shift each PSF by minus the fitted shift and write the _psfalign product."
        ),
    )
    parser.add_argument("science", help="science _calints file (CubeModel: nints, ny, nx)")
    parser.add_argument("psfstack", help="_psfstack file (CubeModel: npsfs, ny, nx)")
    parser.add_argument(
        "--psfmask",
        required=True,
        help="PSFMASK file: weights, 1 use / 0 ignore (a larger mask is cut to the subarray)",
    )
    parser.add_argument("-o", "--output", required=True, help="product to write (_psfalign.fits)")
    parser.add_argument(
        "--mode",
        choices=("quad", "cube"),
        default="quad",
        help="quad: QuadModel (nints, npsfs, ny, nx), all integrations (default, jwst <= 1.15); "
        "cube: CubeModel (npsfs, ny, nx) aligned to integration 0 (jwst >= 1.16)",
    )
    parser.add_argument(
        "--median-box-length",
        default="3",
        help="box length for the median replacement of bad pixels (integer >= 0, default 3)",
    )
    parser.add_argument(
        "--bad-bits",
        default="DO_NOT_USE",
        help='DQ flags of bad pixels: names or integers joined by , + or | (default "DO_NOT_USE"; '
        '"" or none: only non-finite pixels are replaced)',
    )
    parser.add_argument("--shifts", help="also write the fitted shifts as an ECSV table")
    parser.add_argument(
        "--psfmask-reference", help="what to record as R_PSFMAS (default: the --psfmask path)"
    )
    parser.add_argument(
        "--threads", type=_positive_int, default=1, help="worker threads (default 1)"
    )
    parser.set_defaults(handler=_run_align)


def _run_align(args):
    from .step import align_files

    align_files(
        args.science,
        args.psfstack,
        args.psfmask,
        args.output,
        mode=args.mode,
        median_box_length=args.median_box_length,
        bad_bits=args.bad_bits,
        shifts_path=args.shifts,
        threads=args.threads,
        psfmask_reference=args.psfmask_reference,
    )


def _add_simulate(subparsers):
    parser = subparsers.add_parser(
        "simulate",
        help="write a synthetic data set with known shifts",
        description=(
            "Write a realistic synthetic coronagraphic data set (science _calints, _psfstack, "
            "PSFMASK) and truth.json with the true shifts and flux ratios. With --association, "
            "write several science and PSF exposures and a coron3 association instead."
        ),
    )
    parser.add_argument("--instrument", choices=("nircam", "miri"), default="nircam")
    parser.add_argument("--nints", type=_positive_int, default=4, help="science integrations")
    parser.add_argument("--npsfs", type=_positive_int, default=3, help="PSFs in the stack")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--association",
        action="store_true",
        help="write a coron3 association: --nscience science and --npsf-exposures PSF exposures",
    )
    parser.add_argument("--nscience", type=_positive_int, default=3)
    parser.add_argument("--npsf-exposures", type=_positive_int, default=2)
    parser.add_argument("-o", "--output", required=True, help="folder to write into")
    parser.set_defaults(handler=_run_simulate)


def _run_simulate(args):
    from pathlib import Path

    from . import simulate

    outdir = Path(args.output)
    outdir.mkdir(parents=True, exist_ok=True)
    if args.association:
        paths = simulate.write_association(
            outdir,
            instrument=args.instrument,
            n_science=args.nscience,
            n_psf=args.npsf_exposures,
            nints=args.nints,
            psf_nints=args.npsfs,
            seed=args.seed,
        )
    else:
        sim = simulate.simulate_exposures(args.instrument, args.nints, args.npsfs, args.seed)
        paths = simulate.write_simulation(sim, outdir)
    for role, path in paths.items():
        shown = ", ".join(map(str, path)) if isinstance(path, list) else path
        print(f"{role}: {shown}")


def build_parser():
    """The argument parser of the ``coronalign`` command.

    Returns
    -------
    argparse.ArgumentParser
    """
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="coronalign",
        description="JWST coronagraphic PSF alignment (align_refs), fast and reproducible.",
    )
    parser.add_argument("--version", action="version", version=f"coronalign {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_align(subparsers)
    _add_simulate(subparsers)
    return parser


def main(argv=None):
    """Run the command line; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for a problem with the inputs or parameters.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from .errors import CoronalignError

    try:
        args.handler(args)
    except CoronalignError as error:
        print(f"coronalign: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("coronalign: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
