"""A whole program through the workflow, side by side with the official step in sequence.

Used by ``run.py`` (its "whole program" section); runs in the project's environment.

The program: 12 NIRCam science exposures of 10 integrations (320 × 320) and 3 PSF
exposures of 3 integrations, grouped into 4 coron3 associations (3 science exposures each,
each with all 3 PSF exposures: 9 PSFs per stack), as a program with one target observed in
four visits against the same references would be.

* **coronalign**: the workflow (this repository's Snakefile) with ``--cores 2`` on the three
  associations, from nothing (a fresh folder): stacking, input checks, PSFMASK records,
  alignment, validation, plots, summary and manifest. Measured: the wall time of the whole
  run and of the same run limited to the aligned products (``stack_refs``,
  ``check_psfstack``, ``psfmask``, ``align``), and per job the wall time Snakemake records
  (``benchmark:``) against the time the step itself reports in the job's log: their
  difference is what a job costs besides its work (Snakemake's start of the script, the
  interpreter, imports).
* **official**: per association, as ``calwebb_coron3`` runs one, one process (jwst 1.15.1)
  that imports once, stacks the PSF exposures with ``StackRefsStep`` (saved), then runs
  ``AlignRefsStep`` on every science member in turn, each product saved. Measured: the wall
  time of the four processes one after the other.

Snakemake starts its Slurm executor plugin, which runs ``scontrol show config``; on a
machine with Slurm installed but no controller (this one) that waits 10 s, so ``scontrol``
is shadowed by a stand-in that fails at once, as the test suite does.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: Science exposures of each association (indices into the simulated exposures).
GROUPS = {"c1001": range(3), "c1002": range(3, 6), "c1003": range(6, 9), "c1004": range(9, 12)}
NINTS, PSF_EXPOSURES, PSF_NINTS = 10, 3, 3


def simulate_program(work):
    """Simulate the program once (kept in ``work``); return its description."""
    folder = Path(work) / "program"
    marker = folder / "program.json"
    if marker.exists():
        program = json.loads(marker.read_text())
        if list(program["associations"]) == list(GROUPS) and program.get("official_safe"):
            return program
        shutil.rmtree(folder)  # a program of another shape
    from coronalign import simulation

    data = simulation.write_association(
        folder,
        "nircam",
        n_science=sum(len(group) for group in GROUPS.values()),
        n_psf=PSF_EXPOSURES,
        nints=NINTS,
        psf_nints=PSF_NINTS,
        seed=3,
        mask_style="crds",
    )
    associations = {}
    for asn_id, indices in GROUPS.items():
        science = [data["science"][i] for i in indices]
        members = [{"expname": p.name, "exptype": "science", "exposerr": None} for p in science]
        members += [{"expname": p.name, "exptype": "psf", "exposerr": None} for p in data["psf"]]
        product = f"jw01234-{asn_id}_t001_nircam_f335m-maska335r-sub320a335r"
        asn = {
            "asn_id": asn_id,
            "asn_type": "coron3",
            "products": [{"name": product, "members": members}],
        }
        (folder / f"jw01234-{asn_id}_coron3_00001_asn.json").write_text(json.dumps(asn))
        associations[asn_id] = {"product": product, "science": [str(p) for p in science]}
    (folder / data["asn"].name).unlink()  # the simulator's own association of all members
    for path in (*data["science"], *data["psf"]):
        _make_official_safe(path)
    program = {
        "official_safe": True,
        "folder": str(folder),
        "psf": [str(p) for p in data["psf"]],
        "psfmask": str(data["psfmask"]),
        "associations": associations,
    }
    marker.write_text(json.dumps(program, indent=1))
    return program


def _make_official_safe(path):
    """Turn the unflagged ±inf pixels of a written exposure into NaN, in place.

    As ``run.py`` does for its data sets (``make_official_safe``): one inf turns the official
    step's Fourier transform into NaN, its fit then returns at once from (0, 0, 1) and its
    product is all NaN, so it would be timed on a path that does no work. coronalign treats
    inf and NaN alike, so this changes nothing on its side.
    """
    import numpy as np
    from astropy.io import fits

    with fits.open(path, mode="update") as hdus:
        values, flags = hdus["SCI"].data, hdus["DQ"].data
        values[np.isinf(values) & ((flags & 1) == 0)] = np.nan


def _environment(work):
    """The environment of the runs: ``scontrol`` shadowed (see the module)."""
    bin_folder = Path(work) / "bin"
    bin_folder.mkdir(parents=True, exist_ok=True)
    scontrol = bin_folder / "scontrol"
    scontrol.write_text("#!/bin/sh\nexit 1\n")
    scontrol.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if not key.startswith("CRDS_")}
    env["PATH"] = os.pathsep.join([str(bin_folder), env.get("PATH", "/usr/bin:/bin")])
    return env


def _step_seconds(log):
    """The step's own time from an align job's log (``done: ... in X s``)."""
    found = re.search(r"done: \d+ fits \(\d+ converged\) in ([0-9.]+) s", log.read_text())
    return float(found[1]) if found else None


def _jobs(results):
    """Per job: rule, wall time Snakemake recorded, and (align) the step's own time."""
    jobs = []
    for table in sorted((results / "benchmarks").glob("*/*.tsv")):
        rule = table.parent.name
        header, values = table.read_text().splitlines()[:2]
        record = dict(zip(header.split("\t"), values.split("\t"), strict=True))
        job = {"rule": rule, "name": table.stem, "wall_s": float(record["s"])}
        if rule == "align":
            job["step_s"] = _step_seconds(results.parent / "logs" / "align" / f"{table.stem}.log")
        jobs.append(job)
    return jobs


