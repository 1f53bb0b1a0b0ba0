"""The engine's marginal cost (10 x 9 step minus 1 x 1 step) at 320 x 320 and 640 x 640, for
one or two source trees side by side (issue 22): before and after a change, interleaved.

Simulates (once, with ``run.py --simulate``, seed 0, the data sets of RESULTS.md) NIRCam LW
320 x 320 and NIRCam SW 640 x 640, 10 x 9 and 1 x 1, and times ``coronalign_runner.py``
(the step: reading, fitting, writing) on each, each source tree in turn (A B, then B A, ...), and
reports the medians and the marginal costs.

Usage (project environment)::

    .venv/bin/python benchmarks/engine.py [--repeats 5] [--baseline OTHER/src]

``--baseline`` is the ``src`` folder of another checkout (e.g. ``git archive main src``).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETS = {"320": "nircam", "640": "nircam-sw"}


def data_set(frame, nints, npsfs):
    """The paths of one simulated data set (made by run.py the first time)."""
    name = f"engine_{frame}_{nints}x{npsfs}"
    marker = HERE / "work" / "data" / name / "paths.json"
    if not marker.exists():
        arguments = [name, SETS[frame], nints, npsfs, None, 0, True, False, False]
        subprocess.run(
            [sys.executable, str(HERE / "run.py"), "--simulate", json.dumps(arguments)], check=True
        )
    return json.loads(marker.read_text())


def step_time(paths, source, output):
    """``step_wall_s`` of one runner process with ``source`` first on the path."""
    env = dict(os.environ, PYTHONPATH=str(source))
    command = [sys.executable, str(HERE / "coronalign_runner.py")]
    command += [paths["science"], paths["psfstack"], paths["psfmask"], "-o", str(output)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    Path(output).unlink(missing_ok=True)
    return json.loads(done.stdout.splitlines()[-1])["step_wall_s"]


def main():
    """Time the sets and print the medians and marginal costs as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", help="src folder of the code to compare with")
    options = parser.parse_args()
    trees = {"this": HERE.parent / "src"}
    if options.baseline:
        trees["baseline"] = Path(options.baseline).resolve()
    sets = {(f, n, p): data_set(f, n, p) for f in SETS for n, p in ((10, 9), (1, 1))}
    times = {(tree, key): [] for tree in trees for key in sets}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(options.repeats):
            for key, paths in sets.items():
                # A B, then B A: the first run after another data set pays for reading it
                order = list(trees.items())
                for tree, source in order if repeat % 2 == 0 else order[::-1]:
                    output = Path(folder) / "out_psfalign.fits"
                    times[tree, key].append(step_time(paths, source, output))
    report = {}
    for tree in trees:
        for frame in SETS:
            big = statistics.median(times[tree, (frame, 10, 9)])
            small = statistics.median(times[tree, (frame, 1, 1)])
            report[f"{tree} {frame}"] = {
                "step_10x9_s": big,
                "step_1x1_s": small,
                "marginal_s": big - small,
                "runs_10x9": times[tree, (frame, 10, 9)],
                "runs_1x1": times[tree, (frame, 1, 1)],
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
