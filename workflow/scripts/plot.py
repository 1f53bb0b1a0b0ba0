"""Script of the `plot` rule: `coronalign plot` on one product, the PSFMASK outlined."""

from coronalign.cli import run_from_snakemake

run_from_snakemake(
    snakemake,
    [
        "plot",
        snakemake.input.product,
        "--science",
        snakemake.input.science,
        "--shifts",
        snakemake.input.shifts,
        "--psfmask-selection",
        snakemake.input.selection,
        "-o",
        snakemake.output.figure,
    ],
)
