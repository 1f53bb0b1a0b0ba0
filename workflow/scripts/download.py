"""Script of the `download` checkpoint: `coronalign download` of the `mast:` section.

The token for proprietary data comes from MAST_API_TOKEN in Snakemake's environment; it is
never written to the log.
"""

from pathlib import Path

from coronalign.cli.jobs import run_from_snakemake

mast = snakemake.params.mast
command = ["download", *mast["associations"], *mast["exposures"], "--to", mast["folder"]]
command += ["--lock", snakemake.params.lock, "--base-url", mast["base_url"]]
run_from_snakemake(snakemake, command)
# the stamp the checkpoint owns (Snakemake may delete it; the lock is never an output)
Path(snakemake.output.done).write_text("downloaded and checked against the inputs lock\n")
