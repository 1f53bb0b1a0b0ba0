"""The ``coronalign`` command line.

Argument parsing and error reporting only: every command calls one function of the
package. A problem the user can fix is printed as one line, ``coronalign: error: ...``,
with exit status 2 and no traceback; no partial output is left behind.
"""

import argparse
import logging
import os
import sys

from coronalign.cli.allocator import keep_freed_memory
from coronalign.cli.download import add_download
from coronalign.cli.simulate import add_simulate
from coronalign.cli.types import positive_int

__all__ = ["build_parser", "main", "run_command"]


# Our own worker processes (--threads) parallelise the fits; keep BLAS/OpenMP
# single-threaded so the machine is not oversubscribed (the matrix products here are small:
# BLAS threads would cost more than they give). Must be set before numpy is imported.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
# The same large temporaries for every integration: kept for reuse (cli/allocator.py).
keep_freed_memory()


def _add_align(subparsers):
    parser = subparsers.add_parser(
        "align",
        help="align a PSF stack to every integration of a science exposure",
        description=(
            "Fit, for every science integration and every PSF, the shift and flux scale that "
            "minimise sum((m * (psf - beta * shift(sci)))**2) under the PSFMASK m (the official "
            "objective; --weighting linear: sum(m * (...)**2)), within --max-shift pixels of the "
            "shift the pointing metadata predict (else 0), then shift each PSF by minus the "
            "fitted shift and write the _psfalign product, with the fitted shifts, their formal "
            "errors and statuses in its PSFSHIFTS table."
        ),
    )
    parser.add_argument("science", help="science _calints file (CubeModel: nints, ny, nx)")
    parser.add_argument("psfstack", help="_psfstack file (CubeModel: npsfs, ny, nx)")
    masks = parser.add_mutually_exclusive_group(required=True)
    masks.add_argument(
        "--psfmask",
        help="PSFMASK file: weights, 1 use / 0 ignore (a larger mask is cut to the subarray)",
    )
    masks.add_argument(
        "--psfmask-selection",
        metavar="SELECTION_JSON",
        help="PSFMASK selection written by `coronalign psfmask` (override or CRDS); when it "
        "says N/A the alignment is skipped and the product is the unaligned PSF stack",
    )
    parser.add_argument(
        "-o", "--output", required=True, help="product to write (_psfalign.fits; not an input)"
    )
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
    parser.add_argument(
        "--weighting",
        choices=("official", "linear"),
        default="official",
        help="official (default): the residual is multiplied by the PSFMASK, as in the official "
        "step, i.e. weight mask**2; linear: weight mask (the same for a 0/1 mask)",
    )
    parser.add_argument(
        "--max-shift",
        default="10",
        metavar="PIXELS",
        help="no fit ends farther than this from its prior, the shift predicted by the "
        "exposures' dither offsets (XOFFSET/YOFFSET), else 0 (default 10 px: ten times the "
        "largest offset expected after target acquisition and small-grid dithers)",
    )
    parser.add_argument(
        "--edges",
        choices=("wrap", "pad"),
        default="wrap",
        help="wrap (default, as the official step): the circular Fourier shift, what leaves one "
        "edge re-enters at the other (flagged); pad: shift inside a reflect-padded frame, the "
        "pixels with no source in the frame NaN and flagged DO_NOT_USE",
    )
    parser.add_argument(
        "--reference",
        choices=("each", "first", "mean"),
        default="each",
        help="each (default): fit every science integration; first: fit integration 0 only "
        "(jwst >= 1.16) and give every integration its shifts; mean: fit the mean of the "
        "integrations and give every integration its shifts",
    )
    parser.add_argument(
        "--blur-fwhm",
        default="none",
        metavar="PIXELS",
        help="FWHM of a Gaussian blur of both images for the fit only (the products are "
        "shifted unblurred); default none",
    )
    parser.add_argument(
        "--err-shift",
        choices=("propagated", "official"),
        default="propagated",
        help="propagated (default): ERR**2 convolved with the squared kernel of the shift, "
        "how a variance goes through a linear operator; official: ERR shifted as if it were "
        "signal, as the official step does",
    )
    parser.add_argument(
        "--shifts",
        help="also write the fitted shifts as an ECSV table (the product holds them too, in "
        "its PSFSHIFTS extension); written with the product: both or neither",
    )
    parser.add_argument(
        "--psfmask-reference", help="what to record as R_PSFMAS (default: the --psfmask path)"
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="cores to use (default 1): with 2 or more, the integrations are shared among "
        "that many processes (forked, Linux); results are identical for any number",
    )
    parser.set_defaults(handler=_run_align)


