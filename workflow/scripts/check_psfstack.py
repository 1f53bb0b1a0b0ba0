"""Script of the `check_psfstack` rule: `coronalign check-psfstack` on one stack."""

from coronalign.cli.jobs import run_from_snakemake

run_from_snakemake(
    snakemake,
    [
        "check-psfstack",
        snakemake.input.psfstack,
        *snakemake.input.science,
        "--report",
        snakemake.output.report,
    ],
)
