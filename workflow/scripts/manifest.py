"""Script of the `manifest` rule: `coronalign manifest` of every product."""

from coronalign.cli import run_from_snakemake

run_from_snakemake(
    snakemake, ["manifest", *snakemake.input.products, "-o", snakemake.output.manifest]
)