def _run_align(args):
    from coronalign.steps import collector

    # The start-up (imports, schemas, asdf's extensions, the inputs) makes objects that
    # live until the end: no cyclic garbage collection until the fits begin.
    with collector.paused(until_exit=args.ends_process):
        _align(args)


def _align(args):
    from coronalign.errors import ParameterError
    from coronalign.steps.align_refs import align_files, align_with_selection
    from coronalign.steps.parameters import StepParameters

    if args.psfmask_selection is not None and args.psfmask_reference is not None:
        raise ParameterError(
            "--psfmask-reference", "is taken from the selection file; give it only with --psfmask"
        )
    parameters = StepParameters(
        mode=args.mode,
        median_box_length=args.median_box_length,
        bad_bits=args.bad_bits,
        weighting=args.weighting,
        max_shift=args.max_shift,
        edges=args.edges,
        reference=args.reference,
        blur_fwhm=args.blur_fwhm,
        err_shift=args.err_shift,
        threads=args.threads,
    )
    if args.psfmask_selection is not None:
        align_with_selection(
            args.science,
            args.psfstack,
            args.psfmask_selection,
            args.output,
            parameters,
            shifts_path=args.shifts,
        )
    else:
        align_files(
            args.science,
            args.psfstack,
            args.psfmask,
            args.output,
            parameters,
            shifts_path=args.shifts,
            psfmask_reference=args.psfmask_reference,
        )


def _add_stack(subparsers):
    parser = subparsers.add_parser(
        "stack",
        help="stack PSF exposures into a _psfstack (stack_refs)",
        description=(
            "Stack every integration of the PSF reference _calints files, in the order given, "
            "into one CubeModel _psfstack with the metadata of the first file, as calwebb_coron3 "
            "stack_refs does. All files must have the same frame size, instrument, filter, "
            "coronagraph and subarray (every file is checked; each one's values are recorded "
            "in meta.coronalign.psf_members). The stack's FILENAME is its own name and its DATE "
            "the newest DATE of the files: the same files give the same bytes."
        ),
    )
    parser.add_argument("psf", nargs="+", help="PSF _calints files, in association member order")
    parser.add_argument("-o", "--output", required=True, help="_psfstack file to write")
    parser.set_defaults(handler=_run_stack)


def _run_stack(args):
    from coronalign.steps.stack_refs import stack_refs

    stack_refs(args.psf, args.output)


def _add_check_psfstack(subparsers):
    parser = subparsers.add_parser(
        "check-psfstack",
        help="check that a PSF stack fits the science exposures",
        description=(
            "Check that the PSF stack is a 3D CubeModel with at least one plane and some finite "
            "pixel, that its frame is that of every science exposure, and that instrument, filter, "
            "coronagraph and subarray agree with each science exposure (those of every member "
            "when the stack records them, as `coronalign stack` does); write a JSON report."
        ),
    )
    parser.add_argument("psfstack", help="_psfstack file")
    parser.add_argument("science", nargs="+", help="science _calints files")
    parser.add_argument("--report", required=True, help="JSON report to write")
    parser.set_defaults(handler=_run_check_psfstack)


def _run_check_psfstack(args):
    from coronalign.steps.stack_refs import check_psfstack

    check_psfstack(args.psfstack, args.science, args.report)


def _add_psfmask(subparsers):
    parser = subparsers.add_parser(
        "psfmask",
        help="choose the PSFMASK of a science exposure (override or CRDS)",
        description=(
            "Choose the PSFMASK for a science exposure and write the choice as JSON (status "
            "selected, override or not_applicable; path; reference; CRDS context and version; "
            "reason) for `coronalign align --psfmask-selection`. With --override the given file "
            "is used and CRDS is not consulted; otherwise the crds client looks the mask up in a "
            "local cache (no server unless --crds-server-url is given)."
        ),
    )
    parser.add_argument("science", help="science _calints file (its metadata select the mask)")
    parser.add_argument("-o", "--output", required=True, help="selection JSON to write")
    parser.add_argument("--override", help="PSFMASK file to use instead of CRDS")
    parser.add_argument("--crds-path", help="CRDS cache folder (CRDS_PATH)")
    parser.add_argument("--crds-context", help="CRDS context to pin, e.g. jwst_1322.pmap")
    parser.add_argument(
        "--crds-server-url", help="CRDS server (default: none; everything from the cache)"
    )
    parser.set_defaults(handler=_run_psfmask)


def _run_psfmask(args):
    from coronalign.steps.psfmask import choose_psfmask

    choose_psfmask(
        args.science,
        args.output,
        override=args.override,
        crds_path=args.crds_path,
        context=args.crds_context,
        server_url=args.crds_server_url,
    )


