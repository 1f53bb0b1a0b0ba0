# coronalign: JWST coronagraphic PSF alignment (calwebb_coron3 align_refs), per exposure.
#
#   snakemake --cores 4                          # config/config.yaml
#   snakemake --cores 4 --configfile my.yaml     # your inputs and parameters
#   snakemake --report report.html               # the report, after a run
#
# Configuration: config/README.md. Documentation: docs/workflow.md.

from snakemake.utils import min_version

min_version("8.20")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/warm_start.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/references.smk"
include: "workflow/rules/stack.smk"
include: "workflow/rules/align.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/manifest.smk"
include: "workflow/rules/coron3.smk"


rule all:
    default_target: True
    input:
        final_outputs,
        coron3_outputs,
