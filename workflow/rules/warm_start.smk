"""Warm start (config warm_start, default true): the local jobs' commands are forked from
one process that has imported the package once (coronalign.cli.warm), instead of each job
importing numpy, astropy, stdatamodels and matplotlib again. Local runs without software
deployment (--sdm conda/apptainer) only: on a cluster every job runs its own commands.
"""

from snakemake.settings.types import DeploymentMethod


def _warm_start_wanted():
    return (
        config["warm_start"]
        and workflow.local_exec
        and not workflow.remote_exec  # a job of a cluster run (also run without hooks)
        and not workflow.subprocess_exec
        and not workflow.dryrun
        and not workflow.touch
        and DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method
        and DeploymentMethod.APPTAINER
        not in workflow.deployment_settings.deployment_method
    )


WARM_START = {"socket": None}


onstart:
    if _warm_start_wanted():
        from coronalign.cli.warm import start_server

        WARM_START["socket"] = start_server()


onsuccess:
    from coronalign.cli.warm import stop_server

    stop_server(WARM_START["socket"])


onerror:
    from coronalign.cli.warm import stop_server

    stop_server(WARM_START["socket"])
