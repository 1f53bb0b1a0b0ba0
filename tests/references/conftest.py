"""The CRDS caches the reference tests share: built once, at test time, never committed."""

import shutil

import pytest

from tests.helpers.crds_cache import build_crds_cache


@pytest.fixture(scope="package")
def caches(tmp_path_factory):
    """The good cache and the broken ones, built once for the references tests."""
    root = tmp_path_factory.mktemp("crds")
    built = {
        "good": build_crds_cache(root / "good"),
        "no_config": build_crds_cache(root / "no_config", server_config=False),
        "no_reference": build_crds_cache(
            root / "no_reference", missing_references=["jwst_nircam_psfmask_0001.fits"]
        ),
        "bad_checksum": build_crds_cache(
            root / "bad_checksum", bad_checksum=["jwst_nircam_psfmask_0001.rmap"]
        ),
        "no_rmap": build_crds_cache(root / "no_rmap"),
        "bad_reference": build_crds_cache(
            root / "bad_reference", bad_files=["jwst_nircam_psfmask_0002.fits"]
        ),
    }
    built["no_rmap"]["mappings"]["jwst_nircam_psfmask_0001.rmap"].unlink()
    shutil.copytree(root / "good", root / "writable")
    built["writable"] = {"crds_path": root / "writable"}
    return built
