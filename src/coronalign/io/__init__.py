"""Files: reading inputs, writing products, tables, reports, provenance and associations.

The only layer that opens JWST data models (stdatamodels) or FITS files (astropy.io),
besides the PSFMASK reader (:mod:`coronalign.references`) and the simulator's writers.
Nothing is imported here, so the standard-library modules (:mod:`~coronalign.io.atomic`,
:mod:`~coronalign.io.association`, :mod:`~coronalign.io.provenance`,
:mod:`~coronalign.io.inputs_lock`, :mod:`~coronalign.io.mast`) load without numpy or
stdatamodels.
"""
