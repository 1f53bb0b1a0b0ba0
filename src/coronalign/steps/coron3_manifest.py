"""The coron3 products in a run manifest: what jwst made from our products, and re-running it.

With ``coron3: true`` the workflow runs the official jwst steps (klip, outlier_detection,
resample) in their own environment; each run leaves a JSON record (step, jwst version, the
Python and script that ran, the arguments, the inputs and output). :func:`add_coron3_products`
adds them to a manifest as its ``coron3`` section: the jwst version(s), and per product its
inputs (path, SHA-256), the file's SHA-256 and the SHA-256 of the values of every image
extension. :func:`verify_coron3` runs each recorded command again in a scratch folder with
the recorded Python (jwst is never imported here) and compares the values bit for bit.
"""

import logging
import os
import subprocess
from pathlib import Path

from coronalign.errors import InputFileError
from coronalign.io.image_digests import image_sha256
from coronalign.io.provenance import file_sha256
from coronalign.io.reports import write_json_report
from coronalign.io.strict_load import load_json

__all__ = ["CORON3_KEY", "add_coron3_products", "coron3_section", "verify_coron3"]

log = logging.getLogger(__name__)

#: The manifest's key of the coron3 section.
CORON3_KEY = "coron3"

#: Steps in the order they are re-run (klip's products are resample's inputs).
_ORDER = {"klip": 0}


def _read(path, role):
    try:
        return load_json(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise InputFileError(path, f"is not a readable {role}: {error}") from None


def coron3_section(records):
    """The ``coron3`` section of a manifest from the coron3 rules' run records.

    Parameters
    ----------
    records : iterable of path-like
        The JSON records the coron3 scripts write beside their products (``--record``).

    Returns
    -------
    dict
        ``jwst`` (the version, or the sorted versions when runs differ) and ``products``:
        one entry per product (``product``, ``step``, ``jwst``, ``python``, ``script``,
        ``argv``, ``inputs`` by role with ``path`` and ``sha256``, ``file_sha256``,
        ``data_sha256`` of every image extension).
    """
    products = []
    for path in records:
        record = _read(path, "coron3 run record")
        output = record["output"]
        products.append(
            {
                "product": output,
                "step": record["step"],
                "jwst": record["jwst"],
                "python": record["python"],
                "script": record["script"],
                "argv": record["argv"],
                "inputs": {
                    role: {"path": item, "sha256": file_sha256(item)}
                    for role, item in record["inputs"].items()
                },
                "file_sha256": file_sha256(output),
                "data_sha256": image_sha256(output),
            }
        )
    versions = sorted({product["jwst"] for product in products})
    return {"jwst": versions[0] if len(versions) == 1 else versions, "products": products}


def add_coron3_products(manifest, records):
    """Add the coron3 products to a written manifest (atomically).

    Parameters
    ----------
    manifest : path-like
        A manifest written by :func:`coronalign.steps.manifest.write_manifest`.
    records : iterable of path-like
        The coron3 rules' run records.

    Returns
    -------
    dict
        The manifest.
    """
    document = _read(manifest, "manifest")
    document[CORON3_KEY] = coron3_section(records)
    write_json_report(manifest, document)
    log.info(
        "added %d coron3 product(s) (jwst %s) to %s",
        len(document[CORON3_KEY]["products"]),
        document[CORON3_KEY]["jwst"],
        manifest,
    )
    return document


def _jwst_version(python):
    """The jwst version of ``python`` (None when it cannot run or has no jwst)."""
    try:
        done = subprocess.run(
            [python, "-c", "import jwst; print(jwst.__version__)"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _resolve(path, base):
    path = Path(path)
    return path if path.is_absolute() else Path(base) / path


def _verify_product(entry, base, scratch):
    """Re-run one coron3 product; the list of problems (empty: identical)."""
    from coronalign.steps.manifest import Verification

    problems = []
    for role, item in entry["inputs"].items():
        path = _resolve(item["path"], base)
        if not path.is_file():
            problems.append(f"{role} input {path} is missing")
        elif file_sha256(path) != item["sha256"]:
            problems.append(f"{role} input {path} has changed since the recorded run")
    python, script = entry["python"], entry["script"]
    for what, path in (("the jwst environment's Python", python), ("the script", script)):
        if not Path(path).is_file():
            problems.append(f"{what} {path} is not there: re-make it (`make env`) to verify")
    if problems:
        return Verification(entry["product"], False, tuple(problems))
    again = Path(scratch) / Path(entry["product"]).name
    argv = [str(again) if part == entry["product"] else part for part in entry["argv"]]
    done = subprocess.run(
        [python, script, *argv],
        cwd=base,
        env={**os.environ},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not again.is_file():
        tail = done.stderr.strip().splitlines()[-1:] or ["no message"]
        problem = f"the {entry['step']} re-run failed (exit status {done.returncode}): {tail[0]}"
        return Verification(entry["product"], False, (problem,))
    digests = image_sha256(again)
    now = _jwst_version(python)
    cause = (
        f" (likely cause: jwst {entry['jwst']} -> {now}; bit-for-bit reproduction needs the "
        "recorded version)"
        if now != entry["jwst"]
        else ""
    )
    for name, digest in entry["data_sha256"].items():
        if digests.get(name) != digest:
            problems.append(f"{name} values differ from the recorded run{cause}")
    return Verification(entry["product"], not problems, tuple(problems))


def verify_coron3(manifest, base, scratch):
    """Re-run every coron3 product of a manifest and compare its values bit for bit.

    Each product is made again from its recorded inputs (checked by SHA-256 first), with the
    recorded Python, script and arguments, in ``scratch``; klip's products before resample's.

    Parameters
    ----------
    manifest : dict
        The manifest (read).
    base : path-like
        Folder the recorded relative paths start from (where the workflow ran).
    scratch : path-like
        Where the re-runs write.

    Returns
    -------
    list of coronalign.steps.manifest.Verification
        One per coron3 product; none without a ``coron3`` section.
    """
    section = manifest.get(CORON3_KEY)
    if not isinstance(section, dict):
        return []
    entries = sorted(section["products"], key=lambda entry: _ORDER.get(entry["step"], 1))
    results = []
    for entry in entries:
        result = _verify_product(entry, Path(base), scratch)
        log.info(
            "%s: %s",
            entry["product"],
            "identical" if result.identical else "; ".join(result.problems),
        )
        results.append(result)
    return results
