"""Script of the `plot` rule: `coronalign plot` on one product, the PSFMASK outlined,
the PSF stack's bad pixels masked."""

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
        "--psfstack",
        snakemake.input.psfstack,
        "-o",
        snakemake.output.figure,
    ],
)
