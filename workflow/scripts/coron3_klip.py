"""Script of the `coron3_klip` rule (jwst's Python): official klip on our aligned cube.

The science exposure's bad pixels are first replaced as align_refs does (the official
pipeline hands klip the target align_refs cleaned), with the workflow's parameters.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from coron3_jwst import add_crds_arguments, add_record_argument, use_crds, write_run_record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("science")
    parser.add_argument("aligned")
    parser.add_argument("psfsub")
    parser.add_argument("--median-box-length", type=int, default=3)
    parser.add_argument("--bad-bits", default="DO_NOT_USE")
    add_crds_arguments(parser)
    add_record_argument(parser)
    argv = sys.argv[1:] if argv is None else argv
    arguments = parser.parse_args(argv)
    use_crds(arguments)

    import jwst
    from jwst.coron import KlipStep
    from stdatamodels.jwst import datamodels

    from coronalign.core.badpix import clean_data_planes
    from coronalign.steps.align_refs import zero_flags_for
    from coronalign.steps.parameters import parse_bad_bits

    print(f"jwst {jwst.__version__}: klip {arguments.science} {arguments.aligned}")
    with datamodels.open(arguments.science) as target, datamodels.open(arguments.aligned) as psf:
        cleaned, _ = clean_data_planes(
            target.data,
            target.dq,
            parse_bad_bits(arguments.bad_bits),
            arguments.median_box_length,
            zero_flags=zero_flags_for(target.meta.instrument.name),
        )
        target.data[...] = cleaned
        result = KlipStep.call(target, psf)
        result.meta.filename = Path(arguments.psfsub).name
        result.save(arguments.psfsub)
    inputs = {"science": arguments.science, "aligned": arguments.aligned}
    write_run_record(arguments, "klip", argv, inputs, arguments.psfsub)


if __name__ == "__main__":
    main()
