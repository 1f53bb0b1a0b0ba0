"""``coronalign psfmask``: choose a science exposure's PSFMASK and record the choice.

The workflow's ``psfmask`` rule runs this once per science exposure, where Snakemake runs
(compute nodes often have no CRDS cache): the user's override, or the CRDS best reference
for the exposure's own metadata. The choice is written as a small JSON file
(:mod:`coronalign.references.selection`) that ``coronalign align --psfmask-selection``
reads.
"""

import logging

from coronalign.io.paths import check_outputs
from coronalign.references.crds import select_psfmask
from coronalign.references.selection import write_psfmask_selection

__all__ = ["choose_psfmask"]

log = logging.getLogger(__name__)


def choose_psfmask(
    science, output, *, override=None, crds_path=None, context=None, server_url=None
):
    """Choose the PSFMASK of a science exposure and write the selection JSON.

    Parameters
    ----------
    science : path-like
        The science ``_calints`` file; its metadata select the mask (not read with an
        override).
    output : path-like
        The selection JSON to write.
    override : path-like, optional
        A PSFMASK file to use instead of CRDS.
    crds_path, context, server_url : str, optional
        The CRDS cache, context and server (see
        :func:`coronalign.references.crds.select_psfmask`).

    Returns
    -------
    coronalign.references.selection.PsfmaskSelection
    """
    inputs = [("science exposure", science), ("PSFMASK override", override)]
    check_outputs([("PSFMASK selection", output)], inputs)
    if override is not None and any(
        value is not None for value in (crds_path, context, server_url)
    ):
        log.info("--override given: the CRDS options are not used")
    crds_parameters = None
    if override is None:
        # Imported here: with an override nothing is read, and the data-model layer's
        # imports were half of a psfmask job (one per exposure, on the main host).
        from coronalign.io.models import open_model

        model = open_model(science, "science exposure")
        crds_parameters = model.get_crds_parameters()
        model.close()
    selection = select_psfmask(
        crds_parameters or {},
        override=override,
        crds_path=crds_path,
        context=context,
        server_url=server_url,
    )
    if selection.status == "not_applicable":
        log.warning("%s", selection.reason)
    else:
        log.info("%s", selection.reason)
    write_psfmask_selection(selection, output, science=science)
    return selection
