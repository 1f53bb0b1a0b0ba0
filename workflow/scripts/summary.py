"""Script of the `summary` rule: `coronalign summarize` on every exposure (its validation
report, in its PSF stack's validation folder, and its shift table)."""

from coronalign.cli.jobs import run_from_snakemake

run_from_snakemake(
    snakemake,
    [
        "summarize",
        *snakemake.params.reports,
        "--shifts",
        *snakemake.input.shifts,
        "-o",
        snakemake.output.table,
    ],
)