def run_workflow(program, rundir, work, cores=2, products_only=False, settings=None):
    """One workflow run from nothing in ``rundir``; its wall time and jobs.

    ``settings``: more configuration (e.g. ``{"warm_start": False}``).
    """
    shutil.rmtree(rundir, ignore_errors=True)
    rundir.mkdir(parents=True)
    config = {
        "asn": [str(Path(program["folder"]) / "jw01234-c100*_coron3_00001_asn.json")],
        "psfmask": program["psfmask"],
        **(settings or {}),
    }
    (rundir / "config.yaml").write_text(json.dumps(config))
    targets = []
    if products_only:
        for asn_id, association in program["associations"].items():
            for science in association["science"]:
                root = Path(science).name.removesuffix("_calints.fits")
                targets.append(f"results/psfalign/{root}_{asn_id}_psfalign.fits")
    command = [str(ROOT / ".venv" / "bin" / "snakemake"), *targets]
    command += ["--snakefile", str(ROOT / "Snakefile"), "--directory", str(rundir)]
    command += ["--configfile", str(rundir / "config.yaml"), "--cores", str(cores)]
    started = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, env=_environment(work), check=False
    )
    wall = time.perf_counter() - started
    ended = time.time()
    if done.returncode:
        raise RuntimeError(f"the workflow failed:\n{done.stderr[-3000:]}")
    # The tail: from the last product's commit (its rename) to the end of the run, the
    # time the jobs after the alignments (validation, figures, manifest) add at the end.
    last_product = max(p.stat().st_mtime for p in (rundir / "results" / "psfalign").glob("*.fits"))
    return {"wall_s": wall, "tail_s": ended - last_product, "jobs": _jobs(rundir / "results")}


