"""Run manifests: what a reduction produced and from what, and re-running it to compare.

A manifest lists every product of a run with the inputs it was made from (per role: path
as given, name, size and SHA-256, the records of an inputs lock), the parameters, the CRDS
context, the software versions (with the path and SHA-256 of the environment lock
``requirements/lock.txt``) and the SHA-256 of the product's SCI, ERR and DQ values. Written
with an inputs lock (:mod:`coronalign.io.inputs_lock`), it embeds the lock whole as
``inputs_lock``: the files downloaded from MAST, so one published file pins both the
inputs and the results. :func:`verify_manifest` checks the pinned inputs, re-runs every
product from its recorded inputs and parameters in a scratch folder and compares the values
bit for bit, which is how a published reduction is reproduced. A manifest of a run with
``coron3: true`` also lists the official jwst steps' products
(:mod:`coronalign.steps.coron3_manifest`), which :func:`verify_manifest` re-runs too.
"""

import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from coronalign import __version__
from coronalign.errors import InputFileError
from coronalign.io.asdf_meta import read_meta
from coronalign.io.inputs_lock import MANIFEST_KEY, lock_document, read_inputs_lock
from coronalign.io.paths import check_outputs
from coronalign.io.provenance import (
    data_sha256,
    environment_lock_record,
    file_sha256,
    software_versions,
)
from coronalign.io.reports import write_json_report
from coronalign.io.strict_load import load_json
from coronalign.steps.download import verify_inputs_lock

__all__ = [
    "MANIFEST_FORMAT",
    "Verification",
    "build_manifest",
    "verify_entry",
    "verify_manifest",
    "write_manifest",
]

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "coronalign-manifest-1"


def _product_record(path):
    """The provenance stored in one product (``meta.coronalign``) plus its data digest."""
    # The product's metadata as plain values, without a data model: opening one converts
    # and validates the whole tree, about a second a product (the validate rule does that).
    meta = read_meta(path, "product")
    record = meta.get("coronalign")
    if not isinstance(record, dict):
        raise InputFileError(path, "was not written by coronalign (no provenance record)")
    status = (meta.get("cal_step") or {}).get("align_psfs")
    return {
        "product": str(path),
        "status": status,
        "coronalign_version": record.get("version"),
        "skipped": record.get("skipped"),
        "inputs": record.get("inputs", {}),
        "parameters": record.get("parameters", {}),
        "crds": record.get("crds", {}),
        "software": record.get("software", {}),
        "data_sha256": data_sha256(path),
    }


#: The key of the manifest's ``software`` section that records the environment lock.
ENVIRONMENT_LOCK_KEY = "environment_lock"


def build_manifest(products, *, inputs_lock=None, environment_lock=None, threads=1):
    """A manifest of products written by coronalign.

    Parameters
    ----------
    products : iterable of path-like
        ``_psfalign`` products.
    inputs_lock : path-like, optional
        The inputs lock of the run (what was downloaded from MAST), embedded whole.
    environment_lock : path-like, optional
        The environment lock to record (default: ``requirements/lock.txt`` of the
        repository coronalign runs from).
    threads : int, optional
        Products read and digested at once (SHA-256 releases the GIL: the digests of a
        run's products, a GB or more, are most of a manifest's time).

    Returns
    -------
    dict
        ``format``, ``coronalign`` version, ``software`` (versions of this process and the
        ``environment_lock`` path and SHA-256), ``inputs_lock`` when given, and one entry
        per product (see the module docstring).
    """
    manifest = {
        "format": MANIFEST_FORMAT,
        "coronalign": __version__,
        "software": {
            **software_versions(),
            ENVIRONMENT_LOCK_KEY: environment_lock_record(environment_lock),
        },
    }
    if inputs_lock is not None:
        pinned = read_inputs_lock(inputs_lock)
        manifest[MANIFEST_KEY] = lock_document(pinned.files.values(), pinned.folder)
    paths = [Path(path) for path in products]
    with ThreadPoolExecutor(max_workers=max(1, int(threads))) as pool:
        manifest["products"] = list(pool.map(_product_record, paths))  # in the given order
    return manifest


def write_manifest(products, output, *, inputs_lock=None, environment_lock=None, threads=1):
    """Build a manifest and write it as JSON, atomically.

    Parameters
    ----------
    products : iterable of path-like
        ``_psfalign`` products.
    output : path-like
        The manifest file.
    inputs_lock, environment_lock : path-like, optional
        As :func:`build_manifest`.
    threads : int, optional
        As :func:`build_manifest`.

    Returns
    -------
    dict
        The manifest.
    """
    products = list(products)
    check_outputs([("manifest", output)], [("product", path) for path in products])
    manifest = build_manifest(
        products, inputs_lock=inputs_lock, environment_lock=environment_lock, threads=threads
    )
    write_json_report(output, manifest)
    log.info("wrote manifest of %d product(s) to %s", len(manifest["products"]), output)
    return manifest


@dataclass(frozen=True)
class Verification:
    """The outcome of re-running one product of a manifest."""

    product: str
    identical: bool
    problems: tuple


def _resolve(path, base):
    path = Path(path)
    return path if path.is_absolute() else Path(base) / path


