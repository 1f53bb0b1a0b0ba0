"""Script of the `summary` rule: `coronalign summarize` on every exposure."""

from coronalign.cli import run_from_snakemake

run_from_snakemake(
    snakemake,
    [
        "summarize",
        *snakemake.input.validation,
        "--shifts",
        *snakemake.input.shifts,
        "-o",
        snakemake.output.table,
    ],
)
