"""``coronalign simulate``: synthetic data sets with known shifts (the parser and its call)."""

import argparse

from coronalign.cli.types import positive_int

__all__ = ["add_simulate"]

#: Choices of ``coronalign simulate`` (the same as coronalign.simulation's; kept here so that
#: building the parser does not import numpy).
_SIMULATE_INSTRUMENTS = ("nircam", "miri", "nircam-sw", "miri-lyot")
_SIMULATE_MASK_STYLES = ("geometric", "crds")
_SIMULATE_DITHERS = ("none", "5-point-box", "5-point-diamond", "9-point-grid")


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return value


def add_simulate(subparsers):
    """The ``simulate`` command's parser."""
    parser = subparsers.add_parser(
        "simulate",
        help="write a synthetic data set with known shifts",
        description=(
            "Write a realistic synthetic coronagraphic data set (science _calints, _psfstack, "
            "PSFMASK) and truth.json with the true shifts and flux ratios. With --association, "
            "write several science and PSF exposures and a coron3 association instead. With "
            "the default options the data are those of earlier versions (same seed, same "
            "arrays)."
        ),
    )
    parser.add_argument(
        "--instrument",
        choices=_SIMULATE_INSTRUMENTS,
        default="nircam",
        help="configuration: nircam (SUB320A335R, F335M, MASKA335R, 320x320; default), miri "
        "(MASK1550, F1550C, 4QPM, 224x288), nircam-sw (SUB640A210R on NRCA2, F210M, MASKA210R, "
        "640x640), miri-lyot (MASKLYOT, F2300C, LYOT_2300, 304x320)",
    )
    parser.add_argument(
        "--nints",
        type=positive_int,
        default=4,
        help="science integrations (with --association: per science exposure)",
    )
    parser.add_argument(
        "--npsfs",
        type=positive_int,
        default=3,
        help="PSFs in the stack (with --association: integrations per PSF exposure)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--decorrelation",
        type=_fraction,
        default=0.0,
        metavar="A",
        help="0 (default): the references share the science target's static wavefront, the "
        "speckles nearly match; 1: independent wavefronts, the speckles do not match; in "
        "between cos(A*pi/2)*S1 + sin(A*pi/2)*S2 (same RMS). The truth is then the local "
        "minimum downhill from the geometric shift",
    )
    parser.add_argument(
        "--mask-style",
        choices=_SIMULATE_MASK_STYLES,
        default="geometric",
        help="PSFMASK: geometric (default; 0 in the core, the border and NON_SCIENCE columns) "
        "or crds (like the released files: NIRCam fractional, ~1e-5 at the occulter centre "
        "rising to 0.99, last row and column 0; MIRI 0/1)",
    )
    parser.add_argument(
        "--taper",
        type=float,
        default=0.0,
        metavar="PX",
        help="raised-cosine taper width of the geometric PSFMASK (default 0: binary)",
    )
    parser.add_argument(
        "--offset-scale",
        type=float,
        default=0.3,
        metavar="PX",
        help="RMS pointing error per exposure and axis, not recorded in the headers (default "
        "0.3 px)",
    )
    parser.add_argument(
        "--psf-dither",
        choices=_SIMULATE_DITHERS,
        default="none",
        help="small-grid dither of the reference exposures (20 mas steps for NIRCam, 10 mas "
        "for MIRI), recorded in the headers' XOFFSET/YOFFSET (default none)",
    )
    parser.add_argument(
        "--large-offset",
        type=float,
        nargs=2,
        metavar=("DX", "DY"),
        help="offset (px) added to every reference position, e.g. 7.3 5.1; not recorded in "
        "the headers unless --record-large-offset",
    )
    parser.add_argument(
        "--record-large-offset",
        action="store_true",
        help="write --large-offset into the references' XOFFSET/YOFFSET",
    )
    parser.add_argument(
        "--shape",
        type=positive_int,
        nargs=2,
        metavar=("NY", "NX"),
        help="frame size (default: the configuration's subarray)",
    )
    parser.add_argument(
        "--association",
        action="store_true",
        help="write a coron3 association: --nscience science and --npsf-exposures PSF exposures",
    )
    parser.add_argument("--nscience", type=positive_int, default=3)
    parser.add_argument("--npsf-exposures", type=positive_int, default=2)
    parser.add_argument(
        "--celestial-wcs",
        action="store_true",
        help="give the _calints a celestial WCS (TAN, the instrument's pixel scale, no "
        "distortion) and a footprint (S_REGION), as MAST's have, so that the official "
        "resample can combine them (the workflow's coron3: true); default: a pixel frame",
    )
    parser.add_argument("-o", "--output", required=True, help="folder to write into")
    parser.set_defaults(handler=_run_simulate)


def _run_simulate(args):
    from coronalign import simulation
    from coronalign.simulation.instruments import setup_for

    options = {
        "decorrelation": args.decorrelation,
        "mask_style": args.mask_style,
        "taper": args.taper,
        "offset_scale": args.offset_scale,
        "psf_dither": args.psf_dither,
        "large_offset": args.large_offset,
        "record_large_offset": args.record_large_offset,
        "shape": args.shape,
    }
    if args.association:
        paths = simulation.write_association(
            args.output,
            instrument=args.instrument,
            n_science=args.nscience,
            n_psf=args.npsf_exposures,
            nints=args.nints,
            psf_nints=args.npsfs,
            seed=args.seed,
            **options,
        )
    else:
        sim = simulation.simulate_exposures(
            args.instrument, args.nints, args.npsfs, args.seed, **options
        )
        paths = simulation.write_simulation(sim, args.output)
    if args.celestial_wcs:
        scale = setup_for(args.instrument).pixel_scale
        for path in paths.values():
            for one in path if isinstance(path, list) else [path]:
                if str(one).endswith("_calints.fits"):
                    simulation.add_celestial_wcs(one, scale)
    for role, path in paths.items():
        shown = ", ".join(map(str, path)) if isinstance(path, list) else path
        print(f"{role}: {shown}")
