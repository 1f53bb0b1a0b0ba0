"""Script of the `plot` rule: `coronalign plot` on every product of one PSF stack, in one
process; a figure per product in the rule's folder, named after the product, the PSFMASK
outlined, the PSF stack's bad pixels masked."""

from pathlib import Path

from coronalign.cli.jobs import run_each_from_snakemake

folder = Path(snakemake.output.figures)
folder.mkdir(parents=True, exist_ok=True)
run_each_from_snakemake(
    snakemake,
    [
        [
            "plot",
            product,
            "--science",
            science,
            "--shifts",
            shifts,
            "--psfmask-selection",
            selection,
            "--psfstack",
            snakemake.input.psfstack,
            "-o",
            folder / (Path(product).stem + ".png"),
        ]
        for product, shifts, science, selection in zip(
            snakemake.input.products,
            snakemake.input.shifts,
            snakemake.input.science,
            snakemake.input.selections,
            strict=True,
        )
    ],
)
