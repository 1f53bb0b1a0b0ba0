"""Script of the `psfmask` rule: `coronalign psfmask` for one science exposure.

The override, or the CRDS best reference: fetched from the CRDS server into the cache
(`crds.server_url`, default the official JWST server), or with `crds.offline` looked up in
a read-only cache without any network.
"""

from coronalign.cli.jobs import run_from_snakemake

crds = snakemake.params.crds
command = ["psfmask", snakemake.input.science, "-o", snakemake.output.selection]
if snakemake.params.override:
    command += ["--override", snakemake.params.override]
else:
    if crds.get("path"):
        command += ["--crds-path", crds["path"]]
    if crds.get("context"):
        command += ["--crds-context", crds["context"]]
    if not crds.get("offline") and crds.get("server_url"):
        command += ["--crds-server-url", crds["server_url"]]
# the choice against its record (kept outside the outputs): another file is said, or stops
record = (
    "coronalign.steps.records:keep_record",
    [
        snakemake.log[0],
        "keep_selection_record",
        snakemake.output.selection,
        snakemake.params.record,
    ],
    {
        "subject": snakemake.wildcards.stem,
        "pinned_context": None if snakemake.params.override else crds.get("context"),
    },
)
run_from_snakemake(snakemake, command, then=[record])
