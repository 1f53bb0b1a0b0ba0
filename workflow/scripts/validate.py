"""Script of the `validate` rule: `coronalign validate` on every product of one PSF stack,
in one process; a report per product in the rule's folder, named after the product."""

from pathlib import Path

from coronalign.cli.jobs import run_each_from_snakemake

folder = Path(snakemake.output.reports)
folder.mkdir(parents=True, exist_ok=True)
run_each_from_snakemake(
    snakemake,
    [
        [
            "validate",
            product,
            "--shifts",
            shifts,
            "--report",
            folder / (Path(product).stem + ".json"),
            "--mode",
            snakemake.params.mode,
            "--science",
            science,
            "--psfstack",
            snakemake.input.psfstack,
            "--offset-tolerance",
            snakemake.params.offset_tolerance,
        ]
        for product, shifts, science in zip(
            snakemake.input.products,
            snakemake.input.shifts,
            snakemake.input.science,
            strict=True,
        )
    ],
)
