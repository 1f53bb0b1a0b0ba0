"""Run coronalign's align step on one data set and time it, like official/run_official.py.

Runs in the project's environment. Prints ONE JSON line on stdout:

* ``import_s``: time to import the step (stdatamodels included);
* ``step_wall_s``: wall time of ``coronalign.steps.align_refs.align_files`` (reading, fitting,
  writing);
* ``peak_rss_mib``: the process's peak resident set (``ru_maxrss``; it counts the pages of the
  memory-mapped product too);
* ``peak_anon_mib``: the highest anonymous resident memory seen (``RssAnon`` sampled every 2 ms),
  the memory a memory limit cannot reclaim.

With ``--floor`` no fit is made: the inputs are read and a product of the same shape is written
(the unshifted PSFs), which is the least any implementation of the step must do.

Usage::

    python coronalign_runner.py SCI PSFSTACK PSFMASK -o OUT [--shifts T] [--mode quad|cube]
        [--threads N] [--floor]
"""

import argparse
import json
import os
import resource
import sys
import threading
import time

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

try:  # the allocator's settings of the command line (cli/allocator.py), where it has them
    from coronalign.cli.allocator import keep_freed_memory
except ImportError:  # a source tree from before them (benchmarks/engine.py --baseline)
    pass
else:
    keep_freed_memory()


def _anon_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class AnonSampler(threading.Thread):
    """Keeps the highest RssAnon of this process while it runs."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = _anon_mib()
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(0.002):
            self.peak = max(self.peak, _anon_mib())

    def stop(self):
        self.stopped.set()
        self.join()
        self.peak = max(self.peak, _anon_mib())
        return self.peak


def _floor(science, psfstack, psfmask, output, mode):
    """Read the inputs and write a product of the right shape, without fitting.

    Like the step, with asdf's extensions limited to what the files use.
    """
    from coronalign.io._asdf_startup import only_needed_extensions

    with only_needed_extensions([science, psfstack]):
        _floor_files(science, psfstack, psfmask, output, mode)


def _floor_files(science, psfstack, psfmask, output, mode):
    import numpy as np

    from coronalign.core.align import STATUS_DTYPE, AlignmentResult
    from coronalign.io.models import read_stack
    from coronalign.io.product import ProductWriter
    from coronalign.io.tables import shift_records
    from coronalign.references.mask import load_psfmask

    sci, _ = read_stack(science, "science exposure")
    psfs, psf_model = read_stack(psfstack, "PSF stack")
    load_psfmask(psfmask, sci.data.shape[-2:], None)
    nrows = sci.nplanes if mode == "quad" else 1
    meta = {"cal_step.align_psfs": "COMPLETE"}
    with ProductWriter(
        output, mode, nrows, psfs.nplanes, sci.data.shape[-2:], psf_model, meta
    ) as w:
        for row in range(nrows):
            w(row, psfs.data, psfs.err, np.asarray(psfs.dq, dtype=np.uint32))
        zeros = np.zeros((nrows, psfs.nplanes))
        empty = AlignmentResult(
            integrations=list(range(nrows)),
            xshift=zeros,
            yshift=zeros,
            beta=zeros,
            rms=zeros,
            iterations=np.zeros(zeros.shape, dtype=np.int64),
            status=np.full(zeros.shape, "converged", dtype=STATUS_DTYPE),
        )
        w.commit(shift_records(empty))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("science")
    parser.add_argument("psfstack")
    parser.add_argument("psfmask")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--shifts")
    parser.add_argument("--mode", default="quad", choices=("quad", "cube"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--floor", action="store_true")
    args = parser.parse_args(argv)

    sampler = AnonSampler()
    sampler.start()
    started = time.perf_counter()
    from coronalign.steps.align_refs import align_files
    from coronalign.steps.parameters import StepParameters

    imported = time.perf_counter()
    if args.floor:
        _floor(args.science, args.psfstack, args.psfmask, args.output, args.mode)
    else:
        align_files(
            args.science,
            args.psfstack,
            args.psfmask,
            args.output,
            StepParameters(mode=args.mode, threads=args.threads),
            shifts_path=args.shifts,
        )
    finished = time.perf_counter()
    report = {
        "import_s": imported - started,
        "step_wall_s": finished - imported,
        "peak_anon_mib": sampler.stop(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # Worker processes (--threads >= 2): the largest one's peak, shared pages included.
        "peak_rss_workers_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
