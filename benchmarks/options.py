"""Measured effect of the alignment options on simulated data, against the simulator's truth.

Run from the repository root: ``python -m benchmarks.options [--quick]``. Writes
``benchmarks/options.json`` and prints the tables quoted in docs/options.md:

* ``reference``: each | first | mean: RMS error of the shifts every integration gets, against
  each integration's truth, and the time of the alignment (fits and shifts, one process);
* ``blur_fwhm``: RMS shift error on NIRCam short-wave data (31 mas pixels), with the
  decorrelated references that make the fit hard, for a few FWHMs;
* ``edges``: RMS difference of the aligned PSF from the truth-shifted noiseless PSF (the
  simulator's images are periodic: the circular shift is exact there);
* ``err_shift``: the median ratio of propagated to shifted ERR.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from coronalign.core.align import Stack, align_stacks
from coronalign.core.fourier import fourier_shift
from coronalign.simulation import simulate_exposures

OUT = Path(__file__).with_name("options.json")


def _stacks(sim):
    science = Stack(sim.sci, sim.sci_err, sim.sci_dq)
    psfs = Stack(sim.psf, sim.psf_err, sim.psf_dq)
    priors = np.stack(
        [np.asarray(sim.truth["xshift_header"])[0], np.asarray(sim.truth["yshift_header"])[0]],
        axis=1,
    )
    return science, psfs, priors


def _run(sim, **options):
    science, psfs, priors = _stacks(sim)
    blocks = {}
    started = time.perf_counter()
    result = align_stacks(
        science,
        psfs,
        sim.mask,
        lambda row, sci, err, dq: blocks.update({row: (sci.copy(), err.copy(), dq.copy())}),
        priors=priors,
        **options,
    )
    return result, blocks, time.perf_counter() - started


def _shift_error(result, sim):
    """RMS (per component) of the shifts every integration got, against its truth (px)."""
    dx = result.xshift - np.asarray(sim.truth["xshift"])
    dy = result.yshift - np.asarray(sim.truth["yshift"])
    return float(np.sqrt(np.mean(np.concatenate([dx.ravel(), dy.ravel()]) ** 2)))


def reference_table(quick):
    rows = []
    for instrument in ("nircam", "miri", "nircam-sw"):
        sim = simulate_exposures(instrument, nints=4 if quick else 8, npsfs=3, seed=11)
        jitter = np.std(np.asarray(sim.truth["xshift"]), axis=0).mean()
        for reference in ("each", "first", "mean"):
            result, _, seconds = _run(sim, reference=reference)
            rows.append(
                {
                    "instrument": instrument,
                    "reference": reference,
                    "rms_error_px": _shift_error(result, sim),
                    "seconds": seconds,
                    "truth_spread_px": float(jitter),
                }
            )
    return rows


def blur_table(quick):
    seeds = (1,) if quick else (1, 2, 3)
    fwhms = (None, 1.0, 2.0, 3.0)
    rows = []
    for decorrelation in (0.0, 0.5):
        errors = {fwhm: [] for fwhm in fwhms}
        seconds = dict.fromkeys(fwhms, 0.0)
        for seed in seeds:
            sim = simulate_exposures(
                "nircam-sw", nints=2, npsfs=2, seed=seed, decorrelation=decorrelation
            )
            for fwhm in fwhms:
                result, _, spent = _run(sim, blur_fwhm=fwhm)
                errors[fwhm].append(_shift_error(result, sim))
                seconds[fwhm] += spent
        for fwhm in fwhms:
            rows.append(
                {
                    "decorrelation": decorrelation,
                    "blur_fwhm": fwhm,
                    "rms_error_px": float(np.sqrt(np.mean(np.square(errors[fwhm])))),
                    "seconds": seconds[fwhm] / len(seeds),
                }
            )
    return rows


def _binned(images, factor=2):
    """Sums of ``factor`` x ``factor`` pixel blocks: the scene on ``factor`` times larger pixels."""
    *lead, ny, nx = images.shape
    blocks = images.reshape(*lead, ny // factor, factor, nx // factor, factor)
    return blocks.sum(axis=(-3, -1))


def undersampled_blur_table(quick):
    """``blur_fwhm`` on NIRCam SW images binned 2x2: 62 mas pixels at 2.1 um (Nyquist 33 mas).

    The binned noiseless images are truly aliased; noise is drawn from the binned variance. The
    truth is the simulator's (the best alignment of the well-sampled images) halved.
    """
    seeds = (1,) if quick else (1, 2, 3)
    fwhms = (None, 1.0, 1.5, 2.0, 3.0)
    errors = {fwhm: [] for fwhm in fwhms}
    for seed in seeds:
        sim = simulate_exposures("nircam-sw", nints=2, npsfs=2, seed=seed, garbage=False)
        rng = np.random.default_rng(seed)
        stacks = []
        for noiseless, err in ((sim.sci_noiseless, sim.sci_err), (sim.psf_noiseless, sim.psf_err)):
            sigma = np.sqrt(_binned(np.square(err.astype(np.float64))))
            data = _binned(noiseless) + sigma * rng.standard_normal(sigma.shape)
            stacks.append(Stack(data, sigma, np.zeros(data.shape, np.uint32)))
        ny, nx = sim.mask.shape
        mask = sim.mask.reshape(ny // 2, 2, nx // 2, 2).min(axis=(1, 3))
        truth_x = np.asarray(sim.truth["xshift"]) / 2
        truth_y = np.asarray(sim.truth["yshift"]) / 2
        for fwhm in fwhms:
            result = align_stacks(*stacks, mask, lambda *_: None, blur_fwhm=fwhm)
            errors[fwhm].append(
                np.concatenate(
                    [(result.xshift - truth_x).ravel(), (result.yshift - truth_y).ravel()]
                )
            )
    return [
        {
            "blur_fwhm": fwhm,
            "rms_error_px": float(np.sqrt(np.mean(np.square(np.concatenate(errors[fwhm]))))),
            "pixel_mas": 62,
        }
        for fwhm in fwhms
    ]


def edges_table():
    rows = []
    for instrument in ("nircam", "miri"):
        sim = simulate_exposures(instrument, nints=1, npsfs=2, seed=5, garbage=False)
        for edges in ("wrap", "pad"):
            _, blocks, seconds = _run(sim, edges=edges)
            sci, _, dq = blocks[0]
            truth = np.stack(
                [
                    fourier_shift(
                        sim.psf_noiseless[m], -sim.truth["xshift"][0][m], -sim.truth["yshift"][0][m]
                    )
                    for m in range(2)
                ]
            )
            usable = (dq & 1) == 0
            rows.append(
                {
                    "instrument": instrument,
                    "edges": edges,
                    "rms_vs_truth": float(np.sqrt(np.mean((sci - truth)[usable] ** 2))),
                    "peak": float(np.max(sim.psf_noiseless)),
                    "seconds": seconds,
                }
            )
    return rows


def err_table():
    rows = []
    for instrument in ("nircam", "miri"):
        sim = simulate_exposures(instrument, nints=1, npsfs=2, seed=5)
        _, propagated, t_prop = _run(sim)
        _, official, t_off = _run(sim, err_shift="official")
        ratio = propagated[0][1] / official[0][1]
        usable = (propagated[0][2] & 1) == 0
        rows.append(
            {
                "instrument": instrument,
                "median_ratio": float(np.nanmedian(ratio[usable])),
                "p01_ratio": float(np.nanpercentile(ratio[usable], 1)),
                "p99_ratio": float(np.nanpercentile(ratio[usable], 99)),
                "official_negative_err": int(np.sum(official[0][1][usable] < 0)),
                "seconds_propagated": t_prop,
                "seconds_official": t_off,
            }
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer integrations and seeds")
    parser.add_argument("--only", choices=("reference", "blur", "undersampled", "edges", "err"))
    args = parser.parse_args()
    tables = {
        "reference": lambda: reference_table(args.quick),
        "blur": lambda: blur_table(args.quick),
        "undersampled": lambda: undersampled_blur_table(args.quick),
        "edges": edges_table,
        "err": err_table,
    }
    done = json.loads(OUT.read_text()) if OUT.exists() else {}
    for name, make in tables.items():
        if args.only in (None, name):
            done[name] = make()
            print(name, json.dumps(done[name], indent=1))
    OUT.write_text(json.dumps(done, indent=1) + "\n")


if __name__ == "__main__":
    main()
