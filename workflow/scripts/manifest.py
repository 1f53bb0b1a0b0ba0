"""Script of the `manifest` rule: `coronalign manifest` of every product."""

from coronalign.cli import run_from_snakemake

command = ["manifest", *snakemake.input.products, "-o", snakemake.output.manifest]
if snakemake.input.inputs_lock:  # inputs from MAST: the manifest carries their lock
    command += ["--inputs-lock", snakemake.input.inputs_lock[0]]
run_from_snakemake(snakemake, command)
