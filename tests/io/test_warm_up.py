"""The warm-up of the data models (coronalign.io.warm_up) fills caches and leaves nothing."""

import subprocess
import sys
from pathlib import Path

from coronalign.io.warm_up import warm_data_models

REPOSITORY = Path(__file__).resolve().parents[2]

#: In a fresh process: the schemas an alignment loads (asdf's schema cache misses), with
#: or without the warm-up before it (argv[2] == "1").
SCHEMAS_LOADED = """import sys, pathlib
import asdf.schema
from coronalign.io.warm_up import warm_data_models
from coronalign.steps.align_refs import align_files
from tests.helpers.datasets import write_small_dataset
folder = pathlib.Path(sys.argv[1])
paths, _ = write_small_dataset(folder)
asdf.schema._load_schema_cached.cache_clear()  # the cache stdatamodels' load_schema fills
if sys.argv[2] == "1":
    warm_data_models()
before = asdf.schema._load_schema_cached.cache_info().misses
align_files(paths["science"], paths["psfstack"], paths["psfmask"], folder / "x_psfalign.fits")
print(asdf.schema._load_schema_cached.cache_info().misses - before)
"""


def test_the_warm_up_reads_back_each_kind_of_file_and_keeps_none(tmp_path):
    assert warm_data_models(tmp_path) == ["CubeModel", "QuadModel", "CubeModel"]
    assert not list(tmp_path.iterdir())


def _schemas_loaded(folder, warm):
    done = subprocess.run(
        [sys.executable, "-c", SCHEMAS_LOADED, str(folder), "1" if warm else "0"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.split()[-1])


def test_after_the_warm_up_an_alignment_loads_no_schema(tmp_path):
    (tmp_path / "cold").mkdir()
    (tmp_path / "warm").mkdir()
    assert _schemas_loaded(tmp_path / "cold", warm=False) > 0  # what the warm-up saves
    assert _schemas_loaded(tmp_path / "warm", warm=True) == 0
