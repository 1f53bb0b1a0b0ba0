"""The separate jwst environment (``.venv-jwst``, made by ``make env``) for the jwst tests.

The coronalign package never imports jwst; these tests run jwst's commands in that
environment, offline, against the local CRDS cache of :mod:`tests.helpers.crds_cache`.
They take minutes, so ``make test`` skips them; ``.ci/run`` runs them (``CORONALIGN_JWST=1
pytest -m jwst``), and there a missing environment fails them instead.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.crds_cache import CONTEXT, build_crds_cache

ROOT = Path(__file__).resolve().parents[2]
JWST_BIN = Path(os.environ.get("CORONALIGN_JWST_VENV", ROOT / ".venv-jwst")) / "bin"


def jwst_bin():
    """The jwst environment's bin folder (skip unless CORONALIGN_JWST=1; fail without it)."""
    if os.environ.get("CORONALIGN_JWST") != "1":
        pytest.skip("the jwst tests run with CORONALIGN_JWST=1 (.ci/run runs them)")
    if not (JWST_BIN / "strun").exists():
        pytest.fail(f"no jwst environment at {JWST_BIN.parent} (make env)")
    return JWST_BIN


def offline_crds_env(root):
    """Environment variables that keep CRDS on a local offline cache under ``root``."""
    cache = build_crds_cache(Path(root) / "crds")
    return {
        **os.environ,
        "CRDS_PATH": str(cache["crds_path"]),
        "CRDS_SERVER_URL": "https://127.0.0.1:9",  # nothing listens: no lookup leaves
        "CRDS_MODE": "local",
        "CRDS_CONTEXT": CONTEXT,
    }


def simulate_association(folder):
    """Simulate a coron3 association (2 science, 2 PSF exposures) with a celestial WCS
    (``coronalign simulate --celestial-wcs``, as a user makes one for ``coron3: true``)."""
    folder = Path(folder)
    subprocess.run(
        [str(Path(sys.executable).parent / "coronalign"), "simulate", "--association",
         "--nscience", "2", "--npsf-exposures", "2", "--celestial-wcs", "-o", str(folder)],
        check=True, capture_output=True,
    )  # fmt: skip
    return folder
