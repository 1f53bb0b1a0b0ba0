"""What the coron3 scripts share: the CRDS settings of the workflow, set before jwst loads.

These scripts run with the jwst environment's Python, never with coronalign's; the steps
they call (klip, outlier_detection, resample) need no reference file, and stpipe's lookup of
parameter reference files (pars-*) is switched off, so they make no CRDS request.
"""

import os


def add_crds_arguments(parser):
    """The CRDS options of the coron3 scripts (the workflow's crds: section)."""
    parser.add_argument("--crds-path", default="")
    parser.add_argument("--crds-context", default="")
    parser.add_argument("--crds-offline", action="store_true")


def use_crds(arguments):
    """Point CRDS at the workflow's cache and context; call before importing jwst."""
    if arguments.crds_path:
        os.environ["CRDS_PATH"] = os.path.expanduser(arguments.crds_path)
    if arguments.crds_context:
        os.environ["CRDS_CONTEXT"] = arguments.crds_context
    if arguments.crds_offline:
        os.environ["CRDS_MODE"] = "local"
    os.environ["STPIPE_DISABLE_CRDS_STEPPARS"] = "True"
