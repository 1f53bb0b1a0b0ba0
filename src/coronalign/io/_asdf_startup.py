"""Make asdf's one-off start-up cost small: libyaml for its manifests, only the extensions needed.

Every process that opens or writes a JWST data model makes asdf load the manifests of
all installed extensions (49 YAML documents with stdatamodels, asdf-astropy and friends).
asdf parses them with ``yaml.safe_load``, PyYAML's pure-Python loader, which takes about
0.9 s on this project's machines; asdf itself uses libyaml's ``CSafeLoader`` for every
other document it reads. ``CSafeLoader`` accepts the same safe tag set and builds the
same Python objects, so parsing the manifests with it changes nothing but the time
(about 0.1 s). Every command line call and every Snakemake job pays this once.

:func:`install` is idempotent and does nothing if libyaml is missing, if asdf's module
layout is not the one it knows, or if ``CORONALIGN_PLAIN_ASDF`` is set in the
environment (to compare against plain asdf). The test suite checks that the loaded
extensions are identical either way.

:func:`only_needed_extensions` (used by the steps that read data models: align, stack,
check-psfstack, validate, plot) leaves out the costliest extensions, those of gwcs,
stdatamodels' JWST transforms and asdf-astropy, while a block reads and writes files whose
ASDF trees use none of their tags (see the section below). Real JWST exposures usually
carry a gwcs WCS in ``meta.wcs``: for them everything is loaded, as before, and the saving
(about 0.3 s per process) applies to files without one (simulated data, stacks);
``CORONALIGN_PLAIN_ASDF`` turns that off too. The test suite checks that the same models
are read and the same product written either way, and that a file with a gwcs WCS or an
astropy quantity loads everything.

Both use private parts of asdf (``asdf.extension._manifest.yaml``,
``asdf._entry_points.entry_points``, ``AsdfConfig._extensions``), checked before use: if
asdf changes them, asdf runs as it is, only slower.
"""

import contextlib
import os
import stat
import types

import numpy as np

__all__ = ["file_tags", "install", "load_every_extension", "only_needed_extensions"]


def install():
    """Route asdf's manifest parsing through libyaml's ``CSafeLoader`` when possible.

    Returns
    -------
    bool
        True if the faster loader is in place.
    """
    if os.environ.get("CORONALIGN_PLAIN_ASDF"):
        return False
    import yaml

    if not getattr(yaml, "__with_libyaml__", False):
        return False
    try:
        from asdf.extension import _manifest
    except ImportError:
        return False
    current = getattr(_manifest, "yaml", None)
    if isinstance(current, types.SimpleNamespace):
        return True  # already installed
    if current is not yaml:
        return False  # asdf changed: leave it alone

    def safe_load(stream):
        return yaml.load(stream, Loader=yaml.CSafeLoader)

    _manifest.yaml = types.SimpleNamespace(safe_load=safe_load)
    return True


def load_every_extension():
    """Load every installed asdf extension now (what asdf does on its first use).

    For a process that forks others (the workflow's warm-start server): its children then
    read any file, one with a gwcs WCS included, without loading them again.
    """
    install()
    import asdf

    asdf.get_config().extensions  # noqa: B018 (the property loads them)


# ---------------------------------------------------------------------------------------
# Loading only the extensions a run's files need.
#
# asdf loads every installed extension and resource mapping the first time a process uses
# it. Three cost more than all the others together: those of gwcs and of stdatamodels' JWST
# transforms (and the transforms' schemas), whose modules import gwcs, astropy.modeling's
# fitting and scipy.optimize, and asdf-astropy's, which builds about 30 extensions (together
# about 0.3 s of a 1.5 s run). They convert only astropy objects (units, times, tables,
# models), WCS objects and JWST transforms, which a ``_calints`` or ``_psfstack`` file holds
# only in some metadata, mostly a ``meta.wcs`` (a real JWST exposure usually has one; a
# simulated one does not). :func:`only_needed_extensions` leaves them out for a run whose
# files use no tag they serve; it loads everything, as plain asdf does, for any other run.

#: Entry points (by the module they load) left out when a run's files do not need them.
_DEFERRED_MODULES = ("gwcs", "stdatamodels.jwst.transforms", "asdf_astropy")
#: YAML's own tags (``tag:yaml.org,2002:str`` ...): every loader handles them.
_YAML_TAG_PREFIX = "tag:yaml.org,2002:"


def _deferred(entry_point):
    module = entry_point.value.split(":", 1)[0].strip()
    return any(module == name or module.startswith(name + ".") for name in _DEFERRED_MODULES)