def _add_validate(subparsers):
    parser = subparsers.add_parser(
        "validate",
        help="validate a _psfalign product and its shift table",
        description=(
            "Check a product: schema, shape, finite SCI/ERR, its VAR_* arrays where it has "
            "them (SCI's shape, finite where usable, none negative when propagated), "
            "S_PSFALI, every shift within max_shift of its prior, no fit on the edge of its "
            "search window (out_of_window), every fit converged (fits without data and "
            "outliers are warnings). Writes a JSON report and exits with status 2 if a check "
            "fails."
        ),
    )
    parser.add_argument("product", help="_psfalign product")
    parser.add_argument("--shifts", required=True, help="the product's ECSV shift table")
    parser.add_argument("--report", required=True, help="JSON report to write")
    parser.add_argument("--mode", choices=("quad", "cube"), default="quad")
    parser.add_argument("--science", help="science _calints file (for the expected shape)")
    parser.add_argument("--psfstack", help="_psfstack file (for the expected shape)")
    parser.add_argument(
        "--max-shift",
        default=None,
        metavar="PIXELS",
        help="largest distance of a fit from its prior (default: the max_shift the alignment "
        "used, recorded in the shift table)",
    )
    parser.add_argument(
        "--offset-tolerance",
        default="5",
        metavar="MAS",
        help="where the exposures record their commanded offsets (XOFFSET/YOFFSET), the report "
        "gives each fit's distance from them and warns above this many milliarcseconds "
        "(default 5, the NIRCam/MIRI target-acquisition accuracy)",
    )
    parser.set_defaults(handler=_run_validate)


def _run_validate(args):
    from coronalign.steps.validate import validate_files

    validate_files(
        args.product,
        args.shifts,
        args.report,
        mode=args.mode,
        science=args.science,
        psfstack=args.psfstack,
        max_shift=args.max_shift,
        offset_tolerance=args.offset_tolerance,
    )


def _add_summarize(subparsers):
    parser = subparsers.add_parser(
        "summarize",
        help="summary table of all exposures (TSV)",
        description=(
            "One row per exposure: number of fits, shift mean/std/min/max, median beta, "
            "largest rms, validation status."
        ),
    )
    parser.add_argument("validation", nargs="+", help="validation reports (JSON)")
    parser.add_argument(
        "--shifts", nargs="+", required=True, help="shift tables, one per validation report"
    )
    parser.add_argument("-o", "--output", required=True, help="TSV file to write")
    parser.set_defaults(handler=_run_summarize)


def _run_summarize(args):
    from coronalign.steps.summary import summarize

    summarize(args.validation, args.shifts, args.output)


def _add_plot(subparsers):
    parser = subparsers.add_parser(
        "plot",
        help="report figure of one exposure (PNG)",
        description=(
            "Fitted shifts per integration and PSF with their formal errors (outliers and "
            "fits on the window's edge circled); science integration 0, the PSF 0 aligned to "
            "it divided by beta, and their residual, in an asinh stretch, with the region the "
            "PSFMASK ignores outlined."
        ),
    )
    parser.add_argument("product", help="_psfalign product")
    parser.add_argument("--science", required=True, help="science _calints file")
    parser.add_argument("--shifts", required=True, help="the product's shift table")
    masks = parser.add_mutually_exclusive_group()
    masks.add_argument("--psfmask", help="the PSFMASK, to outline the region it ignores")
    masks.add_argument(
        "--psfmask-selection",
        metavar="SELECTION_JSON",
        help="the PSFMASK selection written by `coronalign psfmask` (instead of --psfmask)",
    )
    parser.add_argument(
        "--psfstack",
        help="the PSF stack the product was made from: its bad pixels are shown masked (grey) "
        "in the aligned PSF",
    )
    parser.add_argument("-o", "--output", required=True, help="PNG file to write")
    parser.set_defaults(handler=_run_plot)


def _run_plot(args):
    from coronalign.steps.plots import plot_exposure

    plot_exposure(
        args.product,
        args.science,
        args.shifts,
        args.output,
        psfmask=args.psfmask,
        selection=args.psfmask_selection,
        psfstack=args.psfstack,
    )


