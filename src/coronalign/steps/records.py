"""Records the workflow keeps: what may be regenerated, and what must not change silently.

Snakemake may delete and regenerate any output (``--forceall``, ``--forcerun``,
``--delete-all-output``, ``rm -r results``). Three outputs carry what a publication depends
on: the CRDS selection of each exposure's PSFMASK (which file, from which context), each
PSF stack (its values), and the run manifest (the values of every product). Each is
compared, when a job writes it, with a *record* kept outside Snakemake's outputs (the
workflow's ``records`` folder, beside the configuration), one small JSON file per item:

- no record yet: it is written (and later only extended, never rewritten, by new items);
- the regenerated output is identical: the record's bytes are left alone;
- it differs and something explains it (the configuration, an input, the CRDS context or a
  software version changed): the change is accepted and *said* (a warning naming the item,
  the old and new values and the cause), and the record keeps the old entry in its
  ``history``;
- it differs and nothing explains it: the job fails with one message naming the record and
  both values (Snakemake then removes the output, so the changed file does not survive).
  To accept it deliberately, delete that record file.

The inputs lock (:mod:`coronalign.io.inputs_lock`) is stricter: a changed input always
stops the run, and only ``coronalign download --repin`` re-pins it.
"""

import datetime
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from coronalign.errors import CoronalignError
from coronalign.io.image_digests import image_sha256
from coronalign.io.provenance import data_sha256, file_sha256, software_versions
from coronalign.io.reports import write_json_report
from coronalign.io.strict_load import load_json

__all__ = [
    "RECORD_FORMAT",
    "RecordChangedError",
    "RecordOutcome",
    "keep_manifest_record",
    "keep_record",
    "keep_selection_record",
    "keep_stack_record",
]

log = logging.getLogger(__name__)

RECORD_FORMAT = "coronalign-record-1"


class RecordChangedError(CoronalignError):
    """A regenerated output differs from its record and nothing explains why."""

    def __init__(self, record, kind, differences):
        self.record = str(record)
        self.kind = kind
        self.differences = tuple(differences)
        super().__init__(
            f"{self.record}: the regenerated {kind} differs from its record and neither the "
            "configuration, the inputs nor the software changed: "
            + "; ".join(self.differences)
            + ". The job stops so the changed output does not replace the recorded one; "
            f"to accept it deliberately, delete {self.record} and run again"
        )

    def __reduce__(self):
        return type(self), (self.record, self.kind, self.differences)


@dataclass(frozen=True)
class RecordOutcome:
    """What keeping one record did.

    Attributes
    ----------
    status : str
        ``"new"`` (record written), ``"identical"`` (left alone), ``"extended"`` (new items
        added) or ``"changed"`` (a difference with a cause: accepted, said, history kept).
    messages : tuple of str
        What to tell the user (warnings for ``"changed"``).
    """

    status: str
    messages: tuple = field(default=())


# ---------------------------------------------------------------------------------------
# The record file


def _read(path):
    path = Path(path)
    if not path.is_file():
        return None
    try:
        record = load_json(path.read_text())
    except (OSError, ValueError) as error:
        raise CoronalignError(f"{path}: is not a readable record: {error}") from None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise CoronalignError(f"{path}: is not a coronalign record (format {RECORD_FORMAT})")
    return record


def _write(path, kind, subject, current, history):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    document = {"format": RECORD_FORMAT, "kind": kind, "subject": subject, "current": current}
    document["history"] = history
    write_json_report(path, document)