def _asdf_yaml(path):
    """The YAML text of a FITS file's ``ASDF`` extension (b"" when it has none)."""
    from astropy.io import fits

    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block: the step reports it
        raise OSError(f"{path} is not a regular file")
    with fits.open(path, memmap=False, lazy_load_hdus=True) as hdulist:
        try:
            extension = hdulist["ASDF"]
        except KeyError:
            return b""
        raw = bytes(np.asarray(extension.data).tobytes())
    for end in (b"\n...\n", b"\n...\r\n"):
        index = raw.find(end)
        if index >= 0:
            return raw[: index + len(end)]
    if raw.rstrip(b"\0 \n").endswith(b"\n..."):
        return raw.rstrip(b"\0 \n")
    raise ValueError("no end of the YAML document")


def file_tags(path):
    """Tags and extension URIs named in a FITS file's ASDF tree.

    Parameters
    ----------
    path : str or os.PathLike
        A FITS file, maybe with an ``ASDF`` extension (as stdatamodels writes it).

    Returns
    -------
    tags : set of str
        Every explicit tag of the tree, handles expanded (``tag:stsci.edu:gwcs/wcs-1.2.0``).
    extension_uris : set of str
        The ``extension_uri`` of each extension the file's ``history`` says it was written
        with.

    Raises
    ------
    Exception
        Whatever astropy or PyYAML raise for a file that cannot be read this way.
    """
    import yaml

    text = _asdf_yaml(path)
    tags, uris = set(), set()
    if not text:
        return tags, uris
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    stack = [yaml.compose(text, Loader=loader)]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        if not node.tag.startswith(_YAML_TAG_PREFIX):
            tags.add(node.tag)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if (
                    node.tag.endswith("/extension_metadata-1.0.0")
                    and isinstance(key, yaml.ScalarNode)
                    and key.value == "extension_uri"
                    and isinstance(value, yaml.ScalarNode)
                ):
                    uris.add(value.value)
                stack.extend((key, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return tags, uris


def _light_handles(tags, uris):
    """Whether the extensions loaded now (the light set) handle every tag and extension."""
    import asdf
    from asdf.extension import get_cached_extension_manager

    extensions = asdf.get_config().extensions
    manager = get_cached_extension_manager(extensions)
    known_uris = {extension.extension_uri for extension in extensions}
    # A converter for each tag: a tag only defined here (a unit's, say) may be converted by
    # a left-out extension (asdf-astropy's), and read otherwise without it.
    return all(manager.handles_tag(tag) for tag in tags) and uris <= known_uris


@contextlib.contextmanager
def only_needed_extensions(paths):
    """Within the block, asdf loads the gwcs and JWST transform extensions only if needed.

    Every file in ``paths`` is read first for the tags of its ASDF tree (and the extensions
    it was written with). If the extensions other than the deferred ones handle them all,
    asdf is set to load only those for the block, and set back (to load everything on its
    next use) when the block ends; any file with another tag (a ``gwcs`` WCS, a JWST
    transform, a tag of a package that is not installed), a file that cannot be read that
    way, or asdf already loaded or laid out differently, and the block runs with plain
    asdf. Either way a file reads and writes the same: the left-out extensions serve
    none of its tags.

    Parameters
    ----------
    paths : iterable of str or os.PathLike
        The FITS files (data models) the block opens.

    Yields
    ------
    bool
        True if the block runs with the light set of extensions.
    """
    light = _enter_light(list(paths))
    try:
        yield light
    finally:
        if light:
            _leave_light()


def _enter_light(paths):
    if os.environ.get("CORONALIGN_PLAIN_ASDF"):
        return False
    try:
        from asdf import _entry_points

        original = _entry_points.entry_points
    except (ImportError, AttributeError):
        return False
    import asdf

    config = asdf.get_config()
    if getattr(config, "_extensions", None) is not None or (
        getattr(config, "_resource_mappings", None) is not None
    ):
        return False  # asdf has loaded its extensions already (or changed): leave it alone
    try:
        found = [file_tags(path) for path in paths]
    except Exception:  # a file this cannot read: let stdatamodels read (and report) it
        return False
    tags = set().union(*(tags for tags, _ in found))
    uris = set().union(*(uris for _, uris in found))

    def entry_points(**selection):
        return [point for point in original(**selection) if not _deferred(point)]

    _entry_points.entry_points = entry_points
    _state["original"] = original
    try:
        handled = _light_handles(tags, uris)
    except Exception:
        handled = False
    if not handled:
        _leave_light()
    return handled


def _leave_light():
    import asdf
    from asdf import _entry_points

    original = _state.pop("original", None)
    if original is not None:
        _entry_points.entry_points = original
    config = asdf.get_config()
    config.reset_extensions()
    config.reset_resources()


_state = {}
