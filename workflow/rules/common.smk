"""Configuration, inputs, product names and input functions of the coronalign workflow.

The configuration is validated against workflow/schemas/config.schema.yaml when the
workflow is parsed (defaults filled in; an error names the key and the allowed values).
The inputs (association members, files) are resolved lazily, the first time a rule asks
for them, so `snakemake --lint` works with the placeholder configuration while any real or
dry run stops with one clear message when the data are absent.
"""

import os
import shlex
import sys
from functools import cache
from pathlib import Path

import jsonschema
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The input resolution (and the association reader it uses) is pure standard library.
# Import it from this repository's src/ so the workflow resolves its inputs the same way in
# any Snakemake installation, also one without the coronalign package (with --use-conda
# the rules run in envs/).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from coronalign.errors import CoronalignError  # noqa: E402
from coronalign.steps.plan import resolve_inputs  # noqa: E402

CONDA_ENV = "../../envs/coronalign.yaml"
# envs/coronalign.post-deploy.sh installs coronalign from here into the conda environment.
os.environ.setdefault("CORONALIGN_SOURCE", str(Path(workflow.basedir).resolve()))


# ---------------------------------------------------------------------------------------
# Configuration


def _config_error(error):
    """One clear sentence for a schema violation: the key, the value, what is allowed."""
    # snakemake.utils.validate raises the WorkflowError while handling jsonschema's error
    cause = error.__cause__ or error.__context__
    if not isinstance(cause, jsonschema.ValidationError):
        cause = None
    if cause is None:
        return str(error)
    key = ".".join(str(part) for part in cause.absolute_path) or "(top level)"
    schema = cause.schema if isinstance(cause.schema, dict) else {}
    value = cause.instance
    if cause.validator == "additionalProperties":
        allowed = ", ".join(sorted(schema.get("properties", {})))
        unknown = ", ".join(sorted(set(value) - set(schema.get("properties", {}))))
        where = "" if key == "(top level)" else f" in {key}"
        return f"invalid configuration: unknown key(s) {unknown}{where}; allowed keys: {allowed}"
    if cause.validator == "enum":
        allowed = ", ".join(map(str, cause.validator_value))
        problem = f"{value!r} is not one of the allowed values: {allowed}"
    elif cause.validator == "minimum":
        problem = f"{value!r} is below the minimum {cause.validator_value}"
    elif cause.validator == "type":
        kinds = cause.validator_value
        kinds = " or ".join(kinds) if isinstance(kinds, list) else kinds
        problem = f"{value!r} is not of type {kinds}"
    elif cause.validator == "minItems":
        problem = "the list is empty; give at least one file"
    else:
        problem = cause.message
    described = schema.get("description", "")
    if not described and cause.parent is not None:
        described = cause.parent.schema.get("description", "")
    hint = f" ({' '.join(described.split())})" if described else ""
    return f"invalid configuration: {key}: {problem}{hint}"


def validate_config(config):
    """Validate the configuration against the schema and fill in its defaults."""
    try:
        validate(config, schema="../schemas/config.schema.yaml")
    except WorkflowError as error:
        raise WorkflowError(_config_error(error)) from None


validate_config(config)

MODE = config["mode"]
MEDIAN_BOX_LENGTH = config["median_box_length"]
BAD_BITS = str(config["bad_bits"])
WEIGHTING = config["weighting"]
MAX_SHIFT = config["max_shift"]


# ---------------------------------------------------------------------------------------
# Inputs


@cache
def inputs():
    """The resolved inputs (coronalign.steps.plan.resolve_inputs): exposure names, science
    and PSF files, the PSF stack; a configuration problem is one clear WorkflowError."""
    try:
        return resolve_inputs(config)
    except CoronalignError as error:
        raise WorkflowError(str(error)) from None


CHECK_REPORT = "results/check/psfstack_check.json"
SUMMARY = "results/summary/summary.tsv"
MANIFEST = "results/manifest.json"


# ---------------------------------------------------------------------------------------
# Product names


def product_path(stem):
    return f"results/psfalign/{stem}_psfalign.fits"


def shifts_path(stem):
    return f"results/shifts/{stem}_psfshifts.ecsv"


def validation_path(stem):
    return f"results/validation/{stem}_psfalign.json"


def plot_path(stem):
    return f"results/plots/{stem}_psfalign.png"


def final_outputs(wildcards):
    """The targets of the default rule: products, validation reports, figures, summary."""
    stems = list(inputs().science)
    return [
        *(product_path(stem) for stem in stems),
        *(validation_path(stem) for stem in stems),
        *(plot_path(stem) for stem in stems),
        SUMMARY,
        MANIFEST,
    ]


def manifest_products(wildcards):
    """Every product of the run, for the manifest."""
    return [product_path(stem) for stem in inputs().science]


# ---------------------------------------------------------------------------------------
# Input functions and parameters of the rules


def science_file(wildcards):
    """The science _calints file of the exposure ``wildcards.stem``."""
    science = inputs().science
    if wildcards.stem not in science:
        raise WorkflowError(
            f"{wildcards.stem} is not an exposure of this configuration; known: "
            + ", ".join(science)
        )
    return science[wildcards.stem]


def all_science(wildcards):
    return list(inputs().science.values())


def psfstack_file(wildcards):
    return inputs().psfstack


def psf_members(wildcards):
    """The PSF exposures to stack, in member order."""
    members = inputs().psf
    if not members:
        raise WorkflowError(
            "no PSF exposures to stack: give `psf:` files or an association with psf members"
        )
    return members


def psfmask_override(wildcards):
    """The PSFMASK override file as an input (so a new mask re-runs the jobs), or none."""
    return [config["psfmask"]] if config.get("psfmask") else []


def psfmask_options(wildcards):
    """Command-line options of `coronalign psfmask`: the override or the CRDS settings."""
    if config.get("psfmask"):
        return f"--override {shlex.quote(str(config['psfmask']))}"
    crds = config.get("crds") or {}
    options = []
    for key, flag in (
        ("path", "--crds-path"),
        ("context", "--crds-context"),
        ("server_url", "--crds-server-url"),
    ):
        if crds.get(key):
            options.append(f"{flag} {shlex.quote(str(crds[key]))}")
    return " ".join(options)


def align_mem_mb(wildcards, input, threads, attempt):
    """Memory of an align job in MB, from the sizes of its inputs and its threads.

    The product is streamed to disk, so memory does not grow with the 4D product. The
    science exposure is held as read (about 1 x its file size); the PSF stack is held,
    cleaned in float64 and kept as spectra (about 8 x its file size). 350 MB covers
    Python, the libraries and the Snakemake process of a cluster job (measured: about
    180 MB + 0.9 x science + 7.5 x PSF stack, plus 130 MB). Each thread beyond the first
    is a forked worker process that shares all that and adds its own working memory
    (measured: about 50 MB for a 15 MB MIRI PSF stack; 100 MB + 3 x PSF stack allowed).
    Each retry (--retries) asks for 50 % more.
    """
    science_mb = os.path.getsize(input.science) / 2**20
    psfstack_mb = os.path.getsize(input.psfstack) / 2**20
    workers_mb = (max(1, threads) - 1) * (100 + 3 * psfstack_mb)
    return int(
        (350 + science_mb + 8 * psfstack_mb + workers_mb) * (1 + 0.5 * (attempt - 1))
    )


def summary_shifts(wildcards):
    return [shifts_path(stem) for stem in inputs().science]


def summary_validation(wildcards):
    return [validation_path(stem) for stem in inputs().science]