def _add_manifest(subparsers):
    parser = subparsers.add_parser(
        "manifest",
        help="record a run: every product, its inputs (SHA-256), parameters and value digests",
        description=(
            "Write a JSON manifest of _psfalign products: inputs (paths and SHA-256), "
            "parameters, CRDS context, software versions and the SHA-256 of the SCI, ERR and DQ "
            "values. `coronalign verify` re-runs it."
        ),
    )
    parser.add_argument("products", nargs="+", help="_psfalign products written by coronalign")
    parser.add_argument("-o", "--output", required=True, help="manifest to write (JSON)")
    parser.add_argument(
        "--inputs-lock",
        metavar="LOCK",
        help="the inputs lock of the run (`coronalign download`): embedded whole, so the "
        "manifest alone pins the inputs and the results",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="products read and digested at once (default 1)",
    )
    parser.set_defaults(handler=_run_manifest)


def _run_manifest(args):
    from coronalign.steps.manifest import write_manifest

    write_manifest(args.products, args.output, inputs_lock=args.inputs_lock, threads=args.threads)


def _add_verify(subparsers):
    parser = subparsers.add_parser(
        "verify",
        help="re-run every product of a manifest and compare its values bit for bit",
        description=(
            "Check that the recorded inputs are unchanged, re-run every product of a manifest "
            "with its recorded parameters in a scratch folder, and compare the SCI, ERR and DQ "
            "values with the recorded digests. Exit status 1 if any product differs. A "
            "manifest with an inputs lock has the pinned files checked first (exit status 2 "
            "if one differs). A package version or an environment lock "
            "(requirements/lock.txt) other than the recorded one is named in a warning."
        ),
    )
    parser.add_argument("manifest", help="manifest written by `coronalign manifest`")
    parser.add_argument(
        "--base", help="folder the manifest's relative paths start from (default: here)"
    )
    parser.set_defaults(handler=_run_verify)


def _run_verify(args):
    from coronalign.steps.manifest import verify_manifest

    results = verify_manifest(args.manifest, base=args.base)
    for result in results:
        verdict = "identical" if result.identical else "DIFFERS: " + "; ".join(result.problems)
        print(f"{result.product}: {verdict}")
    same = sum(result.identical for result in results)
    print(f"{same} of {len(results)} product(s) reproduced bit for bit")
    return 0 if same == len(results) else 1


class _VersionAction(argparse.Action):
    """``--version``: the version is read (from the package's metadata) only when asked for."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs):
        kwargs.setdefault("help", "show program's version number and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from coronalign import __version__

        print(f"coronalign {__version__}", file=sys.stdout)
        parser.exit()


def build_parser():
    """The argument parser of the ``coronalign`` command.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog="coronalign",
        description="JWST coronagraphic PSF alignment (align_refs), fast and reproducible.",
        epilog=(
            "Inputs must be regular files (not folders, FIFOs or devices); an output may not "
            "be an input or another output, however spelled (links included). Exit status: 0 "
            "done; 2 a problem with an input, an output or a parameter (one line, nothing "
            "written); 128 + N when stopped by signal N (SIGTERM 143, SIGHUP 129, SIGINT 130): "
            "unfinished outputs are removed; `verify` exits with 1 when a product differs."
        ),
    )
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_align(subparsers)
    add_simulate(subparsers)
    _add_stack(subparsers)
    _add_check_psfstack(subparsers)
    _add_psfmask(subparsers)
    _add_validate(subparsers)
    _add_summarize(subparsers)
    _add_plot(subparsers)
    add_download(subparsers)
    _add_manifest(subparsers)
    _add_verify(subparsers)
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
        0 on success, 2 for a problem with the inputs or parameters, 128 + the signal
        number when stopped by SIGTERM, SIGHUP or SIGINT (unfinished outputs removed).
    """
    return run_command(argv, ends_process=argv is None)


def run_command(argv, *, ends_process):
    """:func:`main`, for a caller that runs commands in its own process.

    Parameters
    ----------
    argv : list of str
        Arguments.
    ends_process : bool
        Whether the process ends when the command returns (its last command): its worker
        pools are then not shut down politely.

    Returns
    -------
    int
        The exit status (see :func:`main`).
    """
    args = build_parser().parse_args(argv)
    args.ends_process = ends_process
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,  # in a rule's script too (see coronalign.cli.jobs), whatever came before
    )
    from coronalign.errors import CoronalignError, Interrupted
    from coronalign.steps.interrupt import termination_signals

    try:
        with termination_signals():
            status = args.handler(args)
    except CoronalignError as error:
        print(f"coronalign: error: {error}", file=sys.stderr)
        return 2
    except Interrupted as interruption:
        print(f"coronalign: {interruption}", file=sys.stderr)
        return interruption.status
    except KeyboardInterrupt:  # outside the main thread
        print("coronalign: interrupted", file=sys.stderr)
        return 130
    return status or 0
