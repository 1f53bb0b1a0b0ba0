"""What the fit errors cost: the share of the alignment's time spent on them (issue 23).

Aligns simulated 10 integrations x 9 PSFs of NIRCam at 320 x 320 (``simulate_exposures``,
seed 1, defaults: noise and bad pixels) with ``align_stacks``, in-process, and times the
whole call and the part spent in :func:`coronalign.core.uncertainty.fit_covariances` (the
statistical and the total errors; ``propagated_covariance`` in versions before the total),
in wall-clock and in CPU time of the process (less disturbed by other work on a shared
machine). The alignment runs ``--repeats`` times after one warm-up run; the report gives
each repeat and the smallest shares.

Usage (project environment)::

    PYTHONPATH=src .venv/bin/python benchmarks/fit_errors.py [--repeats 5] [--json out.json]
"""

import argparse
import json
import time

from coronalign.core import register
from coronalign.core.align import align_stacks
from coronalign.core.results import Stack
from coronalign.simulation import simulate_exposures


def measure(repeats):
    """Seconds of each alignment and of its errors, ``[(step, errors, step_cpu,
    errors_cpu), ...]``."""
    sim = simulate_exposures("nircam", nints=10, npsfs=9, seed=1)
    science = Stack(sim.sci, sim.sci_err, sim.sci_dq)
    psfs = Stack(sim.psf, sim.psf_err, sim.psf_dq)
    spent = [0.0, 0.0]
    name = "fit_covariances" if hasattr(register, "fit_covariances") else "propagated_covariance"
    original = getattr(register, name)

    def timed(*args, **kwargs):
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started
            spent[1] += time.process_time() - cpu

    setattr(register, name, timed)
    try:
        runs = []
        for _ in range(repeats + 1):
            spent[:] = [0.0, 0.0]
            started, cpu = time.perf_counter(), time.process_time()
            align_stacks(science, psfs, sim.mask, lambda *planes: None)
            step, step_cpu = time.perf_counter() - started, time.process_time() - cpu
            runs.append((step, spent[0], step_cpu, spent[1]))
        return runs[1:]
    finally:
        setattr(register, name, original)


def main():
    """Run the benchmark and print (or write) its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write the figures to this file")
    options = parser.parse_args()
    runs = measure(options.repeats)
    report = {
        "case": "NIRCam 320x320, 10 integrations x 9 PSFs, align_stacks in-process",
        "runs": [
            {"step_s": step, "errors_s": errors, "step_cpu_s": step_cpu, "errors_cpu_s": cpu}
            for step, errors, step_cpu, cpu in runs
        ],
        "smallest_share": min(run[1] / run[0] for run in runs),
        "smallest_cpu_share": min(run[3] / run[2] for run in runs),
        "median_errors_cpu_per_fit_ms": sorted(run[3] for run in runs)[len(runs) // 2] / 90e-3,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if options.json:
        with open(options.json, "w", encoding="utf-8") as stream:
            stream.write(text + "\n")


if __name__ == "__main__":
    main()
