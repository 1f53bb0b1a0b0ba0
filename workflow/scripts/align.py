"""Script of the `align` rule: `coronalign align` on one science exposure."""

from coronalign.cli.jobs import run_from_snakemake

run_from_snakemake(
    snakemake,
    [
        "align",
        snakemake.input.science,
        snakemake.input.psfstack,
        "--psfmask-selection",
        snakemake.input.selection,
        "-o",
        snakemake.output.product,
        "--shifts",
        snakemake.output.shifts,
        "--mode",
        snakemake.params.mode,
        "--median-box-length",
        snakemake.params.median_box_length,
        "--bad-bits",
        snakemake.params.bad_bits,
        "--weighting",
        snakemake.params.weighting,
        "--max-shift",
        snakemake.params.max_shift,
        *(
            part
            for name, value in snakemake.params.options.items()
            for part in (f"--{name.replace('_', '-')}", value)
        ),
        "--threads",
        snakemake.threads,
    ],
)