def run_official(program, outdir, venvs, work, version="1.15.1"):
    """The official path, one process per association in turn: its PSF stack, then the
    alignment of every science member."""
    python = Path(venvs) / f"jwst-{version}" / "bin" / "python"
    shutil.rmtree(outdir, ignore_errors=True)
    processes = []
    started = time.perf_counter()
    for asn_id, association in program["associations"].items():
        first, *more = association["science"]
        command = [str(python), str(HERE / "official" / "run_official.py"), first]
        stack = outdir / asn_id / f"{association['product']}_psfstack.fits"
        command += [str(stack), program["psfmask"], "-o", str(outdir / asn_id)]
        command += ["--stack-psfs", *program["psf"]]
        if more:
            command += ["--also", *more]
        begun = time.perf_counter()
        done = subprocess.run(
            command, capture_output=True, text=True, env=_environment(work), check=False
        )
        if done.returncode:
            raise RuntimeError(f"the official step failed:\n{done.stderr[-3000:]}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
        processes.append({"asn_id": asn_id, "wall_s": time.perf_counter() - begun, **report})
    return {"wall_s": time.perf_counter() - started, "processes": processes}


def program_benchmark(work, venvs, repeats):
    """Interleave the workflow (whole, products only) and the official sequence."""
    program = simulate_program(work)
    out = Path(work) / "out" / "program"
    rows = {"workflow": [], "workflow_products": [], "workflow_cold": [], "official": []}
    for repeat in range(repeats):
        print(f"  program: repeat {repeat + 1}/{repeats}", flush=True)
        rows["workflow"].append(run_workflow(program, out / "run", work))
        rows["workflow_products"].append(
            run_workflow(program, out / "products", work, products_only=True)
        )
        # every job importing for itself (as before warm start), for the comparison
        rows["workflow_cold"].append(
            run_workflow(program, out / "cold", work, settings={"warm_start": False})
        )
        rows["official"].append(run_official(program, out / "official", venvs, work))
    science = sum(len(a["science"]) for a in program["associations"].values())
    return {
        "associations": len(program["associations"]),
        "science_exposures": science,
        "nints": NINTS,
        "npsfs": PSF_EXPOSURES * PSF_NINTS,
        "runs": rows,
    }


def summarize(result):
    """Medians of the program benchmark, for the report."""
    runs = result["runs"]
    median = statistics.median
    align = [job for run in runs["workflow"] for job in run["jobs"] if job["rule"] == "align"]
    overheads = [job["wall_s"] - job["step_s"] for job in align if job["step_s"] is not None]
    cold = runs.get("workflow_cold") or []
    return {
        "workflow_cold_s": median(run["wall_s"] for run in cold) if cold else None,
        "per_rule_cold": _per_rule(cold) if cold else {},
        "workflow_s": median(run["wall_s"] for run in runs["workflow"]),
        "workflow_products_s": median(run["wall_s"] for run in runs["workflow_products"]),
        "workflow_tail_s": median(run.get("tail_s", float("nan")) for run in runs["workflow"]),
        "official_s": median(run["wall_s"] for run in runs["official"]),
        "official_step_s": median(
            sum(
                p["stack_wall_s"]
                + p["step_wall_s"]
                + p["save_wall_s"]
                + sum(p.get("also_step_and_save_s", []))
                for p in run["processes"]
            )
            for run in runs["official"]
        ),
        "align_job_s": median(job["wall_s"] for job in align),
        "align_step_s": median(job["step_s"] for job in align if job["step_s"] is not None),
        "align_overhead_s": median(overheads) if overheads else float("nan"),
        "jobs": len(runs["workflow"][0]["jobs"]),
        "per_rule": _per_rule(runs["workflow"]),
    }


def _per_rule(runs):
    """Per rule: jobs per run, median wall per job, median sum of the job walls per run."""
    median = statistics.median
    per_rule, per_run = {}, {}
    for number, run in enumerate(runs):
        for job in run["jobs"]:
            per_rule.setdefault(job["rule"], []).append(job["wall_s"])
            sums = per_run.setdefault(job["rule"], [0.0] * len(runs))
            sums[number] += job["wall_s"]
    return {
        rule: (len(times) // len(runs), median(times), median(per_run[rule]))
        for rule, times in per_rule.items()
    }


def markdown(program):
    """The whole-program section of RESULTS.md."""
    summary = program["summary"]
    runs = len(program["runs"]["workflow"])
    lines = [
        "",
        "## A whole program",
        "",
        f"{program['associations']} coron3 associations, {program['science_exposures']} science "
        f"exposures of {program['nints']} integrations × {program['npsfs']} PSFs (NIRCam 320 × 320), "
        "simulated by `benchmarks/program.py`. coronalign: the workflow from nothing with "
        "`--cores 2` (stacking, input checks, PSFMASK records, alignment, validation, plots, "
        "summary, manifest), and the same run limited to the aligned products. Official: "
        "jwst 1.15.1, one process per association in sequence, as calwebb_coron3 runs it: "
        "imports once, `StackRefsStep` on the PSF exposures, then `AlignRefsStep` on each "
        f"science member, each product saved. Medians of {runs} interleaved repeats.",
        "",
        "| run | wall time | official / this |",
        "|---|---|---|",
        f"| jwst 1.15.1, every exposure in sequence | {summary['official_s']:.1f} s | 1.0× |",
        f"| coronalign workflow, aligned products only | {summary['workflow_products_s']:.1f} s | "
        f"**{summary['official_s'] / summary['workflow_products_s']:.1f}×** |",
        f"| coronalign workflow, everything | {summary['workflow_s']:.1f} s | "
        f"**{summary['official_s'] / summary['workflow_s']:.1f}×** |",
    ]
    if summary.get("workflow_cold_s"):
        lines.append(
            "| coronalign workflow, everything, `warm_start: false` (each job imports for "
            f"itself) | {summary['workflow_cold_s']:.1f} s | "
            f"{summary['official_s'] / summary['workflow_cold_s']:.1f}× |"
        )
    lines += [
        "",
        f"Of the official runs' time, {summary['official_step_s']:.1f} s is inside its step and "
        "save calls (the rest: its start-up and imports).",
        "",
        f"Per align job (one science exposure): {summary['align_job_s']:.2f} s recorded by "
        f"Snakemake (`benchmark:`), of which the step itself reported {summary['align_step_s']:.2f} s: "
        f"{summary['align_overhead_s']:.2f} s per job is Snakemake's start of the job's script "
        "and its hand-over to the warm-start server (docs/workflow.md).",
        "",
        "Where the workflow's time goes (the rules' `benchmark:` files; medians over the runs):",
        "",
        "| rule | jobs per run | wall per job | sum of job walls per run | "
        "wall per job, `warm_start: false` |",
        "|---|---|---|---|---|",
    ]
    cold = summary.get("per_rule_cold", {})
    for rule, (count, wall, total) in sorted(summary["per_rule"].items()):
        before = f"{cold[rule][1]:.2f} s" if rule in cold else ""
        lines.append(f"| {rule} | {count} | {wall:.2f} s | {total:.1f} s | {before} |")
    jobs = sum(total for _, _, total in summary["per_rule"].values())
    lines += [
        "",
        f"The jobs' walls add up to {jobs:.1f} s per run, {jobs / 2:.1f} s on 2 cores if they "
        f"packed perfectly, against {summary['workflow_s']:.1f} s for the whole run: the rest "
        "is Snakemake's own start (parsing, input resolution, the DAG), its scheduling, and "
        "the cores waiting on dependencies (stack, then check, then align). After the last "
        f"product was written, the run went on for {summary['workflow_tail_s']:.1f} s (the "
        "last stack's validation and figures, the summary and the manifest).",
    ]
    return lines


def main(argv=None):
    """Run the program benchmark alone: ``python benchmarks/program.py [--repeats 3]``."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--venvs", default="/work/venvs", help="the official environments")
    parser.add_argument("--work", default=str(HERE / "work"))
    parser.add_argument("--json", help="write the raw measurements here")
    args = parser.parse_args(argv)
    result = program_benchmark(args.work, args.venvs, args.repeats)
    result["summary"] = summarize(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    print("\n".join(markdown(result)))


if __name__ == "__main__":
    main()
