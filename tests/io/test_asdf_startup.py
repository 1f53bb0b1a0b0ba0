"""The libyaml shortcut for asdf's manifests must not change what asdf loads."""

import json
import os
import subprocess
import sys

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
