"""What the fit errors cost: the share of the alignment's time spent on them (issue 23).

Aligns simulated 10 integrations x 9 PSFs of NIRCam at 320 x 320 (``simulate_exposures``,
seed 1, defaults: noise and bad pixels) with ``align_stacks``, in-process, two ways in
turn (A B A B ...): as it is, and with the errors bypassed
(:func:`coronalign.core.uncertainty.fit_covariances` replaced by a stub that returns NaN
covariances at once; the PSFs are still shifted once for the product). The cost of the
errors is the difference of the medians; the time inside ``fit_covariances`` (wall-clock
and CPU time of the process, less disturbed by other work on a shared machine) is timed
too. ``--instrument nircam-sw`` gives the 640 x 640 frame.

Usage (project environment)::

    PYTHONPATH=src .venv/bin/python benchmarks/fit_errors.py [--repeats 7] [--json out.json]
"""

import argparse
import json
import os
import statistics
import time

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # one thread, as the command line runs

NINTS, NPSFS = 10, 9
FIELDS = ("step_s", "errors_s", "step_cpu_s", "errors_cpu_s", "bypassed_s", "bypassed_cpu_s")


def _bypassed(science_spectrum, shape, weight, d, beta, *args, **kwargs):
    """``fit_covariances`` without the work: NaN covariances, block side 0."""
    import numpy as np

    nan = np.full((len(beta), 3, 3), np.nan)
    return nan, nan.copy(), np.zeros(len(beta), dtype=int)


def measure(repeats, instrument="nircam"):
    """Per repeat: ``(step with errors, errors inside it, CPU of both, step bypassed)``."""
    from coronalign.core import register
    from coronalign.core.align import align_stacks
    from coronalign.core.results import Stack
    from coronalign.simulation import simulate_exposures

    sim = simulate_exposures(instrument, nints=NINTS, npsfs=NPSFS, seed=1)
    science = Stack(sim.sci, sim.sci_err, sim.sci_dq)
    psfs = Stack(sim.psf, sim.psf_err, sim.psf_dq)
    spent = [0.0, 0.0]
    original = register.fit_covariances

    def timed(*args, **kwargs):
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started
            spent[1] += time.process_time() - cpu

    def step(errors):
        register.fit_covariances = timed if errors else _bypassed
        spent[:] = [0.0, 0.0]
        started, cpu = time.perf_counter(), time.process_time()
        align_stacks(science, psfs, sim.mask, lambda *planes: None)
        return time.perf_counter() - started, time.process_time() - cpu, tuple(spent)

    try:
        step(True), step(False)  # warm-up
        runs = []
        for _ in range(repeats):
            wall, cpu, (errors, errors_cpu) = step(True)
            bypassed, bypassed_cpu, _ = step(False)
            runs.append((wall, errors, cpu, errors_cpu, bypassed, bypassed_cpu))
        return runs
    finally:
        register.fit_covariances = original


def report(runs, instrument):
    """The figures of :func:`measure` as a dictionary."""
    median = {name: statistics.median(run[i] for run in runs) for i, name in enumerate(FIELDS)}
    fits = NINTS * NPSFS
    return {
        "case": f"{instrument} {NINTS} integrations x {NPSFS} PSFs, align_stacks in-process",
        "runs": [dict(zip(FIELDS, run, strict=True)) for run in runs],
        "medians": median,
        "share_by_difference": (median["step_s"] - median["bypassed_s"]) / median["step_s"],
        "cpu_share_by_difference": (median["step_cpu_s"] - median["bypassed_cpu_s"])
        / median["step_cpu_s"],
        "share_inside": median["errors_s"] / median["step_s"],
        "cpu_share_inside": median["errors_cpu_s"] / median["step_cpu_s"],
        "errors_cpu_per_fit_ms": median["errors_cpu_s"] / fits * 1e3,
    }


def main():
    """Run the benchmark and print (or write) its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--instrument", default="nircam")
    parser.add_argument("--json", help="also write the figures to this file")
    options = parser.parse_args()
    text = json.dumps(
        report(measure(options.repeats, options.instrument), options.instrument), indent=2
    )
    print(text)
    if options.json:
        with open(options.json, "w", encoding="utf-8") as stream:
            stream.write(text + "\n")


if __name__ == "__main__":
    main()
