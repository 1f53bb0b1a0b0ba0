"""What the workflow will process: its inputs, resolved from the configuration.

:func:`resolve_inputs` turns the configuration (``asn:``, or ``science:`` with
``psfstack:`` or ``psf:``) into a :class:`WorkflowInputs`: the science exposures by product
stem, the PSF exposures to stack and the PSF stack to align to. It checks that the
configured files exist and that no two products would have the same name, and it reads
an association's members. The workflow's ``common.smk`` calls it (the first time a rule
asks for its inputs) and turns a :class:`~coronalign.errors.ConfigurationError` into
Snakemake's ``WorkflowError``.

Standard library only: Snakemake's own interpreter imports it from the repository's
``src/``, also where the coronalign package is not installed.
"""

from dataclasses import dataclass
from pathlib import Path

from coronalign.errors import ConfigurationError, CoronalignError
from coronalign.io.association import exposure_root, read_association

__all__ = [
    "NO_INPUTS",
    "PSF_ONLY_STACK",
    "WorkflowInputs",
    "association_stack",
    "resolve_inputs",
]

#: The PSF stack the workflow makes from ``psf:`` files when there is no association.
PSF_ONLY_STACK = "results/stack/psf_psfstack.fits"

NO_INPUTS = (
    "no inputs configured: set `asn:` (a calwebb_coron3 association), or `science:` with "
    "`psfstack:` or with `psf:`, in config/config.yaml or in a file given with "
    "--configfile (see config/README.md; `make demo` writes demo data and demo/config.yaml)"
)


@dataclass(frozen=True)
class WorkflowInputs:
    """The resolved inputs of a run.

    Attributes
    ----------
    science : dict
        Product stem (``<exposure root>_<asn id>``, or the root without an association) to
        the science ``_calints`` file, in member order.
    psf : list of str
        PSF ``_calints`` files to stack, in member order (empty with ``psfstack:``).
    psfstack : str
        The PSF stack to align to: the configured one, or the one the workflow makes.
    asn_id : str or None
        The association's candidate id.
    """

    science: dict
    psf: list
    psfstack: str
    asn_id: str | None


def association_stack(product):
    """The PSF stack the workflow makes for an association's product.

    Parameters
    ----------
    product : str
        The association's product name.

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


def resolve_inputs(config):
    """Resolve the workflow's inputs from its configuration.

    Parameters
    ----------
    config : mapping
        The validated configuration: ``asn``, or ``science`` with ``psfstack`` or ``psf``;
        ``psfmask`` (an override file, checked to exist) may be set. Relative paths are
        relative to the current folder (where Snakemake runs).

    Returns
    -------
    WorkflowInputs

    Raises
    ------
    ConfigurationError
        No inputs, both an association and files, ``science`` without exactly one of
        ``psfstack`` and ``psf``, an unreadable association, a missing file, or two
        science exposures with the same name root. The message names the configuration
        key.
    """
    asn, science = config.get("asn"), config.get("science")
    psfstack, psf = config.get("psfstack"), config.get("psf")
    if asn:
        others = [key for key in ("science", "psf", "psfstack") if config.get(key)]
        if others:
            raise ConfigurationError(
                f"config: `asn` and `{'`, `'.join(others)}` are both set; give either an "
                "association or the files (config files given with --configfile are merged "
                "with config/config.yaml: set the unused keys to null)"
            )
        try:
            association = read_association(asn)
        except CoronalignError as error:
            raise ConfigurationError(f"config asn: {error}") from None
        science_files = [str(p) for p in association.science]
        psf_files = [str(p) for p in association.psf]
        asn_id = association.asn_id
        stack = association_stack(association.product)
    elif science:
        if bool(psfstack) == bool(psf):
            raise ConfigurationError(
                "config: with `science`, give exactly one of `psfstack` (an existing "
                "_psfstack) and `psf` (PSF _calints files to stack)"
                + (", not both" if psfstack else "")
            )
        science_files = _existing("science", science)
        psf_files = _existing("psf", psf or [])
        asn_id = None
        stack = _existing("psfstack", [psfstack])[0] if psfstack else PSF_ONLY_STACK
    else:
        raise ConfigurationError(NO_INPUTS)
    if config.get("psfmask"):
        _existing("psfmask", [config["psfmask"]])
    stems = {}
    for path in science_files:
        root = exposure_root(path)
        stem = f"{root}_{asn_id}" if asn_id else root
        if stem in stems:
            raise ConfigurationError(
                f"config: science exposures {stems[stem]} and {path} have the same name "
                f"root {root}; products would overwrite each other"
            )
        stems[stem] = path
    return WorkflowInputs(science=stems, psf=psf_files, psfstack=stack, asn_id=asn_id)
