"""What the coron3 scripts share: the CRDS settings of the workflow, set before jwst loads.

These scripts run with the jwst environment's Python, never with coronalign's; the steps
they call (klip, outlier_detection, resample) need no reference file, and stpipe's lookup of
parameter reference files (pars-*) is switched off, so they make no CRDS request.
"""

import json
import os
import sys
from pathlib import Path


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


def add_record_argument(parser):
    """``--record PATH``: where the script writes how it ran (for the manifest and verify)."""
    parser.add_argument("--record", default="", help="JSON record of this run to write")


def write_run_record(arguments, step, argv, inputs, output):
    """Record how a coron3 product was made, for `coronalign manifest` and `verify`.

    The record names the step, the jwst version, this Python and this script, the
    arguments (as given, so `coronalign verify` can run the same command with another
    output) and the inputs and output by role. Written only with ``--record``.
    """
    if not arguments.record:
        return
    import jwst

    kept, skip = [], False
    for part in argv:  # the arguments less --record itself
        if skip or part.startswith("--record="):
            skip = False
            continue
        if part == "--record":
            skip = True
            continue
        kept.append(part)
    record = {
        "step": step,
        "jwst": jwst.__version__,
        "python": sys.executable,
        "script": str(Path(sys.argv[0]).resolve()),
        "argv": kept,
        "inputs": inputs,
        "output": output,
    }
    temporary = Path(arguments.record).with_name(f".{Path(arguments.record).name}.part")
    temporary.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(temporary, arguments.record)
