"""The Snakemake workflow end to end: locally, against a CRDS cache, killed, on Slurm."""
