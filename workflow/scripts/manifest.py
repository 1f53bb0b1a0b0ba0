"""Script of the `manifest` rule: `coronalign manifest` of every product; the products'
values are then compared with their record (a change is said with its cause, or stops)."""

from coronalign.cli import run_from_snakemake
from coronalign.steps.coron3_manifest import add_coron3_products
from coronalign.steps.records import keep_manifest_record, keep_record

command = ["manifest", *snakemake.input.products, "-o", snakemake.output.manifest]
command += ["--threads", snakemake.threads]
if snakemake.input.inputs_lock:  # inputs from MAST: the manifest carries their lock
    command += ["--inputs-lock", snakemake.input.inputs_lock[0]]
run_from_snakemake(snakemake, command)
if snakemake.input.coron3:  # coron3: true: the jwst products, their version and SHA-256
    add_coron3_products(snakemake.output.manifest, snakemake.input.coron3)
keep_record(
    snakemake.log[0], keep_manifest_record, snakemake.output.manifest, snakemake.params.record
)
