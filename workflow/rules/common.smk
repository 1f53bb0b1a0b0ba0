"""Configuration, inputs and input functions of the coronalign workflow.

The configuration is validated against workflow/schemas/config.schema.yaml when the
workflow is parsed (defaults filled in; an error names the key and the allowed values).
The inputs (associations and their members, files) are resolved by the package
(coronalign.steps.plan) lazily, the first time a rule asks for them, so `snakemake --lint`
works with the placeholder configuration while any real or dry run stops with one clear
message, before any job, when the data are absent or unsafe. Output paths are defined once,
in the rules; other rules refer to them as rules.<rule>.output.<name>.
"""

import errno
import math
import os
import sys
from functools import cache
from pathlib import Path

import jsonschema
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The input resolution (and the association reader it uses) is pure standard library.
# Import it from this repository's src/ so the workflow resolves its inputs the same way in
# any Snakemake installation, also one without the coronalign package (with --sdm conda
# the rules run in envs/).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from coronalign.errors import CoronalignError  # noqa: E402
from coronalign.steps.download import (  # noqa: E402
    download_inputs,
    missing_pinned_files,
    verify_inputs_lock,
)
from coronalign.steps.plan import SAFE_NAME, resolve_inputs  # noqa: E402

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
    elif cause.validator == "exclusiveMinimum":
        problem = f"{value!r} must be above {cause.validator_value}"
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


def _step_parameters(config):
    """Check the step's parameters as the align jobs will, before any job runs.

    JSON Schema's "integer" accepts 3.0 (YAML's float), and an unknown DQ flag name is a
    value only the step knows; coronalign.steps.parameters checks both, with the step's
    own messages. Without the package in Snakemake's environment (rules in conda
    environments) the schema's checks are all there is.
    """
    for key in ("median_box_length", "bad_bits"):
        if isinstance(config[key], float):
            raise WorkflowError(
                f"invalid configuration: {key}: {config[key]!r} is not of type integer "
                "(write a whole number without a decimal point)"
            )
    try:
        from coronalign.steps.parameters import StepParameters
    except ImportError:
        return
    try:
        StepParameters(
            mode=config["mode"],
            median_box_length=config["median_box_length"],
            bad_bits=config["bad_bits"],
            weighting=config["weighting"],
            max_shift=config["max_shift"],
            edges=config["edges"],
            reference=config["reference"],
            blur_fwhm=config["blur_fwhm"],
            err_shift=config["err_shift"],
        )
    except CoronalignError as error:
        raise WorkflowError(f"invalid configuration: {error}") from None


def validate_config(config):
    """Validate the configuration against the schema, fill in its defaults, and check the
    step's parameters."""
    try:
        validate(config, schema="../schemas/config.schema.yaml")
    except WorkflowError as error:
        raise WorkflowError(_config_error(error)) from None
    _step_parameters(config)


def _strict_configfiles():
    """Re-read the configuration files with the strict loader before the schema sees them.

    Snakemake keeps the last of two values given to one key and expands YAML aliases (nine
    nested ones are a billion values, and a schema message formatted from them never ends);
    coronalign.io.strict_load refuses both, naming the file, the key and the lines.
    """
    from coronalign.io.strict_load import read_yaml

    paths = [*(workflow.overwrite_configfiles or []), *(workflow.configfiles or [])]
    for path in dict.fromkeys(map(str, paths)):
        if Path(path).is_file():
            try:
                read_yaml(path, "configuration")
            except CoronalignError as error:
                raise WorkflowError(str(error)) from None


#: Every folder the rules write in; each must be a folder (or absent) before any job runs.
OUTPUT_FOLDERS = [
    *(
        f"logs/{step}"
        for step in ("align", "check_psfstack", "download", "manifest", "plot")
    ),
    *(f"logs/{step}" for step in ("psfmask", "stack_refs", "summary", "validate")),
    *(
        f"results/{step}"
        for step in ("benchmarks", "check", "plots", "psfalign", "psfmask")
    ),
    *(f"results/{step}" for step in ("shifts", "stack", "summary", "validation")),
]


def _check_output_folders():
    """Stop with one line when an output or log folder (or a parent) is not a folder."""
    for folder in OUTPUT_FOLDERS:
        for path in (*reversed(Path(folder).parents[:-1]), Path(folder)):
            if path.exists() and not path.is_dir():
                raise WorkflowError(
                    f"{path}: is not a folder, and the workflow writes into it; "
                    "move it away or run in another directory"
                )


_strict_configfiles()
validate_config(config)
_check_output_folders()

