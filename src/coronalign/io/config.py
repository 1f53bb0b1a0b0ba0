"""A section of the workflow's configuration file, for commands that read it themselves.

``coronalign download --config my.yaml`` reads the ``mast:`` section the workflow's
``download`` rule uses, so the command and the workflow fetch the same files. The workflow
validates the whole file against ``workflow/schemas/config.schema.yaml``; the command
checks only the section it uses.
"""

from pathlib import Path

from coronalign.errors import InputFileError
from coronalign.io.strict_load import read_yaml

__all__ = ["read_config_section"]


def read_config_section(path, section):
    """One top-level section of a YAML configuration file.

    Parameters
    ----------
    path : str or os.PathLike
        The configuration (YAML).
    section : str
        The top-level key, e.g. ``"mast"``.

    Returns
    -------
    object or None
        The section's value; None when the file does not have it.

    Raises
    ------
    InputFileError
        The file is missing or is not a YAML mapping, uses an alias or gives a key twice.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "configuration file not found")
    config = read_yaml(path, "configuration")
    if config is None:
        return None
    if not isinstance(config, dict):
        raise InputFileError(path, "is not a configuration (a YAML mapping of keys)")
    return config.get(section)
