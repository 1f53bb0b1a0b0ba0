#!/usr/bin/env bash
# Snakemake runs this once, inside the new conda environment, after creating it from
# jwst.yaml: install the coronalign package (the `coronalign` command) from the
# repository that holds the workflow. CORONALIGN_SOURCE is set by workflow/rules/common.smk.
set -euo pipefail
if [ -z "${CORONALIGN_SOURCE:-}" ]; then
    echo "CORONALIGN_SOURCE is not set: create the environment through the workflow" >&2
    echo "(snakemake --use-conda --conda-create-envs-only)" >&2
    exit 1
fi
python -m pip install --no-deps --no-build-isolation --editable "$CORONALIGN_SOURCE"
