"""Script of the `manifest` rule: `coronalign manifest` of every product; the products'
values are then compared with their record (a change is said with its cause, or stops)."""

from coronalign.cli.jobs import run_from_snakemake

command = ["manifest", *snakemake.input.products, "-o", snakemake.output.manifest]
command += ["--threads", snakemake.threads]
if snakemake.input.inputs_lock:  # inputs from MAST: the manifest carries their lock
    command += ["--inputs-lock", snakemake.input.inputs_lock[0]]
then = []
if snakemake.input.coron3:  # coron3: true: the jwst products, their version and SHA-256
    then.append(
        (
            "coronalign.steps.coron3_manifest:add_coron3_products",
            [snakemake.output.manifest, list(snakemake.input.coron3)],
            {},
        )
    )
record = [snakemake.log[0], "keep_manifest_record", snakemake.output.manifest]
then.append(("coronalign.steps.records:keep_record", [*record, snakemake.params.record], {}))
run_from_snakemake(snakemake, command, then=then)
