"""The numerical core: arrays in, arrays out.

Bad-pixel replacement (:mod:`~coronalign.core.badpix`), the Fourier shift
(:mod:`~coronalign.core.fourier`), the registration (:mod:`~coronalign.core.objective`,
:mod:`~coronalign.core.newton`, :mod:`~coronalign.core.register`), the loop over
integrations and PSFs (:mod:`~coronalign.core.align`), its containers
(:mod:`~coronalign.core.results`), the choices offered above (:mod:`~coronalign.core.choices`)
the worker processes
(:mod:`~coronalign.core.pool`), and the options the official step lacks: the variance
through the shift (:mod:`~coronalign.core.variance`), padded edges
(:mod:`~coronalign.core.edges`), the fit's blur (:mod:`~coronalign.core.blur`) and the
distance from the commanded offsets (:mod:`~coronalign.core.commanded`). It imports numpy,
scipy, the standard library, :mod:`coronalign.errors` and :mod:`coronalign.dq` only: no file,
no data model, no CRDS.
"""
