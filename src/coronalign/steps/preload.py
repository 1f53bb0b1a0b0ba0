"""What a process that forks the workflow's jobs imports before it forks them.

The warm-start server (:mod:`coronalign.cli.warm`) calls :func:`prepare_for_jobs` once; its
children, one a job, then start with the step modules, stdatamodels, matplotlib's figure
machinery and asdf's extensions already in memory, as if they had imported them, and with
the data models' schemas loaded (:mod:`coronalign.io.warm_up`).
"""

import importlib

__all__ = ["JOB_MODULES", "import_for_jobs", "prepare_for_jobs"]

#: The modules the rules' commands import (some of them only inside a function: the figure
#: modules :mod:`~coronalign.steps.plots` imports when it draws).
JOB_MODULES = (
    "coronalign.steps.align_refs",
    "coronalign.steps.manifest",
    "coronalign.steps.plots",
    "coronalign.steps.psfmask",
    "coronalign.steps.records",
    "coronalign.steps.stack_refs",
    "coronalign.steps.summary",
    "coronalign.steps.validate",
    "stdatamodels.jwst.datamodels",
    "astropy.visualization",
    "matplotlib.figure",
    "matplotlib.colors",
    "matplotlib.ticker",
    "matplotlib.backends.backend_agg",
)


def import_for_jobs():
    """Import :data:`JOB_MODULES` and load every asdf extension.

    Returns
    -------
    list of str
        The modules imported, in order.
    """
    for name in JOB_MODULES:
        importlib.import_module(name)
    from coronalign.io._asdf_startup import load_every_extension

    load_every_extension()
    return list(JOB_MODULES)


def prepare_for_jobs():
    """:func:`import_for_jobs`, then fill the data models' caches
    (:func:`coronalign.io.warm_up.warm_data_models`).

    Returns
    -------
    list of str
        The modules imported, in order.
    """
    from coronalign.io.warm_up import warm_data_models

    modules = import_for_jobs()
    warm_data_models()
    return modules
