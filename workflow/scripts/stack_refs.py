"""Script of the `stack_refs` rule: `coronalign stack` on one stack's PSF exposures."""

from coronalign.cli import run_from_snakemake

run_from_snakemake(snakemake, ["stack", *snakemake.input, "-o", snakemake.output.stack])