MODE = config["mode"]
MEDIAN_BOX_LENGTH = config["median_box_length"]
BAD_BITS = str(config["bad_bits"])
WEIGHTING = config["weighting"]
MAX_SHIFT = config["max_shift"]
#: The options the official step lacks (docs/options.md), as `coronalign align` takes them.
ALIGN_OPTIONS = {
    "edges": config["edges"],
    "reference": config["reference"],
    "blur_fwhm": "none" if config["blur_fwhm"] is None else config["blur_fwhm"],
    "err_shift": config["err_shift"],
}
CRDS = config["crds"]
MAST = config["mast"]
#: Inputs come from MAST (the download checkpoint) when the mast: section names any.
FROM_MAST = bool(MAST["associations"] or MAST["exposures"])
MAST_LOCK = MAST["lock"]
#: The records kept outside the outputs (coronalign.steps.records): never a rule's output,
#: so nothing Snakemake does to outputs deletes them; a job compares what it made with them.
RECORDS = config["records"]


def _refetch_missing_pinned():
    """A pinned input missing from the folder is fetched again before the DAG is built and
    compared with the lock: identical is accepted, different stops the run (naming the file
    and both SHA-256) before any alignment. The lock itself is never rewritten here."""
    try:
        if FROM_MAST and missing_pinned_files(MAST_LOCK, MAST["folder"]):
            download_inputs(**MAST)
    except CoronalignError as error:
        raise WorkflowError(str(error)) from None


_refetch_missing_pinned()


# Association names become file names: the wildcards take only safe names, so no path can
# leave results/ (coronalign.steps.plan refuses unsafe names before anything runs).
wildcard_constraints:
    stem=SAFE_NAME,
    stack=SAFE_NAME,


# ---------------------------------------------------------------------------------------
# Inputs


@cache
def _pinned_inputs():
    """With inputs from MAST: wait for the download checkpoint, then check every pinned file
    against the inputs lock, on every run (a changed file stops the run before alignment).
    """
    checkpoints.download.get()
    lock = MAST_LOCK
    try:
        verify_inputs_lock(lock, MAST["folder"])
    except CoronalignError as error:
        raise WorkflowError(str(error)) from None
    return lock


def inputs():
    """The resolved inputs (coronalign.steps.plan.resolve_inputs): exposures by stem, PSF
    stacks by key; a configuration problem is one clear WorkflowError."""
    if FROM_MAST:
        _pinned_inputs()
    return _resolved()


@cache
def _resolved():
    try:
        return resolve_inputs(config)
    except CoronalignError as error:
        raise WorkflowError(str(error)) from None


def stems():
    """Every product stem, in order."""
    return list(inputs().exposures)


def exposure(wildcards):
    """The exposure of ``wildcards.stem``."""
    found = inputs().exposures.get(wildcards.stem)
    if found is None:
        raise WorkflowError(
            f"{wildcards.stem} is not an exposure of this configuration; known: "
            + ", ".join(inputs().exposures)
        )
    return found


def psf_stack(wildcards):
    """The PSF stack ``wildcards.stack``."""
    found = inputs().stacks.get(wildcards.stack)
    if found is None:
        raise WorkflowError(
            f"{wildcards.stack} is not a PSF stack of this configuration"
        )
    return found


# ---------------------------------------------------------------------------------------
# Input functions of the rules


def science_file(wildcards):
    """The science _calints file of the exposure ``wildcards.stem``."""
    return exposure(wildcards).science


def stack_file(wildcards):
    """The PSF stack the exposure ``wildcards.stem`` is aligned to."""
    return inputs().stacks[exposure(wildcards).stack].path


def stack_check(wildcards):
    """The input check of the stack of the exposure ``wildcards.stem``."""
    return rules.check_psfstack.output.report.format(stack=exposure(wildcards).stack)


def psf_members(wildcards):
    """The PSF exposures of the stack ``wildcards.stack``, in member order."""
    members = psf_stack(wildcards).members
    if not members:
        raise WorkflowError(
            f"the PSF stack {wildcards.stack} has no PSF exposures to stack"
        )
    return list(members)


def checked_stack(wildcards):
    """The PSF stack ``wildcards.stack`` (made or given) and its science exposures."""
    stack = psf_stack(wildcards)
    return {"psfstack": stack.path, "science": list(stack.science)}


def stack_stems(wildcards):
    """The exposures aligned to the PSF stack ``wildcards.stack``, in order."""
    found = [
        stem
        for stem, exposure in inputs().exposures.items()
        if exposure.stack == wildcards.stack
    ]
    if not found:
        raise WorkflowError(
            f"{wildcards.stack} is not a PSF stack of this configuration"
        )
    return found


