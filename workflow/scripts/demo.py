"""The workflow end to end on simulated data (``make demo``).

1. ``coronalign simulate --association`` writes a NIRCam coron3 association (3 science and
   2 PSF exposures) and its PSFMASK into ``demo/data/`` (kept if already there);
2. writes ``demo/config.yaml`` (the association, the simulated mask as the PSFMASK override);
3. runs ``snakemake --directory demo`` with this repository's Snakefile, so every output
   (``results/``, ``logs/``, ``.snakemake/``) lands under ``demo/``;
4. builds the report ``demo/report.html``;
5. prints where the products and the report are.

``make clean-demo`` removes ``demo/``. Run from anywhere; the repository is found from this
file's location.
"""

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
DEMO = REPOSITORY / "demo"
DATA = DEMO / "data"


def run(command, **kwargs):
    """Run a command, showing it first; stop the demo if it fails."""
    print("$", " ".join(shlex.quote(str(part)) for part in command), flush=True)
    result = subprocess.run([str(part) for part in command], check=False, **kwargs)
    if result.returncode:
        sys.exit(f"demo: the command above failed (exit status {result.returncode})")


def _simulated():
    """The association and the PSFMASK in demo/data, or None."""
    asn = sorted(DATA.glob("*_asn.json"))
    masks = sorted(DATA.glob("*_psfmask.fits"))
    return (asn[0], masks[0]) if len(asn) == 1 and len(masks) == 1 else None


def simulate(nints, psf_nints):
    """Write the simulated association unless it is already there; return (asn, mask)."""
    found = _simulated()
    if found:
        print(f"reusing the simulated data in {DATA} (make clean-demo to start afresh)")
        return found
    coronalign = [sys.executable, "-m", "coronalign.cli"]
    run(
        [
            *coronalign,
            "simulate",
            "--association",
            "--nscience",
            3,
            "--npsf-exposures",
            2,
            "--nints",
            nints,
            "--npsfs",
            psf_nints,
            "-o",
            DATA,
        ]
    )
    found = _simulated()
    if not found:
        sys.exit(f"demo: the simulator did not write one association and one mask in {DATA}")
    return found


def write_config(asn, psfmask):
    """demo/config.yaml: paths relative to demo/, the working directory of the run."""
    config = DEMO / "config.yaml"
    config.write_text(
        "# Written by workflow/scripts/demo.py. Paths are relative to demo/ (snakemake "
        "--directory demo).\n"
        f"asn: {asn.relative_to(DEMO)}\n"
        f"psfmask: {psfmask.relative_to(DEMO)}   # the simulated mask as the override (no CRDS)\n"
        "median_box_length: 3\n"
        'bad_bits: "DO_NOT_USE"\n'
        "mode: quad\n"
    )
    return config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", default="all", help="cores for Snakemake (default all)")
    parser.add_argument("--nints", type=int, default=4, help="science integrations (default 4)")
    parser.add_argument(
        "--psf-nints", type=int, default=3, help="integrations per PSF exposure (default 3)"
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    DEMO.mkdir(exist_ok=True)
    asn, psfmask = simulate(args.nints, args.psf_nints)
    config = write_config(asn, psfmask)
    snakemake = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        REPOSITORY / "Snakefile",
        "--directory",
        DEMO,
        "--configfile",
        config,
    ]
    run([*snakemake, "--cores", args.cores])
    report = DEMO / "report.html"
    run([*snakemake, "--report", report])

    results = DEMO / "results"
    products = sorted((results / "psfalign").glob("*_psfalign.fits"))
    print()
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    print(f"products ({len(products)}):")
    for product in products:
        print(f"  {product.relative_to(REPOSITORY)}")
    print(f"shift tables:        {(results / 'shifts').relative_to(REPOSITORY)}/")
    print(f"validation reports:  {(results / 'validation').relative_to(REPOSITORY)}/")
    print(f"summary table:       {(results / 'summary' / 'summary.tsv').relative_to(REPOSITORY)}")
    print(f"report:              {report.relative_to(REPOSITORY)}  (open it in a browser)")
    print(f"logs:                {(DEMO / 'logs').relative_to(REPOSITORY)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