def _now():
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _keep(path, kind, subject, current, compare):
    """Compare ``current`` with the record at ``path`` and act as the module docstring says.

    ``compare(old, new)`` gives the differences in values, their causes, and what the
    record holds when only new items were added (``old`` extended, else ``old`` itself).
    """
    record = _read(path)
    if record is None:
        _write(path, kind, subject, current, [])
        return RecordOutcome("new", (f"{subject}: {kind} recorded in {path}",))
    old = record["current"]
    differences, causes, extended = compare(old, current)
    if not differences:
        if extended == old:  # the same values (whatever else moved): the bytes stay
            return RecordOutcome("identical")
        _write(path, kind, subject, extended, record.get("history", []))
        return RecordOutcome("extended", (f"{subject}: {kind} record {path} extended",))
    if not causes:
        raise RecordChangedError(path, kind, differences)
    history = [*record.get("history", []), {"replaced": _now(), "why": causes, "was": old}]
    _write(path, kind, subject, current, history)
    said = (
        f"WARNING: {subject}: the {kind} changed: "
        + "; ".join(differences)
        + ". Because: "
        + "; ".join(causes)
        + f". The previous entry is kept in the history of {path}"
    )
    return RecordOutcome("changed", (said,))


def _version_changes(old, new):
    return [
        f"{name} {old.get(name)} -> {new.get(name)}"
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    ]


# ---------------------------------------------------------------------------------------
# The CRDS selection of an exposure's PSFMASK


def _selection_entry(selection, pinned_context):
    mask = selection.get("path")
    return {
        "status": selection["status"],
        "reference": selection["reference"],
        "context": selection.get("context"),
        "pinned_context": pinned_context,
        "crds_version": selection.get("crds_version"),
        "mask_sha256": file_sha256(mask) if mask and Path(mask).is_file() else None,
    }


def _describe_selection(entry):
    if entry["status"] == "override":
        return f"{entry['reference']} (override)"
    if entry["status"] == "not_applicable":
        return f"N/A (context {entry['context']})"
    return f"{entry['reference']} (context {entry['context']})"


def _compare_selections(old, new):
    differences = []
    if any(old[key] != new[key] for key in ("status", "reference", "mask_sha256")):
        differences.append(
            f"PSFMASK was {_describe_selection(old)}, now {_describe_selection(new)}"
        )
        if old["reference"] == new["reference"] and old["mask_sha256"] != new["mask_sha256"]:
            differences.append(
                f"the mask file's SHA-256 was {old['mask_sha256']}, now {new['mask_sha256']}"
            )
    causes = []
    if (old["status"] == "override") != (new["status"] == "override"):
        causes.append("the configuration's `psfmask` override was set or removed")
    elif new["status"] == "override":
        if old["reference"] != new["reference"]:
            causes.append("the configuration's `psfmask` override names another file")
        elif old["mask_sha256"] != new["mask_sha256"]:
            causes.append("the override file's bytes changed")
    if old["pinned_context"] != new["pinned_context"]:
        causes.append(
            f"crds.context changed from {old['pinned_context']} to {new['pinned_context']}"
        )
    elif old["context"] != new["context"]:
        causes.append(
            f"crds.context is not pinned and the context in use moved from {old['context']} "
            f"to {new['context']} (pin crds.context to keep a selection)"
        )
    if old["crds_version"] != new["crds_version"] and new["status"] != "override":
        causes.append(f"crds {old['crds_version']} -> {new['crds_version']}")
    return differences, causes, old


def keep_selection_record(selection_path, record_path, *, subject, pinned_context=None):
    """Keep the record of one exposure's PSFMASK selection.

    A CRDS mapping never changes under its name, so with the same context (and crds
    client) the same file must be selected: a different one, or a mask whose bytes changed,
    is refused (:class:`RecordChangedError`). Another pinned context, an unpinned context
    that moved, or a changed override is a cause: the change is accepted and said.

    Parameters
    ----------
    selection_path : path-like
        The selection JSON written by ``coronalign psfmask``.
    record_path : path-like
        The record (JSON) kept for this exposure.
    subject : str
        The exposure's name, for messages.
    pinned_context : str, optional
        The configuration's ``crds.context`` (None when not pinned).

    Returns
    -------
    RecordOutcome
    """
    selection = load_json(Path(selection_path).read_text())
    entry = _selection_entry(selection, pinned_context)
    return _keep(record_path, "CRDS selection", subject, entry, _compare_selections)


