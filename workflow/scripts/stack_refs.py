"""Script of the `stack_refs` rule: `coronalign stack` on one stack's PSF exposures; the
stack's values are then compared with its record (a re-made stack is identical, or says why).
"""

from coronalign.cli.jobs import run_from_snakemake

record = (
    "coronalign.steps.records:keep_record",
    [
        snakemake.log[0],
        "keep_stack_record",
        snakemake.output.stack,
        list(snakemake.input),
        snakemake.params.record,
    ],
    {"subject": snakemake.wildcards.stack},
)
run_from_snakemake(
    snakemake, ["stack", *snakemake.input, "-o", snakemake.output.stack], then=[record]
)