def of_stack(output):
    """An input function: ``output`` (a rule's output pattern with ``{stem}``) for every
    exposure aligned to the stack ``wildcards.stack``, in order."""

    def files(wildcards):
        return expand(output, stem=stack_stems(wildcards))

    return files


def stack_science(wildcards):
    """The science files of the exposures aligned to the stack ``wildcards.stack``."""
    return [inputs().exposures[stem].science for stem in stack_stems(wildcards)]


def stack_path(wildcards):
    """The PSF stack file ``wildcards.stack`` (made or given)."""
    return psf_stack(wildcards).path


def aligned_stacks():
    """The keys of the PSF stacks with exposures aligned to them, in order."""
    return list(
        dict.fromkeys(exposure.stack for exposure in inputs().exposures.values())
    )


def psfmask_override(wildcards):
    """The PSFMASK override file as an input (so a new mask re-runs the jobs), or none."""
    return [config["psfmask"]] if config.get("psfmask") else []


def every(output):
    """``output`` (a rule's output pattern with ``{stem}``) for every exposure."""
    return expand(output, stem=stems())


def every_product(wildcards):
    return every(rules.align.output.product)


def every_shift_table(wildcards):
    return every(rules.align.output.shifts)


def every_validation(wildcards):
    """The validation folders of every PSF stack (one report per exposure inside)."""
    return expand(rules.validate.output.reports, stack=aligned_stacks())


def every_validation_report(wildcards):
    """The validation report of every exposure, in order (inside :func:`every_validation`)."""
    folder = rules.validate.output.reports
    return [
        f"{folder.format(stack=exposure.stack)}/{stem}_psfalign.json"
        for stem, exposure in inputs().exposures.items()
    ]


def every_figure(wildcards):
    """The figure folders of every PSF stack (one figure per exposure inside)."""
    return expand(rules.plot.output.figures, stack=aligned_stacks())


def inputs_lock(wildcards):
    """The inputs lock, for the manifest to carry (with inputs from MAST), or none."""
    return [_pinned_inputs()] if FROM_MAST else []


#: The most threads one align job uses (more gain little on one exposure's fits).
ALIGN_MAX_THREADS = 2


def align_threads(wildcards):
    """Threads of an align job: the cores shared out among the exposures, 1 to 2.

    The align jobs run in parallel, one per science exposure; a job's fixed costs (start,
    imports, reading, writing) are serial, so with more exposures than cores whole jobs
    side by side use the cores better than threads inside one job (measured on 2 cores, 12
    exposures). `--set-threads align=N` (profiles/slurm) overrides this.
    """
    try:
        cores = workflow.cores
    except WorkflowError:  # no --cores (a cluster run without it): the most
        return ALIGN_MAX_THREADS
    per_exposure = (cores or 1) // max(1, len(stems()))
    return max(1, min(ALIGN_MAX_THREADS, per_exposure))


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


def validate_mem_mb(wildcards, input, attempt):
    """Memory of a validate job in MB: the job validates the products of one PSF stack one
    after the other, each read whole (SCI, ERR, DQ: 12 bytes a pixel; measured about 100 MB
    + 1.33 x the product), so 300 MB + 1.5 x the largest product is asked, at least 1000 MB,
    50 % more on each retry.

    The products' sizes come from the shapes of the science exposures and the PSF stack
    (their headers), which exist before the products do: a Slurm group job (validate and
    plot of one stack, profiles/slurm) asks for it when it is submitted.
    """
    from coronalign.io.models import read_sci_shape

    for path in (*input.science, input.psfstack):
        if not os.path.exists(path):  # not made yet: Snakemake asks again later
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    npsfs = read_sci_shape(input.psfstack, "PSF stack")[0]
    largest = 0
    for science in input.science:
        nints, *frame = read_sci_shape(science, "science exposure")
        rows = nints if MODE == "quad" else 1
        largest = max(largest, rows * npsfs * math.prod(frame) * 12 / 2**20)
    return int(max(1000, 300 + 1.5 * largest) * (1 + 0.5 * (attempt - 1)))


def final_outputs(wildcards):
    """The targets of the default rule: products, validation reports, figures, summary,
    manifest."""
    return [
        *every(rules.align.output.product),
        *every_validation(wildcards),
        *every_figure(wildcards),
        rules.summary.output.table,
        rules.manifest.output.manifest,
    ]
