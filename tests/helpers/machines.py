"""Settings that make this machine compute as another would: BLAS kernels and threads, numpy's
run-time SIMD dispatch, glibc's FMA variants; and the environment of a child process run so."""

import os

__all__ = ["NO_FMA_LIBM", "NO_SIMD_DISPATCH", "SETTINGS", "environment_for"]

#: numpy's run-time dispatch targets above the x86-64-v2 baseline (AVX2/FMA, AVX-512).
NO_SIMD_DISPATCH = "AVX512_ICL AVX512_SPR X86_V4 X86_V3"
#: glibc's libm then picks its non-FMA exp/sin/cos, as on a CPU without AVX2 and FMA.
NO_FMA_LIBM = "glibc.cpu.hwcaps=-AVX2,-FMA,-AVX512F"

#: Name -> environment variables (and ``--threads`` for the align command).
SETTINGS = {
    "default": {"OPENBLAS_NUM_THREADS": "1"},
    "haswell-2-blas-threads-2-processes": {
        "OPENBLAS_CORETYPE": "Haswell",
        "OPENBLAS_NUM_THREADS": "2",
        "OMP_NUM_THREADS": "2",
        "--threads": "2",
    },
    "sandybridge-2-processes": {"OPENBLAS_CORETYPE": "Sandybridge", "--threads": "2"},
    "prescott-2-blas-threads": {"OPENBLAS_CORETYPE": "Prescott", "OPENBLAS_NUM_THREADS": "2"},
    "skylakex-no-fma-anywhere": {
        "OPENBLAS_CORETYPE": "SkylakeX",
        "NPY_DISABLE_CPU_FEATURES": NO_SIMD_DISPATCH,
        "GLIBC_TUNABLES": NO_FMA_LIBM,
    },
}


def environment_for(setting):
    """This process's environment without its BLAS settings, plus those of ``setting``.

    Parameters
    ----------
    setting : dict
        One of :data:`SETTINGS` (entries starting with ``--`` are command options, left out).

    Returns
    -------
    dict
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENBLAS", "OMP_"))}
    env.update({k: v for k, v in setting.items() if not k.startswith("--")})
    return env