# ---------------------------------------------------------------------------------------
# A PSF stack


def _stack_entry(stack, members):
    return {
        "data_sha256": data_sha256(stack),
        "members": {Path(member).name: file_sha256(member) for member in members},
        "software": software_versions(),
    }


def _compare_stacks(old, new):
    if old["data_sha256"] == new["data_sha256"]:
        return [], [], old  # the same values (other software, say): nothing to say
    changed = [
        name
        for name, digest in old["data_sha256"].items()
        if new["data_sha256"].get(name) != digest
    ]
    differences = [f"its {', '.join(changed)} values differ from the recorded ones"]
    causes = []
    for name in sorted(set(old["members"]) | set(new["members"])):
        was, now = old["members"].get(name), new["members"].get(name)
        if was is None:
            causes.append(f"member {name} added")
        elif now is None:
            causes.append(f"member {name} removed")
        elif was != now:
            causes.append(f"member {name} changed (SHA-256 {was} -> {now})")
    if list(old["members"]) != list(new["members"]) and not causes:
        causes.append("the members' order changed")
    software = _version_changes(old["software"], new["software"])
    if software:
        causes.append("software changed: " + ", ".join(software))
    return differences, causes, old


def keep_stack_record(stack_path, members, record_path, *, subject):
    """Keep the record of one PSF stack: a re-made stack must hold the same values.

    Different values are accepted (and said) only when a member file, the members' order
    or a software version changed; otherwise stacking is not reproducible and the job is
    refused (:class:`RecordChangedError`).

    Parameters
    ----------
    stack_path : path-like
        The ``_psfstack`` written by ``coronalign stack``.
    members : sequence of path-like
        Its PSF exposures, in stacking order.
    record_path : path-like
        The record (JSON) kept for this stack.
    subject : str
        The stack's name, for messages.

    Returns
    -------
    RecordOutcome
    """
    entry = _stack_entry(stack_path, members)
    return _keep(record_path, "PSF stack", subject, entry, _compare_stacks)


# ---------------------------------------------------------------------------------------
# The manifest: the values of every product


def _product_entry(product, base, stack_digests):
    inputs = {}
    for role, item in product.get("inputs", {}).items():
        path = Path(item["path"])
        path = path if path.is_absolute() else Path(base) / path
        # a re-made stack file differs by its date: its values are what matters here (one
        # digest per stack, whose exposures share it)
        derived = role == "psfstack" and path.is_file()
        if derived and path not in stack_digests:
            stack_digests[path] = data_sha256(path)
        inputs[role] = stack_digests[path] if derived else item.get("sha256")
    return {
        "data_sha256": product["data_sha256"],
        "inputs": inputs,
        "parameters": product.get("parameters", {}),
        "crds": product.get("crds", {}),
        "software": product.get("software", {}),
    }


def _coron3_entry(product, base):
    inputs = {}
    for role, item in product["inputs"].items():
        path = Path(item["path"])
        path = path if path.is_absolute() else Path(base) / path
        # a re-made input file differs by its date: its values are what matters here
        fits = path.suffix == ".fits" and path.is_file()
        inputs[role] = image_sha256(path) if fits else item["sha256"]
    return {
        "data_sha256": product["data_sha256"],
        "inputs": inputs,
        "argv": product["argv"],
        "software": {"jwst": product["jwst"]},
    }


def _manifest_entry(manifest, base):
    stack_digests = {}
    products = {
        Path(product["product"]).name: _product_entry(product, base, stack_digests)
        for product in manifest.get("products", [])
    }
    entry = {"products": products}
    coron3 = manifest.get("coron3")
    if isinstance(coron3, dict):  # the official jwst steps' products: their values too
        entry["coron3_products"] = {
            Path(product["product"]).name: _coron3_entry(product, base)
            for product in coron3.get("products", [])
        }
    return entry


