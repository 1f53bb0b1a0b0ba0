"""Script of the `validate` rule: `coronalign validate` on one product."""

from coronalign.cli import run_from_snakemake

run_from_snakemake(
    snakemake,
    [
        "validate",
        snakemake.input.product,
        "--shifts",
        snakemake.input.shifts,
        "--report",
        snakemake.output.report,
        "--mode",
        snakemake.params.mode,
        "--science",
        snakemake.input.science,
        "--psfstack",
        snakemake.input.psfstack,
        "--offset-tolerance",
        snakemake.params.offset_tolerance,
    ],
)
