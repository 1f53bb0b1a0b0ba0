"""What the workflow will process: its inputs, resolved from the configuration.

:func:`resolve_inputs` turns the configuration (``asn:`` — one association or a list of
association files and glob patterns, a program's coron3 associations — or ``science:`` with
``psfstack:`` or ``psf:``) into a :class:`WorkflowInputs`: every science exposure by product
stem, and every PSF stack (one per association product) with the exposures it is stacked
from and the science exposures it is checked against. It checks that the configured files
exist, that every name that becomes part of a file name is safe (:data:`SAFE_NAME`: names
come from association files, which come from archives and colleagues), and that no two
products would have the same name. The workflow's ``common.smk`` calls it (the first time a
rule asks for its inputs) and turns a :class:`~coronalign.errors.ConfigurationError` into
Snakemake's ``WorkflowError``, so a problem stops the run before any job.

Standard library only: Snakemake's own interpreter imports it from the repository's
``src/``, also where the coronalign package is not installed.
"""

import glob
import re
from dataclasses import dataclass
from pathlib import Path

from coronalign.errors import ConfigurationError, CoronalignError
from coronalign.io.association import exposure_root, read_association

__all__ = [
    "NO_INPUTS",
    "PSF_ONLY_STACK",
    "SAFE_NAME",
    "Exposure",
    "PsfStack",
    "WorkflowInputs",
    "association_stack",
    "resolve_inputs",
]

#: Names that become file names (association products and ids, exposure roots): letters,
#: digits and ``. _ + -``, starting with a letter or digit. No ``/``, so no name can reach
#: outside its folder (``..`` cannot start a name); the workflow's wildcards are constrained
#: to the same pattern.
SAFE_NAME = r"[A-Za-z0-9][A-Za-z0-9._+-]*"
_SAFE = re.compile(rf"^{SAFE_NAME}$")

#: The stack the workflow makes from ``psf:`` files when there is no association.
PSF_ONLY = "psf"
PSF_ONLY_STACK = f"results/stack/{PSF_ONLY}_psfstack.fits"

NO_INPUTS = (
    "no inputs configured: set `asn:` (a calwebb_coron3 association, or a list of them), or "
    "`science:` with `psfstack:` or with `psf:`, in config/config.yaml or in a file given "
    "with --configfile (see config/README.md; `make demo` writes demo data and "
    "demo/config.yaml)"
)


@dataclass(frozen=True)
class Exposure:
    """One science exposure to align.

    Attributes
    ----------
    stem : str
        Its product stem: ``<exposure root>_<asn id>``, or the root without an association.
    science : str
        The science ``_calints`` file.
    stack : str
        The key of the PSF stack it is aligned to (see :class:`PsfStack`).
    association : str or None
        The association file it comes from.
    """

    stem: str
    science: str
    stack: str
    association: str | None


@dataclass(frozen=True)
class PsfStack:
    """One PSF stack: made from PSF exposures, or given.

    Attributes
    ----------
    key : str
        Its name: the association's product, or ``psf`` without an association.
    path : str
        The ``_psfstack`` file (``results/stack/<key>_psfstack.fits`` when the workflow
        makes it).
    members : tuple of str
        The PSF ``_calints`` files to stack, in member order (empty when given).
    science : tuple of str
        The science files of the exposures aligned to it (the input check reads them).
    association : str or None
        The association file it comes from.
    """

    key: str
    path: str
    members: tuple
    science: tuple
    association: str | None

    @property
    def made(self):
        """True when the workflow stacks it (``stack_refs``)."""
        return bool(self.members)


@dataclass(frozen=True)
class WorkflowInputs:
    """The resolved inputs of a run: exposures by stem and stacks by key, in order."""

    exposures: dict
    stacks: dict

    @property
    def science(self):
        """Product stem to science file, in order."""
        return {stem: exposure.science for stem, exposure in self.exposures.items()}


def association_stack(product):
    """The PSF stack the workflow makes for an association's product.

    Parameters
    ----------
    product : str
        The association's product name (or ``psf``).

    Returns
    -------
    str
        ``results/stack/<product>_psfstack.fits``.
    """
    return f"results/stack/{product}_psfstack.fits"


def _existing(key, paths):
    """The paths as strings; a missing file names the configuration key."""
    for path in paths:
        if not Path(path).is_file():
            raise ConfigurationError(
                f"config {key}: file {path} not found (relative paths are relative to {Path.cwd()})"
            )
    return [str(path) for path in paths]