def _rerun(entry, base, scratch):
    """Make the product of ``entry`` again in ``scratch``; return the new file."""
    # Imported here: writing a manifest needs none of the alignment (its imports cost more
    # than half a second of the manifest job).
    from coronalign.steps.align_refs import align_files, skip_alignment
    from coronalign.steps.parameters import StepParameters

    inputs = {role: _resolve(item["path"], base) for role, item in entry["inputs"].items()}
    parameters = StepParameters.from_record(entry["parameters"])
    output = Path(scratch) / Path(entry["product"]).name
    if entry["status"] == "SKIPPED":
        skip_alignment(
            inputs["science"],
            inputs["psfstack"],
            output,
            entry.get("skipped") or "re-run of a skipped product",
            parameters,
            crds=entry.get("crds"),
        )
    else:
        align_files(
            inputs["science"],
            inputs["psfstack"],
            inputs["psfmask"],
            output,
            parameters,
        )
    return output


def verify_entry(entry, base, scratch, changed_versions=()):
    """Check one manifest entry: inputs unchanged, then re-run and compare the values.

    Parameters
    ----------
    entry : dict
        One element of ``manifest["products"]``.
    base : path-like
        Folder that relative paths in the manifest are relative to.
    scratch : path-like
        Where the re-run writes its product.
    changed_versions : sequence of str, optional
        ``"numpy 2.4.6 -> 2.5.0"`` for each package whose version differs from the recorded
        run's: named as the likely cause when values differ.

    Returns
    -------
    Verification
    """
    problems = []
    for role, item in entry["inputs"].items():
        path = _resolve(item["path"], base)
        if not path.exists():
            problems.append(f"{role} input {path} is missing")
            continue
        if not path.is_file():
            problems.append(f"{role} input {path} is not a regular file")
            continue
        digest = file_sha256(path)
        if digest != item["sha256"]:
            problems.append(
                f"{role} input {path} has changed: SHA-256 {digest}, the manifest records "
                f"{item['sha256']}"
            )
    if problems:
        return Verification(entry["product"], False, tuple(problems))
    again = data_sha256(_rerun(entry, base, scratch))
    cause = (
        " (likely cause: other package versions than the recorded run's: "
        + ", ".join(changed_versions)
        + "; bit-for-bit reproduction needs the same versions)"
        if changed_versions
        else ""
    )
    for name, digest in entry["data_sha256"].items():
        if again[name] != digest:
            problems.append(f"{name} values differ from the recorded run{cause}")
    return Verification(entry["product"], not problems, tuple(problems))


def _software_changes(recorded, environment_lock=None):
    """What differs from the recorded software, one ``"numpy 2.1.0 -> 2.2.0"`` per item.

    Each package whose version differs is named in a warning; so is the environment lock
    when its SHA-256 differs from the recorded one.
    """
    current = software_versions()
    changed = []
    for name, version in recorded.items():
        if name == ENVIRONMENT_LOCK_KEY:
            continue
        if current.get(name) != version:
            changed.append(f"{name} {version} -> {current.get(name)}")
            log.warning(
                "%s was %s for the recorded run and is %s now: results may differ",
                name,
                version,
                current.get(name),
            )
    lock = recorded.get(ENVIRONMENT_LOCK_KEY)
    if isinstance(lock, dict) and lock.get("sha256"):
        here = environment_lock_record(environment_lock)
        if here["sha256"] != lock["sha256"]:
            found = here["sha256"] or "not found"
            changed.append(f"environment lock {lock.get('path')} {lock['sha256']} -> {found}")
            log.warning(
                "the environment lock %s differs from the recorded run's (SHA-256 recorded "
                "%s, here %s): install the recorded one (check out the recorded version, then "
                "`make env`) for the same package versions",
                lock.get("path"),
                lock["sha256"],
                found,
            )
    return changed


def verify_manifest(path, *, base=None):
    """Re-run every product of a manifest and compare its values bit for bit.

    Parameters
    ----------
    path : path-like
        The manifest (JSON).
    base : path-like, optional
        Folder that relative input paths are relative to (default: the current folder,
        i.e. where the workflow ran).

    Returns
    -------
    list of Verification

    Raises
    ------
    InputsLockError
        The manifest embeds an inputs lock and a file it pins is missing or differs (named
        with both SHA-256): nothing is re-run.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "manifest not found")
    try:
        manifest = load_json(path.read_text())
    except (OSError, ValueError) as error:
        raise InputFileError(path, f"is not a readable JSON manifest: {error}") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise InputFileError(path, f"is not a coronalign manifest (format {MANIFEST_FORMAT})")
    changed = _software_changes(manifest.get("software", {}))
    base = Path(base) if base is not None else Path.cwd()
    pinned = manifest.get(MANIFEST_KEY)
    if isinstance(pinned, dict):  # the files downloaded from MAST, before any re-run
        verify_inputs_lock(path, _resolve(pinned.get("folder") or ".", base))
    results = []
    with tempfile.TemporaryDirectory(prefix="coronalign-verify-") as scratch:
        for entry in manifest["products"]:
            result = verify_entry(entry, base, scratch, changed)
            log.info(
                "%s: %s",
                entry["product"],
                "identical" if result.identical else "; ".join(result.problems),
            )
            results.append(result)
        results += _verify_coron3_products(manifest, base, scratch)
    return results


def _verify_coron3_products(manifest, base, scratch):
    """The coron3 products of the manifest, re-run (see coronalign.steps.coron3_manifest)."""
    from coronalign.steps.coron3_manifest import verify_coron3

    return verify_coron3(manifest, base, scratch)
