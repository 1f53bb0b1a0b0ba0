"""coronalign's test suite: one folder per layer of the package, and one helpers package.

Import shared code one way, from :mod:`tests.helpers` (``from tests.helpers.images import
blob_image``); fixtures used across folders live in ``tests/conftest.py``.
"""
