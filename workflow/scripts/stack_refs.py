"""Script of the `stack_refs` rule: `coronalign stack` on one stack's PSF exposures; the
stack's values are then compared with its record (a re-made stack is identical, or says why).
"""

from coronalign.cli import run_from_snakemake
from coronalign.steps.records import keep_record, keep_stack_record

run_from_snakemake(snakemake, ["stack", *snakemake.input, "-o", snakemake.output.stack])
keep_record(
    snakemake.log[0],
    keep_stack_record,
    snakemake.output.stack,
    list(snakemake.input),
    snakemake.params.record,
    subject=snakemake.wildcards.stack,
)
