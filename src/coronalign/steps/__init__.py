"""The step on files, one module per command, and the parameters they share.

:mod:`~coronalign.steps.parameters` parses and validates the step parameters once;
:mod:`~coronalign.steps.align_refs`, :mod:`~coronalign.steps.stack_refs`,
:mod:`~coronalign.steps.psfmask`, :mod:`~coronalign.steps.validate`,
:mod:`~coronalign.steps.summary`, :mod:`~coronalign.steps.plots`,
:mod:`~coronalign.steps.manifest` and :mod:`~coronalign.steps.download` each do what one
command does; :mod:`~coronalign.steps.plan` resolves the workflow's inputs. Nothing is
imported here, so the workflow's glue loads :mod:`~coronalign.steps.plan` with the standard
library alone.
"""
