"""Generate coron3 associations with the OFFICIAL association generator, from jwst's own pool.

Runs INSIDE a throw-away environment that holds a released ``jwst`` (see ``make-venvs.sh``;
the committed files were made with jwst 3.0.0). It only calls the installed package.

Usage::

    /work/venvs/jwst-3.0.0/bin/python benchmarks/official/make_asn_official.py \
        [--out tests/data/asn_official] [--all-to DIR] [--keep NAME ...]

Steps, as jwst's own association regression test (``test_associations_standards``) does:

1. ``jwst/associations/tests/data/pool_013_coron_nircam.csv`` (shipped in the wheel) is a pool
   *template*: file names, observation numbers and candidate ids are ``@!`` expressions. It is
   expanded with ``jwst.associations.tests.helpers.combine_pools`` and written, under its own
   name, to a temporary folder (``|``-separated, as pools are);
2. ``asn_generate -p OUT --version-id pool-013-coron-nircam <that pool>`` runs with the
   default rules (``jwst.associations.main.Main.cli``, the console script's code);
3. the ``*coron3*_asn.json`` files named by ``--keep`` are copied to ``--out`` unchanged;
   ``--all-to`` keeps every generated file (all levels) for inspection.

It prints one JSON summary line: every coron3 association with its asn_id, rule, product
name, member counts by exptype, and which PSF and science exposures appear in more than one.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import tempfile
from pathlib import Path

POOL = "pool_013_coron_nircam.csv"
VERSION_ID = "pool-013-coron-nircam"
#: The committed selection: the six discovered (a3001) associations, one per target and
#: filter, and two candidate ones that share their science and PSF exposures.
KEEP = [
    "jw10005-a3001_pool-013-coron-nircam_coron3_00001_asn.json",
    "jw10005-a3001_pool-013-coron-nircam_coron3_00002_asn.json",
    "jw10005-a3001_pool-013-coron-nircam_coron3_00003_asn.json",
    "jw10005-a3001_pool-013-coron-nircam_coron3_00004_asn.json",
    "jw10005-a3001_pool-013-coron-nircam_coron3_00005_asn.json",
    "jw10005-a3001_pool-013-coron-nircam_coron3_00006_asn.json",
    "jw10005-c1000_pool-013-coron-nircam_coron3_00001_asn.json",
    "jw10005-c1004_pool-013-coron-nircam_coron3_00001_asn.json",
]


def _summary(folder: Path) -> dict:
    coron3 = sorted(folder.glob("*coron3*_asn.json"))
    users = {"psf": collections.defaultdict(list), "science": collections.defaultdict(list)}
    rows = []
    for path in coron3:
        asn = json.loads(path.read_text())
        for product in asn["products"]:
            kinds = collections.Counter(m["exptype"] for m in product["members"])
            for member in product["members"]:
                if member["exptype"] in users:
                    users[member["exptype"]][member["expname"]].append(path.name)
            rows.append(
                {
                    "file": path.name,
                    "asn_id": asn["asn_id"],
                    "asn_rule": asn["asn_rule"],
                    "product": product["name"],
                    "members": dict(kinds),
                    "member_order": "".join(m["exptype"][0] for m in product["members"]),
                }
            )
    names = collections.Counter(r["product"] for r in rows)
    return {
        "generated_json": len(list(folder.glob("*.json"))),
        "coron3": rows,
        "product_names_repeated": {k: v for k, v in names.items() if v > 1},
        "shared": {
            kind: {k: len(v) for k, v in sorted(found.items()) if len(v) > 1}
            for kind, found in users.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("tests/data/asn_official"))
    ap.add_argument("--all-to", type=Path, default=None)
    ap.add_argument("--keep", nargs="+", default=KEEP)
    args = ap.parse_args(argv)

    import jwst
    from astropy.utils.data import get_pkg_data_filename
    from jwst.associations.main import Main
    from jwst.associations.tests.helpers import combine_pools

    template = get_pkg_data_filename(f"data/{POOL}", package="jwst.associations.tests")
    with tempfile.TemporaryDirectory(prefix="asn-official-") as tmp:
        tmp = Path(tmp)
        pool_path = tmp / POOL
        combine_pools([template]).write(pool_path, format="ascii", delimiter="|")
        out = tmp / "out"
        out.mkdir()
        Main.cli(["-p", str(out), "--version-id", VERSION_ID, str(pool_path)])
        summary = _summary(out)
        summary["jwst_version"] = jwst.__version__
        if args.all_to is not None:
            shutil.copytree(out, args.all_to, dirs_exist_ok=True)
        args.out.mkdir(parents=True, exist_ok=True)
        for name in args.keep:
            shutil.copyfile(out / name, args.out / name)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