def _compare_products(old, new, label):
    differences, causes = [], []
    for name in sorted(set(old) & set(new)):
        was, now = old[name], new[name]
        if was["data_sha256"] == now["data_sha256"]:
            continue
        changed = [
            key
            for key, digest in was["data_sha256"].items()
            if now["data_sha256"].get(key) != digest
        ]
        differences.append(f"{label} {name}: {', '.join(changed)} values differ")
        for role in sorted(set(was.get("inputs", {})) | set(now.get("inputs", {}))):
            if was.get("inputs", {}).get(role) != now.get("inputs", {}).get(role):
                causes.append(f"{name}: its {role} input changed")
        for key in ("parameters", "crds", "argv"):
            if was.get(key) != now.get(key):
                causes.append(f"{name}: {key} changed ({was.get(key)} -> {now.get(key)})")
        software = _version_changes(was.get("software", {}), now.get("software", {}))
        if software:
            causes.append(f"{name}: software changed: " + ", ".join(software))
    for name in sorted(set(old) - set(new)):
        differences.append(f"{label} {name} is no longer made")
        causes.append(f"{name} is no longer in the configuration")
    extended = {**{name: new[name] for name in set(new) - set(old)}, **old}
    return differences, causes, dict(sorted(extended.items()))


def _compare_manifests(old, new):
    differences, causes, extended = [], [], {}
    for key in sorted(set(old) | set(new)):
        label = "product" if key == "products" else key.removesuffix("_products") + " product"
        found, why, kept = _compare_products(old.get(key, {}), new.get(key, {}), label)
        differences += found
        causes += why
        extended[key] = kept
    return differences, causes, extended


def keep_manifest_record(manifest_path, record_path, *, base=None):
    """Keep the record of a run's product values (from its manifest).

    A product made again must hold the same values unless its inputs (a re-made PSF stack
    counts by its values), parameters, CRDS selection or software changed; then the change
    is said, else the job is refused (:class:`RecordChangedError`). New products extend the
    record.

    Parameters
    ----------
    manifest_path : path-like
        The manifest written by ``coronalign manifest``.
    record_path : path-like
        The record (JSON) of the products' values.
    base : path-like, optional
        Folder the manifest's relative paths start from (default: here).

    Returns
    -------
    RecordOutcome
    """
    manifest = load_json(Path(manifest_path).read_text())
    entry = _manifest_entry(manifest, Path(base) if base is not None else Path.cwd())
    return _keep(record_path, "product values", "the run", entry, _compare_manifests)


# ---------------------------------------------------------------------------------------
# From a rule's script


def keep_record(log_path, check, *args, **kwargs):
    """Keep a record for a workflow rule: messages appended to the rule's log and shown on
    standard error (Snakemake's console); an unexplained change exits with status 2.

    Parameters
    ----------
    log_path : path-like or None
        The rule's log file.
    check : callable or str
        :func:`keep_selection_record`, :func:`keep_stack_record` or
        :func:`keep_manifest_record`, or its name (a rule's script passes the name:
        :func:`coronalign.cli.jobs.run_each_from_snakemake` makes the call).
    *args, **kwargs
        Its arguments.

    Returns
    -------
    RecordOutcome
    """

    def say(line):
        print(line, file=sys.stderr, flush=True)
        if log_path:
            with open(log_path, "a", encoding="utf-8") as stream:
                stream.write(line + "\n")

    if isinstance(check, str):
        check = {f.__name__: f for f in _CHECKS}[check]
    try:
        outcome = check(*args, **kwargs)
    except CoronalignError as error:
        say(f"coronalign: error: {error}")
        sys.exit(2)
    for message in outcome.messages:
        say(message)
    return outcome


_CHECKS = (keep_selection_record, keep_stack_record, keep_manifest_record)
