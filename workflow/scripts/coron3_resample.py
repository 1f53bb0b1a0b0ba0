"""Script of the `coron3_resample` rule (jwst's Python): official outlier_detection on each
_psfsub cube, then resample of all their integrations into the association's _i2d."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from coron3_jwst import add_crds_arguments, add_record_argument, use_crds, write_run_record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("i2d")
    parser.add_argument("psfsubs", nargs="+")
    add_crds_arguments(parser)
    add_record_argument(parser)
    argv = sys.argv[1:] if argv is None else argv
    arguments = parser.parse_args(argv)
    use_crds(arguments)

    import jwst
    from jwst.datamodels import ModelContainer, ModelLibrary
    from jwst.outlier_detection import OutlierDetectionStep
    from jwst.pipeline.calwebb_coron3 import to_container
    from jwst.resample import ResampleStep
    from stdatamodels.jwst import datamodels

    print(f"jwst {jwst.__version__}: outlier_detection and resample of {arguments.psfsubs}")
    integrations = ModelContainer()
    for path in arguments.psfsubs:
        with datamodels.open(path) as psfsub:
            if psfsub.meta.wcsinfo.s_region is None:  # resample would fail with a KeyError
                sys.exit(
                    f"coron3_resample: {path} has no sky footprint (meta.wcsinfo.s_region): "
                    "resample needs exposures with a celestial WCS, as MAST's _calints have "
                    "(the simulator's, e.g. .test/data, have a pixel frame only)"
                )
            cleaned = OutlierDetectionStep.call(psfsub)
            for model in to_container(cleaned):
                integrations.append(model)
    result = ResampleStep.call(ModelLibrary(integrations, on_disk=False))
    result.meta.filename = Path(arguments.i2d).name
    result.save(arguments.i2d)
    inputs = {f"psfsub {i}": path for i, path in enumerate(arguments.psfsubs, start=1)}
    write_run_record(arguments, "outlier_detection+resample", argv, inputs, arguments.i2d)


if __name__ == "__main__":
    main()