def _safe(where, what, name):
    """``name`` if it is a safe file-name part, else a ConfigurationError naming it."""
    if not _SAFE.match(name):
        raise ConfigurationError(
            f"{where}: {what} {name!r} cannot be used in a file name: use letters, digits "
            "and . _ + -, starting with a letter or digit"
        )
    return name


def _association_files(asn):
    """The association files that ``asn`` (a path, a glob or a list of them) names."""
    patterns = [asn] if isinstance(asn, str) else list(asn)
    files = []
    for pattern in patterns:
        pattern = str(pattern)
        if glob.has_magic(pattern):
            found = sorted(glob.glob(pattern))
            if not found:
                raise ConfigurationError(f"config asn: no file matches {pattern}")
        else:
            found = [pattern]
        files += [path for path in found if path not in files]
    return files


def _from_associations(asn):
    """Exposures and stacks of every association ``asn`` names."""
    exposures, stacks = {}, {}
    for file in _association_files(asn):
        try:
            association = read_association(file)
        except CoronalignError as error:
            raise ConfigurationError(f"config asn: {error}") from None
        where = f"config asn: {file}"
        product = _safe(where, "product name", association.product)
        asn_id = _safe(where, "asn_id", association.asn_id)
        if product in stacks:
            raise ConfigurationError(
                f"config asn: associations {stacks[product].association} and {file} have the "
                f"same product {product}; their PSF stacks would overwrite each other"
            )
        science = []
        for path in association.science:
            root = _safe(where, "exposure name", exposure_root(path))
            stem = f"{root}_{asn_id}"
            if stem in exposures:
                other = exposures[stem].association
                raise ConfigurationError(
                    f"config asn: associations {other} and {file} would both write the product "
                    f"{stem}_psfalign.fits"
                    + (" (the exposure is listed twice)" if other == file else "")
                )
            exposures[stem] = Exposure(stem, str(path), product, file)
            science.append(str(path))
        stacks[product] = PsfStack(
            key=product,
            path=association_stack(product),
            members=tuple(str(path) for path in association.psf),
            science=tuple(science),
            association=file,
        )
    return exposures, stacks


def _from_files(science, psfstack, psf):
    """Exposures and the one stack of a configuration that lists files."""
    if bool(psfstack) == bool(psf):
        raise ConfigurationError(
            "config: with `science`, give exactly one of `psfstack` (an existing "
            "_psfstack) and `psf` (PSF _calints files to stack)"
            + (", not both" if psfstack else "")
        )
    science_files = _existing("science", science)
    members = _existing("psf", psf or [])
    path = _existing("psfstack", [psfstack])[0] if psfstack else PSF_ONLY_STACK
    exposures = {}
    for file in science_files:
        root = _safe("config science", "exposure name", exposure_root(file))
        if root in exposures:
            raise ConfigurationError(
                f"config: science exposures {exposures[root].science} and {file} have the same "
                f"name root {root}; products would overwrite each other"
            )
        exposures[root] = Exposure(root, file, PSF_ONLY, None)
    stack = PsfStack(PSF_ONLY, path, tuple(members), tuple(science_files), None)
    return exposures, {PSF_ONLY: stack}


def resolve_inputs(config):
    """Resolve the workflow's inputs from its configuration.

    Parameters
    ----------
    config : mapping
        The validated configuration: ``asn`` (a file, a glob pattern, or a list of them),
        or ``science`` with ``psfstack`` or ``psf``; ``psfmask`` (an override file, checked
        to exist) may be set. Relative paths are relative to the current folder (where
        Snakemake runs).

    Returns
    -------
    WorkflowInputs

    Raises
    ------
    ConfigurationError
        No inputs, both associations and files, ``science`` without exactly one of
        ``psfstack`` and ``psf``, an unreadable association, a pattern that matches
        nothing, a missing file, a name that is not safe in a file name, two associations
        with the same product, or two science exposures whose products would have the
        same name. The message names the configuration key (and both associations).
    """
    asn, science = config.get("asn"), config.get("science")
    psfstack, psf = config.get("psfstack"), config.get("psf")
    if asn:
        others = [key for key in ("science", "psf", "psfstack") if config.get(key)]
        if others:
            raise ConfigurationError(
                f"config: `asn` and `{'`, `'.join(others)}` are both set; give either "
                "associations or the files (config files given with --configfile are merged "
                "with config/config.yaml: set the unused keys to null)"
            )
        exposures, stacks = _from_associations(asn)
    elif science:
        exposures, stacks = _from_files(science, psfstack, psf)
    else:
        raise ConfigurationError(NO_INPUTS)
    if config.get("psfmask"):
        _existing("psfmask", [config["psfmask"]])
    return WorkflowInputs(exposures=exposures, stacks=stacks)
