"""Reading a calwebb_coron3 association (the JSON file that lists an observation's exposures).

A coron3 association names one product and its members: science exposures
(``"exptype": "science"``) and PSF reference exposures (``"exptype": "psf"``), each by the
file name of its ``_calints`` file, relative to the association's folder. calwebb_coron3
needs both kinds; so does this package.
"""

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from coronalign.errors import InputFileError
from coronalign.io.strict_load import DuplicateKeyError, load_json

__all__ = ["Association", "association_members", "exposure_root", "read_association"]

log = logging.getLogger(__name__)

_ASN_ID = re.compile(r"-([aco]\d{3,})(?:_|$)", re.IGNORECASE)
_CALINTS = "_calints.fits"


@dataclass(frozen=True)
class Association:
    """The parts of a coron3 association that the alignment needs.

    Attributes
    ----------
    path : pathlib.Path
        The association file.
    asn_id : str
        Association candidate id (e.g. ``"a3001"``), used in product names.
    product : str
        Name of the association's product (e.g. ``"jw01386-a3001_t001_nircam_f250m"``).
    science : tuple of pathlib.Path
        Science ``_calints`` files, in member order, resolved against the association's folder.
    psf : tuple of pathlib.Path
        PSF reference ``_calints`` files, in member order.
    """

    path: Path
    asn_id: str
    product: str
    science: tuple
    psf: tuple


def exposure_root(path):
    """The exposure root of a ``_calints`` file: its name without ``_calints.fits``.

    Parameters
    ----------
    path : str or os.PathLike
        A science or PSF exposure file.

    Returns
    -------
    str
        ``jw01386001001_03106_00001_nrcalong`` for
        ``.../jw01386001001_03106_00001_nrcalong_calints.fits``; for other names, the name
        without its ``.fits`` extension.
    """
    name = Path(path).name
    if name.endswith(_CALINTS):
        return name[: -len(_CALINTS)]
    return name[:-5] if name.lower().endswith(".fits") else name


def _load(path):
    """The association's JSON, product name and science and psf member names (as written).

    Every check of :func:`read_association` except that the member files exist. An
    ``exptype`` with stray spaces is read without them (and logged as a warning).
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "association file not found")
    try:
        asn = load_json(path.read_text())
    except DuplicateKeyError as error:
        raise InputFileError(path, f"the association is refused: {error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputFileError(path, f"the association is not a JSON file ({error})") from None
    if not isinstance(asn, dict):
        raise InputFileError(path, "the association must be a JSON object with 'products'")
    products = asn.get("products")
    if not isinstance(products, list) or not products:
        raise InputFileError(
            path, "the association lists no products; a coron3 association has one product"
        )
    if len(products) > 1:
        log.warning("%s: %d products; using the first one", path, len(products))
    product = products[0] if isinstance(products[0], dict) else {}
    name = str(product.get("name") or path.stem)
    members = product.get("members")
    if not isinstance(members, list) or not members:
        raise InputFileError(path, f"product {name!r} of the association has no members")
    science, psf = [], []
    for index, member in enumerate(members):
        if not isinstance(member, dict) or not member.get("expname"):
            raise InputFileError(path, f"member {index} of product {name!r} has no 'expname'")
        written = str(member.get("exptype", ""))
        kind = written.strip().lower()
        if kind != written.lower():
            log.warning(
                "%s: member %s has exptype %r with stray spaces: read as %r",
                path,
                member["expname"],
                written,
                kind,
            )
        if kind not in ("science", "psf"):
            log.debug("%s: ignoring member %s of type %r", path, member["expname"], kind)
            continue
        (science if kind == "science" else psf).append(str(member["expname"]))
    for kind, found in (("science", science), ("psf", psf)):
        if not found:
            raise InputFileError(
                path,
                f"the association has no {kind} members; calwebb_coron3 needs both science "
                "and psf members",
            )
    return asn, name, science, psf


def association_members(path):
    """The science and psf member file names of a coron3 association, without opening them.

    Other members (``target_acquisition``: ``_cal`` files the alignment does not use) are
    left out. This is what has to be fetched when only the association is at hand.

    Parameters
    ----------
    path : str or os.PathLike
        The association JSON file.

    Returns
    -------
    dict
        ``{"science": [...], "psf": [...]}``: member names as written, in member order.

    Raises
    ------
    InputFileError
        As :func:`read_association`, except for member files that do not exist.
    """
    _, _, science, psf = _load(path)
    return {"science": science, "psf": psf}


def read_association(path):
    """Read a coron3 association and check that its members exist.

    Parameters
    ----------
    path : str or os.PathLike
        The association JSON file.

    Returns
    -------
    Association

    Raises
    ------
    InputFileError
        The file is missing or not JSON, has no product, an empty member list, no science or
        no PSF members, a member without a file name, a member file that does not exist,
        or a file listed both as science and as psf (however it is spelled). The message
        names the association (and the member file).
    """
    path = Path(path)
    asn, name, science_names, psf_names = _load(path)
    science = [path.parent / member for member in science_names]
    psf = [path.parent / member for member in psf_names]
    for member in (*science, *psf):
        if not member.is_file():
            raise InputFileError(
                path,
                f"member file {member.name} does not exist (looked for {member}); member "
                "paths are relative to the association's folder",
            )
    _check_science_is_not_psf(path, science, psf)
    return Association(
        path=path,
        asn_id=_asn_id(path, asn, name),
        product=name,
        science=tuple(science),
        psf=tuple(psf),
    )


def _check_science_is_not_psf(path, science, psf):
    """Fail if one file is both a science and a psf member (however it is spelled)."""
    psf_files = {}
    for member in psf:
        info = member.stat()
        psf_files[(info.st_dev, info.st_ino)] = member
    for member in science:
        info = member.stat()
        twin = psf_files.get((info.st_dev, info.st_ino))
        if twin is not None:
            same = member.name if twin.name == member.name else f"{member.name} (as {twin.name})"
            raise InputFileError(
                path,
                f"member file {same} is listed both as science and as psf; a reference "
                "exposure cannot be its own science target: list it once",
            )


def _asn_id(path, asn, product_name):
    """The association candidate id: ``asn_id``, or the ``-a3001_`` part of the product name."""
    value = asn.get("asn_id")
    if value:
        return str(value)
    found = _ASN_ID.search(product_name)
    if found:
        return found.group(1)
    raise InputFileError(
        path,
        "the association has no 'asn_id' and its product name does not contain one "
        "(like '-a3001_'); add \"asn_id\" to the association",
    )
