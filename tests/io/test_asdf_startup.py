"""The libyaml shortcut for asdf's manifests must not change what asdf loads."""

import json
import os
import subprocess
import sys

from coronalign.simulation import add_gwcs_wcs

PROBE = """
import json, sys
from coronalign.io import _asdf_startup
installed = _asdf_startup.install()
import asdf
extensions = sorted(
    (e.extension_uri or "", sorted(t.tag_uri for t in e.tags)) for e in asdf.get_config().extensions
)
print(json.dumps({"installed": installed, "extensions": extensions}))
"""


def _probe(plain):
    env = dict(os.environ)
    env.pop("CORONALIGN_PLAIN_ASDF", None)
    if plain:
        env["CORONALIGN_PLAIN_ASDF"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(result.stdout)


def test_same_extensions_with_and_without_the_fast_loader():
    fast, plain = _probe(plain=False), _probe(plain=True)
    assert fast["installed"] is True
    assert plain["installed"] is False
    assert len(fast["extensions"]) > 10
    assert fast["extensions"] == plain["extensions"]


# --- only_needed_extensions: the gwcs and JWST transform extensions only when needed ---

READ_PROBE = """
import json, sys
from coronalign.io._asdf_startup import only_needed_extensions
from coronalign.io.models import open_model

def described(value):
    if type(value).__name__ == "WCS":  # a gwcs WCS: its class and what it computes
        return [type(value).__module__, [float(v) for v in value(3.0, 4.0)]]
    return repr(value)

with only_needed_extensions(sys.argv[1:]) as light:
    models = [open_model(path, "input") for path in sys.argv[1:]]
    trees = [
        {key: described(value) for key, value in model.to_flat_dict(include_arrays=False).items()}
        for model in models
    ]
    for tree, model in zip(trees, models):  # a node no schema names (to_flat_dict leaves it out)
        tree["extra_quantity"] = repr(model.instance["meta"].get("extra_quantity"))
print(json.dumps({"light": light, "gwcs": "gwcs" in sys.modules, "trees": trees}))
"""


def _read(paths, plain):
    env = dict(os.environ)
    env.pop("CORONALIGN_PLAIN_ASDF", None)
    if plain:
        env["CORONALIGN_PLAIN_ASDF"] = "1"
    result = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", READ_PROBE, *map(str, paths)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(result.stdout)


def test_file_tags_names_the_tags_and_extensions_of_the_tree(tmp_path):
    from coronalign.io._asdf_startup import file_tags
    from tests.helpers.datasets import write_small_dataset

    paths, _ = write_small_dataset(tmp_path, nints=1, npsfs=1, shape=(16, 16))
    tags, uris = file_tags(paths["science"])
    assert "tag:stsci.edu:asdf/core/ndarray-1.1.0" in tags
    assert not any("gwcs" in tag for tag in tags)
    assert any("asdf-format.org/core/extensions" in uri for uri in uris)
    add_gwcs_wcs(paths["science"])
    tags, uris = file_tags(paths["science"])
    assert any(tag.startswith("tag:stsci.edu:gwcs/wcs-") for tag in tags)
    assert any("gwcs" in uri for uri in uris)
    assert file_tags(paths["psfmask"]) == (set(), set())  # no ASDF extension


def test_light_extensions_read_the_same_models(tmp_path):
    from tests.helpers.datasets import write_small_dataset

    paths, _ = write_small_dataset(tmp_path, nints=2, npsfs=2, shape=(16, 16))
    files = [paths["science"], paths["psfstack"]]
    light, plain = _read(files, plain=False), _read(files, plain=True)
    assert light["light"] is True
    assert light["gwcs"] is False
    assert plain["light"] is False
    assert light["trees"] == plain["trees"]
    assert "meta.instrument.name" in light["trees"][0]


def test_a_file_with_a_gwcs_wcs_loads_every_extension(tmp_path):
    from tests.helpers.datasets import write_small_dataset

    paths, _ = write_small_dataset(tmp_path, nints=2, npsfs=2, shape=(16, 16))
    add_gwcs_wcs(paths["psfstack"])
    files = [paths["science"], paths["psfstack"]]
    fast, plain = _read(files, plain=False), _read(files, plain=True)
    assert fast["light"] is False
    assert fast["gwcs"] is True
    assert fast["trees"] == plain["trees"]
    assert fast["trees"][1]["meta.wcs"] == ["gwcs.wcs._wcs", [13.5, 8.0]]


def test_a_file_with_an_astropy_quantity_loads_every_extension(tmp_path):
    import astropy.units as u
    from stdatamodels.jwst import datamodels

    from tests.helpers.datasets import write_small_dataset

    paths, _ = write_small_dataset(tmp_path, nints=1, npsfs=1, shape=(16, 16))
    with datamodels.open(paths["science"]) as model:
        model.meta.extra_quantity = 3.5 * u.arcsec  # converted by asdf-astropy
        model.save(paths["science"])
    fast, plain = _read([paths["science"]], plain=False), _read([paths["science"]], plain=True)
    assert fast["light"] is False
    assert fast["trees"] == plain["trees"]
    assert fast["trees"][0]["extra_quantity"] == repr(3.5 * u.arcsec)


ALIGN_PROBE = """
import json, sys
from coronalign.cli import main
status = main(["-q", "align", *sys.argv[1:]])
print(json.dumps({"status": status, "gwcs": "gwcs" in sys.modules}))
"""


def _align(paths, output, plain=False):
    args = [str(paths["science"]), str(paths["psfstack"]), "--psfmask", str(paths["psfmask"])]
    env = dict(os.environ)
    env.pop("CORONALIGN_PLAIN_ASDF", None)
    if plain:
        env["CORONALIGN_PLAIN_ASDF"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", ALIGN_PROBE, *args, "-o", str(output)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(result.stdout.splitlines()[-1])


def _product(path):
    """The product's metadata and arrays, but for what names or dates the file."""
    from stdatamodels.jwst import datamodels

    with datamodels.open(path) as model:
        flat = model.to_flat_dict()
    for key in ("meta.date", "meta.filename", "_fits_hash"):
        flat.pop(key, None)
    return {
        key: (value.tobytes() if hasattr(value, "tobytes") else repr(value))
        for key, value in flat.items()
    }


def test_align_loads_gwcs_only_for_files_with_a_wcs(tmp_path):
    from tests.helpers.datasets import write_small_dataset

    paths, _ = write_small_dataset(tmp_path, nints=1, npsfs=2, shape=(32, 32))
    assert _align(paths, tmp_path / "a_psfalign.fits") == {"status": 0, "gwcs": False}
    assert _align(paths, tmp_path / "p_psfalign.fits", plain=True) == {"status": 0, "gwcs": True}
    light, plain = _product(tmp_path / "a_psfalign.fits"), _product(tmp_path / "p_psfalign.fits")
    assert "meta.coronalign.version" in light
    assert light == plain
    add_gwcs_wcs(paths["psfstack"])
    assert _align(paths, tmp_path / "b_psfalign.fits") == {"status": 0, "gwcs": True}
