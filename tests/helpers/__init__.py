"""What several test folders share, imported one way: ``from tests.helpers.<module> import ...``.

* :mod:`~tests.helpers.paths`: the repository, the test data and the tools' folder;
* :mod:`~tests.helpers.images`: small analytic images for the engine tests;
* :mod:`~tests.helpers.datasets`: a small analytic data set written as JWST files;
* :mod:`~tests.helpers.commands`: command lines of ``coronalign``;
* :mod:`~tests.helpers.reference_fit`: an independent brute-force fit (scipy only);
* :mod:`~tests.helpers.crds_cache`: a real, offline CRDS cache built at test time;
* :mod:`~tests.helpers.workflow`: running Snakemake and ``coronalign`` in subprocesses,
  offline, as users run them;
* :mod:`~tests.helpers.fake_mast`: MAST's file download service on 127.0.0.1, with knobs
  for dropped connections, a required token, missing files, Range support and request counts.
"""
