"""The package's layers: every import arrow points down (read from the source with ``ast``).

A module's layer is its folder under ``src/coronalign`` (``core``, ``io``, ...) or, at the top,
its name (``errors``, ``dq``, ``cli``, ``__init__``). Every import in a module, also one
inside a function, must be allowed by the two tables below; the standard library always is.
"""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "coronalign"

#: The coronalign layers each layer may import, besides its own modules.
MAY_IMPORT = {
    "__init__": set(),
    "errors": set(),
    "dq": set(),
    "core": {"errors", "dq"},
    "io": {"errors", "dq", "core"},
    "references": {"errors", "dq", "io"},
    "steps": {"__init__", "errors", "dq", "core", "io", "references"},
    # never the core's fit (the truth stays independent); only its reproducible arithmetic
    "simulation": {"errors", "dq", "core.reproducible"},
    "cli": {"__init__", "errors", "steps", "simulation"},  # nothing imports the cli
    # The optional stpipe step (extra `jwst`): a front end like the cli, over the steps.
    # It cleans the target in place as the official step does (core.badpix), for klip.
    "stpipe_step": {"__init__", "errors", "core", "steps"},
}

#: The other packages each layer may import. Only io opens data models and FITS files
#: (stdatamodels, astropy.io), besides the PSFMASK reader and the simulator's writers.
THIRD_PARTY = {
    "__init__": set(),
    "errors": set(),
    "dq": set(),
    "core": {"numpy", "scipy"},
    "io": {"numpy", "astropy", "stdatamodels", "asdf", "yaml"},
    "references": {"numpy", "astropy.io", "crds"},
    "steps": {"numpy", "astropy.nddata", "astropy.visualization", "matplotlib"},
    # gwcs and astropy.modeling, .coordinates and .units (stdatamodels' own dependencies): the
    # WCS real exposures carry, a celestial one included (its frame is an ICRS in degrees).
    "simulation": {
        "numpy",
        "scipy",
        "stdatamodels",
        "gwcs",
        "astropy.modeling",
        "astropy.coordinates",
        "astropy.units",
    },
    "cli": set(),
    # Imported only when a step class is used (never by the rest of the package).
    "stpipe_step": {"jwst", "stpipe", "stdatamodels"},
}

#: Longest module allowed, in lines.
MAX_LINES = 600

MODULES = sorted(PACKAGE.rglob("*.py"))


def _layer(path):
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


def _imports(path, root=PACKAGE):
    """Every imported module name of a file, absolute (``from x import y`` gives ``x.y``)."""
    package = ["coronalign", *path.relative_to(root).parent.parts]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the module's package
                base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [base])])
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _target_layer(name):
    """The coronalign layer an imported name belongs to (``coronalign.io.models.x`` -> io)."""
    parts = name.split(".")[1:]
    if not parts or parts[0] == "__version__":
        return "__init__"
    return parts[0]


def _allowed_module(layer, name):
    """A whole layer, or one module of it (an entry with a dot: ``core.reproducible``)."""
    if _target_layer(name) in MAY_IMPORT[layer]:
        return True
    inner = name.split(".", 1)[1] if "." in name else ""
    return any(inner == allowed or inner.startswith(allowed + ".") for allowed in MAY_IMPORT[layer])


def _allowed_third_party(layer, name):
    return any(name == root or name.startswith(root + ".") for root in THIRD_PARTY[layer])


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_import_points_down(path):
    layer = _layer(path)
    assert layer in MAY_IMPORT, f"{path}: a new layer; add it to the tables of this test"
    wrong = []
    for name in _imports(path):
        root = name.split(".")[0]
        if root == "coronalign":
            target = _target_layer(name)
            if target != layer and not _allowed_module(layer, name):
                wrong.append(f"{name} (layer {target})")
        elif root not in sys.stdlib_module_names and not _allowed_third_party(layer, name):
            wrong.append(name)
    assert not wrong, f"{layer} may not import: {', '.join(wrong)}"


def test_the_tables_know_every_layer():
    assert {_layer(path) for path in MODULES} == set(MAY_IMPORT) == set(THIRD_PARTY)
    assert _allowed_module("simulation", "coronalign.core.reproducible.exp")
    assert not _allowed_module("simulation", "coronalign.core.register")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_longer_than_a_room(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines: split it along its seams"


def test_a_wrong_arrow_is_caught(tmp_path):
    """The check itself: a core module importing stdatamodels or the steps fails."""
    core = tmp_path / "coronalign" / "core"
    core.mkdir(parents=True)
    bad = core / "bad.py"
    bad.write_text(
        "import numpy\nfrom ..steps import parameters\n\ndef f():\n    import stdatamodels\n"
    )
    names = list(_imports(bad, root=tmp_path / "coronalign"))
    assert names == ["numpy", "coronalign.steps.parameters", "stdatamodels"]
    assert _target_layer(names[1]) not in MAY_IMPORT["core"]
    assert not _allowed_third_party("core", names[2])
